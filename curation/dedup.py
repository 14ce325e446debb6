"""Exact and MinHash-LSH near-duplicate detection whose result does not depend on input order.

Signatures (the per-shard, embarrassingly parallel part) are built in bulk:

1. Arrow normalizes (NFKC) and splits the texts of a batch on whitespace;
2. each *distinct* token is lowercased and split at punctuation (`normalize_for_dedup`'s rules)
   and its words hashed (blake2b, 64 bits) once, in Python (cached across batches, so this cost
   follows the vocabulary, not the text); numpy expands the tokens back into word hashes;
3. word hashes are combined into word 5-gram (shingle) hashes with numpy, folded to 32 bits;
4. all `num_perm` permutations of all shingles are applied as one (num_perm x shingles) numpy
   product, h_k(x) = (a_k * x + b_k mod 2^64) >> 32 (Dietzfelbinger's multiply-add-shift,
   2-independent for 32-bit keys), and reduced to one minimum per document and permutation.

The values are not bit-equal to datasketch's (which hashes every shingle with sha1 in Python),
but they are MinHash signatures of the same shingle sets: P[sig_a[k] == sig_b[k]] = Jaccard(a, b).
Clustering (the cross-shard part) bands the signatures (bands and rows chosen from a Jaccard
threshold by datasketch's optimizer, FineWeb-like: 5-grams, 112 permutations), verifies every
candidate pair, and joins verified pairs by union-find; the keeper of a cluster, and the cluster
id, is its lexicographically smallest document id.
"""
from __future__ import annotations

import hashlib
import inspect
import re
import unicodedata
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# Signature value of a text without words: larger than any real value (those are < 2^32).
EMPTY_HASH = np.uint64(2**64 - 1)
# Kept for callers of the old API: the largest value a real signature entry can take.
MAX_HASH = np.uint64(2**32 - 1)
# Shingles per block of the (num_perm x shingles) product: 112 x 4096 x 8 bytes = 3.5 MiB.
_BLOCK_SHINGLES = 4096
# Documents normalized and split per Arrow call; bounds the per-batch vocabulary.
_BATCH_DOCS = 8192
# Buckets larger than this (boilerplate, templated pages) are paired as a star around their
# smallest id instead of all pairs, so one huge bucket cannot produce a quadratic number of pairs.
MAX_BUCKET_PAIRS = 64

# One word = a maximal run of letters and digits (isalnum).
_NON_WORD_RE = re.compile(r"[^\w\s]|_")
# Odd 64-bit multipliers that make a shingle hash depend on word order (golden-ratio family).
_POSITION_MULTIPLIERS = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9,
                                  0xD6E8FEB86659FD93, 0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53,
                                  0x94D049BB133111EB, 0xBF58476D1CE4E5B9], dtype=np.uint64)


def normalize_for_dedup(text: str) -> str:
    """NFKC, lowercase, punctuation and symbols to spaces, whitespace collapsed."""
    text = _NON_WORD_RE.sub(" ", unicodedata.normalize("NFKC", text).lower())
    return " ".join(text.split())


def _as_arrow(texts: Sequence[str] | pa.Array | pa.ChunkedArray) -> pa.Array:
    arr = texts if isinstance(texts, (pa.Array, pa.ChunkedArray)) else pa.array(list(texts), pa.large_string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return pc.fill_null(arr, "")


class _TokenVocabulary:
    """Whitespace token -> hashes of its normalized words, each distinct token worked out once.

    Arrow splits the NFKC text on whitespace ("Pump," "e-mail" "--"); only the distinct tokens of
    a batch go through Python's `normalize_for_dedup` rules (lowercase, punctuation to spaces),
    which gives 0, 1 or more words per token. The result equals `normalize_for_dedup(text).split()`.
    """

    def __init__(self, max_tokens: int = 2_000_000) -> None:
        self.max_tokens = max_tokens
        self.words_of: dict[str, tuple[int, ...]] = {}
        self.word_hash: dict[str, int] = {}

    def _lookup(self, token: str) -> tuple[int, ...]:
        found = self.words_of.get(token)
        if found is None:
            if len(self.words_of) >= self.max_tokens:
                self.words_of.clear(), self.word_hash.clear()
            hashes = []
            for word in _NON_WORD_RE.sub(" ", token.lower()).split():
                h = self.word_hash.get(word)
                if h is None:
                    h = int.from_bytes(hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest(), "little")
                    self.word_hash[word] = h
                hashes.append(h)
            found = self.words_of[token] = tuple(hashes)
        return found

    def words(self, texts: Sequence[str] | pa.Array) -> tuple[np.ndarray, np.ndarray]:
        """(64-bit hash of every normalized word, in order; number of words per text)."""
        arr = pc.utf8_normalize(_as_arrow(texts), "NFKC")
        tokens = pc.utf8_split_whitespace(arr)
        tok_per_doc = pc.list_value_length(tokens).to_numpy(zero_copy_only=False).astype(np.int64)
        encoded = pc.list_flatten(tokens).dictionary_encode()
        per_token = [self._lookup(t) for t in encoded.dictionary.to_pylist()]
        n_words = np.fromiter((len(w) for w in per_token), dtype=np.int64, count=len(per_token))
        flat = np.fromiter((h for w in per_token for h in w), dtype=np.uint64, count=int(n_words.sum()))
        first = np.r_[0, np.cumsum(n_words)[:-1]]
        tok = encoded.indices.to_numpy(zero_copy_only=False)
        nw = n_words[tok]
        # Expand every token occurrence into its words: word k of token t is flat[first[t] + k].
        ends = np.cumsum(nw)
        within = np.arange(int(ends[-1]) if len(ends) else 0) - np.repeat(ends - nw, nw)
        hashes = flat[np.repeat(first[tok], nw) + within]
        doc_of_token = np.repeat(np.arange(len(tok_per_doc)), tok_per_doc)
        per_doc = np.bincount(doc_of_token, weights=nw, minlength=len(tok_per_doc)).astype(np.int64)
        return hashes, per_doc


def exact_duplicate_mask(ids: Sequence[str], texts: Sequence[str]) -> tuple[np.ndarray, list[str | None]]:
    """Keep the lexicographically smallest id per normalized text; others point at it in `duplicate_of`."""
    if len(ids) != len(texts):
        raise ValueError("ids and texts differ in length")
    keeper: dict[bytes, str] = {}
    digests = []
    for text in texts:
        digests.append(hashlib.sha1(normalize_for_dedup(text).encode("utf-8")).digest())
    for doc_id, digest in zip(ids, digests):
        if digest not in keeper or doc_id < keeper[digest]:
            keeper[digest] = doc_id
    keep = np.array([keeper[d] == i for i, d in zip(ids, digests)], dtype=bool)
    duplicate_of = [None if k else keeper[d] for k, d in zip(keep, digests)]
    return keep, duplicate_of


def shingles(text: str, ngram: int = 5) -> set[str]:
    """Word n-grams of the normalized text; a text shorter than `ngram` words is one shingle.

    The plain-Python reference of what `shingle_hashes` and `minhash_signatures` hash.
    """
    words = normalize_for_dedup(text).split()
    if not words:
        return set()
    if len(words) < ngram:
        return {" ".join(words)}
    return {" ".join(words[i : i + ngram]) for i in range(len(words) - ngram + 1)}


def _mix64(x: np.ndarray) -> np.ndarray:
    # splitmix64's finalizer: every output bit depends on every input bit.
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _batch_shingle_hashes(texts: Sequence[str], ngram: int,
                          vocab: _TokenVocabulary | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(32-bit shingle hashes, document index of each) for a batch; shingles are grouped by document."""
    if not 1 <= ngram <= len(_POSITION_MULTIPLIERS):
        raise ValueError(f"ngram must be in 1..{len(_POSITION_MULTIPLIERS)}")
    w, counts = (vocab or _TokenVocabulary()).words(texts)
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    total = len(w)
    mult = _POSITION_MULTIPLIERS[:ngram]
    # Windows of `ngram` consecutive words that stay inside one document.
    n_win = max(total - ngram + 1, 0)
    comb = np.zeros(n_win, dtype=np.uint64)
    for j in range(ngram):
        comb += w[j : j + n_win] * mult[j]
    doc_of_word = np.repeat(np.arange(len(counts)), counts)
    win_doc = doc_of_word[:n_win]
    valid = np.arange(n_win) + ngram <= (starts + counts)[win_doc]
    hashes, docs = [comb[valid]], [win_doc[valid]]
    # A document shorter than `ngram` words is one shingle of all its words.
    short = np.flatnonzero((counts > 0) & (counts < ngram))
    if len(short):
        padded = np.r_[w, np.zeros(ngram, dtype=np.uint64)]
        s = np.zeros(len(short), dtype=np.uint64)
        for j in range(ngram - 1):
            s += np.where(j < counts[short], padded[starts[short] + j] * mult[j], np.uint64(0))
        hashes.append(s + counts[short].astype(np.uint64))  # the length tells short texts apart
        docs.append(short)
    h, d = np.concatenate(hashes), np.concatenate(docs)
    order = np.argsort(d, kind="stable")
    # Fold to 32 bits: the permutations below are 2-independent for 32-bit keys.
    return _mix64(h[order]) >> np.uint64(32), d[order]


def shingle_hashes(texts: Sequence[str], ngram: int = 5) -> list[np.ndarray]:
    """Sorted distinct 32-bit shingle hashes of each text (what the signatures summarize)."""
    out, vocab = [], _TokenVocabulary()
    for start in range(0, len(texts), _BATCH_DOCS):
        batch = texts[start:start + _BATCH_DOCS]
        h, d = _batch_shingle_hashes(batch, ngram, vocab)
        bounds = np.searchsorted(d, np.arange(len(batch) + 1))
        out += [np.unique(h[bounds[i]:bounds[i + 1]]) for i in range(len(batch))]
    return out


@dataclass(frozen=True)
class MinhashSettings:
    """FineWeb's shingles and signature size: word 5-grams, 112 permutations."""

    num_perm: int = 112  # hash functions (signature length)
    ngram: int = 5  # word n-gram shingles
    seed: int = 1  # seeds the permutations: shards signed with different seeds cannot be compared


@dataclass(frozen=True)
class DedupSettings:
    """Pages whose word 5-gram Jaccard is >= jaccard_threshold are near duplicates.

    LSH bands are chosen for lsh_threshold by datasketch's optimizer (0.6 at 112 permutations: 16 bands x 7 rows;
    FineWeb's 14 x 8 is lsh_bands=14, lsh_rows=8). Candidates are verified on the true Jaccard of their texts
    (verify="text") or on the signature estimate ("signature"). engine="duckdb" runs the band join in DuckDB over
    the shards' signature Parquet (the scale path).
    """

    jaccard_threshold: float = 0.8  # pages at least this similar are near duplicates
    lsh_threshold: float = 0.6  # the LSH bands are chosen for this similarity (below the decision threshold)
    lsh_bands: int = 0  # 0: chosen from lsh_threshold
    lsh_rows: int = 0  # 0: chosen from lsh_threshold
    verify: Literal["text", "signature"] = "text"  # candidates verified on the texts' true Jaccard, or signatures
    engine: Literal["numpy", "duckdb"] = "numpy"  # duckdb: the band join in DuckDB (the scale path)


_MH = MinhashSettings()


def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The (a, b) of the num_perm hash functions h_k(x) = (a_k x + b_k mod 2^64) >> 32."""
    gen = np.random.default_rng(seed)
    a = gen.integers(0, 2**64, size=num_perm, dtype=np.uint64, endpoint=False) | np.uint64(1)
    b = gen.integers(0, 2**64, size=num_perm, dtype=np.uint64, endpoint=False)
    return a, b


def minhash_signatures(texts: Sequence[str], num_perm: int = _MH.num_perm, ngram: int = _MH.ngram,
                       seed: int = _MH.seed) -> np.ndarray:
    """(n, num_perm) uint64 MinHash signatures of the word `ngram`-shingle sets of `texts`.

    A text without words gets EMPTY_HASH everywhere. Cost: one Arrow pass over the text, one
    blake2b per distinct word, then ~3 numpy operations per (shingle, permutation).
    """
    a, b = permutations(num_perm, seed)
    a, b = a[:, None], b[:, None]
    vocab = _TokenVocabulary()
    sig = np.full((len(texts), num_perm), EMPTY_HASH, dtype=np.uint64)
    buf = np.empty((num_perm, _BLOCK_SHINGLES), dtype=np.uint64)
    for start in range(0, len(texts), _BATCH_DOCS):
        h, d = _batch_shingle_hashes(texts[start:start + _BATCH_DOCS], ngram, vocab)
        d = d + start
        for lo in range(0, len(h), _BLOCK_SHINGLES):
            hb, db = h[lo:lo + _BLOCK_SHINGLES], d[lo:lo + _BLOCK_SHINGLES]
            out = buf[:, :len(hb)]
            np.multiply(a, hb, out=out)
            out += b  # wraps mod 2^64, as the hash family wants
            seg = np.flatnonzero(np.r_[True, db[1:] != db[:-1]])
            # The shift is monotone, so it can be applied after the minimum, to n x num_perm values only.
            mins = np.minimum.reduceat(out, seg, axis=1).T >> np.uint64(32)
            rows = db[seg]
            sig[rows] = np.minimum(sig[rows], mins)
    return sig


def lsh_bands(threshold: float, num_perm: int, false_positive_weight: float = 0.5,
              false_negative_weight: float = 0.5) -> tuple[int, int]:
    """(bands, rows per band) that datasketch's MinHashLSH would choose for this Jaccard threshold.

    At 112 permutations: 0.65 gives FineWeb's 14 x 8, 0.6 gives 16 x 7 (candidate probability
    0.977 at J = 0.8, 0.998 at 0.85), 0.8 gives 9 x 12 (only 0.47 at J = 0.8).
    """
    from datasketch.lsh import _optimal_param

    return _optimal_param(threshold, num_perm, false_positive_weight, false_negative_weight)


def band_keys(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(n, bands) uint64: one hash per band of `rows` signature values (equal band => equal key)."""
    if bands * rows > signatures.shape[1]:
        raise ValueError(f"{bands} bands x {rows} rows exceed {signatures.shape[1]} permutations")
    keys = np.zeros((signatures.shape[0], bands), dtype=np.uint64)
    for r in range(rows):
        keys = _mix64(keys ^ signatures[:, r : bands * rows : rows])
    return keys


def candidate_pairs(keys: np.ndarray, rank: np.ndarray | None = None,
                    skip: np.ndarray | None = None, max_bucket_pairs: int = MAX_BUCKET_PAIRS) -> np.ndarray:
    """(m, 2) distinct pairs of row indices that share a key in some band (the LSH candidates).

    `rank` orders documents (the smallest rank is the star centre of an oversized bucket; give
    the rank of the id so the pairs do not depend on input order); rows where `skip` is true never
    pair. Buckets of up to `max_bucket_pairs` documents give all their pairs, larger ones a star.
    """
    n, n_bands = keys.shape
    rank = np.arange(n) if rank is None else np.asarray(rank)
    by_rank = np.argsort(rank, kind="stable")
    live = by_rank if skip is None else by_rank[~np.asarray(skip)[by_rank]]
    band = np.repeat(np.arange(n_bands), len(live))
    key = keys[live].T.reshape(-1)
    doc = np.tile(live, n_bands)
    order = np.lexsort((np.tile(np.arange(len(live)), n_bands), key, band))
    band, key, doc = band[order], key[order], doc[order]
    new_group = np.r_[True, (band[1:] != band[:-1]) | (key[1:] != key[:-1])]
    group = np.cumsum(new_group) - 1
    group_start = np.flatnonzero(new_group)
    size = np.diff(np.r_[group_start, len(key)])[group]
    pos = np.arange(len(key))
    pairs = []
    big = size > max_bucket_pairs
    centre = doc[group_start[group]]
    star = big & (pos != group_start[group])
    pairs.append(np.stack([centre[star], doc[star]], axis=1))
    small = np.flatnonzero((size >= 2) & ~big)
    end = (group_start[group] + size)[small]
    for d in range(1, int(size[small].max()) if len(small) else 1):
        ok = small + d < end
        small, end = small[ok], end[ok]
        if not len(small):
            break
        pairs.append(np.stack([doc[small], doc[small + d]], axis=1))
    if not any(len(p) for p in pairs):
        return np.zeros((0, 2), dtype=np.int64)
    p = np.sort(np.concatenate(pairs).astype(np.int64), axis=1)
    code = np.unique(p[:, 0] * n + p[:, 1])
    return np.stack([code // n, code % n], axis=1)


def estimated_jaccard(signatures: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Fraction of equal signature entries of each pair: an unbiased estimate of their Jaccard."""
    out = np.empty(len(pairs))
    for lo in range(0, len(pairs), 65536):
        p = pairs[lo:lo + 65536]
        out[lo:lo + len(p)] = (signatures[p[:, 0]] == signatures[p[:, 1]]).mean(axis=1)
    return out


def exact_jaccard(texts: Sequence[str], pairs: np.ndarray, ngram: int = 5) -> np.ndarray:
    """True Jaccard of the (hashed) shingle sets of each pair; shingles only the texts in `pairs`."""
    if not len(pairs):
        return np.zeros(0)
    involved = np.unique(pairs)
    sets = dict(zip(involved.tolist(), shingle_hashes([texts[i] for i in involved], ngram)))
    out = np.empty(len(pairs))
    for k, (i, j) in enumerate(pairs.tolist()):
        a, b = sets[i], sets[j]
        inter = len(np.intersect1d(a, b, assume_unique=True))
        union = len(a) + len(b) - inter
        out[k] = inter / union if union else 0.0
    return out


def clusters_from_pairs(ids: Sequence[str], pairs: np.ndarray) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Union-find over duplicate pairs: (cluster id per doc, cluster size per doc, keep mask).

    Keeper policy: the lexicographically smallest id of a cluster is kept and names the cluster,
    so the result depends only on the set of (id, pair) and never on input or shard order.
    """
    n = len(ids)
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, j in np.asarray(pairs).tolist():
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
    roots = [find(i) for i in range(n)]
    keeper: dict[int, str] = {}
    sizes: dict[int, int] = {}
    for i, r in enumerate(roots):
        if r not in keeper or ids[i] < keeper[r]:
            keeper[r] = ids[i]
        sizes[r] = sizes.get(r, 0) + 1
    cluster_id = [keeper[r] for r in roots]
    cluster_size = np.array([sizes[r] for r in roots], dtype=np.int64)
    keep = np.array([cluster_id[i] == ids[i] for i in range(n)], dtype=bool)
    return cluster_id, cluster_size, keep


def near_duplicate_clusters(
    ids: Sequence[str],
    signatures: np.ndarray,
    threshold: float = 0.8,
    num_perm: int = 112,
    seed: int = 1,
    lsh_threshold: float | None = None,
    bands: int | None = None,
    rows: int | None = None,
    texts: Sequence[str] | None = None,
    ngram: int = 5,
    backend: str = "numpy",
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Cluster near-duplicates: LSH candidates, verified at `threshold`, joined by union-find.

    Returns (cluster_id per doc, cluster size per doc, keep mask); see `clusters_from_pairs` for
    the keeper policy. Bands: `bands` x `rows` if given, else chosen for `lsh_threshold` (default
    threshold - 0.2, which at 0.8 and 112 permutations is 16 x 7): banding at the decision
    threshold itself would miss half the pairs right at it. Verification: the true Jaccard of the
    shingle sets when `texts` are given (exact, only candidate texts are re-shingled), else the
    signature estimate. `backend`: "numpy" (vectorized band join) or "datasketch" (MinHashLSH with
    the same bands); both give the same candidates. `seed` is unused (signatures carry it).
    """
    n = len(ids)
    if signatures.shape != (n, num_perm):
        raise ValueError(f"signatures have shape {signatures.shape}, expected {(n, num_perm)}")
    if len(set(ids)) != n:
        raise ValueError("ids must be unique")
    if bands is None or rows is None:
        bands, rows = lsh_bands(lsh_threshold if lsh_threshold is not None else max(threshold - 0.2, 0.05), num_perm)
    rank = np.argsort(np.argsort(np.asarray(ids, dtype=object), kind="stable"), kind="stable")
    empty = np.all(signatures == EMPTY_HASH, axis=1)  # texts without words are not evidence of duplication
    if backend == "numpy":
        pairs = candidate_pairs(band_keys(signatures, bands, rows), rank, skip=empty)
    elif backend == "datasketch":
        pairs = _datasketch_candidates(signatures, bands, rows, rank, empty)
    else:
        raise ValueError(f"unknown backend {backend!r}")
    similarity = exact_jaccard(texts, pairs, ngram) if texts is not None else estimated_jaccard(signatures, pairs)
    return clusters_from_pairs(ids, pairs[similarity >= threshold])


def _lean_minhash(hashvalues: np.ndarray):
    from datasketch import LeanMinHash

    # datasketch >= 2.0 must be told the scheme; 1.x only knows the legacy one.
    if "scheme" in inspect.signature(LeanMinHash.__init__).parameters:
        return LeanMinHash(seed=1, hashvalues=hashvalues, scheme="legacy")
    return LeanMinHash(seed=1, hashvalues=hashvalues)


def _datasketch_candidates(signatures: np.ndarray, bands: int, rows: int, rank: np.ndarray,
                           skip: np.ndarray, max_bucket_pairs: int = MAX_BUCKET_PAIRS) -> np.ndarray:
    """The same candidates as `candidate_pairs`, from datasketch's MinHashLSH (one Python call per doc)."""
    from datasketch import MinHashLSH

    n, num_perm = signatures.shape
    # Band j of MinHashLSH is hashvalues[j*rows:(j+1)*rows], as in band_keys.
    lsh = MinHashLSH(num_perm=num_perm, params=(bands, rows))
    live = [i for i in np.argsort(rank, kind="stable").tolist() if not skip[i]]
    sketches = {i: _lean_minhash(signatures[i]) for i in live}
    with lsh.insertion_session() as session:
        for i in live:
            session.insert(i, sketches[i], check_duplication=False)
    pairs = set()
    for table in lsh.hashtables:
        for key in table.keys():
            members = sorted(table.get(key), key=lambda i: rank[i])
            if len(members) > max_bucket_pairs:
                pairs.update((members[0], m) for m in members[1:])
            else:
                pairs.update((members[x], members[y]) for x in range(len(members))
                             for y in range(x + 1, len(members)))
    if not pairs:
        return np.zeros((0, 2), dtype=np.int64)
    return np.unique(np.sort(np.array(sorted(pairs), dtype=np.int64), axis=1), axis=0)
