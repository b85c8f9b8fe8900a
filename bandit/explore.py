"""The grid behind the explorer page (`lad bandit explore`): every configuration the page can
show, trained with the vectorised simulator and saved as ordinary result directories.

A grid is a product of shared settings (landscape x pi_old refresh period mu x sampling) and
grid axes (objective x divergence x eta x lr x seed). Each shared setting is one `train` call
over all the axes at once; its results go to out/runs/<landscape>__mu<mu>__<sampling>/ in the
format of bandit/results.py. out/dynamics/ holds the 3-arm Figure 2 runs and loss surfaces for
each divergence of the grid, and out/grid.json the grid and provenance. The page
(figures/explorer.py) only reads these files.
"""

from __future__ import annotations

import csv
import io
import json
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bandit import results
from bandit.config import BanditConfig
from bandit.experiments import FIG2_REWARDS, FIG2_START, dynamics_config, loss_grid
from bandit.trainer import train
from labkit.io import provenance, write_json

GRID_FILE = "grid.json"


def _h(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class ExploreGrid:
    """Every configuration the explorer page offers. Defaults: the page `lad bandit explore`
    builds with no options (about 1000 configurations x 3 seeds, 1000 steps each)."""

    landscapes: tuple[str, ...] = field(
        default=("trimodal", "bimodal"),
        metadata={
            "help": "built-in landscapes (the page's choices)",
            "flags": ("--landscapes", "--landscape"),
        },
    )
    rewards_file: str | None = field(
        default=None,
        metadata={
            "help": "a reward vector file (.json, .csv, .npy) instead of landscapes",
            "flags": ("--rewards",),
        },
    )
    objectives: tuple[str, ...] = field(
        default=("grpo", "reinforce", "lad_theory", "lad"),
        metadata=_h("grpo = GRPO clipped, reinforce = GRPO unclipped, lad_theory, lad"),
    )
    divergences: tuple[str, ...] = field(
        default=("kl", "rkl", "jeffreys", "hellinger", "js", "tv"),
        metadata=_h("f-divergences of the LAD objectives"),
    )
    etas: tuple[float, ...] = field(default=(0.5, 1.0, 2.0), metadata=_h("temperatures eta"))
    lrs: tuple[float, ...] = field(default=(0.005, 0.02), metadata=_h("Adam learning rates"))
    refresh: tuple[int, ...] = field(
        default=(0, 1, 10),
        metadata=_h("updates per rollout mu: pi_old refreshed every mu steps; 0 = fixed"),
    )
    generations: tuple[int, ...] = field(
        default=(0, 64), metadata=_h("samples G per step from pi_old; 0 = exact expectation")
    )
    n_seeds: int = field(default=3, metadata=_h("seeds per configuration"))
    seed: int = field(default=0, metadata=_h("first seed"))
    steps: int = field(default=1000, metadata=_h("training steps"))
    every: int = field(default=50, metadata=_h("policies and metrics saved every N steps"))

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, list):
                setattr(self, f.name, tuple(v))
        if not (isinstance(self.every, int) and 1 <= self.every <= self.steps):
            raise ValueError(
                f"every={self.every!r} is not valid; expected an integer in [1, steps]"
            )
        for mu in self.refresh:
            if not (isinstance(mu, int) and mu >= 0):
                raise ValueError(f"refresh={mu!r} is not valid; expected integers >= 0")
        for g in self.generations:
            if not (isinstance(g, int) and g >= 0):
                raise ValueError(f"generations={g!r} is not valid; expected integers >= 0")
        self.configs()  # every BanditConfig check, before any work

    def settings(self) -> list[tuple[str, int, int]]:
        """(landscape, mu, G) of every train call; landscape 'file' for a rewards file."""
        lands = ("file",) if self.rewards_file else self.landscapes
        return [(land, mu, g) for land in lands for mu in self.refresh for g in self.generations]

    def configs(self) -> dict[str, BanditConfig]:
        """The BanditConfig of every shared setting, by result directory name."""
        out = {}
        for land, mu, g in self.settings():
            config = BanditConfig(
                landscape="trimodal" if land == "file" else land,
                rewards_file=self.rewards_file,
                objectives=self.objectives,
                divergences=self.divergences,
                etas=self.etas,
                lrs=self.lrs,
                seed=self.seed,
                n_seeds=self.n_seeds,
                steps=self.steps,
                refresh_every=mu,
                sampling="exact" if g == 0 else "sample",
                num_generations=max(g, 1),
                log_every=self.every,
                policy_steps=tuple(range(0, self.steps + 1, self.every)),
            )
            out[run_name(land, mu, g)] = config
        return out

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class ExploreRun:
    """Where `lad bandit explore` reads its grid and writes its page."""

    grid: str | None = field(
        default=None,
        metadata=_h("YAML file of ExploreGrid fields, or a saved sweep (lad bandit sweep --out)"),
    )
    out: str = field(
        default="results/explorer",
        metadata={"help": "results and explorer.html", "flags": ("--out", "-o")},
    )
    open: bool = field(default=False, metadata=_h("open the page in a web browser"))
    workers: int = field(
        default=2, metadata={"help": "processes (one thread each)", "flags": ("--workers", "-j")}
    )


def run_name(landscape: str, mu: int, generations: int) -> str:
    return f"{landscape}__mu{mu}__{'exact' if generations == 0 else f'G{generations}'}"


Progress = Callable[[str, int, int], None]


def _train_one(config: BanditConfig, out: str) -> str:
    # one process per core, one thread each: these tensors are small, threads only contend
    torch.set_num_threads(1)
    results.save(train(config), out, command=["lad", "bandit", "explore"])
    return out


def run_grid(
    grid: ExploreGrid, out: str | Path, progress: Progress | None = None, workers: int = 2
) -> Path:
    """Train every shared setting of the grid into out/runs/ (in `workers` spawned processes;
    every run is a function of its config and seed, so the files do not depend on workers),
    the Figure 2 dynamics into out/dynamics/, and write out/grid.json last (its presence marks a
    complete grid). progress(name, done, total) is called as each setting ends."""
    if not (isinstance(workers, int) and workers >= 1):
        raise ValueError(f"workers={workers!r} is not valid; expected an integer >= 1")
    out = Path(out)
    configs = grid.configs()
    jobs = {name: (config, str(out / "runs" / name)) for name, config in configs.items()}
    if workers == 1:
        for i, (name, job) in enumerate(jobs.items()):
            _train_one(*job)
            if progress is not None:
                progress(name, i + 1, len(jobs))
    else:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            futures = {pool.submit(_train_one, *job): name for name, job in jobs.items()}
            for i, f in enumerate(as_completed(futures)):
                f.result()
                if progress is not None:
                    progress(futures[f], i + 1, len(jobs))
    run_dynamics(grid.divergences, out / "dynamics")
    write_json(
        out / GRID_FILE,
        {"grid": grid.to_dict(), "runs": list(configs), "provenance": provenance()},
    )
    return out


def run_dynamics(divergences: tuple[str, ...], out: Path) -> None:
    """Figure 2 for every divergence: trajectories of GRPO (unclipped), theoretical and practical
    LAD on the 3-arm bandit, and the practical loss surface on a (u, v) grid (loss_grid.csv)."""
    out.mkdir(parents=True, exist_ok=True)
    rewards_file = out / "rewards.json"
    results.atomic_write(rewards_file, json.dumps(list(FIG2_REWARDS)) + "\n")
    config = dynamics_config(rewards_file).replace(divergences=divergences)
    results.save(train(config), out / "runs", command=["lad", "bandit", "explore"])
    u = np.linspace(-1.5, 4.5, 61)
    v = np.linspace(-2.5, 8.5, 61)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["divergence", "u", "v", "loss"])
    for div in divergences:
        surface = loss_grid(FIG2_REWARDS, FIG2_START, div, u, v)
        for j, vj in enumerate(v):
            for i, ui in enumerate(u):
                w.writerow([div, f"{ui:.6g}", f"{vj:.6g}", f"{surface[j, i]:.6g}"])
    results.atomic_write(out / "loss_grid.csv", buf.getvalue())


def build(grid: str | None, overrides: list[str], out: Path, workers: int = 2) -> Path:
    """`lad bandit explore`: the results the page reads, into out/. grid: None (the default
    grid), a YAML file of ExploreGrid fields, or a saved sweep directory (shown, not trained);
    overrides: field=value changes of the grid (landscapes, rewards_file)."""
    from labkit.config_loading import load

    names = {o.partition("=")[0] for o in overrides}
    if {"landscapes", "rewards_file"} <= names:
        raise ValueError("give --landscape or --rewards, not both")
    if grid is not None and Path(grid).is_dir():
        if overrides:
            raise ValueError("--landscape and --rewards apply to a grid that is trained")
        return saved_sweep(Path(grid), out)
    return run_grid(load(ExploreGrid, grid, overrides), out, workers=workers)


def saved_sweep(path: Path, out: Path) -> Path:
    """Use a saved sweep (a `lad bandit sweep --out` directory) as a one-setting grid: its
    results are read in place and only the Figure 2 dynamics are computed, into out/."""
    res = results.load(path)  # raises ValueError when it is not a results directory
    cfg: BanditConfig = res.config
    g = 0 if cfg.sampling == "exact" else cfg.num_generations
    land = "file" if cfg.rewards_file else cfg.landscape
    divs = tuple(sorted({r["divergence"] for r in res.runs if r["divergence"]})) or ("js",)
    run_dynamics(divs, out / "dynamics")
    write_json(
        out / GRID_FILE,
        {
            "grid": None,
            "runs": {run_name(land, cfg.refresh_every, g): str(path.resolve())},
            "provenance": provenance(),
        },
    )
    return out


def result_dirs(out: Path) -> dict[str, Path]:
    """name -> result directory of every shared setting of a built grid."""
    meta = json.loads((out / GRID_FILE).read_text())
    runs = meta["runs"]
    if isinstance(runs, dict):  # a saved sweep, read in place
        return {k: Path(v) for k, v in runs.items()}
    return {name: out / "runs" / name for name in runs}
