"""The demo's ground-truth scores, as asset checks that only a demo run registers.

The generated demo crawl knows every page's fate (its truth sidecars: kind, duplicate-of, planted PII, planted
benchmark leaks), so each curation stage can be scored against it: curation precision/recall and planted PII per
shard, duplicate removal, domain selection, and leak removal by decontamination. The real chain's assets know
nothing of the demo; these checks read what the assets wrote and the truth the demo generator wrote, and report
the scores as metadata. They never block: a score is something to read, not a gate.

`build_definitions` adds them only when the recipe declares the demo generator's world as an input
(`inputs.ground_truth`, which `modelworks demo` sets to the folder it wrote); a run on your own inputs has none.
This is the only module outside curation/demo that imports the demo package (tests/test_layering.py).
"""

from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq

from assets.benchmarks import CORPORA
from assets.partitions import crawl_shard_partitions
from assets.storage import ModelworksStorage
from curation.demo.benchmarks import score_leak_removal
from curation.demo.crawl import load_truth
from curation.demo.truth import score_curation, score_dedup, score_domain, score_pii
from curation.tables import read_jsonl

CHECK_NAMES = ("curated_pages_vs_ground_truth", "deduplicated_pages_vs_ground_truth",
               "domain_corpus_vs_ground_truth", "decontaminated_training_sets_vs_ground_truth")


def _column(storage: ModelworksStorage, loc: str, name: str) -> list:
    with storage.reading(loc) as path:
        return pq.read_table(path, columns=[name]).column(name).to_pylist()


def _result(truth: list[dict], demo_dir: str, scores: dict) -> dg.AssetCheckResult:
    if not truth:
        return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.WARN,
                                   description=f"no ground truth in {demo_dir}/truth: nothing to score against",
                                   metadata={"ground_truth": demo_dir})
    return dg.AssetCheckResult(passed=True, severity=dg.AssetCheckSeverity.WARN,
                               metadata={"ground_truth": demo_dir,
                                         **{k: dg.MetadataValue.json(v) for k, v in scores.items()}})


def _latest_metadata(context: dg.AssetCheckExecutionContext, asset: str) -> dict:
    event = context.instance.get_latest_materialization_event(dg.AssetKey(asset))
    return {k: v.value for k, v in event.asset_materialization.metadata.items()} if event else {}


def demo_checks(demo_dir: str | Path) -> list[dg.AssetChecksDefinition]:
    """The ground-truth checks over the demo world the generator wrote into `demo_dir` (its `truth/` sidecars)."""
    demo_dir = str(demo_dir)

    @dg.asset_check(asset="curated_pages", name="curated_pages_vs_ground_truth", blocking=False,
                    partitions_def=crawl_shard_partitions,
                    description="Demo only: curation precision/recall per shard against the generator's truth (pages "
                                "a good chain keeps vs drops), and how much planted PII survives in the kept text.")
    def curated_vs_truth(context: dg.AssetCheckExecutionContext, storage: ModelworksStorage) -> dg.AssetCheckResult:
        shard = context.partition_key
        truth = load_truth(demo_dir, shard)
        with storage.reading(storage.curated_pages(shard)) as path:
            kept = pq.read_table(path, columns=["url", "text"])
        urls = set(kept.column("url").to_pylist())
        return _result(truth, demo_dir, {
            "vs_ground_truth": score_curation(urls, truth),
            "planted_pii": score_pii(kept.column("text").to_pylist(), truth, urls)})

    @dg.asset_check(asset="deduplicated_pages", name="deduplicated_pages_vs_ground_truth", blocking=False,
                    description="Demo only: planted exact and near duplicates removed (recall; near duplicates "
                                "counted at the run's Jaccard threshold) and pages without a twin removed.")
    def dedup_vs_truth(context: dg.AssetCheckExecutionContext, storage: ModelworksStorage) -> dg.AssetCheckResult:
        truth = load_truth(demo_dir)
        kept = set(_column(storage, storage.deduplicated_pages(), "url"))
        candidates = kept | set(_column(storage, storage.duplicates_removed(), "url"))
        threshold = _latest_metadata(context, "deduplicated_pages").get("jaccard_threshold")
        return _result(truth, demo_dir, {"vs_ground_truth": score_dedup(kept, truth, candidates, threshold)})

    @dg.asset_check(asset="domain_corpus", name="domain_corpus_vs_ground_truth", blocking=False,
                    description="Demo only: domain selection precision/recall against the pages the generator "
                                "wrote to teach domain facts.")
    def domain_vs_truth(storage: ModelworksStorage) -> dg.AssetCheckResult:
        truth = load_truth(demo_dir)
        selected = set(_column(storage, storage.corpus("domain_corpus"), "url"))
        candidates = set(_column(storage, storage.deduplicated_pages(), "url"))
        return _result(truth, demo_dir, {"vs_ground_truth": score_domain(selected, candidates, truth)})

    @dg.asset_check(asset="decontaminated_training_sets", name="decontaminated_training_sets_vs_ground_truth",
                    blocking=False,
                    description="Demo only: leak removal against the pages the generator planted benchmark items "
                                "in (pages acted on, planted items found, clean pages dropped or cut).")
    def leaks_vs_truth(storage: ModelworksStorage) -> dg.AssetCheckResult:
        truth = load_truth(demo_dir)
        with storage.reading(storage.decontamination_log()) as path:
            log = {(r["training_set"], r.get("url")): r for r in read_jsonl(path)}
        pages = []
        for name in CORPORA:
            with storage.reading(storage.decontaminated(name)) as path:
                after = pq.read_table(path, columns=["url", "text"])
            text_after = dict(zip(after.column("url").to_pylist(), after.column("text").to_pylist()))
            for url in _column(storage, storage.corpus(name), "url"):
                row = log.get((name, url), {})
                pages.append({"url": url, "action": row.get("action", "keep"), "items": row.get("items", []),
                              "text_after": text_after.get(url)})
        return _result(truth, demo_dir, {"leak_removal_vs_ground_truth": score_leak_removal(pages, truth)})

    return [curated_vs_truth, dedup_vs_truth, domain_vs_truth, leaks_vs_truth]


def demo_overrides(recipe, storage: ModelworksStorage) -> list[str]:
    """What `modelworks demo` adds to the recipe once the demo world is in `storage`'s home (as `--set` overrides, so
    ablation variants keep them): the generator's benchmark files as inputs.benchmarks (marked generated: blind
    baselines above chance fail the chain), unless the recipe names its own, its manuals as inputs.seed_docs (likewise),
    and its world as inputs.ground_truth."""
    import json

    from curation.demo.benchmarks import build_benchmarks, write_benchmark_sources
    from curation.demo.crawl import DemoCrawlConfig, load_fact_base

    demo_dir = Path(storage.local_path(storage.demo()))
    inputs = recipe.data.get("inputs", {})
    extra = []
    if not inputs.get("benchmarks"):
        bench_dir = demo_dir / "benchmarks"
        if not bench_dir.exists() and (demo_dir / "facts.json").exists():  # a demo home written before the files
            seed = DemoCrawlConfig(**recipe.demo_crawl).seed
            write_benchmark_sources(build_benchmarks(load_fact_base(demo_dir), seed), bench_dir)
        extra += [f"inputs.benchmarks={json.dumps([str(bench_dir)])}", "benchmarks.generated_files=true"]
    if not inputs.get("seed_docs"):  # the demo world's maintenance manuals, read like any folder of documents
        extra.append(f"inputs.seed_docs={json.dumps(str(Path(storage.local_path(storage.demo_seed()))))}")
    if not inputs.get("ground_truth"):
        extra.append(f"inputs.ground_truth={json.dumps(str(demo_dir))}")
    return extra
