"""Score curation, dedup and domain selection against the demo crawl's ground truth."""
from __future__ import annotations

from collections import Counter

# Page kinds a good curation chain keeps (in English) and drops.
KEEP_KINDS = {"domain", "general", "leak"}


def _prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4)}


def score_curation(kept_urls: set[str], truth: list[dict]) -> dict:
    """Keep/drop decisions vs page kinds: positives are English content pages."""
    tp = sum(1 for t in truth if t["kind"] in KEEP_KINDS and t["url"] in kept_urls)
    fp = sum(1 for t in truth if t["kind"] not in KEEP_KINDS and t["url"] in kept_urls)
    fn = sum(1 for t in truth if t["kind"] in KEEP_KINDS and t["url"] not in kept_urls)
    kept_by_kind = Counter(t["kind"] for t in truth if t["url"] in kept_urls)
    return {**_prf(tp, fp, fn), "kept_by_kind": dict(kept_by_kind)}


def score_pii(texts: list[str], truth: list[dict], kept_urls: set[str]) -> dict:
    """How many planted PII values of kept pages survive verbatim in the output texts."""
    planted = [p["value"] for t in truth if t["url"] in kept_urls for p in t["pii"]]
    blob = "\n".join(texts)
    surviving = [v for v in planted if v in blob]
    return {"planted_in_kept_pages": len(planted), "surviving": len(surviving)}


def score_dedup(kept_urls: set[str], truth: list[dict], candidate_urls: set[str],
                min_jaccard: float | None = None) -> dict:
    """Duplicate removal vs planted duplicates, among pages that reached the dedup stage.

    A planted duplicate counts as removed when it, or its source, is gone (one of the pair must
    go; which one is the keeper policy's choice). False removals are non-duplicates dropped.
    With `min_jaccard`, near-duplicate recall counts only planted pairs whose recorded true
    Jaccard (`near_duplicate_jaccard`) reaches it; the others are reported apart.
    """
    by_url = {t["url"]: t for t in truth}
    out = {}
    for field in ("exact_duplicate_of", "near_duplicate_of"):
        rows = [t for t in truth if t[field] and t["url"] in candidate_urls and t[field] in candidate_urls]
        if field == "near_duplicate_of" and min_jaccard is not None:
            below = [t for t in rows if t.get("near_duplicate_jaccard") is not None
                     and t["near_duplicate_jaccard"] < min_jaccard]
            rows = [t for t in rows if t not in below]
            out["near_duplicate_below_min_jaccard"] = {
                "planted_pairs": len(below), "min_jaccard": min_jaccard,
                "removed": sum(1 for t in below if not (t["url"] in kept_urls and t[field] in kept_urls))}
        pairs = [(t["url"], t[field]) for t in rows]
        removed = sum(1 for a, b in pairs if not (a in kept_urls and b in kept_urls))
        out[field.removesuffix("_of")] = {"planted_pairs": len(pairs), "removed": removed,
                                          "recall": round(removed / len(pairs), 4) if pairs else 1.0}
    has_twin = {t["url"] for t in truth if t["exact_duplicate_of"] or t["near_duplicate_of"]}
    has_twin |= {t["exact_duplicate_of"] or t["near_duplicate_of"] for t in truth
                 if t["exact_duplicate_of"] or t["near_duplicate_of"]}
    false_removals = sum(1 for u in candidate_urls if u not in kept_urls and u not in has_twin and u in by_url)
    out["false_removals"] = false_removals
    return out


def score_domain(selected_urls: set[str], candidate_urls: set[str], truth: list[dict]) -> dict:
    """Domain selection vs truth: positives are pages that teach domain facts (kind domain or leak)."""
    kinds = {t["url"]: t["kind"] for t in truth}
    pos = {u for u in candidate_urls if kinds.get(u) in ("domain", "leak")}
    tp = len(selected_urls & pos)
    return _prf(tp, len(selected_urls - pos), len(pos - selected_urls))
