from __future__ import annotations

import numpy as np
import pytest

from afgen.learning.statistics import Bootstrap, Interval, mean_std, verdict


def _scores(n=60, p=0.7, draws=3, repeats=2, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random((repeats, draws, n)) < p).astype(np.uint8)


def test_interval_contains_the_estimate_and_is_seeded():
    s = _scores()
    ci = Bootstrap(s.shape, resamples=1000, seed=3).accuracy(s)
    assert ci.low <= ci.value <= ci.high and ci.low < ci.high
    assert ci.value == pytest.approx(s.mean())
    assert Bootstrap(s.shape, resamples=1000, seed=3).accuracy(s) == ci  # same seed, same interval
    assert Bootstrap(s.shape, resamples=1000, seed=4).accuracy(s) != ci


def test_interval_shrinks_when_the_test_set_is_duplicated():
    s = _scores(n=50)
    big = np.concatenate([s] * 4, axis=2)  # the same clips four times: same accuracy, more evidence
    small_ci = Bootstrap(s.shape, resamples=1000).accuracy(s)
    big_ci = Bootstrap(big.shape, resamples=1000).accuracy(big)
    assert big_ci.value == pytest.approx(small_ci.value)
    assert (big_ci.high - big_ci.low) < 0.7 * (small_ci.high - small_ci.low)


def test_a_method_against_itself_is_exactly_zero_with_zero_width():
    s = _scores()
    diff = Bootstrap(s.shape, resamples=500).difference(s, s)
    assert diff == Interval(0.0, 0.0, 0.0)
    assert verdict(diff) == "no resolvable difference"


def test_paired_difference_resolves_what_unpaired_intervals_cannot():
    rng = np.random.default_rng(1)
    a = (rng.random((1, 1, 200)) < 0.7).astype(np.uint8)
    b = a.copy()
    flip = np.flatnonzero(a[0, 0] == 0)[:12]  # b gets 12 more clips right, nothing else changes
    b[0, 0, flip] = 1
    boot = Bootstrap(a.shape, resamples=2000)
    ca, cb = boot.accuracy(a), boot.accuracy(b)
    assert ca.high > cb.low  # the marginal intervals overlap ...
    diff = boot.difference(b, a)
    assert diff.value == pytest.approx(12 / 200) and verdict(diff) == "better"  # ... the paired one does not
    assert verdict(boot.difference(a, b)) == "worse"


@pytest.mark.parametrize("axis", [0, 1])
def test_mask_draws_and_seeds_are_resampled_too(axis):
    # Every clip is right in one draw (or seed) and wrong in the other: resampling clips alone
    # would give a zero-width interval; the spread between draws (seeds) must widen it.
    shape = [1, 1, 40]
    shape[axis] = 2
    s = np.zeros(shape, np.uint8)
    s[(slice(None),) * axis + (0,)] = 1
    ci = Bootstrap(s.shape, resamples=1000).accuracy(s)
    assert ci.value == 0.5 and ci.low < 0.5 < ci.high


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="shape"):
        Bootstrap((1, 1, 10), resamples=100).accuracy(np.zeros((1, 1, 11)))


def test_mean_std():
    assert mean_std([1.0]) == (1.0, 0.0)
    m, s = mean_std([1.0, 2.0, 3.0])
    assert m == 2.0 and s == pytest.approx(1.0)


def _null_family(seed: int, methods: int = 15, n: int = 150):
    """`methods` methods that are all equally good (independent coin flips at 70%), each
    compared with the first: every true difference is 0."""
    rng = np.random.default_rng(seed)
    scores = [(rng.random((1, 1, n)) < 0.7).astype(np.uint8) for _ in range(methods + 1)]
    return {k: (scores[k], scores[0]) for k in range(1, methods + 1)}


def test_simultaneous_intervals_keep_a_family_of_null_comparisons_unresolved():
    any_adjusted = any_unadjusted = 0
    repeats = 40
    for seed in range(repeats):
        family = Bootstrap((1, 1, 150), resamples=400, seed=seed).family(_null_family(seed))
        any_adjusted += any(verdict(adj) != "no resolvable difference" for _, adj in family.values())
        any_unadjusted += any(verdict(raw) != "no resolvable difference" for raw, _ in family.values())
        assert all(adj.low <= raw.low and raw.high <= adj.high for raw, adj in family.values())
    # 95% simultaneous: the family declares something resolved in at most ~5% of repeats
    # (allowing for 40 repeats' noise); one comparison at a time does so far more often.
    assert any_adjusted / repeats <= 0.125
    assert any_unadjusted / repeats >= 0.3


def test_a_real_difference_survives_the_adjustment():
    rng = np.random.default_rng(1)
    family = _null_family(2)
    family["real"] = ((rng.random((1, 1, 150)) < 0.95).astype(np.uint8), family[1][1])
    out = Bootstrap((1, 1, 150), resamples=400, seed=0).family(family)
    assert verdict(out["real"][1]) == "better"
