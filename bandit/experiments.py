"""The bandit experiments behind the paper's figures, each a function that trains (or computes)
and writes result files into a directory. `lad figures` runs them, then draws from the files.

| name       | what it writes                                                                  |
|------------|---------------------------------------------------------------------------------|
| fig1       | GRPO (unclipped `reinforce` and clipped `grpo`), theoretical and practical LAD   |
|            | (kl, hellinger, js, tv), pi_old fixed, 5 seeds, the paper's defaults              |
| onpolicy   | unclipped GRPO (the clip never binds on-policy) and practical LAD (kl, js) with    |
|            | pi_old refreshed every step, 5 seeds                                              |
| eta        | GRPO and practical LAD (kl, hellinger, js, tv) at eta in {0.25, 0.5, 1, 2, 4}     |
| dynamics   | 3 arms, exact expectation, SGD: trajectories of GRPO, theoretical and practical   |
|            | LAD (hellinger, js) from one start, and the practical loss on a grid (Figure 2)   |
| surrogate  | Theorem B.1: loss and gradient gaps against the trust-region size (bandit/theory) |
| landscapes | rewards, P_A and modes of every built-in landscape                              |
| explorer   | the explorer page's default grid (bandit/explore.py)                            |
"""

from __future__ import annotations

import csv
import io
import json
import multiprocessing
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty
from typing import Any

import numpy as np
import torch

from bandit import results
from bandit.config import BanditConfig
from bandit.landscapes import LANDSCAPES, get_landscape
from bandit.theory import GAP_COLUMNS, surrogate_gap
from bandit.trainer import Progress, prepare, train
from labkit.config import LossConfig
from labkit.io import atomic_write, check_output_dir
from labkit.losses import compute_loss
from labkit.registry import Registry

FIG1_DIVERGENCES = ("kl", "hellinger", "js", "tv")
FIG2_REWARDS = (0.0, 1.0, 2.0)
FIG2_START = (0.0, 1.0, -1.0)
ETAS = (0.25, 0.5, 1.0, 2.0, 4.0)


# run(out_dir, progress, steps): steps, when given, shortens every training (tests, smoke runs)
RunFn = Callable[[Path, "Progress | None", "int | None"], None]


@dataclass(frozen=True)
class Experiment:
    """name, a one-line description, and run(out_dir, progress, steps) -> None."""

    name: str
    description: str
    run: RunFn


EXPERIMENTS: Registry[Experiment] = Registry("experiment", "experiment")


def _register(name: str, description: str) -> Callable[[RunFn], RunFn]:
    def deco(
        fn: RunFn,
    ) -> RunFn:
        EXPERIMENTS.add(name, Experiment(name, description, fn))
        return fn

    return deco


def fig1_config() -> BanditConfig:
    """The paper's defaults (K = 50 trimodal, 4000 steps, Adam lr 5e-3, G = 64, eta = 1), pi_old
    fixed: GRPO unclipped and clipped, theoretical and practical LAD, 5 seeds."""
    return BanditConfig(
        objectives=("reinforce", "grpo", "lad_theory", "lad"),
        divergences=FIG1_DIVERGENCES,
        n_seeds=5,
    )


def onpolicy_config() -> BanditConfig:
    """The same defaults with pi_old refreshed every step: on-policy GRPO (its clip never binds)
    and practical LAD, as in iterative RL."""
    return BanditConfig(
        objectives=("reinforce", "lad"), divergences=("kl", "js"), n_seeds=5, refresh_every=1
    )


def shorten(config: BanditConfig, steps: int | None) -> BanditConfig:
    """The same config trained for `steps` steps (logging and snapshots scaled down with it)."""
    if steps is None:
        return config
    policy_steps = (
        None if config.policy_steps is None else tuple(s for s in config.policy_steps if s <= steps)
    )
    return config.replace(
        steps=steps, log_every=min(config.log_every, steps), policy_steps=policy_steps
    )


def _train_into(
    config: BanditConfig, out: Path, progress: Progress | None, steps: int | None
) -> None:
    result = train(shorten(config, steps), progress)
    results.save(result, out, command=["lad", "figures", f"(experiment {out.name})"])


@_register(
    "fig1", "Figure 1: learned policies of GRPO and (theoretical, practical) LAD against P_A"
)
def run_fig1(out: Path, progress: Progress | None = None, steps: int | None = None) -> None:
    _train_into(fig1_config(), out, progress, steps)


@_register("onpolicy", "GRPO and practical LAD with pi_old refreshed every step (iterative RL)")
def run_onpolicy(out: Path, progress: Progress | None = None, steps: int | None = None) -> None:
    _train_into(onpolicy_config(), out, progress, steps)


def eta_config() -> BanditConfig:
    return BanditConfig(
        objectives=("reinforce", "lad"), divergences=FIG1_DIVERGENCES, etas=ETAS, n_seeds=3
    )


@_register("eta", "eta sweep: TV to P_A, coverage and entropy against eta")
def run_eta(out: Path, progress: Progress | None = None, steps: int | None = None) -> None:
    _train_into(eta_config(), out, progress, steps)


def dynamics_config(rewards_file: Path) -> BanditConfig:
    steps = 200
    return BanditConfig(
        rewards_file=str(rewards_file),
        objectives=("reinforce", "lad_theory", "lad"),
        divergences=("hellinger", "js"),
        sampling="exact",
        optimizer="sgd",
        lrs=(1.0,),
        steps=steps,
        init="given",
        init_logits=FIG2_START,
        log_every=1,
        policy_steps=tuple(range(steps + 1)),
        dtype="float64",  # exact gradients: let the distance to the target fall below float32 rounding
    )


def loss_grid(
    rewards: tuple[float, ...],
    start: tuple[float, ...],
    divergence: str,
    u: np.ndarray,
    v: np.ndarray,
    eta: float = 1.0,
) -> np.ndarray:
    """Practical LAD loss (exact expectation under pi_old = softmax(start)) of a 3-arm bandit at
    logits (0, u, v) for every grid point: (len(v), len(u))."""
    uu, vv = np.meshgrid(u, v)
    logits = torch.tensor(
        np.stack([np.zeros_like(uu), uu, vv], -1).reshape(-1, 3), dtype=torch.float64
    )
    p = logits.shape[0]
    log_pi = torch.log_softmax(logits, -1).unsqueeze(-1)
    old = torch.log_softmax(torch.tensor(start, dtype=torch.float64), -1).expand(p, 3)
    r = torch.tensor(rewards, dtype=torch.float64)
    adv = (r - old.exp() @ r.unsqueeze(-1)).reshape(p, 3)
    cfg = LossConfig(loss_mode="lad", divergence=divergence, eta=eta)
    loss, _ = compute_loss(old.unsqueeze(-1), log_pi, adv, old.exp().unsqueeze(-1), cfg)
    return loss.numpy().reshape(uu.shape)


@_register("dynamics", "Figure 2: learning dynamics on a 3-arm bandit (two free logits)")
def run_dynamics(out: Path, progress: Progress | None = None, steps: int | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rewards_file = out / "rewards.json"
    atomic_write(rewards_file, json.dumps(list(FIG2_REWARDS)) + "\n")
    config = shorten(dynamics_config(rewards_file), steps)
    results.save(train(config, progress), out / "runs", command=["lad", "figures", "(dynamics)"])
    u = np.linspace(-1.5, 4.5, 121)
    v = np.linspace(-2.5, 8.5, 121)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["divergence", "u", "v", "loss"])
    for div in config.divergences:
        grid = loss_grid(FIG2_REWARDS, FIG2_START, div, u, v)
        for j, vj in enumerate(v):
            for i, ui in enumerate(u):
                w.writerow([div, f"{ui:.6g}", f"{vj:.6g}", f"{grid[j, i]:.6g}"])
    atomic_write(out / "loss_grid.csv", buf.getvalue())


@_register(
    "surrogate",
    "Theorem B.1: practical vs theoretical LAD near pi_old against the trust-region size",
)
def run_surrogate(out: Path, progress: Progress | None = None, steps: int | None = None) -> None:
    landscape = get_landscape("trimodal")
    etas = tuple(float(2.0**e) for e in range(6, -2, -1))
    divs = ("kl", "rkl", "hellinger", "js", "tv")
    random_old = np.random.default_rng(0).normal(size=landscape.n_arms)
    rows = [dict(r, pi_old="uniform") for r in surrogate_gap(landscape.rewards, divs, etas)]
    rows += [
        dict(r, pi_old="random")
        for r in surrogate_gap(landscape.rewards, divs, etas, pi_old_logits=random_old)
    ]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=[*GAP_COLUMNS, "pi_old"], lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write(out / "surrogate.csv", buf.getvalue())
    meta = {
        "kind": "surrogate",
        "landscape": "trimodal",
        "etas": etas,
        "divergences": divs,
        "random_pi_old_seed": 0,
        "versions": results.versions(),
    }
    atomic_write(out / "config.json", json.dumps(meta, indent=1) + "\n")
    if progress is not None:
        progress(1, 1)


@_register("landscapes", "rewards, P_A (eta = 1) and modes of every built-in landscape")
def run_landscapes(out: Path, progress: Progress | None = None, steps: int | None = None) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["landscape", "arm", "reward", "target", "mode"])
    for name in sorted(LANDSCAPES, key=lambda n: n != "trimodal"):  # the default first
        land = get_landscape(name)
        rows = zip(land.rewards, land.target(1.0), land.owner(), strict=True)
        for arm, (rew, pa, mode) in enumerate(rows):
            w.writerow([name, arm, f"{rew:.6g}", f"{pa:.6g}", int(mode)])
    atomic_write(out / "landscapes.csv", buf.getvalue())
    meta = {"kind": "landscapes", "eta": 1.0, "n_arms": 50, "versions": results.versions()}
    atomic_write(out / "config.json", json.dumps(meta, indent=1) + "\n")
    if progress is not None:
        progress(1, 1)


@_register("explorer", "the explorer page's default grid (bandit/explore.py)")
def run_explorer(out: Path, progress: Progress | None = None, steps: int | None = None) -> None:
    from bandit.explore import ExploreGrid, run_grid  # explore imports this module

    grid = ExploreGrid() if steps is None else ExploreGrid(steps=steps, every=max(1, steps // 4))
    # one process: `lad figures all` already runs its experiments in parallel workers
    run_grid(grid, out, lambda _, done, total: progress and progress(done, total), workers=1)


@dataclass
class SweepRun:
    """Where `lad bandit run/sweep` writes, and how many threads it trains with."""

    out: str | None = field(
        default=None,
        metadata={
            "help": "results directory (default results/bandit/<command>-<time>)",
            "flags": ("--out", "-o"),
        },
    )
    threads: int = field(
        default=1, metadata={"help": "torch intra-op threads; 1 is fastest for small sweeps"}
    )

    def __post_init__(self) -> None:
        if not (isinstance(self.threads, int) and self.threads >= 1):
            raise ValueError(f"threads={self.threads!r} is not valid; expected an integer >= 1")


def run_sweep(config: BanditConfig, run: SweepRun, command: str) -> tuple[Any, Path]:
    """`lad bandit run/sweep`: check everything, train every run of `config` with a progress
    bar on stderr, save the result files into run.out (default results/bandit/<command>-<time>).
    Returns (the final-metrics table to print, the results directory)."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    torch.set_num_threads(run.threads)
    prepare(config)  # every check before the progress bar: bad input is one line, no files
    out = run.out or f"results/bandit/{command}-{time.strftime('%Y%m%d-%H%M%S')}"
    check_output_dir(out, "out")
    columns = (BarColumn(), TextColumn("{task.completed}/{task.total} steps"), TimeElapsedColumn())
    with Progress(TextColumn("training"), *columns, console=Console(stderr=True)) as bar:
        task = bar.add_task("training", total=config.steps)
        result = train(config, lambda done, _: bar.update(task, completed=done))
    path = results.save(result, out, command=["lad", *sys.argv[1:]])
    speed = len(result.runs) * config.steps / result.seconds
    title = f"after {config.steps} steps ({result.seconds:.1f} s, {speed:,.0f} run-steps/s)"
    rows = results.summarise(results.final_rows(result))
    return results.summary_table(rows, title, results.refreshed(config)), path


def run_experiment(
    name: str, out: str | Path, progress: Progress | None = None, steps: int | None = None
) -> Path:
    """Run the named experiment into out/<name> and return that directory."""
    exp = EXPERIMENTS.get(name)
    target = Path(out) / name
    exp.run(target, progress, steps)
    return target


ExperimentProgress = Callable[[str, int, int], None]


def _worker(name: str, out: str, queue: object, steps: int | None) -> str:
    # each worker is one process on one core: intra-op threads would only contend
    torch.set_num_threads(1)
    return str(run_experiment(name, out, lambda done, total: queue.put((name, done, total)), steps))  # type: ignore[attr-defined]


def run_experiments(
    names: list[str],
    out: str | Path,
    workers: int = 1,
    progress: ExperimentProgress | None = None,
    steps: int | None = None,
) -> list[Path]:
    """Run several experiments into out/<name>, in `workers` processes (spawned, one thread
    each); progress(name, done, total) is called in this process. Results are the same for any
    number of workers (every run is a function of its config and seed)."""
    for name in names:
        EXPERIMENTS.get(name)
    if workers <= 1:
        return [
            run_experiment(
                n, out, (lambda d, t, n=n: progress(n, d, t)) if progress else None, steps
            )
            for n in names
        ]
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager, ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        queue = manager.Queue()
        futures = [pool.submit(_worker, n, str(out), queue, steps) for n in names]
        while not all(f.done() for f in futures):
            _drain(queue, progress, timeout=0.1)
        _drain(queue, progress, timeout=0.0)
        return [Path(f.result()) for f in futures]


def run_with_bars(names: list[str], out: str | Path, workers: int = 1) -> list[Path]:
    """`lad figures`: run_experiments with one rich progress bar per experiment on stderr."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

    torch.set_num_threads(1)  # small tensors: more threads only contend (workers are processes)
    columns = (TextColumn("{task.description:<22}"), BarColumn(), TaskProgressColumn())
    with Progress(*columns, console=Console(stderr=True)) as bar:
        tasks = {e: bar.add_task(f"train {e}", total=1) for e in names}
        return run_experiments(
            names,
            out,
            workers,
            lambda e, done, total: bar.update(tasks[e], completed=done, total=total),
        )


def _drain(queue: object, progress: ExperimentProgress | None, timeout: float) -> None:
    try:
        item = queue.get(timeout=timeout) if timeout else queue.get_nowait()  # type: ignore[attr-defined]
    except Empty:
        return
    while True:
        if progress is not None:
            progress(*item)
        try:
            item = queue.get_nowait()  # type: ignore[attr-defined]
        except Empty:
            return
