"""Benchmark decontamination of training sets by word n-gram overlap, with span cutting.

Policy (what counts as a leak, and what is done about it):

- The benchmark items are read from the files that are evaluated (a suite written by
  `evaluation.benchmarks.write_benchmark_suite`, or any item list), never regenerated.
- Each item contributes its *whole* strings: the question (alone and followed by its answer),
  a completion's context with its ending, a summarization document and summary, a held-out text.
  Their word n-grams (n = 13 by default, as in GPT-3; words lowercased, punctuation dropped) are
  indexed; a whole string shorter than n words is indexed whole at its own length, so a copied
  short question still matches; strings shorter than `min_whole_words` are too generic and are
  not indexed.
- Short *answer* strings ("a worn wear ring") are never a reason to act on their own: they are
  exactly the words that legitimately teach the domain. An answer is only cut when it follows a
  matched question within `answer_window_words` (a quiz copying "question ... Answer: answer").
- A training document with matches gets its matched spans (plus such answers) *cut* out, keeping
  its teaching text; it is *dropped* whole only when the cut spans cover at least
  `drop_fraction` of its words (it is mostly benchmark) or when the set is row-structured
  (SFT conversations, preference pairs: a conversation with a hole is not a training example).
- Every document gets an action with its reason: keep / cut (spans, items) / drop.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from curation.dedup import normalize_for_dedup

GPT3_NGRAM = 13
LLAMA3_NGRAM = 8


class NgramIndex(set):
    """A set of hashed benchmark n-grams; `short_lengths` lists the word counts of items shorter than n.

    Items with fewer than n words are indexed whole, so a short benchmark question copied
    verbatim still matches; `n` records which n the index was built with.
    """

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n
        self.short_lengths: set[int] = set()


def _hash_gram(words: Sequence[str]) -> int:
    return int.from_bytes(hashlib.blake2b(" ".join(words).encode("utf-8"), digest_size=8).digest(), "little")


def _grams(words: Sequence[str], n: int) -> Iterable[tuple[int, str]]:
    for i in range(len(words) - n + 1):
        gram = words[i : i + n]
        yield _hash_gram(gram), " ".join(gram)


def ngram_index(benchmark_texts: Iterable[str], n: int = GPT3_NGRAM) -> NgramIndex:
    """Hashed word n-grams of every benchmark text, after lowercasing and stripping punctuation."""
    index = NgramIndex(n)
    for text in benchmark_texts:
        words = normalize_for_dedup(text).split()
        if not words:
            continue
        if len(words) < n:
            index.add(_hash_gram(words))
            index.short_lengths.add(len(words))
            continue
        index.update(h for h, _ in _grams(words, n))
    return index


def contaminated(text: str, index: set, n: int = GPT3_NGRAM) -> list[str]:
    """The distinct n-grams of `text` (normalized) found in `index`; empty if the text is clean."""
    words = normalize_for_dedup(text).split()
    lengths = {n} | getattr(index, "short_lengths", set())
    matched: dict[int, str] = {}
    for k in sorted(lengths, reverse=True):
        for h, gram in _grams(words, k):
            if h in index:
                matched.setdefault(h, gram)
    return list(matched.values())


def find_contaminated(texts: Sequence[str], index: set, n: int = GPT3_NGRAM) -> np.ndarray:
    """Number of distinct benchmark n-grams found in each text (0 = clean)."""
    return np.array([len(contaminated(t, index, n)) for t in texts], dtype=np.int64)


# --- span-level decontamination against benchmark files -----------------------------------------

_TOKEN_RE = re.compile(r"[^\W_]+", re.UNICODE)


@dataclass(frozen=True)
class DecontamConfig:
    ngram: int = GPT3_NGRAM  # word n-gram length for whole strings (13: GPT-3)
    min_whole_words: int = 5  # whole strings shorter than this are too generic to index
    answer_window_words: int = 16  # an answer within this many words after a matched question is cut too
    drop_fraction: float = 0.5  # drop a document when cut spans cover at least this share of its words


@dataclass
class BenchmarkIndex:
    """Hashed word n-grams of the benchmark items' whole strings, by length, pointing at item keys."""

    n: int
    grams: dict[int, dict[int, set[str]]] = field(default_factory=dict)
    answers: dict[str, list[list[str]]] = field(default_factory=dict)
    n_items: int = 0

    def add(self, key: str, whole: Iterable[str], answers: Iterable[str], min_words: int) -> None:
        self.n_items += 1
        self.answers[key] = [w for w in (normalize_for_dedup(a).split() for a in answers) if w]
        for text in whole:
            words = normalize_for_dedup(text).split()
            if len(words) < min_words:
                continue
            length = min(len(words), self.n)
            table = self.grams.setdefault(length, {})
            for i in range(len(words) - length + 1):
                table.setdefault(_hash_gram(words[i:i + length]), set()).add(key)


def benchmark_index(benchmarks: dict[str, tuple[str, list[dict]]], config: DecontamConfig = DecontamConfig()) -> BenchmarkIndex:
    """Index {benchmark name: (kind, items)}; items in the schemas of `evaluation.benchmarks`."""
    from evaluation.benchmarks import benchmark_texts

    index = BenchmarkIndex(config.ngram)
    for name, (kind, items) in benchmarks.items():
        for item in items:
            texts = benchmark_texts(item, kind)
            index.add(f"{name}/{item['id']}", texts["whole"], texts["answer"], config.min_whole_words)
    return index


def index_from_suite(suite_dir: str | os.PathLike, config: DecontamConfig = DecontamConfig(),
                     splits: Sequence[str] = ("validation", "test")) -> BenchmarkIndex:
    """Index every split of every benchmark of a written suite (its manifest and JSONL files, as evaluated)."""
    from curation.tables import read_jsonl

    manifest = json.loads((Path(suite_dir) / "manifest.json").read_text())
    benchmarks = {}
    for name, meta in manifest["benchmarks"].items():
        items = [row for split in splits if split in meta["files"] and Path(meta["files"][split]).exists()
                 for row in read_jsonl(meta["files"][split])]
        benchmarks[name] = (meta["kind"], items)
    return benchmark_index(benchmarks, config)


@dataclass
class DocAction:
    """What decontamination does to one training document, and why."""

    action: str  # "keep" | "cut" | "drop"
    items: list[str] = field(default_factory=list)  # "<benchmark>/<item id>" of the leaked items
    spans: list[tuple[int, int]] = field(default_factory=list)  # character spans cut from the text
    coverage: float = 0.0  # share of the document's words inside the spans
    reason: str = ""

    def to_dict(self) -> dict:
        return {"action": self.action, "items": self.items, "spans": [list(s) for s in self.spans],
                "coverage": round(self.coverage, 4), "reason": self.reason}


def _tokens(text: str) -> list[tuple[int, int, str]]:
    """(start, end, normalized word) per word of the original text, so spans map back to characters."""
    out = []
    for m in _TOKEN_RE.finditer(text):
        for word in normalize_for_dedup(m.group()).split():
            out.append((m.start(), m.end(), word))
    return out


def _find(sub: list[str], words: list[str], start: int, stop: int) -> int:
    for i in range(start, min(stop, len(words) - len(sub) + 1)):
        if words[i:i + len(sub)] == sub:
            return i
    return -1


def decide(text: str, index: BenchmarkIndex, config: DecontamConfig = DecontamConfig(),
           whole_rows: bool = False) -> DocAction:
    """The action for one document: keep, cut the leaked spans, or drop it (see the module policy)."""
    tokens = _tokens(text)
    words = [t[2] for t in tokens]
    marked: list[tuple[int, int, set[str]]] = []
    for length in sorted(index.grams, reverse=True):
        table = index.grams[length]
        for i in range(len(words) - length + 1):
            keys = table.get(_hash_gram(words[i:i + length]))
            if keys:
                marked.append((i, i + length, keys))
    if not marked:
        return DocAction("keep", reason="no benchmark n-gram")
    items: set[str] = set()
    ranges = []
    for start, end, keys in marked:
        items |= keys
        for key in keys:  # a quiz prints the answer right after the question: cut it too
            for answer in index.answers.get(key, []):
                at = _find(answer, words, end, end + config.answer_window_words)
                if at >= 0:
                    end = max(end, at + len(answer))
        ranges.append((start, end))
    ranges.sort()
    merged: list[list[int]] = []
    for start, end in ranges:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    covered = sum(e - s for s, e in merged)
    coverage = covered / len(words)
    spans = [(tokens[s][0], tokens[e][0] if e < len(tokens) else len(text)) for s, e in merged]
    leaked = sorted(items)
    if whole_rows:
        return DocAction("drop", leaked, spans, coverage, f"row-structured set: {len(leaked)} leaked item(s)")
    if coverage >= config.drop_fraction:
        return DocAction("drop", leaked, spans, coverage,
                         f"benchmark text covers {coverage:.0%} of the document (>= {config.drop_fraction:.0%})")
    return DocAction("cut", leaked, spans, coverage,
                     f"cut {len(spans)} span(s) ({coverage:.0%} of words) leaking {len(leaked)} item(s)")


def apply_action(text: str, action: DocAction) -> str | None:
    """The document after its action: unchanged, with the spans cut out, or None when dropped."""
    if action.action == "drop":
        return None
    if action.action == "keep":
        return text
    out, last = [], 0
    for start, end in action.spans:
        out.append(text[last:start])
        last = end
    out.append(text[last:])
    return re.sub(r"[ \t]{2,}", " ", "".join(out)).strip()


def decontaminate_texts(texts: Sequence[str], index: BenchmarkIndex, config: DecontamConfig = DecontamConfig(),
                        whole_rows: bool = False) -> tuple[list[str | None], list[DocAction]]:
    """Decide and apply for every document of one training set: (new texts or None, actions)."""
    actions = [decide(t, index, config, whole_rows) for t in texts]
    return [apply_action(t, a) for t, a in zip(texts, actions)], actions


def remaining_leaks(texts: Iterable[str | None], index: BenchmarkIndex) -> int:
    """How many documents still contain a benchmark n-gram (the blocking check wants 0)."""
    return sum(1 for t in texts if t is not None and decide(t, index).action != "keep")


def summarize_actions(actions: Sequence[DocAction]) -> dict:
    """Counts per action, characters of spans cut, and leaked items seen, for metadata."""
    counts = {"keep": 0, "cut": 0, "drop": 0}
    for a in actions:
        counts[a.action] += 1
    return {**counts, "spans_cut": sum(len(a.spans) for a in actions if a.action == "cut"),
            "leaked_items": len({k for a in actions for k in a.items})}


# --- the independent gate ------------------------------------------------------------------------

def _plain(text: str) -> str:
    """Lower case, every run of non-alphanumerics one space: a normalization independent of the n-gram code."""
    return " " + " ".join(re.findall(r"[a-z0-9]+", text.lower())) + " "


def verbatim_leaks(texts: Iterable[str | None], strings: Iterable[str], min_words: int = 8) -> list[tuple[int, str]]:
    """(document index, leaked string) for every benchmark string of >= min_words words found verbatim in a text.

    The blocking check of decontamination uses this, not the n-gram index that decided what to cut:
    a plain substring search over normalized text, so a bug in hashing, windowing or span mapping
    cannot hide a leak from the gate.
    """
    needles = sorted({p for s in strings if len((p := _plain(s)).split()) >= min_words})
    hits = []
    for i, text in enumerate(texts):
        if text is None:
            continue
        hay = _plain(text)
        hits += [(i, n.strip()) for n in needles if n in hay]
    return hits
