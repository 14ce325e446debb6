"""A synthetic near-duplicate test bed: pages with planted near duplicates of known true Jaccard.

Pages are ~300 words drawn from a Zipf-distributed vocabulary (common words repeat, as in real
text), some with shared boilerplate blocks (cookie banners, newsletter footers). A fraction of
pages get one near duplicate made by random word substitutions, insertions and deletions at
several edit levels; the true word 5-gram Jaccard of every planted pair is computed exactly.
`score_pairs` scores any clustering against it: positives are pairs with true Jaccard >= the
threshold, predictions are all pairs that share a cluster.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from curation.dedup import exact_jaccard

# Word edits per 300-word page: true Jaccard about 0.97, 0.93, 0.87, 0.82, 0.72, 0.58, 0.40.
EDIT_LEVELS = (1, 2, 4, 6, 10, 16, 28)

_SYLLABLES = ["ka", "to", "ri", "ne", "sa", "mo", "lu", "pe", "di", "an", "or", "el", "ust", "ing", "ver",
              "com", "pro", "tion", "al", "er", "ba", "fi", "go", "hu", "je", "qui", "za", "wo", "ly", "ment"]
_BOILERPLATE = [
    "we use cookies to improve your experience by continuing to browse you accept our privacy policy "
    "accept all settings manage preferences",
    "subscribe to our newsletter for weekly updates on new articles offers and events straight to your inbox "
    "you can unsubscribe at any time",
    "all rights reserved imprint privacy terms of use contact us about us careers advertise with us sitemap",
    "related articles most read popular guides editor picks latest videos top stories you may also like",
    "share this article on facebook twitter linkedin or send it by email to a friend print this page",
    "sign in to leave a comment comments are moderated and will appear after approval read our community rules",
]


@dataclass
class Testbed:
    ids: list[str]
    texts: list[str]
    # (row of near duplicate, row of its source, edits, true Jaccard)
    planted: list[tuple[int, int, int, float]] = field(default_factory=list)
    shares_boilerplate: np.ndarray | None = None


def _vocabulary(rng: np.random.Generator, size: int) -> list[str]:
    words = set()
    while len(words) < size:
        n = int(rng.integers(1, 5))  # 30 syllables, 1-4 of them: ~837k possible words
        words.add("".join(_SYLLABLES[i] for i in rng.integers(0, len(_SYLLABLES), n)))
    return sorted(words)


def _edit(words: list[str], n_edits: int, vocab: list[str], rng: np.random.Generator) -> list[str]:
    out = list(words)
    for _ in range(n_edits):
        i = int(rng.integers(0, len(out)))
        kind = rng.random()
        new = vocab[int(rng.integers(0, len(vocab)))]
        if kind < 0.6:
            out[i] = new
        elif kind < 0.8:
            out.insert(i, new)
        elif len(out) > 10:
            del out[i]
    return out


def make_testbed(n_docs: int, seed: int = 0, words_per_page: int = 300, frac_near_dup: float = 0.2,
                 frac_boilerplate: float = 0.5, edit_levels: tuple[int, ...] = EDIT_LEVELS,
                 vocab_size: int = 30_000) -> Testbed:
    """`n_docs` pages; `frac_near_dup` of them are near duplicates (one per source, cycling levels)."""
    rng = np.random.default_rng(seed)
    vocab = _vocabulary(rng, vocab_size)
    # Zipf-like word frequencies: rank r has weight 1 / (r + 10).
    weights = 1.0 / (np.arange(vocab_size) + 10.0)
    weights /= weights.sum()
    n_dups = int(n_docs * frac_near_dup)
    n_orig = n_docs - n_dups
    draws = rng.choice(vocab_size, size=(n_orig, words_per_page), p=weights)
    pages: list[list[str]] = []
    has_bp = rng.random(n_orig) < frac_boilerplate
    for k in range(n_orig):
        words = [vocab[i] for i in draws[k]]
        if has_bp[k]:
            # Boilerplate replaces part of the content: pages of one site share up to ~40% of words.
            blocks = rng.choice(len(_BOILERPLATE), size=int(rng.integers(1, 4)), replace=False)
            bp = " ".join(_BOILERPLATE[b] for b in sorted(blocks)).split()
            words = words[: max(words_per_page - len(bp), 60)] + bp
        pages.append(words)
    planted = []
    sources = rng.choice(n_orig, size=n_dups, replace=False)
    for j, src in enumerate(sources):
        level = edit_levels[j % len(edit_levels)]
        pages.append(_edit(pages[src], level, vocab, rng))
        planted.append((n_orig + j, int(src), level))
    order = rng.permutation(len(pages))
    row_of = np.empty(len(pages), dtype=np.int64)
    row_of[order] = np.arange(len(pages))
    texts = [" ".join(pages[i]) for i in order]
    ids = [f"doc-{int(x):016x}" for x in rng.integers(0, 2**63, size=len(pages))]
    pairs = np.array([[row_of[d], row_of[s]] for d, s, _ in planted], dtype=np.int64).reshape(-1, 2)
    jac = exact_jaccard(texts, pairs)
    shares = np.zeros(len(pages), dtype=bool)
    shares[row_of[:n_orig][has_bp]] = True
    return Testbed(ids, texts, [(int(p[0]), int(p[1]), lvl, float(j))
                                for p, (_, _, lvl), j in zip(pairs, planted, jac)], shares)


def score_pairs(bed: Testbed, cluster_id: list[str], threshold: float = 0.8) -> dict:
    """Pairwise precision / recall / F1 of a clustering; positives: pairs with true Jaccard >= threshold.

    Predicted pairs are all pairs within a cluster; a predicted pair that is not planted has its
    true Jaccard computed, so a merge of two genuinely similar pages is not counted against it.
    """
    members: dict[str, list[int]] = {}
    for row, c in enumerate(cluster_id):
        members.setdefault(c, []).append(row)
    predicted = {(min(a, b), max(a, b)) for rows in members.values() if len(rows) > 1
                 for x, a in enumerate(rows) for b in rows[x + 1:]}
    planted = {(min(d, s), max(d, s)): j for d, s, _, j in bed.planted}
    unknown = sorted(predicted - planted.keys())
    extra = dict(zip(unknown, exact_jaccard(bed.texts, np.array(unknown, dtype=np.int64).reshape(-1, 2))))
    positives = {p for p, j in planted.items() if j >= threshold}
    positives |= {p for p, j in extra.items() if j >= threshold}
    tp = len(predicted & positives)
    fp = len(predicted - positives)
    fn = len(positives - predicted)
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    by_level: dict[int, dict] = {}
    for d, s, level, j in bed.planted:
        row = by_level.setdefault(level, {"pairs": 0, "mean_jaccard": 0.0, "merged": 0})
        row["pairs"] += 1
        row["mean_jaccard"] += j
        row["merged"] += int((min(d, s), max(d, s)) in predicted)
    for row in by_level.values():
        row["mean_jaccard"] = round(row["mean_jaccard"] / row["pairs"], 3)
        row["merge_rate"] = round(row.pop("merged") / row["pairs"], 4)
    false_boilerplate = sum(1 for a, b in predicted - positives
                            if bed.shares_boilerplate[a] and bed.shares_boilerplate[b])
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
            "positives": len(positives), "predicted_pairs": len(predicted), "false_pairs": fp,
            "false_pairs_sharing_boilerplate": false_boilerplate, "by_edit_level": dict(sorted(by_level.items()))}
