"""Statistics for figures, pure numpy: tidy tables in, seed-level arrays out. The intervals
themselves live in `labkit.stats`, shared with the bandit's regime map.
"""

from __future__ import annotations

import numpy as np

from figures.io import Table


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
