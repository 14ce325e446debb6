"""Benchmarks group: the domain benchmark suite from held-out facts, and decontamination of every training set."""

import json

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from assets.ingest import domain_facts
from curation.decontam import GPT3_NGRAM, find_contaminated, ngram_index
from curation.demo.facts import FactBase
from curation.tables import read_jsonl, write_jsonl_atomic, write_parquet_atomic, write_text_atomic
from evaluation.benchmarks import build_benchmarks, write_benchmarks
from evaluation.lm_eval_tasks import write_task_configs
from pipelines.resources import ModelworksStorage


class BenchmarkConfig(dg.Config):
    seed: int = 0


@dg.asset(group_name="benchmarks", code_version="1", deps=[domain_facts], kinds={"jsonl", "yaml"},
          description="MCQ, QA, sentence completion, summarization and held-out text built from held-out facts, "
                      "with lm-evaluation-harness task configs over the local files.")
def benchmark_suite(config: BenchmarkConfig, storage: ModelworksStorage) -> dg.MaterializeResult:
    facts = FactBase.from_dict(json.loads(storage.path("facts", "facts.json").read_text()))
    bench = build_benchmarks(facts, config.seed)
    bench_dir = storage.path("benchmarks", "data")
    counts = write_benchmarks(bench, bench_dir)
    tasks = write_task_configs(bench_dir, storage.path("benchmarks", "lm_eval_tasks"))
    return dg.MaterializeResult(metadata={
        "items_per_task": dg.MetadataValue.json(counts), "lm_eval_tasks": dg.MetadataValue.json(list(tasks)),
        "heldout_facts": len(facts.heldout), "example_mcq": dg.MetadataValue.json(bench.mcq[0]),
        "path": dg.MetadataValue.path(str(bench_dir))})


class DecontaminationConfig(dg.Config):
    ngram: int = GPT3_NGRAM  # 13: GPT-3 style; 8 (LLAMA3_NGRAM): Llama-3 style


def _benchmark_indexes(storage: ModelworksStorage, n: int) -> dict:
    facts = FactBase.from_dict(json.loads(storage.path("facts", "facts.json").read_text()))
    bench = build_benchmarks(facts, 0)
    return {task: ngram_index(texts, n) for task, texts in bench.texts().items()}


def _chat_text(row: dict) -> str:
    parts = []
    for key in ("messages", "prompt", "chosen", "rejected"):
        value = row.get(key)
        if isinstance(value, list):
            parts += [m["content"] for m in value]
        elif isinstance(value, str):
            parts.append(value)
    return "\n".join(parts)


def _training_sets(storage: ModelworksStorage) -> dict[str, list[str]]:
    """Texts of every training set, as decontamination and its check see them."""
    out = {}
    for name in ("general_corpus", "domain_corpus"):
        out[name] = pq.read_table(storage.table_dir(name) / "pages.parquet", columns=["text"]).column("text").to_pylist()
    out["sft_conversations"] = [_chat_text(r) for r in read_jsonl(storage.path("synthetic", "sft.jsonl"))]
    out["preference_pairs"] = [_chat_text(r) for r in read_jsonl(storage.path("synthetic", "preferences.jsonl"))]
    return out


@dg.asset(group_name="benchmarks", code_version="1", kinds={"parquet", "jsonl"},
          deps=["general_corpus", "domain_corpus", "sft_conversations", "preference_pairs", benchmark_suite],
          description="Every training set with the documents that overlap any benchmark item removed "
                      "(word n-gram overlap); removed documents kept beside with the benchmark they leak.")
def decontaminated_training_sets(config: DecontaminationConfig, storage: ModelworksStorage) -> dg.MaterializeResult:
    indexes = _benchmark_indexes(storage, config.ngram)
    out_dir = storage.path("decontaminated")
    removed_per_set, removed_per_benchmark, removed_rows = {}, {t: 0 for t in indexes}, []
    for name, texts in _training_sets(storage).items():
        hits = {task: find_contaminated(texts, idx, config.ngram) for task, idx in indexes.items()}
        bad = np.zeros(len(texts), dtype=bool)
        for task, counts in hits.items():
            bad |= counts > 0
            removed_per_benchmark[task] += int((counts > 0).sum())
        removed_per_set[name] = int(bad.sum())
        for i in np.flatnonzero(bad):
            removed_rows.append({"training_set": name, "index": int(i),
                                 "benchmarks": [t for t, c in hits.items() if c[i] > 0], "text": texts[i][:2000]})
        if name.endswith("_corpus"):
            table = pq.read_table(storage.table_dir(name) / "pages.parquet")
            write_parquet_atomic(table.filter(pa.array(~bad)), out_dir / f"{name}.parquet")
        else:
            rows = read_jsonl(storage.path("synthetic", "sft.jsonl" if name == "sft_conversations"
                                           else "preferences.jsonl"))
            write_jsonl_atomic([r for r, b in zip(rows, bad) if not b], out_dir / f"{name}.jsonl")
    write_jsonl_atomic(removed_rows, out_dir / "removed.jsonl")
    # The check must look for the same n-grams that decontamination removed.
    write_text_atomic(json.dumps({"ngram": config.ngram}), out_dir / "decontamination.json")
    return dg.MaterializeResult(metadata={
        "ngram": config.ngram, "removed_per_training_set": dg.MetadataValue.json(removed_per_set),
        "removed_per_benchmark": dg.MetadataValue.json(removed_per_benchmark),
        "removed_total": len(removed_rows), "path": dg.MetadataValue.path(str(out_dir))})


@dg.asset_check(asset=decontaminated_training_sets, blocking=True,
                description="No benchmark n-gram remains in any decontaminated training set.")
def no_benchmark_overlap(storage: ModelworksStorage) -> dg.AssetCheckResult:
    d = storage.path("decontaminated")
    manifest = d / "decontamination.json"
    n = json.loads(manifest.read_text())["ngram"] if manifest.exists() else GPT3_NGRAM
    indexes = _benchmark_indexes(storage, n)
    sets = {name: pq.read_table(d / f"{name}.parquet", columns=["text"]).column("text").to_pylist()
            for name in ("general_corpus", "domain_corpus")}
    for name in ("sft_conversations", "preference_pairs"):
        sets[name] = [_chat_text(r) for r in read_jsonl(d / f"{name}.jsonl")]
    overlaps = {name: int(sum((find_contaminated(texts, idx, n) > 0).sum() for idx in indexes.values()))
                for name, texts in sets.items()}
    return dg.AssetCheckResult(passed=sum(overlaps.values()) == 0,
                               metadata={"overlapping_documents": dg.MetadataValue.json(overlaps), "ngram": n})
