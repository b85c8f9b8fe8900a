"""Statistics for figures, pure numpy: seed-level arrays in, point estimates and intervals out.

Bands are percentile-bootstrap confidence intervals of the mean over seeds, drawn from an explicit
np.random.Generator (never global state), as rliable does for its interval estimates.
"""

from __future__ import annotations

import numpy as np

from figures.io import Table


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
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
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
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
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


def seed_matrix(table: Table, value: str, x: str = "step") -> tuple[np.ndarray, np.ndarray]:
    """Pivot a tidy table of one method into (seeds, x) -> array (n_seeds, n_x) and the x values.

    Every seed must have the same x values (a tidy result table of one sweep does)."""
    xs = np.unique(table[x])
    seeds = np.unique(table["seed"])
    out = np.full((len(seeds), len(xs)), np.nan)
    si = np.searchsorted(seeds, table["seed"])
    xi = np.searchsorted(xs, table[x])
    out[si, xi] = table[value]
    if np.isnan(out).any():
        raise ValueError(f"{value!r}: some seed is missing some {x!r} values")
    return out, xs


def final_values(table: Table, value: str) -> np.ndarray:
    """(n_seeds,) the value at each seed's last step."""
    mat, _ = seed_matrix(table, value)
    return mat[:, -1]


def policy_matrix(policies: Table, step: int) -> np.ndarray:
    """(n_seeds, K) policies of one method at one saved step (seeds in ascending order)."""
    sub = policies.where(step=step)
    mat, _ = seed_matrix(sub, "prob", x="arm")
    return mat


def total_variation(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """1/2 sum |p - q| over the last axis."""
    return 0.5 * np.abs(np.asarray(p) - np.asarray(q)).sum(-1)


def loglog_slope(x: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of log y against log x."""
    return float(np.polyfit(np.log(np.asarray(x, float)), np.log(np.asarray(y, float)), 1)[0])
