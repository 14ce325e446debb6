"""Statistics of the evaluation report on cases with a known answer: CIs, paired tests, verdicts."""
from __future__ import annotations

import numpy as np
import pytest

from evaluation.stats import MIN_UNITS, bootstrap_ci, mcnemar, paired_bootstrap, verdict


def test_bootstrap_ci_contains_the_true_rate_of_a_bernoulli_sample():
    rng = np.random.default_rng(7)
    values = (rng.random(400) < 0.7).astype(float)
    mean, lo, hi = bootstrap_ci(values, seed=1)
    assert lo < 0.7 < hi
    assert lo < mean < hi
    # the half-width is about 1.96 * sqrt(p(1-p)/n) = 0.045 for p = 0.7, n = 400
    assert 0.035 < (hi - lo) / 2 < 0.055


def test_bootstrap_ci_has_about_nominal_coverage():
    rng = np.random.default_rng(0)
    reps, hits = 200, 0
    for r in range(reps):
        values = (rng.random(400) < 0.7).astype(float)
        _, lo, hi = bootstrap_ci(values, n_boot=2000, seed=r)
        hits += lo <= 0.7 <= hi
    # 95% nominal; 200 repetitions give a standard error of about 1.5 points.
    assert 0.90 <= hits / reps <= 0.99


def test_cluster_bootstrap_is_wider_when_items_of_a_group_agree():
    rng = np.random.default_rng(3)
    group_correct = rng.random(60) < 0.5  # 60 facts, 4 questions each, answered alike
    values = np.repeat(group_correct, 4).astype(float)
    groups = np.repeat(np.arange(60), 4).tolist()
    _, lo_items, hi_items = bootstrap_ci(values, seed=0)
    _, lo_groups, hi_groups = bootstrap_ci(values, seed=0, groups=groups)
    assert (hi_groups - lo_groups) > 1.6 * (hi_items - lo_items)


def test_paired_bootstrap_flags_a_planted_improvement():
    rng = np.random.default_rng(11)
    a = (rng.random(300) < 0.5).astype(float)
    b = a.copy()
    wrong = np.flatnonzero(a == 0)
    b[rng.choice(wrong, size=45, replace=False)] = 1.0  # +0.15 planted
    paired = paired_bootstrap(a, b, seed=0)
    assert paired["diff"] == pytest.approx(0.15)
    assert paired["lo"] > 0 and paired["p_value"] < 0.01
    assert verdict(paired) == "helped"
    assert verdict(paired_bootstrap(b, a, seed=0)) == "hurt"
    test = mcnemar(a, b)
    assert (test["b01"], test["b10"]) == (45, 0) and test["p_value"] < 1e-6


def test_paired_bootstrap_does_not_flag_a_null_difference_and_has_about_nominal_false_positives():
    rng = np.random.default_rng(5)
    flagged = 0
    for r in range(100):
        a = (rng.random(300) < 0.6).astype(float)
        b = a.copy()
        flip = rng.random(300) < 0.2  # symmetric noise: the same accuracy on average
        b[flip] = (rng.random(int(flip.sum())) < 0.6).astype(float)
        flagged += verdict(paired_bootstrap(a, b, n_boot=2000, seed=r)) != "no significant change"
    assert flagged <= 12  # 5% expected


def test_paired_bootstrap_counts_independent_units():
    assert paired_bootstrap([0, 1, 0, 1], [1, 1, 1, 1], seed=0)["n_units"] == 4
    assert paired_bootstrap([0, 1, 0, 1], [1, 1, 1, 1], seed=0, groups=["a", "a", "b", "b"])["n_units"] == 2


def test_below_min_units_there_is_no_verdict():
    """Five pages that all got worse: every resample agrees (p = 1/N_BOOT), the sign test says p = 0.0625."""
    before, after = [3.0, 3.2, 2.9, 3.5, 3.1], [3.4, 3.3, 3.0, 3.9, 3.2]
    paired = paired_bootstrap(before, after, seed=0)
    assert paired["lo"] > 0 and paired["p_value"] < 0.001
    assert verdict(paired, higher_is_better=False) == "too few to tell"
    ten = paired_bootstrap(before * 2, after * 2, seed=0, groups=list(range(10)))
    assert verdict(ten, higher_is_better=False) == "hurt"


def test_min_units_is_where_the_bootstrap_false_positive_rate_settles():
    """Null differences: below MIN_UNITS the paired bootstrap flags a change far more often than 5%."""
    rng = np.random.default_rng(0)

    def false_positives(n: int, reps: int = 300) -> float:
        flagged = 0
        for r in range(reps):
            p = paired_bootstrap(np.zeros(n), rng.normal(size=n), n_boot=1000, seed=r)
            flagged += p["lo"] > 0 or p["hi"] < 0
        return flagged / reps

    assert false_positives(4) > 0.15
    assert false_positives(MIN_UNITS) < 0.13


def test_mcnemar_is_exact_for_few_discordant_pairs():
    a = [1] * 10 + [0] * 8 + [1] * 1 + [0] * 5
    b = [1] * 10 + [1] * 8 + [0] * 1 + [0] * 5
    test = mcnemar(a, b)
    assert (test["b01"], test["b10"], test["method"]) == (8, 1, "exact")
    assert test["p_value"] == pytest.approx(2 * (1 + 9) / 2**9)


def test_verdict_for_lower_is_better_scores():
    assert verdict({"lo": -0.3, "hi": -0.1}, higher_is_better=False) == "helped"
    assert verdict({"lo": 0.1, "hi": 0.3}, higher_is_better=False) == "hurt"
    assert verdict({"lo": -0.1, "hi": 0.3}) == "no significant change"


def test_degenerate_inputs_do_not_crash():
    assert bootstrap_ci([1.0]) == (1.0, 1.0, 1.0)
    assert all(np.isnan(bootstrap_ci([])))
    assert paired_bootstrap([1, 0], [1, 0])["p_value"] == 1.0
    with pytest.raises(ValueError):
        paired_bootstrap([1, 0], [1])
