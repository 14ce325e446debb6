"""A benchmark suite on disk: user files in, validated splits + lm-eval tasks out, and what the report needs.

Layout under `suite_dir` (everything the evaluation and decontamination read afterwards):

    manifest.json                       benchmarks, kinds, counts, chance, split files (written last)
    data/<name>.<split>.jsonl           validated items, split by group hash (validation / test)
    quarantine/<name>.jsonl             bad rows with line number and reason (only when there were some)
    lm_eval_tasks/<prefix>_<name>_<split>.yaml + utils.py
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from dataclasses import dataclass

from evaluation.benchmarks import (SPLIT_SEED, VAL_FRACTION, LoadedBenchmark, load_benchmark_file, read_manifest,
                                   read_split, write_benchmark_suite)


@dataclass
class SuiteSettings:
    """How the benchmark suite is built (the benchmark_suite stage; the recipe's `benchmarks:` section)."""

    source: str = "auto"  # files: the recipe's inputs.benchmarks; heldout: generated from held-out documents; auto
    generated_files: bool = False  # the files were written by a generator (the demo's): blind baselines then block
    val_fraction: float = VAL_FRACTION  # share of item groups in the validation split (for choosing settings)
    split_seed: int = SPLIT_SEED  # seeds the validation/test split
    seed: int = 0  # seeds the generation of items from held-out documents


def build_benchmark_suite(sources: Iterable[str | os.PathLike], suite_dir: str | os.PathLike,
                          val_fraction: float = VAL_FRACTION, seed: int = SPLIT_SEED,
                          prefix: str = "modelworks") -> dict:
    """Load every JSONL file (or every `*.jsonl` in a folder) of `sources`, split, write data and lm-eval tasks.

    Returns the manifest plus "tasks": {benchmark name: {split: lm-eval task name}} and
    "tasks_dir". Bad rows are quarantined and counted, never fatal; a source with no readable
    kind raises a clear ValueError naming the file.
    """
    from evaluation.lm_eval_tasks import write_suite_task_configs

    benchmarks: list[LoadedBenchmark] = []
    for source in sources:
        path = Path(source)
        files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
        if not files:
            raise FileNotFoundError(f"no *.jsonl benchmark files in {path}")
        benchmarks += [load_benchmark_file(f) for f in files]
    suite_dir = Path(suite_dir)
    manifest = write_benchmark_suite(benchmarks, suite_dir, val_fraction, seed)
    tasks = write_suite_task_configs(suite_dir, suite_dir / "lm_eval_tasks", prefix)
    return {**manifest, "tasks": tasks, "tasks_dir": str(suite_dir / "lm_eval_tasks")}


def suite_tasks(suite_dir: str | os.PathLike, split: str = "test", prefix: str = "modelworks") -> list[str]:
    """The lm-eval task names of one split of every benchmark with items in it (test: for the report only)."""
    from evaluation.lm_eval_tasks import task_name

    manifest = read_manifest(suite_dir)
    return [task_name(name, split, prefix) for name, b in manifest["benchmarks"].items() if b.get(f"n_{split}")]


def suite_chance(suite_dir: str | os.PathLike, split: str = "test", prefix: str = "modelworks") -> dict[str, float]:
    """{task name: chance accuracy} for the multiple-choice benchmarks of one split (report's chance row)."""
    from evaluation.lm_eval_tasks import task_name

    manifest = read_manifest(suite_dir)
    return {task_name(name, split, prefix): b["chance"][split] for name, b in manifest["benchmarks"].items()
            if b["chance"].get(split) is not None}


def suite_baselines(suite_dir: str | os.PathLike, post_training_rows: Iterable[dict], split: str = "test",
                    prefix: str = "modelworks") -> dict[str, dict[str, list[dict]]]:
    """Blind baselines on every multiple-choice / completion benchmark of one split, in the report's shape.

    `post_training_rows`: the SFT (`messages`) and preference (`prompt`/`chosen`/`rejected`) rows
    the models were post-trained on. Returns {baseline name: {task name: per-item rows}}.
    """
    from evaluation.baselines import SeenIndex, baseline_item_scores, post_training_texts
    from evaluation.lm_eval_tasks import task_name

    seen = SeenIndex(post_training_texts(post_training_rows))
    manifest = read_manifest(suite_dir)
    out: dict[str, dict[str, list[dict]]] = {}
    for name, b in manifest["benchmarks"].items():
        if b["kind"] not in ("mcq", "completion") or not b.get(f"n_{split}"):
            continue
        for baseline, rows in baseline_item_scores(read_split(suite_dir, name, split), seen).items():
            out.setdefault(baseline, {})[task_name(name, split, prefix)] = rows
    return out


PROVENANCE_DOCS_SHOWN = 20  # source documents named per benchmark in the report (all are counted)


def suite_provenance(suite_dir: str | os.PathLike, split: str = "test") -> dict[str, dict]:
    """Where every benchmark's items of one split come from, read from the items themselves.

    Generated items carry their provenance (teacher_model, judge_model, prompt_version, the
    held-out seed document in source/doc_id: see curation.synthetic.chain), so the answer does
    not depend on the caller remembering how the suite was built; a user's own file just names
    its path. Returns {name: {"kind", "file", "split", "n_items", "n_groups", "origin":
    "generated"|"file", "teachers", "judges", "prompt_versions", "source_documents" (the first
    PROVENANCE_DOCS_SHOWN), "n_source_documents"}}.
    """
    manifest = read_manifest(suite_dir)
    out: dict[str, dict] = {}
    for name, b in manifest["benchmarks"].items():
        items = read_split(suite_dir, name, split) if b.get(f"n_{split}") else []

        def values(key: str) -> list[str]:
            return sorted({str(i[key]) for i in items if i.get(key) not in (None, "")})

        teachers = values("teacher_model")
        # Generated items name their seed document by source (its file/URL) and doc_id; either will do.
        docs = sorted({str(i.get("source") or i.get("doc_id")) for i in items if i.get("source") or i.get("doc_id")})
        out[name] = {"kind": b["kind"], "file": b["source"], "split": split, "n_items": len(items),
                     "n_groups": len({str(i.get("group", i["id"])) for i in items}),
                     "origin": "generated" if teachers else "file", "teachers": teachers,
                     "judges": values("judge_model"), "prompt_versions": values("prompt_version"),
                     "source_documents": docs[:PROVENANCE_DOCS_SHOWN] if teachers else [],
                     "n_source_documents": len(docs) if teachers else 0}
    return out


def write_generated_sources(items: Iterable[dict], out_dir: str | os.PathLike, prefix: str = "heldout") -> dict:
    """Write generated benchmark items (each with a "kind") as one `<prefix>_<kind>.jsonl` per kind.

    Items of one source document share a group, so all questions about a document land in one split.
    Returns {kind: path}. The files are then loaded like any user benchmark file.
    """
    from curation.tables import write_jsonl_atomic

    by_kind: dict[str, list[dict]] = {}
    for item in items:
        by_kind.setdefault(item["kind"], []).append({**item, "group": item.get("doc_id", item.get("group"))})
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for kind, rows in sorted(by_kind.items()):
        paths[kind] = out_dir / f"{prefix}_{kind}.jsonl"
        write_jsonl_atomic(rows, paths[kind])
    return paths
