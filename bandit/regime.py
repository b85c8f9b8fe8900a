"""The regime map: when does LAD keep more correct answers than GRPO?

Objectives (exact advantages r - E_pi_old[r] for all, so only the loss differs): unclipped GRPO
(`reinforce`, Figure 1's GRPO), clipped GRPO with epsilon 0.2 and with clip-higher 0.2 / 0.28
(TRL and verl defaults, DAPO), practical LAD with js, kl, hellinger, rkl. Axes:

- mu, updates per rollout: pi_old is copied from the policy every mu steps (0 = never: pi_old
  fixed, Figure 1). Every step draws a fresh group of G from pi_old, so mu steps are mu
  minibatches of one rollout of mu * G samples;
- reward structure: `plateau` with k equally correct arms among K = 50, and `trimodal` (graded);
- G in {8, 64} samples per step, and the exact expectation over all arms;
- eta (LAD only) and the learning rate, each in a side panel at plateau k = 10, G = 64.

A panel (one reward structure x one G x one side setting) is one vectorised `bandit.trainer.train`
call over objectives x mu x seeds. Outcomes are exact over all arms of the final policy
(bandit.metrics.correct_metrics; correct = `Landscape.peak_arms`: the good arms of a plateau, the
top arm of each trimodal bump) plus TV to the target: the exact iterated tilt after as many
rollouts, ceil(steps / mu), as the run had (P_A when pi_old is fixed). The theory curve is that
tilt's own outcomes. `summarise` gives means with 95% percentile-bootstrap CIs over seeds and
differences LAD - clipped GRPO (eps 0.2), unpaired (`labkit.stats`, explicit generator).

Files (`run_regime` into a directory): runs.csv (one row per run), summary.json (points, theory
curve, differences; the figure and the report blocks read it), config.json (RegimeConfig, each
panel's BanditConfig, provenance).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bandit.config import BanditConfig, expand_runs
from bandit.landscapes import Landscape
from bandit.metrics import CORRECT_METRICS, correct_metrics
from bandit.theory import iterated_tilt
from bandit.trainer import train
from labkit.io import atomic_write, provenance, write_json
from labkit.stats import bootstrap_ci, bootstrap_diff_ci

OUTCOMES = (*CORRECT_METRICS, "tv_target")
FIXED = 0  # mu = 0: pi_old never refreshed
REFERENCE = "grpo eps 0.2"  # what the differences are taken against


def _h(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class RegimeConfig:
    """The whole map. Every panel shares steps, lr, seeds and the mu axis."""

    steps: int = field(default=2000, metadata=_h("optimiser steps per run"))
    lr: float = field(
        default=0.05,
        metadata=_h("Adam learning rate of the main panels, the same for every objective"),
    )
    side_lrs: tuple[float, ...] = field(
        default=(0.005, 0.015), metadata=_h("learning rates of the lr side panels")
    )
    side_etas: tuple[float, ...] = field(
        default=(0.25, 4.0), metadata=_h("LAD temperatures of the eta side panels (main: 1)")
    )
    seed: int = field(default=0, metadata=_h("first seed"))
    n_seeds: int = field(
        default=16,
        metadata={"help": "seeds per point (sampled panels)", "flags": ("--seeds", "--n-seeds")},
    )
    mus: tuple[int, ...] = field(
        default=(1, 2, 4, 8, 16, 32, 64, FIXED),
        metadata=_h("updates per rollout (pi_old refresh period); 0 = pi_old fixed"),
    )
    ks: tuple[int, ...] = field(
        default=(2, 5, 10), metadata=_h("correct arms of the plateau panels")
    )
    trimodal: bool = field(default=True, metadata=_h("add the graded trimodal panels"))
    n_arms: int = field(default=50, metadata=_h("arms K"))
    group_sizes: tuple[int, ...] = field(default=(8, 64), metadata=_h("samples per step G"))
    exact: bool = field(
        default=True,
        metadata=_h("add exact-expectation panels (deterministic: one run per point, no CI)"),
    )
    divergences: tuple[str, ...] = field(
        default=("js", "kl", "hellinger", "rkl"), metadata=_h("LAD divergences")
    )
    epsilon_highs: tuple[float, ...] = field(
        default=(0.2, 0.28), metadata=_h("upper clip ranges of clipped GRPO (lower: 0.2)")
    )
    side_panels: bool = field(
        default=True, metadata=_h("add the lr and eta side panels (on side_structure, G = 64)")
    )
    side_structure: str = field(
        default="plateau k=10", metadata=_h("reward structure of the side panels")
    )
    keep_share: float = field(
        default=0.5,
        metadata=_h("a correct arm is kept when it holds >= keep_share / k of the correct mass"),
    )
    n_boot: int = field(default=2000, metadata=_h("bootstrap resamples"))

    def __post_init__(self) -> None:
        for name in ("side_lrs", "side_etas", "mus", "ks", "group_sizes", "divergences"):
            setattr(self, name, tuple(getattr(self, name)))
        self.epsilon_highs = tuple(self.epsilon_highs)

        def need(ok: bool, name: str, expected: str) -> None:
            if not ok:
                raise ValueError(
                    f"{name}={getattr(self, name)!r} is not valid; expected {expected}"
                )

        need(isinstance(self.steps, int) and self.steps >= 1, "steps", "an integer >= 1")
        need(isinstance(self.n_seeds, int) and self.n_seeds >= 2, "n_seeds", "an integer >= 2")
        need(len(self.mus) > 0 and all(m >= 0 for m in self.mus), "mus", "integers >= 0")
        need(all(1 <= k < self.n_arms for k in self.ks), "ks", f"integers in [1, {self.n_arms})")
        need(len(self.ks) > 0 or self.trimodal, "ks", "at least one k, or trimodal")
        need(0 < self.keep_share <= 1, "keep_share", "a number in (0, 1]")
        need(self.n_boot >= 100, "n_boot", "an integer >= 100")


@dataclass
class RegimeRun:
    """Where `lad bandit regime` writes and how many processes it uses."""

    out: str = field(
        default="docs/results/regime",
        metadata={"help": "results directory", "flags": ("--out", "-o")},
    )
    main_only: bool = field(
        default=False, metadata={"help": "no exact-expectation, trimodal or side panels"}
    )
    workers: int = field(
        default=2, metadata={"help": "processes (one thread each)", "flags": ("--workers", "-j")}
    )

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"workers={self.workers} is not valid; expected an integer >= 1")

    def apply(self, config: RegimeConfig) -> RegimeConfig:
        """`config`, without the exact, trimodal and side panels when main_only."""
        if not self.main_only:
            return config
        return dataclasses.replace(config, trimodal=False, exact=False, side_panels=False)


@dataclass(frozen=True)
class Panel:
    """One vectorised call: name, reward structure, G (0 = exact), side setting, its config."""

    name: str
    structure: str  # "plateau k=10", "trimodal"
    group_size: int  # 0 = exact expectation
    side: str  # "main", "lr=0.005", "eta=4"
    config: BanditConfig


def plateau_rewards(n_arms: int, k: int) -> list[float]:
    """k arms of reward 1 spread evenly among n_arms (the built-in plateau when k = n_arms/5)."""
    step = n_arms // k
    rewards = [0.0] * n_arms
    for i in range(k):
        rewards[step // 2 + i * step] = 1.0
    return rewards


def write_rewards(cfg: RegimeConfig, rewards_dir: Path) -> None:
    """The plateau reward vectors the panels read: rewards_dir/plateau_k<k>.json."""
    for k in cfg.ks:
        atomic_write(rewards_dir / f"plateau_k{k}.json", f"{plateau_rewards(cfg.n_arms, k)}\n")


def panels(cfg: RegimeConfig, rewards_dir: Path) -> list[Panel]:
    """The map's panels (plateau rewards read from rewards_dir, see write_rewards)."""
    structures: dict[str, dict[str, Any]] = {}
    for k in cfg.ks:
        structures[f"plateau k={k}"] = {"rewards_file": str(rewards_dir / f"plateau_k{k}.json")}
    if cfg.trimodal:
        structures["trimodal"] = {"landscape": "trimodal", "n_arms": cfg.n_arms}
    base = BanditConfig(
        objectives=("reinforce", "grpo", "lad"),
        divergences=cfg.divergences,
        epsilon_highs=cfg.epsilon_highs,
        refresh_periods=cfg.mus,
        lrs=(cfg.lr,),
        seed=cfg.seed,
        n_seeds=cfg.n_seeds,
        steps=cfg.steps,
        log_every=cfg.steps,
    )
    out = []
    for name, where in structures.items():
        for g in (*cfg.group_sizes, *((0,) if cfg.exact else ())):
            sampling = {"sampling": "exact", "n_seeds": 1} if g == 0 else {"num_generations": g}
            out.append(
                Panel(
                    f"{name}, G={g or 'exact'}", name, g, "main", base.replace(**where, **sampling)
                )
            )
    if cfg.side_panels and 64 in cfg.group_sizes and cfg.side_structure in structures:
        for name in (cfg.side_structure,):
            where = {**structures[name], "num_generations": 64}
            for lr in cfg.side_lrs:
                out.append(
                    Panel(
                        f"{name}, G=64, lr={lr:g}",
                        name,
                        64,
                        f"lr={lr:g}",
                        base.replace(**where, lrs=(lr,)),
                    )
                )
            lad = base.replace(
                **where, objectives=("lad",), divergences=("js", "kl"), etas=cfg.side_etas
            )
            out.append(Panel(f"{name}, G=64, eta", name, 64, "eta", lad))
    return out


def objective_label(run: Any) -> str:
    """'GRPO unclipped', 'grpo eps 0.2', 'grpo eps 0.2/0.28', 'lad js', ..."""
    if run.objective == "reinforce":
        return "grpo unclipped"
    if run.objective == "grpo":
        return f"grpo eps 0.2/{run.epsilon_high:g}" if run.epsilon_high != 0.2 else REFERENCE
    return f"lad {run.divergence}"


def rollouts(steps: int, mu: int) -> int:
    """Trust-region problems a run of `steps` steps solves: one per refresh of pi_old."""
    return 1 if mu == FIXED else math.ceil(steps / mu)


def _targets(
    landscape: Landscape, eta: float, steps: int, mus: tuple[int, ...]
) -> dict[int, np.ndarray]:
    """The exact iterated tilt (K,) from the uniform policy after rollouts(steps, mu) steps."""
    r = torch.tensor(landscape.rewards, dtype=torch.float64)
    log_pi0 = torch.zeros_like(r)
    return {mu: iterated_tilt(log_pi0, r, eta, rollouts(steps, mu)).exp().numpy() for mu in mus}


def outcomes(
    pi: np.ndarray, target: np.ndarray, correct: np.ndarray, keep_share: float
) -> np.ndarray:
    """(R, len(OUTCOMES)) of final policies pi (R, K) against targets (R, K) or (K,)."""
    m = correct_metrics(torch.from_numpy(pi), torch.from_numpy(correct), keep_share).numpy()
    tv = 0.5 * np.abs(pi - target).sum(-1)
    return np.concatenate([m, tv[:, None]], axis=1)


def run_panel(
    panel: Panel, keep_share: float
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], float]:
    """Train one panel; rows (one per run) and the theory rows (one per mu and eta)."""
    torch.set_num_threads(1)
    cfg = panel.config
    result = train(cfg)
    land = result.landscape
    correct = land.peak_arms()
    pi = result.policies[-1]  # (R, K) at the last step
    targets = {eta: _targets(land, eta, cfg.steps, cfg.refresh_axis) for eta in cfg.temperatures}
    target = np.stack([targets[run.eta][run.refresh] for run in result.runs])
    values = outcomes(pi, target, correct, keep_share)
    base = {
        "panel": panel.name,
        "structure": panel.structure,
        "G": panel.group_size,
        "side": panel.side,
    }
    rows = [
        {
            **base,
            "objective": objective_label(run),
            "eta": run.eta,
            "lr": run.lr,
            "mu": run.refresh,
            "seed": run.seed,
            **dict(zip(OUTCOMES, (float(v) for v in values[i]), strict=True)),
        }
        for i, run in enumerate(result.runs)
    ]
    theory = []
    for eta, by_mu in targets.items():
        for mu, t in by_mu.items():
            v = outcomes(t[None], t, correct, keep_share)[0]
            theory.append(
                {
                    **base,
                    "objective": "exact tilt",
                    "eta": eta,
                    "mu": mu,
                    "rollouts": rollouts(cfg.steps, mu),
                    **dict(zip(OUTCOMES, v.tolist(), strict=True)),
                }
            )
    return rows, theory, result.seconds


POINT_KEYS = ("panel", "structure", "G", "side", "objective", "eta", "lr", "mu")


def summarise(
    rows: list[dict[str, Any]], n_boot: int = 2000, seed: int = 0
) -> dict[str, list[dict[str, Any]]]:
    """points: one per (panel, objective, eta, lr, mu) with n and, per outcome, mean, lo, hi;
    diffs: each objective minus clipped GRPO (eps 0.2) at the same panel, lr and mu."""
    rng = np.random.default_rng(seed)
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in POINT_KEYS), []).append(r)
    points, diffs = [], []
    for key, members in groups.items():
        point: dict[str, Any] = {**dict(zip(POINT_KEYS, key, strict=True)), "n": len(members)}
        for m in OUTCOMES:
            mean, lo, hi = bootstrap_ci(np.array([x[m] for x in members]), rng, n_boot)
            point[m], point[m + "_lo"], point[m + "_hi"] = float(mean), float(lo), float(hi)
        points.append(point)
        ref_key = tuple(
            REFERENCE if k == "objective" else v for k, v in zip(POINT_KEYS, key, strict=True)
        )
        ref_key = (*ref_key[:5], 1.0, *ref_key[6:])  # GRPO ignores eta; its runs carry eta = 1
        if key[4] == REFERENCE or ref_key not in groups:
            continue
        ref = groups[ref_key]
        diff: dict[str, Any] = {**dict(zip(POINT_KEYS, key, strict=True)), "minus": REFERENCE}
        for m in OUTCOMES:
            a, b = np.array([x[m] for x in members]), np.array([x[m] for x in ref])
            diff[m], diff[m + "_lo"], diff[m + "_hi"] = bootstrap_diff_ci(a, b, rng, n_boot)
        diffs.append(diff)
    return {"points": points, "diffs": diffs}


RUN_COLUMNS = (*POINT_KEYS, "seed", *OUTCOMES)


def run_regime(
    cfg: RegimeConfig,
    out: str | Path,
    workers: int = 1,
    progress: Callable[[str], None] | None = None,
    command: list[str] | None = None,
) -> Path:
    """Train every panel (in `workers` spawned processes) and write runs.csv, summary.json and
    config.json into out. Returns out."""
    out = Path(out)
    # taken before any file is written: rewriting a committed grid must not mark its commit dirty
    prov = provenance(command)
    all_panels = panels(cfg, out / "rewards")  # every config checked before any file
    write_rewards(cfg, out / "rewards")
    rows: list[dict[str, Any]] = []
    theory: list[dict[str, Any]] = []
    seconds: dict[str, float] = {}

    def collect(panel: Panel, res: tuple) -> None:
        rows.extend(res[0])
        theory.extend(res[1])
        seconds[panel.name] = round(res[2], 1)
        if progress is not None:
            progress(panel.name)

    if workers <= 1:
        for p in all_panels:
            collect(p, run_panel(p, cfg.keep_share))
    else:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            futures = [pool.submit(run_panel, p, cfg.keep_share) for p in all_panels]
            for p, f in zip(all_panels, futures, strict=True):
                collect(p, f.result())
    order = {p.name: i for i, p in enumerate(all_panels)}
    rows.sort(key=lambda r: order[r["panel"]])
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=RUN_COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    atomic_write(out / "runs.csv", buf.getvalue())
    summary = summarise(rows, cfg.n_boot, cfg.seed)
    summary["theory"] = theory
    write_json(out / "summary.json", {"outcomes": list(OUTCOMES), **_rounded(summary)})
    meta = {
        "kind": "regime",
        "config": asdict(cfg),
        "panels": [
            {
                "name": p.name,
                "structure": p.structure,
                "G": p.group_size,
                "side": p.side,
                "config": {
                    **p.config.to_dict(),
                    "rewards_file": _relative_to(p.config.rewards_file, out),
                },
                "runs": len(expand_runs(p.config)),
                "seconds": seconds[p.name],
            }
            for p in all_panels
        ],
        "correct": "the best arm of each mode: the k reward-1 arms of a plateau, the top of each trimodal bump",
        "provenance": prov,
    }
    write_json(out / "config.json", meta)  # last: its presence marks a complete directory
    return out


def _rounded(obj: Any) -> Any:
    """Floats to 6 significant digits (the files stay small and diffs readable)."""
    if isinstance(obj, float):
        return float(f"{obj:.6g}")
    if isinstance(obj, dict):
        return {k: _rounded(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_rounded(v) for v in obj]
    return obj


def _relative_to(path: str | None, root: Path) -> str | None:
    return None if path is None else str(Path(path).relative_to(root))
