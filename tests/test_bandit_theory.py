"""Theorem B.1 (docs/method.md section 5), as read in bandit/theory.py: near pi_old, practical LAD / Z
and theoretical LAD differ by O(delta) in value and gradient, delta = KL(pi* || pi_old)."""

import numpy as np
import pytest

from bandit.landscapes import get_landscape
from bandit.theory import loglog_slope, surrogate_gap

ETAS = (64.0, 32.0, 16.0, 8.0)


@pytest.fixture(scope="module")
def rows():
    land = get_landscape("trimodal")
    return surrogate_gap(land.rewards, ("kl", "rkl", "hellinger", "js", "tv"), ETAS, n_points=11)


def _series(rows, div, key):
    r = [x for x in rows if x["divergence"] == div]
    return np.array([x["delta"] for x in r]), np.array([x[key] for x in r])


@pytest.mark.parametrize("div", ["kl", "hellinger", "js"])
def test_gaps_shrink_at_least_linearly_in_delta(rows, div):
    for key in ("loss_gap", "grad_gap"):
        delta, gap = _series(rows, div, key)
        assert (np.diff(delta) > 0).all()  # smaller eta, larger trust region
        assert loglog_slope(delta, gap) > 0.95, (div, key)
        assert (gap / delta).max() < 2.0  # O(delta) with a modest constant on this landscape


def test_kl_value_gap_is_the_normaliser(rows):
    """For kl the value gap is exactly -f'(1) log Z summed over pi: log Z, itself ~ delta."""
    for r in (x for x in rows if x["divergence"] == "kl"):
        assert r["loss_gap"] == pytest.approx(r["log_z"], rel=1e-6)
        assert r["loss_gap"] == pytest.approx(r["delta"], rel=0.05)


def test_rkl_gradients_agree_exactly(rows):
    """-log(x/Z) = -log x + log Z: the normaliser is a constant offset for reverse KL."""
    _, grad = _series(rows, "rkl", "grad_gap")
    assert grad.max() < 1e-12


def test_tv_value_gap_is_linear_but_its_gradients_do_not_converge(rows):
    delta, gap = _series(rows, "tv", "loss_gap")
    assert loglog_slope(delta, gap) == pytest.approx(1.0, abs=0.05)
    _, grad = _series(rows, "tv", "grad_gap")
    assert grad.min() > 1e-2  # |x - 1| has a kink at the target: no O(delta) gradient bound


def test_bad_arguments():
    with pytest.raises(ValueError, match="eta must be > 0"):
        surrogate_gap([0.0, 1.0], ["kl"], [0.0])
    with pytest.raises(ValueError, match="n_points must be >= 2"):
        surrogate_gap([0.0, 1.0], ["kl"], [1.0], n_points=1)
