"""Confidence intervals over seeds, pure numpy (+ scipy for the paired case): one place for the
whole project, so that the bandit's regime map and the figures draw their intervals alike.

Every interval is a 95% percentile bootstrap of the mean over seeds, drawn from an explicit
np.random.Generator (never global state), as rliable does for its interval estimates. Percentile
rather than BCa: it is defined when every value is equal (the interval is then the point).
"""

from __future__ import annotations

import numpy as np


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")


def bootstrap_ci(
    values: np.ndarray, rng: np.random.Generator, n_boot: int = 2000, level: float = 0.95
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over the first axis (seeds) and its percentile-bootstrap CI.

    Args:
        values: (n_seeds, ...) one row per seed.
        rng: the generator the resamples are drawn from.
    Returns:
        (mean, low, high), each of shape values.shape[1:]. With one seed the interval is the point.
    """
    values = np.asarray(values, dtype=float)
    if values.ndim == 0 or values.shape[0] == 0:
        raise ValueError(
            f"values must have a leading seed axis of length >= 1, got shape {values.shape}"
        )
    _check_level(level)
    mean = values.mean(0)
    n = values.shape[0]
    if n == 1:
        return mean, mean.copy(), mean.copy()
    idx = rng.integers(0, n, size=(n_boot, n))
    boots = values[idx].mean(1)  # (n_boot, ...)
    alpha = (1 - level) / 2
    return mean, np.quantile(boots, alpha, axis=0), np.quantile(boots, 1 - alpha, axis=0)


def paired_bootstrap_ci(
    a: np.ndarray,
    b: np.ndarray,
    rng: np.random.Generator,
    n_resamples: int = 10_000,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """Mean of the paired differences a - b (one pair per seed) and its percentile-bootstrap CI.

    Seeds are resampled as pairs (scipy.stats.bootstrap, paired=True), so what both runs of a seed
    share (warm-up checkpoint, seed, budget) cancels. Percentile rather than BCa: it is defined
    when every difference is equal, and it is what `bootstrap_ci` draws.

    Args:
        a, b: (n_seeds,) one value per seed of each method, in the same seed order.
        rng: the generator the resamples are drawn from.
    Returns:
        (mean difference, low, high); with one seed the interval is the point.
    """
    from scipy.stats import bootstrap

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(
            f"a and b must be 1-d with one value per seed each, got shapes {a.shape} and {b.shape}"
        )
    _check_level(level)
    diff = float(np.mean(a - b))
    if len(a) == 1:
        return diff, diff, diff
    res = bootstrap(
        (a, b),
        lambda x, y, axis: np.mean(x - y, axis=axis),
        paired=True,
        vectorized=True,
        n_resamples=n_resamples,
        confidence_level=level,
        method="percentile",
        rng=rng,
    )
    return diff, float(res.confidence_interval.low), float(res.confidence_interval.high)


def bootstrap_diff_ci(
    a: np.ndarray,
    b: np.ndarray,
    rng: np.random.Generator,
    n_boot: int = 2000,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """mean(a) - mean(b) for two independent samples, and its percentile-bootstrap CI.

    Each sample is resampled on its own, with the same draws as `bootstrap_ci`. Where the two
    samples' seeds correspond and share randomness (a bandit sweep's objectives draw the same
    numbers for the same seed), this ignores the pairing; with positively correlated pairs that
    makes it wider (more conservative) than `paired_bootstrap_ci`.

    Args:
        a, b: (n_a,), (n_b,) one value per seed of each method; the lengths may differ.
        rng: the generator the resamples are drawn from.
    Returns:
        (difference, low, high); with one seed in each the interval is the point.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.ndim != 1 or b.ndim != 1 or len(a) == 0 or len(b) == 0:
        raise ValueError(
            f"a and b must be 1-d with at least one value each, got shapes {a.shape} and {b.shape}"
        )
    _check_level(level)
    diff = float(a.mean() - b.mean())
    boots = a[rng.integers(0, len(a), size=(n_boot, len(a)))].mean(1)
    boots = boots - b[rng.integers(0, len(b), size=(n_boot, len(b)))].mean(1)
    alpha = (1 - level) / 2
    return diff, float(np.quantile(boots, alpha)), float(np.quantile(boots, 1 - alpha))
