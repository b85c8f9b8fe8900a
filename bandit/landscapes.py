"""Reward landscapes over K arms: built-ins by name, or any reward vector from a file.

A landscape is a reward per arm plus its modes (groups of arms). The advantage-induced target
P_A = softmax(A / eta) (docs/method.md section 3) depends on the rewards only up to a constant, so the
built-ins are written as log-densities: at eta = 1, P_A of `trimodal` *is* a mixture of three
Gaussians over the arm index (with a small uniform floor so that every reward is finite).

Modes are what "coverage" counts: a mode is covered when the policy puts at least half the
target's mass on its arms. Gaussian landscapes split the arms between their component centres
(nearest centre wins); `plateau` has one mode per good arm; a file landscape gets one mode per
local maximum of its rewards (runs of equal values count once), arms split between the nearest
maxima.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from labkit.registry import Registry


@dataclass(frozen=True)
class Landscape:
    """A bandit: rewards (K,) float64 and modes, each a tuple of arm indices (disjoint)."""

    name: str
    rewards: tuple[float, ...]
    modes: tuple[tuple[int, ...], ...]

    @property
    def n_arms(self) -> int:
        return len(self.rewards)

    def array(self) -> np.ndarray:
        return np.asarray(self.rewards, dtype=np.float64)

    def target(self, eta: float = 1.0) -> np.ndarray:
        """P_A (K,) at temperature eta (exact; the baseline cancels in the softmax)."""
        z = self.array() / eta
        z = np.exp(z - z.max())
        return z / z.sum()

    def mode_matrix(self) -> np.ndarray:
        """(K, M) 0/1 membership of each arm in each mode."""
        m = np.zeros((self.n_arms, len(self.modes)))
        for j, arms in enumerate(self.modes):
            m[list(arms), j] = 1.0
        return m

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "rewards": list(self.rewards),
            "modes": [list(m) for m in self.modes],
        }


LandscapeFn = Callable[[int], Landscape]
LANDSCAPES: Registry[LandscapeFn] = Registry("landscape", "landscape")


def _check_arms(n_arms: int, minimum: int = 2) -> None:
    if not isinstance(n_arms, int) or n_arms < minimum:
        raise ValueError(f"n_arms must be an integer >= {minimum}, got {n_arms!r}")


def _nearest_split(n_arms: int, centres: Sequence[int]) -> tuple[tuple[int, ...], ...]:
    """Assign every arm to its nearest centre (ties to the left one)."""
    c = np.asarray(centres)
    owner = np.abs(np.arange(n_arms)[:, None] - c[None, :]).argmin(1)
    return tuple(tuple(int(i) for i in np.flatnonzero(owner == j)) for j in range(len(c)))


def gaussian_mixture(
    name: str,
    n_arms: int,
    centres: Sequence[float],
    heights: Sequence[float],
    width: float,
    floor: float = 0.02,
) -> Landscape:
    """Rewards log(floor + sum_j h_j exp(-(k - c_j)^2 / (2 w^2))), shifted so the minimum is 0.

    centres and width are fractions of the arm range (0 = first arm, 1 = last; width times
    n_arms is sigma in arms); heights are the peak heights relative to each other; floor is the
    uniform density under the peaks, relative to a peak of height 1. Each centre snaps to its
    nearest arm, so every mode has one top arm with its neighbours symmetric below it (an
    off-arm centre makes two nearly tied top arms).
    """
    _check_arms(n_arms, len(centres))
    k = np.arange(n_arms, dtype=np.float64)
    peaks = [round(c * (n_arms - 1)) for c in centres]
    if len(set(peaks)) < len(centres):
        raise ValueError(f"n_arms={n_arms} is too small for {len(centres)} separate modes")
    sigma = width * n_arms
    dens = np.full(n_arms, float(floor))
    for c, h in zip(peaks, heights, strict=True):
        dens += h * np.exp(-0.5 * ((k - c) / sigma) ** 2)
    rewards = np.log(dens)
    rewards -= rewards.min()
    return Landscape(name, tuple(float(r) for r in rewards), _nearest_split(n_arms, sorted(peaks)))


@LANDSCAPES.register("trimodal")
def trimodal(n_arms: int = 50) -> Landscape:
    """The paper's default: three sharp Gaussian bumps of unequal height (1, 0.6, 0.35), sigma
    1.1 arms at K = 50, on a floor of 0.02 (16% of P_A's mass).

    Sharp on purpose: GRPO with pi_old fixed learns from importance-weighted samples of pi_old,
    and how fast it collapses onto one arm depends on the reward gap between a mode's top arm
    and its neighbours (0.40 here, 0.05 for `trimodal_wide`). At the paper's 4000 steps and
    lr 5e-3 the collapse completes here and not on the wide bumps (docs/bandit.md, "What the
    defaults show")."""
    return gaussian_mixture("trimodal", n_arms, (0.2, 0.5, 0.8), (1.0, 0.6, 0.35), width=1 / 45)


@LANDSCAPES.register("trimodal_wide")
def trimodal_wide(n_arms: int = 50) -> Landscape:
    """The same three bumps, wide (sigma 3.1 arms at K = 50): smooth modes whose top arms differ
    by 0.05 in reward, so sampled GRPO needs far more steps to collapse."""
    return gaussian_mixture(
        "trimodal_wide", n_arms, (0.2, 0.5, 0.8), (1.0, 0.6, 0.35), width=1 / 16
    )


@LANDSCAPES.register("bimodal")
def bimodal(n_arms: int = 50) -> Landscape:
    """Two Gaussian bumps of height 1 and 0.6."""
    return gaussian_mixture("bimodal", n_arms, (0.3, 0.7), (1.0, 0.6), width=1 / 16)


@LANDSCAPES.register("unimodal")
def unimodal(n_arms: int = 50) -> Landscape:
    """One Gaussian bump in the middle."""
    return gaussian_mixture("unimodal", n_arms, (0.5,), (1.0,), width=1 / 12)


@LANDSCAPES.register("plateau")
def plateau(n_arms: int = 50) -> Landscape:
    """Many equally good arms: every fifth arm has reward 1, the rest 0 (like 10 correct answers
    among 50); each good arm is its own mode. Rewards lie in [0, 1], so Bernoulli noise applies."""
    _check_arms(n_arms)
    good = list(range(2, n_arms, 5)) or [n_arms // 2]
    rewards = np.zeros(n_arms)
    rewards[good] = 1.0
    return Landscape("plateau", tuple(float(r) for r in rewards), tuple((g,) for g in good))


def peak_modes(rewards: np.ndarray) -> tuple[tuple[int, ...], ...]:
    """Modes of an arbitrary reward vector: local maxima (a run of equal values counts once, at
    its middle arm), every arm assigned to the nearest maximum."""
    values, starts = [], []
    for i, r in enumerate(rewards):
        if not values or r != values[-1]:
            values.append(r)
            starts.append(i)
    ends = [*starts[1:], len(rewards)]
    peaks = []
    for j, v in enumerate(values):
        left = values[j - 1] if j > 0 else -math.inf
        right = values[j + 1] if j + 1 < len(values) else -math.inf
        if v > left and v > right:
            peaks.append((starts[j] + ends[j] - 1) // 2)
    return _nearest_split(len(rewards), peaks)


def _numbers_from_csv(path: Path) -> list[str]:
    with path.open(newline="") as fh:
        cells = [c.strip() for row in csv.reader(fh) for c in row if c.strip()]
    # one optional header cell such as "reward"
    if cells and not _is_number(cells[0]):
        cells = cells[1:]
    return cells


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def load_rewards(path: str | Path) -> np.ndarray:
    """Read a reward vector (K,) float64 from .json (a list, or {"rewards": [...]}), .csv (one
    number per cell, optional header) or .npy (a 1-D array). Raises ValueError naming the file
    when it is empty, not numeric, not 1-D, holds NaN/inf, or has fewer than 2 arms."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"rewards file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            data = json.loads(path.read_text())
            if isinstance(data, dict):
                data = data.get("rewards")
            if not isinstance(data, list) or any(isinstance(v, bool | str) for v in data):
                raise ValueError('expected a JSON list of numbers or {"rewards": [...]}')
            values = np.asarray(data, dtype=np.float64)
        elif suffix == ".csv":
            values = np.asarray([float(c) for c in _numbers_from_csv(path)], dtype=np.float64)
        elif suffix == ".npy":
            values = np.load(path, allow_pickle=False)
            if not np.issubdtype(values.dtype, np.number):
                raise ValueError(f"expected a numeric array, got dtype {values.dtype}")
            values = values.astype(np.float64)
        else:
            raise ValueError(f"unknown extension {suffix!r}; expected .json, .csv or .npy")
    except (ValueError, TypeError, json.JSONDecodeError) as e:
        raise ValueError(f"rewards file {str(path)!r}: {e}") from None
    if values.size == 0:
        raise ValueError(
            f"rewards file {str(path)!r} is empty: expected a vector of at least 2 rewards"
        )
    if values.ndim != 1:
        raise ValueError(
            f"rewards file {str(path)!r}: expected a 1-D vector, got shape {values.shape}"
        )
    if values.size < 2:
        raise ValueError(f"rewards file {str(path)!r}: expected at least 2 arms, got {values.size}")
    if not np.isfinite(values).all():
        bad = int(np.flatnonzero(~np.isfinite(values))[0])
        raise ValueError(
            f"rewards file {str(path)!r}: arm {bad} is {values[bad]} (rewards must be finite)"
        )
    return values


def get_landscape(
    name: str = "trimodal", n_arms: int = 50, rewards_file: str | Path | None = None
) -> Landscape:
    """A built-in landscape by name with n_arms arms, or (rewards_file given) the file's rewards."""
    if rewards_file is not None:
        rewards = load_rewards(rewards_file)
        stem = Path(rewards_file).stem
        return Landscape(f"file:{stem}", tuple(float(r) for r in rewards), peak_modes(rewards))
    _check_arms(n_arms)
    return LANDSCAPES.get(name)(n_arms)
