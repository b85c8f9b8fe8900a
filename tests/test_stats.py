"""labkit.stats: the seed-level confidence intervals every figure, report and regime map uses."""

import numpy as np
import pytest

from labkit.stats import bootstrap_ci, bootstrap_diff_ci


def test_diff_ci_against_a_hand_computed_case():
    # a = (0, 0, 0, 4): a resampled mean is k with k ~ Binomial(4, 1/4); b has no spread. P(k = 0)
    # = 0.32 > 0.025 and P(k <= 2) = 0.949 < 0.975 <= P(k <= 3) = 0.996: the interval is [0, 3]
    a, b = np.asarray([0.0, 0.0, 0.0, 4.0]), np.asarray([0.5, 0.5])
    assert bootstrap_diff_ci(a, b, np.random.default_rng(0)) == pytest.approx((0.5, -0.5, 2.5))
    # the samples are independent: their lengths may differ, and swapping them flips the interval
    assert bootstrap_diff_ci(b, a, np.random.default_rng(0)) == pytest.approx((-0.5, -2.5, 0.5))


def test_diff_ci_is_the_point_without_spread():
    assert bootstrap_diff_ci(np.full(5, 0.3), np.full(7, 0.1), np.random.default_rng(0)) == (
        pytest.approx((0.2, 0.2, 0.2))
    )
    assert bootstrap_diff_ci([1.0], [0.25], np.random.default_rng(0)) == (0.75, 0.75, 0.75)


def test_diff_ci_covers_the_true_difference_about_95_percent_of_the_time():
    rng = np.random.default_rng(1)
    trials, hits = 300, 0
    for _ in range(trials):
        a, b = rng.normal(1.0, 1.0, size=40), rng.normal(0.0, 2.0, size=30)
        _, lo, hi = bootstrap_diff_ci(a, b, rng, n_boot=500)
        hits += lo <= 1.0 <= hi
    # a percentile bootstrap at n = 30-40 covers a little under its level; binomial sd ~ 1.3%
    assert 0.89 <= hits / trials <= 0.99


def test_mean_ci_shapes_and_one_seed():
    values = np.arange(12.0).reshape(4, 3)
    mean, lo, hi = bootstrap_ci(values, np.random.default_rng(0))
    assert mean.shape == lo.shape == hi.shape == (3,)
    assert np.all(lo <= mean) and np.all(mean <= hi) and np.all(lo < hi)
    assert bootstrap_ci(values[:1], np.random.default_rng(0))[1].tolist() == [0.0, 1.0, 2.0]


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: bootstrap_diff_ci(np.ones((2, 2)), np.ones(2), np.random.default_rng()), "1-d"),
        (lambda: bootstrap_diff_ci([], [1.0], np.random.default_rng()), "at least one"),
        (lambda: bootstrap_diff_ci([1.0], [1.0], np.random.default_rng(), level=95), "level"),
        (lambda: bootstrap_ci(np.ones(0), np.random.default_rng()), "seed axis"),
    ],
)
def test_bad_input_is_one_clear_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()
