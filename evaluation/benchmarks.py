"""Benchmark files: documented JSONL schemas, a validating loader, deterministic validation/test splits.

A benchmark is a JSONL file of items of one *kind*. Schemas (extra fields are kept and ignored):

| kind          | required fields                                   | notes                                         |
|---------------|---------------------------------------------------|-----------------------------------------------|
| mcq           | question: str, choices: [str, ...], answer        | answer: 0-based int index or a letter "A".."Z" |
| qa            | question: str, answers: [str, ...]                | `answer: str` (+ `aliases`) is accepted too    |
| completion    | context: str, endings: [str, ...], label          | label: 0-based int index or a letter           |
| summarization | document: str, summary: str                       |                                               |
| heldout       | text: str                                         | held-out text for perplexity                  |

Optional on every kind: `id` (else a hash of the content), and `group` (items of one group, e.g.
several questions about one fact or one source document, always land in the same split; the
demo uses `fact_id`, seed-document benchmarks `source`).

The kind of a file is taken from its name (`mcq.jsonl`, `plant_mcq.jsonl`, `plant.mcq.jsonl`) or,
failing that, from the fields of its rows. A bad row (not JSON, a missing field, an answer out
of range, a duplicate id) never stops a load: it is counted and written to a quarantine file with
its line number and reason.

Splits: an item's group is hashed with the seed to a number in [0, 1); below `val_fraction` it
goes to VALIDATION (choose hyperparameters and checkpoints there), else to TEST (the report
only). Hashing per group keeps the assignment of an item stable when other items are added.

Blind baselines: the manifest records, per multiple-choice/completion benchmark and split, how
well rules that know nothing score (`evaluation.baselines`: shortest option, most word overlap
with the question, and option never seen in post-training data when those texts are given),
with a 95% CI and whether each exceeds chance + tolerance — measured when the suite is built,
so a benchmark that form alone can pass is known before any model is scored on it.
"""
from __future__ import annotations

import hashlib
import json
import os
import string
from dataclasses import dataclass, field
from pathlib import Path

from curation.tables import write_jsonl_atomic, write_text_atomic

KINDS = ("mcq", "qa", "completion", "summarization", "heldout")
SPLITS = ("validation", "test")
VAL_FRACTION = 0.3
SPLIT_SEED = 0

_REQUIRED = {
    "mcq": ("question", "choices", "answer"),
    "qa": ("question",),
    "completion": ("context", "endings", "label"),
    "summarization": ("document", "summary"),
    "heldout": ("text",),
}


class BadItem(ValueError):
    """A benchmark row that does not match its kind's schema; the message is the quarantine reason."""


def _text(row: dict, key: str) -> str:
    value = row.get(key)
    if not isinstance(value, str) or not value.strip():
        raise BadItem(f"{key!r} must be a non-empty string")
    return value


def _options(row: dict, key: str) -> list[str]:
    value = row.get(key)
    if not isinstance(value, list) or len(value) < 2:
        raise BadItem(f"{key!r} must be a list of at least 2 strings")
    if not all(isinstance(v, str) and v.strip() for v in value):
        raise BadItem(f"every entry of {key!r} must be a non-empty string")
    if len({v.strip() for v in value}) != len(value):
        raise BadItem(f"{key!r} has duplicate entries")
    return value


def _index(row: dict, key: str, n: int) -> int:
    value = row.get(key)
    if isinstance(value, str) and len(value.strip()) == 1 and value.strip().upper() in string.ascii_uppercase:
        value = string.ascii_uppercase.index(value.strip().upper())
    elif isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadItem(f"{key!r} must be a 0-based index or a letter, got {value!r}")
    if not 0 <= value < n:
        raise BadItem(f"{key!r}={value} is out of range for {n} options")
    return value


def content_id(kind: str, row: dict) -> str:
    """A stable id from an item's content, for rows that bring none."""
    keys = _REQUIRED[kind] if kind != "qa" else ("question",)
    payload = json.dumps([kind] + [row.get(k) for k in keys], sort_keys=True, ensure_ascii=False)
    return f"{kind}-{hashlib.sha1(payload.encode('utf-8')).hexdigest()[:12]}"


def validate_item(kind: str, row: object) -> dict:
    """The normalized item (answer/label as int, QA `answers` list, `id`, `group`); raises BadItem."""
    if kind not in KINDS:
        raise ValueError(f"unknown benchmark kind {kind!r}; expected one of {KINDS}")
    if not isinstance(row, dict):
        raise BadItem("row is not a JSON object")
    item = dict(row)
    # Options are stripped: lm-eval joins prompt and option with exactly one space
    # (target_delimiter), so a leading space in the data would make two.
    if kind == "mcq":
        _text(row, "question")
        item["choices"] = [c.strip() for c in _options(row, "choices")]
        item["answer"] = _index(row, "answer", len(item["choices"]))
    elif kind == "completion":
        item["context"] = _text(row, "context").rstrip()
        item["endings"] = [e.strip() for e in _options(row, "endings")]
        item["label"] = _index(row, "label", len(item["endings"]))
    elif kind == "qa":
        _text(row, "question")
        answers = row.get("answers")
        if answers is None and isinstance(row.get("answer"), str):
            answers = [row["answer"], *(row.get("aliases") or [])]
        if isinstance(answers, str):
            answers = [answers]
        if not isinstance(answers, list) or not answers or not all(isinstance(a, str) and a.strip()
                                                                   for a in answers):
            raise BadItem("'answers' must be a non-empty list of non-empty strings")
        item["answers"] = answers
        item["answer"] = answers[0]  # lm-eval's doc_to_target
    elif kind == "summarization":
        _text(row, "document")
        _text(row, "summary")
    else:
        _text(row, "text")
    item_id = row.get("id")
    item["id"] = str(item_id) if isinstance(item_id, (str, int)) and str(item_id).strip() else content_id(kind, row)
    group = row.get("group", row.get("fact_id", row.get("source")))
    item["group"] = str(group) if group is not None else item["id"]
    return item


def infer_kind(path: str | os.PathLike, rows: list | None = None) -> str | None:
    """The kind of a benchmark file from its name (`…mcq.jsonl`), else from its first rows' fields."""
    stem = Path(path).name.removesuffix(".jsonl")
    for kind in KINDS:
        if stem == kind or stem.endswith(f"_{kind}") or stem.endswith(f".{kind}") or stem.endswith(f"-{kind}"):
            return kind
    votes: dict[str, int] = {}
    for row in (rows or [])[:50]:
        if not isinstance(row, dict):
            continue
        kind = ("mcq" if "choices" in row else "completion" if "endings" in row else
                "summarization" if "document" in row else
                "qa" if "question" in row and ("answers" in row or "answer" in row) else
                "heldout" if "text" in row else None)
        if kind:
            votes[kind] = votes.get(kind, 0) + 1
    return max(votes, key=votes.get) if votes else None


@dataclass
class LoadedBenchmark:
    """Valid items of one benchmark file, and the rows that were quarantined with their reason."""

    name: str
    kind: str
    source: str
    items: list[dict] = field(default_factory=list)
    quarantined: list[dict] = field(default_factory=list)


def load_benchmark_file(path: str | os.PathLike, kind: str | None = None, name: str | None = None) -> LoadedBenchmark:
    """Read and validate one JSONL benchmark; bad rows go to `.quarantined` (line, reason, raw row)."""
    path = Path(path)
    raw: list[tuple[int, object, str | None]] = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                raw.append((line_no, json.loads(line), None))
            except json.JSONDecodeError as e:
                raw.append((line_no, line.rstrip("\n")[:2000], f"not valid JSON: {e.msg}"))
    kind = kind or infer_kind(path, [r for _, r, err in raw if err is None])
    name = name or Path(path).name.removesuffix(".jsonl").replace(".", "_").replace("-", "_")
    if kind is None:
        raise ValueError(f"cannot tell the benchmark kind of {path}: name it <name>_<kind>.jsonl, kind in {KINDS}")
    out = LoadedBenchmark(name=name, kind=kind, source=str(path))
    seen: set[str] = set()
    for line_no, row, error in raw:
        if error is None:
            try:
                item = validate_item(kind, row)
                if item["id"] in seen:
                    raise BadItem(f"duplicate id {item['id']!r}")
                seen.add(item["id"])
                out.items.append(item)
                continue
            except BadItem as e:
                error = str(e)
        out.quarantined.append({"benchmark": name, "source": str(path), "line": line_no, "reason": error,
                                "row": row})
    return out


def split_of(group: str, val_fraction: float = VAL_FRACTION, seed: int = SPLIT_SEED) -> str:
    """'validation' or 'test' for an item group, from a seeded hash (stable as other items come and go)."""
    digest = hashlib.blake2b(f"{seed}\x1f{group}".encode("utf-8"), digest_size=8).digest()
    return "validation" if int.from_bytes(digest, "big") / 2**64 < val_fraction else "test"


def split_items(items: list[dict], val_fraction: float = VAL_FRACTION, seed: int = SPLIT_SEED) -> dict[str, list[dict]]:
    """{"validation": [...], "test": [...]}: every item of a group in one split, input order kept."""
    out: dict[str, list[dict]] = {s: [] for s in SPLITS}
    for item in items:
        out[split_of(item.get("group", item["id"]), val_fraction, seed)].append(item)
    return out


def chance_level(kind: str, items: list[dict]) -> float | None:
    """Expected accuracy of uniform guessing: the mean of 1/len(options); None for generative kinds."""
    key = {"mcq": "choices", "completion": "endings"}.get(kind)
    if key is None or not items:
        return None
    return sum(1.0 / len(i[key]) for i in items) / len(items)


def split_file(data_dir: str | os.PathLike, name: str, split: str) -> Path:
    """Where a benchmark split lives: `<data_dir>/<name>.<split>.jsonl`."""
    return Path(data_dir) / f"{name}.{split}.jsonl"


def write_benchmark_suite(benchmarks: list[LoadedBenchmark], out_dir: str | os.PathLike,
                          val_fraction: float = VAL_FRACTION, seed: int = SPLIT_SEED,
                          post_training_texts: list[str] | None = None) -> dict:
    """Write every benchmark's validation and test files, its quarantine and a manifest.

    Layout: `out_dir/data/<name>.<split>.jsonl`, `out_dir/quarantine/<name>.jsonl` (only when rows
    were bad), `out_dir/manifest.json` (written last). Returns the manifest:
    {"val_fraction", "seed", "benchmarks": {name: {"kind", "source", "n_items", "n_quarantined",
    "n_validation", "n_test", "chance", "blind_baselines": {split: {rule: {"acc", "lo", "hi", "n",
    "chance", "above_tolerance"}}} (multiple choice and completion only), "files": {split: path}}}}.
    """
    from evaluation.baselines import SeenIndex

    seen = SeenIndex(post_training_texts) if post_training_texts is not None else None
    out_dir = Path(out_dir)
    names = [b.name for b in benchmarks]
    if len(set(names)) != len(names):
        raise ValueError(f"benchmark names must be unique: {names}")
    manifest: dict = {"val_fraction": val_fraction, "seed": seed, "benchmarks": {}}
    for bench in benchmarks:
        splits = split_items(bench.items, val_fraction, seed)
        files = {}
        for split, rows in splits.items():
            files[split] = str(split_file(out_dir / "data", bench.name, split))
            write_jsonl_atomic(rows, files[split])
        if bench.quarantined:
            write_jsonl_atomic(bench.quarantined, out_dir / "quarantine" / f"{bench.name}.jsonl")
        manifest["benchmarks"][bench.name] = {
            "kind": bench.kind, "source": bench.source, "n_items": len(bench.items),
            "n_quarantined": len(bench.quarantined),
            "quarantine_reasons": _reason_counts(bench.quarantined),
            **{f"n_{s}": len(rows) for s, rows in splits.items()},
            "chance": {s: chance_level(bench.kind, rows) for s, rows in splits.items()},
            **({"blind_baselines": _blind_baselines(bench.kind, splits, seen)}
               if bench.kind in ("mcq", "completion") else {}),
            "files": files,
        }
    write_text_atomic(json.dumps(manifest, indent=1), out_dir / "manifest.json")
    return manifest


def _blind_baselines(kind: str, splits: dict[str, list[dict]], seen) -> dict[str, dict]:
    from evaluation.baselines import baseline_summary

    return {s: baseline_summary(rows, chance_level(kind, rows), seen) for s, rows in splits.items() if rows}


def record_blind_baselines(bench_dir: str | os.PathLike, post_training_texts: list[str] | None = None,
                           origin: str | None = None) -> dict:
    """Recompute every benchmark's blind baselines from its split files and rewrite the manifest (atomically).

    For a suite built before the post-training data existed, or to add the never-seen rule once
    it does. `origin` ("generated": written by the teacher or the demo, "files": the user's own)
    is recorded too; the benchmark check fails a generated suite and only warns on a user's.
    """
    from evaluation.baselines import SeenIndex

    bench_dir = Path(bench_dir)
    manifest = read_manifest(bench_dir)
    seen = SeenIndex(post_training_texts) if post_training_texts is not None else None
    for name, b in manifest["benchmarks"].items():
        if b["kind"] in ("mcq", "completion"):
            splits = {s: read_split(bench_dir, name, s) for s in SPLITS if b.get(f"n_{s}")}
            b["blind_baselines"] = _blind_baselines(b["kind"], splits, seen)
    if origin is not None:
        manifest["origin"] = origin
    manifest["never_seen_measured"] = seen is not None
    write_text_atomic(json.dumps(manifest, indent=1), bench_dir / "manifest.json")
    return manifest


def blind_baseline_failures(manifest: dict, split: str = "test", tolerance: float | None = None,
                            too_few: list | None = None) -> list[dict]:
    """Every (benchmark, rule) of one split whose blind baseline exceeds chance + tolerance, worst first.

    A benchmark of fewer than `MIN_UNITS` independent units (item groups; items for a manifest written before
    units were recorded) is judged only when the rule's hits are unlikely under chance (one-sided binomial test over
    its items, p < 0.05): with 2 items one lucky hit is 0.5 > 0.25 + 0.05 (p = 0.44), a false alarm that would stop
    the chain; 22 of 47 is not luck (p < 1e-3). The rest go to `too_few` (when given), with the same fields."""
    from evaluation.baselines import BLIND_TOLERANCE
    from evaluation.stats import MIN_UNITS

    tolerance = BLIND_TOLERANCE if tolerance is None else tolerance
    out = []
    for name, b in manifest["benchmarks"].items():
        for rule, r in (b.get("blind_baselines") or {}).get(split, {}).items():
            if r["acc"] > r["chance"] + tolerance + 1e-9:
                row = {"benchmark": name, "rule": rule, "acc": r["acc"], "lo": r["lo"], "hi": r["hi"],
                       "chance": r["chance"], "n": r["n"], "units": r.get("units", r["n"])}
                if row["units"] >= MIN_UNITS or _binomial_tail(round(r["acc"] * r["n"]), r["n"], r["chance"]) < 0.05:
                    out.append(row)
                elif too_few is not None:
                    too_few.append(row)
    return sorted(out, key=lambda f: f["chance"] - f["acc"])


def _binomial_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p)."""
    from math import comb

    return float(sum(comb(n, i) * p ** i * (1 - p) ** (n - i) for i in range(max(k, 0), n + 1)))


def _reason_counts(quarantined: list[dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in quarantined:
        reason = row["reason"].split(":")[0]
        counts[reason] = counts.get(reason, 0) + 1
    return counts


def load_benchmark_folder(folder: str | os.PathLike) -> list[LoadedBenchmark]:
    """Every `*.jsonl` benchmark in a user folder (kinds from names or fields), sorted by file name."""
    paths = sorted(Path(folder).glob("*.jsonl"))
    if not paths:
        raise FileNotFoundError(f"no *.jsonl benchmark files in {folder}")
    return [load_benchmark_file(p) for p in paths]


def read_manifest(bench_dir: str | os.PathLike) -> dict:
    return json.loads((Path(bench_dir) / "manifest.json").read_text())


def read_split(bench_dir: str | os.PathLike, name: str, split: str = "test") -> list[dict]:
    """The items of one benchmark split as written by `write_benchmark_suite` (never rebuilt)."""
    from curation.tables import read_jsonl

    return read_jsonl(split_file(Path(bench_dir) / "data", name, split))


def benchmark_texts(item: dict, kind: str) -> dict[str, list[str]]:
    """What decontamination must keep out of training data, per item.

    "whole": strings whose presence means the item itself leaked (the question or context with
    its answer, the document); "answer": short answer strings, which legitimately occur in
    teaching text and are cut out only where they stand next to a leaked question.
    """
    if kind == "mcq":
        return {"whole": [item["question"], f"{item['question']} {item['choices'][item['answer']]}"],
                "answer": [item["choices"][item["answer"]]]}
    if kind == "qa":
        return {"whole": [item["question"]] + [f"{item['question']} {a}" for a in item["answers"]],
                "answer": list(item["answers"])}
    if kind == "completion":
        return {"whole": [f"{item['context']} {item['endings'][item['label']]}"],
                "answer": [item["endings"][item["label"]]]}
    if kind == "summarization":
        return {"whole": [item["document"], item["summary"]], "answer": []}
    return {"whole": [item["text"]], "answer": []}
