"""Bottom-up domain selection: cosine similarity of hashed TF-IDF vectors to a seed-corpus centroid."""
from __future__ import annotations

import re
import zlib
from typing import Sequence

import numpy as np

# 2^20 buckets keep unigram+bigram collisions rare for corpora of this size at 8 MiB per dense vector.
N_BUCKETS = 1 << 20
# Calibrated on equipment-fault manuals vs news/recipes/travel/sports pages (tests/test_curation_lib.py):
# in-domain pages score ~0.15-0.2, general pages ~0.03-0.05, so 0.1 sits in the gap. Scores
# shrink as the vocabulary of a corpus grows: re-check the split on a labelled sample of real data.
DEFAULT_DOMAIN_THRESHOLD = 0.1
_TOKEN_RE = re.compile(r"[^\W\d_]+(?:['’\-][^\W\d_]+)*")


def _features(text: str) -> np.ndarray:
    words = [w.lower() for w in _TOKEN_RE.findall(text)]
    grams = words + [f"{a} {b}" for a, b in zip(words, words[1:])]
    # crc32 is stable across processes and Python versions, unlike hash().
    return np.fromiter((zlib.crc32(g.encode("utf-8")) % N_BUCKETS for g in grams), dtype=np.int64, count=len(grams))


def _tfidf(bags: list[tuple[np.ndarray, np.ndarray]], idf: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    out = []
    for idx, counts in bags:
        w = (1.0 + np.log(counts)) * idf[idx]
        norm = np.linalg.norm(w)
        out.append((idx, w / norm if norm > 0 else w))
    return out


def domain_similarity(seed_texts: Sequence[str], texts: Sequence[str]) -> np.ndarray:
    """Cosine similarity in [0, 1] of each text to the centroid of `seed_texts`.

    Vectors are sublinear-TF x smoothed-IDF over hashed word unigrams and bigrams; IDF is
    computed over seed and candidate texts together, so words common everywhere weigh little.
    """
    if not seed_texts:
        raise ValueError("seed_texts is empty")
    bags = [np.unique(_features(t), return_counts=True) for t in (*seed_texts, *texts)]
    df = np.zeros(N_BUCKETS, dtype=np.float64)
    for idx, _ in bags:
        df[idx] += 1.0
    n_docs = len(bags)
    idf = np.log((1.0 + n_docs) / (1.0 + df)) + 1.0
    vectors = _tfidf(bags, idf)
    centroid = np.zeros(N_BUCKETS, dtype=np.float64)
    for idx, w in vectors[: len(seed_texts)]:
        centroid[idx] += w
    norm = np.linalg.norm(centroid)
    if norm > 0:
        centroid /= norm
    return np.array([float(w @ centroid[idx]) for idx, w in vectors[len(seed_texts):]], dtype=np.float64)


def select_domain(scores: np.ndarray, threshold: float = DEFAULT_DOMAIN_THRESHOLD) -> np.ndarray:
    """Boolean mask of texts whose domain similarity reaches `threshold`."""
    return np.asarray(scores, dtype=np.float64) >= threshold


def holdout_mask(ids: Sequence[str], fraction: float, seed: int = 0) -> np.ndarray:
    """True for the documents set aside (by a seeded hash of their id) as held-out text, never trained on."""
    import hashlib

    def u(doc_id: str) -> float:
        return int(hashlib.sha256(f"{seed}:{doc_id}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF

    return np.array([u(i) < fraction for i in ids], dtype=bool)
