"""Benchmark decontamination by word n-gram overlap (n=13 as in GPT-3, n=8 as in Llama 3)."""
from __future__ import annotations

import hashlib
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
