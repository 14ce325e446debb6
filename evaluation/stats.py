"""Statistics for per-item scores: bootstrap confidence intervals, paired comparisons and verdicts.

Every score in a Modelworks report is a mean over benchmark items (1/0 correctness, an F1, a
ROUGE-L, a per-document negative log-likelihood). The uncertainty that matters is over *items*:
another draw of items from the same source would give another mean. So:

- `bootstrap_ci`: percentile bootstrap of the mean, resampling items with replacement.
- `paired_bootstrap`: two systems scored on the *same* items; resample items, keep the pairs, and
  look at the mean difference. Pairing removes the item-difficulty variance both share, which is
  why it detects a change that two overlapping unpaired CIs would hide.
- `mcnemar`: the classic paired test for two 0/1 columns; exact binomial on the discordant pairs
  when they are few (< 25), chi-square with continuity correction otherwise.
- `verdict`: "helped" / "hurt" when the paired 95% CI of the difference excludes 0, and
  "too few to tell" when fewer than `MIN_UNITS` independent units were compared.

When items come in clusters (several questions about one fact or one source document), pass
`groups` to resample whole clusters: items of one cluster are not independent, and an item-level
bootstrap would give intervals that are too narrow.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

N_BOOT = 10_000
ALPHA = 0.05
SEED = 0
# Fewest independent units (item groups, documents, pages: whatever the bootstrap resamples) a
# comparison needs before it gets a verdict. Why 10: the percentile bootstrap treats the sample
# as the population, so with few units it is far too confident. Five pages that all improve give
# every resample a negative mean, hence p = 1/N_BOOT = 0.0001 and a CI that excludes 0, while the
# exact sign test on the same five pages gives p = 2/2**5 = 0.0625 (not significant): the
# bootstrap's "significance" is an artefact of there being only 126 distinct resamples. From 10
# units on, the sign test alone can reach p = 2/2**10 = 0.002, well below 0.05, so a bootstrap
# verdict no longer rests on that discreteness. Measured on null differences (normal noise, 400
# draws each), the paired 95% bootstrap flags "a change" 23% of the time with 4 units, 13-16% with
# 5-8, 9% with 10 and 7-9% with 15-30: 10 is where it settles near its large-sample rate
# (tests/test_stats.py checks it). A higher floor would silence most per-task comparisons of
# small user suites for little gain.
MIN_UNITS = 10
# Below this many discordant pairs McNemar uses the exact binomial test (the chi-square
# approximation is poor for small counts).
MCNEMAR_EXACT_BELOW = 25


def _as_array(values: Sequence[float]) -> np.ndarray:
    arr = np.asarray(list(values), dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError("expected a flat list of per-item values")
    return arr


def _resample_means(values: np.ndarray, n_boot: int, rng: np.random.Generator,
                    groups: Sequence | None) -> np.ndarray:
    """Means of `n_boot` bootstrap resamples of `values` (items, or whole groups of items)."""
    if groups is None:
        idx = rng.integers(0, len(values), size=(n_boot, len(values)))
        return values[idx].mean(axis=1)
    # Cluster bootstrap: draw groups with replacement; the mean is over all items of the drawn groups.
    keys = list(dict.fromkeys(groups))
    position = {k: i for i, k in enumerate(keys)}
    group_of = np.array([position[g] for g in groups])
    sums = np.bincount(group_of, weights=values, minlength=len(keys))
    counts = np.bincount(group_of, minlength=len(keys)).astype(np.float64)
    drawn = rng.integers(0, len(keys), size=(n_boot, len(keys)))
    return sums[drawn].sum(axis=1) / counts[drawn].sum(axis=1)


def bootstrap_ci(values: Sequence[float], n_boot: int = N_BOOT, alpha: float = ALPHA, seed: int = SEED,
                 groups: Sequence | None = None) -> tuple[float, float, float]:
    """(mean, lo, hi): the mean of per-item `values` and its percentile-bootstrap (1 - alpha) interval.

    An empty list gives (nan, nan, nan); a single item gives a zero-width interval.
    """
    arr = _as_array(values)
    if groups is not None and len(groups) != len(arr):
        raise ValueError("groups must have one entry per value")
    if arr.size == 0:
        return (math.nan, math.nan, math.nan)
    means = _resample_means(arr, n_boot, np.random.default_rng(seed), groups)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return (float(arr.mean()), float(lo), float(hi))


def paired_bootstrap(a: Sequence[float], b: Sequence[float], n_boot: int = N_BOOT, alpha: float = ALPHA,
                     seed: int = SEED, groups: Sequence | None = None) -> dict:
    """Paired bootstrap of mean(b) - mean(a) over the same items (b is the later / new system).

    Returns {"diff", "lo", "hi", "p_value", "n", "n_units", "alpha"}; p_value is two-sided: twice
    the share of resampled differences on the other side of 0 (at least 1/n_boot, at most 1);
    n_units: the independent units resampled (groups when given, else items), which `verdict` needs.
    """
    a_arr, b_arr = _as_array(a), _as_array(b)
    if a_arr.shape != b_arr.shape:
        raise ValueError(f"paired scores need the same items: {a_arr.size} vs {b_arr.size}")
    if a_arr.size == 0:
        return {"diff": math.nan, "lo": math.nan, "hi": math.nan, "p_value": math.nan, "n": 0, "n_units": 0,
                "alpha": alpha}
    d = b_arr - a_arr
    diffs = _resample_means(d, n_boot, np.random.default_rng(seed), groups)
    lo, hi = np.quantile(diffs, [alpha / 2, 1 - alpha / 2])
    if np.all(d == 0):
        p = 1.0
    else:
        p = 2 * min(float(np.mean(diffs <= 0)), float(np.mean(diffs >= 0)))
        p = min(1.0, max(p, 1.0 / n_boot))
    return {"diff": float(d.mean()), "lo": float(lo), "hi": float(hi), "p_value": p, "n": int(d.size),
            "n_units": n_units(groups, int(d.size)), "alpha": alpha}


def n_units(groups: Sequence | None, n_items: int) -> int:
    """How many independent units a bootstrap resamples: distinct groups, or the items when ungrouped."""
    return n_items if groups is None else len(set(groups))


def _binom_two_sided(k: int, n: int) -> float:
    """Exact two-sided binomial p-value of k successes in n trials at p = 0.5."""
    if n == 0:
        return 1.0
    k = min(k, n - k)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2.0**n
    return min(1.0, 2 * tail)


def mcnemar(a_correct: Sequence[bool | float], b_correct: Sequence[bool | float]) -> dict:
    """McNemar's test on two 0/1 columns over the same items.

    b01: items a got wrong and b got right; b10: a right, b wrong. Exact binomial when
    b01 + b10 < 25, else chi-square with continuity correction (1 degree of freedom).
    """
    a_arr, b_arr = _as_array(a_correct) > 0.5, _as_array(b_correct) > 0.5
    if a_arr.shape != b_arr.shape:
        raise ValueError("mcnemar needs the same items for both systems")
    b01 = int(np.sum(~a_arr & b_arr))
    b10 = int(np.sum(a_arr & ~b_arr))
    n = b01 + b10
    if n < MCNEMAR_EXACT_BELOW:
        statistic, p, method = float(min(b01, b10)), _binom_two_sided(b01, n), "exact"
    else:
        statistic = (abs(b01 - b10) - 1) ** 2 / n
        # Chi-square with 1 dof: P(X > s) = erfc(sqrt(s / 2)).
        p, method = math.erfc(math.sqrt(statistic / 2)), "chi2"
    return {"b01": b01, "b10": b10, "statistic": float(statistic), "p_value": float(p), "method": method}


HELPED, NO_CHANGE, HURT, TOO_FEW = "helped", "no significant change", "hurt", "too few to tell"
VERDICTS = (HELPED, NO_CHANGE, HURT, TOO_FEW)


def verdict(paired: dict, higher_is_better: bool = True, min_units: int = MIN_UNITS) -> str:
    """"helped" / "hurt" when the paired CI of the difference excludes 0, else "no significant change";
    "too few to tell" when the comparison rests on fewer than `min_units` independent units.

    For a lower-is-better score (perplexity, NLL) a CI entirely below 0 means the stage helped.
    The unit count is `paired["n_units"]` (as `paired_bootstrap` returns it); a dict without one
    (a CI given by hand) is judged on its interval alone.
    """
    units = paired.get("n_units")
    if units is not None and units < min_units:
        # Even "no significant change" would claim too much: with this few units the interval
        # itself is unreliable (see MIN_UNITS), so no verdict either way.
        return TOO_FEW
    lo, hi = paired.get("lo"), paired.get("hi")
    if lo is None or hi is None or math.isnan(lo) or math.isnan(hi):
        return NO_CHANGE
    if lo > 0:
        return HELPED if higher_is_better else HURT
    if hi < 0:
        return HURT if higher_is_better else HELPED
    return NO_CHANGE
