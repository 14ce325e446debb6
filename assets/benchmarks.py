"""Benchmarks group: the evaluation suite (benchmark files, or items generated from the held-out seed documents),
and decontamination of every training set against exactly the files that are evaluated."""

import json
from collections import Counter

import dagster as dg
import pyarrow as pa
from pydantic import Field

from assets.curation import read_table
from assets.seed import seed_corpus
from assets.storage import ModelworksStorage
from assets.synthetic import load_chunks, read_synthetic, teacher_failure
from assets.teacher import TeacherResource
from curation.tables import read_jsonl, write_jsonl_atomic, write_parquet_atomic
from assets.configs import derived_config, to_library
from curation.decontam import DecontamConfig
from evaluation.baselines import BlindBaselineSettings
from evaluation.suite import SuiteSettings


BenchmarkConfig = derived_config(
    "BenchmarkConfig", SuiteSettings,
    extra={  # the recipe's inputs
        "benchmark_sources": (list[str], Field(default=[], description="JSONL files or folders, one kind per file "
                                                                        "(recipe: inputs.benchmarks).")),
        "lm_eval_tasks": (list[str], Field(default=[], description="lm-eval task names every stage is also scored "
                                                                    "on (recipe: inputs.lm_eval_tasks).")),
        "lm_eval_task_dirs": (list[str], Field(default=[], description="Folders of the user's own lm-eval task "
                                                                        "YAML (recipe: inputs.lm_eval_tasks).")),
    })


def _resolve_source(config: BenchmarkConfig) -> str:
    if config.source != "auto":
        return config.source
    return "files" if config.benchmark_sources else "heldout"


@dg.asset(group_name="benchmarks", code_version="3", deps=[seed_corpus], kinds={"jsonl", "yaml"},
          description="The benchmark suite: validated items per kind, a validation and a test split, lm-eval task "
                      "configs over the local files, bad rows quarantined with their reason.")
def benchmark_suite(context: dg.AssetExecutionContext, config: BenchmarkConfig, storage: ModelworksStorage,
                    teacher: TeacherResource) -> dg.MaterializeResult:
    from evaluation.suite import build_benchmark_suite, suite_chance

    source = _resolve_source(config)
    sources_dir = storage.local_path(storage.benchmark_sources())
    meta: dict = {"source": source}
    if source == "files":
        if not config.benchmark_sources:
            raise dg.Failure("source=files needs benchmark_sources (JSONL files or folders)")
        sources = list(config.benchmark_sources)
    elif source == "heldout":
        from curation.synthetic.chain import ChainConfig, generate_benchmark_items
        from curation.synthetic.teacher import TeacherUnavailable

        chunks = load_chunks(storage, "heldout")
        if not chunks:
            raise dg.Failure("no held-out seed documents: raise seed_corpus.heldout_fraction, or give benchmark files")
        t = teacher.build(storage)
        try:
            result = generate_benchmark_items(chunks, t, ChainConfig(seed=config.seed), log=context.log.info)
        except TeacherUnavailable as err:
            raise teacher_failure(err, t.stats) from err
        from evaluation.suite import write_generated_sources

        with storage.writing(storage.benchmark_sources()) as tmp:
            written = write_generated_sources(result.items, tmp)
        with storage.writing(storage.benchmark_generation_quarantine()) as tmp:
            write_jsonl_atomic(result.quarantine, tmp)
        sources = [str(sources_dir)]
        meta |= {"heldout_chunks": len(chunks), "generated_kinds": dg.MetadataValue.json(sorted(written)), "teacher_model": t.model_name, "teacher_requests": t.stats["requests"],
                 "generation_quarantined": dg.MetadataValue.json(dict(Counter(r.get("reason")
                                                                              for r in result.quarantine))),
                 "generation_options_rejected": dg.MetadataValue.json(dict(Counter(
                     r.get("reason") for r in result.quarantine if r.get("stage") == "options")))}
    else:
        raise dg.Failure(f"unknown benchmark source {source!r}: files, heldout or auto")

    suite_dir = storage.local_path(storage.benchmark_suite())  # manifest.json is written last: the commit marker
    try:
        manifest = build_benchmark_suite(sources, suite_dir, config.val_fraction, config.split_seed)
    except (FileNotFoundError, ValueError) as err:
        raise dg.Failure(f"benchmark files could not be read: {err}") from err
    storage.write_text(json.dumps({"tasks": config.lm_eval_tasks, "task_dirs": config.lm_eval_task_dirs}),
                       storage.external_tasks())
    # Blind baselines measured now, on the items as built; the never-seen rule needs the post-training data,
    # so it is measured when the synthetic sets exist (else at the report, beside the models).
    from evaluation.baselines import post_training_texts
    from evaluation.benchmarks import record_blind_baselines

    post = post_training_texts(read_synthetic(storage, "sft") + read_synthetic(storage, "preferences"))
    origin = "files" if source == "files" and not config.generated_files else "generated"
    manifest = {**manifest, **record_blind_baselines(suite_dir, post or None, origin=origin)}
    benches = manifest["benchmarks"]
    first_mcq = next((n for n, b in benches.items() if b["kind"] == "mcq"), None)
    example = read_jsonl(benches[first_mcq]["files"]["test"])[0] if first_mcq else {}
    return dg.MaterializeResult(metadata={
        **meta,
        "items": dg.MetadataValue.json({n: {"kind": b["kind"], "validation": b.get("n_validation", 0),
                                            "test": b.get("n_test", 0), "quarantined": b["n_quarantined"]}
                                        for n, b in benches.items()}),
        "quarantine_reasons": dg.MetadataValue.json({n: b["quarantine_reasons"] for n, b in benches.items()
                                                     if b["quarantine_reasons"]}),
        "chance_test": dg.MetadataValue.json(suite_chance(suite_dir)),
        "blind_baselines_test": dg.MetadataValue.json(_baseline_table(manifest, "test")),
        "lm_eval_tasks": dg.MetadataValue.json(manifest["tasks"]),
        "external_lm_eval_tasks": dg.MetadataValue.json(config.lm_eval_tasks + config.lm_eval_task_dirs),
        "example_test_item": dg.MetadataValue.json(example),
        "path": dg.MetadataValue.path(storage.benchmark_suite())})


def _baseline_table(manifest: dict, split: str) -> dict:
    """{benchmark: {rule: "acc [lo, hi] (chance c)"}} for the metadata."""
    return {name: {rule: f"{r['acc']:.3f} [{r['lo']:.3f}, {r['hi']:.3f}] (chance {r['chance']:.3f}, n={r['n']})"
                   for rule, r in b.get("blind_baselines", {}).get(split, {}).items()}
            for name, b in manifest["benchmarks"].items() if b.get("blind_baselines", {}).get(split)}


BlindBaselineCheckConfig = derived_config("BlindBaselineCheckConfig", BlindBaselineSettings)


@dg.asset_check(asset=benchmark_suite, blocking=True,
                description="Blind baselines sit at chance: on a generated benchmark (held-out documents, or files a "
                            "generator wrote, such as the demo's) "
                            "the check fails, and stops the chain, when a rule that knows nothing beats chance by more "
                            "than the tolerance on the test split; on the user's own benchmark files it only warns.")
def blind_baselines_at_chance(config: BlindBaselineCheckConfig, storage: ModelworksStorage) -> dg.AssetCheckResult:
    from evaluation.benchmarks import blind_baseline_failures, read_manifest

    with storage.reading(storage.benchmark_suite()) as suite_dir:
        manifest = read_manifest(suite_dir)
    too_few: list[dict] = []
    failures = blind_baseline_failures(manifest, config.split, config.tolerance, too_few=too_few)
    generated = manifest.get("origin", "generated") != "files"
    few = sorted({f["benchmark"] for f in failures if f["n"] < 100})
    thin = sorted({f"{f['benchmark']} ({f['units']} units)" for f in too_few})
    return dg.AssetCheckResult(
        passed=not failures,
        severity=dg.AssetCheckSeverity.ERROR if generated else dg.AssetCheckSeverity.WARN,
        description=(("generated benchmark: " if generated else "your benchmark files (a warning only): ")
                     + "; ".join(f"{f['benchmark']}: {f['rule']} {f['acc']:.3f} > chance {f['chance']:.3f} + "
                                 f"{config.tolerance}" for f in failures[:4])
                     + (f" (fewer than 100 items in {few}: read the CI)" if few else "")) if failures else
                    (f"too few independent units to judge (not blocking; their scores are 'too few to tell' in the "
                     f"report): {', '.join(thin)}" if thin else None),
        metadata={"origin": manifest.get("origin", "generated"), "tolerance": config.tolerance,
                  "never_seen_measured": manifest.get("never_seen_measured", False),
                  "baselines": dg.MetadataValue.json(_baseline_table(manifest, config.split)),
                  "above_tolerance": dg.MetadataValue.json(failures),
                  "too_few_units_to_judge": dg.MetadataValue.json(too_few)})


DecontaminationConfig = derived_config("DecontaminationConfig", DecontamConfig)


def _chat_text(row: dict) -> str:
    parts = []
    for key in ("messages", "prompt", "chosen", "rejected"):
        value = row.get(key)
        if isinstance(value, list):
            parts += [m["content"] for m in value]
        elif isinstance(value, str):
            parts.append(value)
    return "\n".join(parts)


CORPORA = ("general_corpus", "domain_corpus")
CHAT_SETS = {"sft_conversations": "sft", "preference_pairs": "preferences"}


@dg.asset(group_name="benchmarks", code_version="2", kinds={"parquet", "jsonl"},
          deps=["general_corpus", "domain_corpus", "sft_conversations", "preference_pairs", benchmark_suite],
          description="Every training set (web corpora and synthetic sets) cleaned of the benchmark items that are "
                      "evaluated: leaked spans cut out of pages, leaking synthetic rows dropped; every action logged.")
def decontaminated_training_sets(config: DecontaminationConfig, storage: ModelworksStorage) -> dg.MaterializeResult:
    from curation.decontam import decontaminate_texts, index_from_suite, summarize_actions

    cfg = to_library(DecontamConfig, config)
    with storage.reading(storage.benchmark_suite()) as suite_dir:
        index = index_from_suite(suite_dir, cfg)
    summary, log_rows = {}, []
    for name in CORPORA:
        table = read_table(storage, storage.corpus(name))
        after, actions = decontaminate_texts(table.column("text").to_pylist(), index, cfg)
        keep = [t is not None for t in after]
        cleaned = table.set_column(table.schema.get_field_index("text"), "text", pa.array(after, pa.string()))
        with storage.writing(storage.decontaminated(name)) as tmp:
            # typed: an empty corpus (no domain pages found) gives an empty list, which pa.array reads as nulls
            write_parquet_atomic(cleaned.filter(pa.array(keep, pa.bool_())), tmp)
        summary[name] = summarize_actions(actions)
        log_rows += [{"training_set": name, "id": i, "url": u, **a.to_dict()}
                     for i, u, a in zip(table.column("id").to_pylist(), table.column("url").to_pylist(), actions)
                     if a.action != "keep"]
    for name, synthetic_name in CHAT_SETS.items():
        rows = read_synthetic(storage, synthetic_name)
        after, actions = decontaminate_texts([_chat_text(r) for r in rows], index, cfg, whole_rows=True)
        with storage.writing(storage.decontaminated(name)) as tmp:
            write_jsonl_atomic([r for r, a in zip(rows, actions) if a.action == "keep"], tmp)
        summary[name] = summarize_actions(actions)
        log_rows += [{"training_set": name, "id": r.get("id", i), **a.to_dict()}
                     for i, (r, a) in enumerate(zip(rows, actions)) if a.action != "keep"]
    with storage.writing(storage.decontamination_log()) as tmp:
        write_jsonl_atomic(log_rows, tmp)
    meta = {"ngram": config.ngram, "benchmark_items_indexed": index.n_items,
            "actions_per_training_set": dg.MetadataValue.json(summary),
            "pages_cut": sum(summary[n]["cut"] for n in CORPORA),
            "pages_dropped": sum(summary[n]["drop"] for n in CORPORA),
            "synthetic_rows_dropped": sum(summary[n]["drop"] + summary[n]["cut"] for n in CHAT_SETS),
            "log": dg.MetadataValue.path(storage.decontamination_log())}
    return dg.MaterializeResult(metadata=meta)


@dg.asset_check(asset=decontaminated_training_sets, blocking=True,
                description="No benchmark question, context or document (8+ words) appears verbatim in any "
                            "decontaminated training set: a plain substring search, independent of the n-gram "
                            "index that decided what to cut.")
def no_benchmark_text_in_training_sets(storage: ModelworksStorage) -> dg.AssetCheckResult:
    from curation.decontam import verbatim_leaks
    from evaluation.benchmarks import benchmark_texts, read_manifest

    with storage.reading(storage.benchmark_suite()) as suite_dir:
        manifest = read_manifest(suite_dir)
        strings = [s for b in manifest["benchmarks"].values() for f in b["files"].values()
                   for item in read_jsonl(f) for s in benchmark_texts(item, b["kind"])["whole"]]
    found = {}
    for name in CORPORA:
        texts = read_table(storage, storage.decontaminated(name), columns=["text"]).column("text")
        found[name] = verbatim_leaks(texts.to_pylist(), strings)
    for name in CHAT_SETS:
        with storage.reading(storage.decontaminated(name)) as p:
            found[name] = verbatim_leaks([_chat_text(r) for r in read_jsonl(p)], strings)
    return dg.AssetCheckResult(passed=not any(found.values()), metadata={
        "benchmark_strings": len(strings), "leaks_per_set": dg.MetadataValue.json({k: len(v) for k, v in found.items()}),
        "examples": dg.MetadataValue.json([{"set": k, "doc": i, "text": s[:160]} for k, v in found.items()
                                           for i, s in v[:3]])})
