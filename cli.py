"""`lad`: the labkit command line. This file only parses arguments and calls library functions.

Errors a user can cause (bad values, missing files) print one line to stderr and exit with code 2.
"""

from __future__ import annotations

import importlib
import platform
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

import typer

app = typer.Typer(
    help="LAD: learning advantage distributions.", no_args_is_help=True, add_completion=False
)
bandit_app = typer.Typer(help="The vectorized bandit sandbox.", no_args_is_help=True)
llm_app = typer.Typer(
    help="Train, sample and evaluate language models with LAD.", no_args_is_help=True
)
figures_app = typer.Typer(help="Draw figures from saved results.", no_args_is_help=True)
app.add_typer(bandit_app, name="bandit")
app.add_typer(llm_app, name="llm")
app.add_typer(figures_app, name="figures")


def fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the errors a user can cause into one line and exit code 2 (no traceback)."""

    @wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        from labkit.io import LockedError  # a run directory another process is writing

        try:
            return fn(*args, **kwargs)
        except (
            ValueError,
            FileNotFoundError,
            IsADirectoryError,
            PermissionError,
            LockedError,
        ) as e:
            fail(str(e))

    return run


@app.command()
def info() -> None:
    """Print versions, the compute device and which optional backends import."""
    import torch

    rows = [("python", platform.python_version()), ("torch", torch.__version__)]
    for mod in (
        "transformers",
        "trl",
        "verl",
        "vllm",
        "math_verify",
        "reasoning_gym",
        "tensorboard",
    ):
        try:
            m = importlib.import_module(mod)
            rows.append((mod, getattr(m, "__version__", "installed")))
        except Exception as e:  # an optional backend may fail in many ways; report, never crash
            rows.append((mod, f"not available ({type(e).__name__})"))
    if torch.cuda.is_available():
        device = f"cuda ({torch.cuda.get_device_name(0)}, {torch.cuda.device_count()} GPU)"
    elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        device = "mps"
    else:
        device = f"cpu ({torch.get_num_threads()} threads)"
    rows.append(("device", device))
    from labkit.install import clash_message, clashes

    clash = clash_message(clashes())
    rows.append(("packages", "labkit owns its top-level names" if not clash else "CLASH (below)"))
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        typer.echo(f"{k:<{width}}  {v}")
    if clash:
        typer.echo(f"error: {clash}", err=True)
        raise typer.Exit(1)


# --- bandit ----------------------------------------------------------------------------------
def _bh(name: str) -> str:
    """Help text of a BanditConfig field (written once, in bandit/config.py)."""
    import dataclasses

    from bandit.config import BanditConfig

    return next(f.metadata["help"] for f in dataclasses.fields(BanditConfig) if f.name == name)


# options shared by `run` and `sweep` (None = keep the config's value)
_B_LANDSCAPE = typer.Option(None, "--landscape", "-l", help=_bh("landscape"))
_B_REWARDS = typer.Option(None, "--rewards", help=_bh("rewards_file"))
_B_ARMS = typer.Option(None, "--arms", "-K", help=_bh("n_arms"))
_B_SEED = typer.Option(None, "--seed", help=_bh("seed"))
_B_SEEDS = typer.Option(None, "--seeds", help=_bh("n_seeds"))
_B_STEPS = typer.Option(None, "--steps", help=_bh("steps"))
_B_G = typer.Option(None, "--num-generations", "-G", help=_bh("num_generations"))
_B_OPTIMIZER = typer.Option(None, "--optimizer", help=_bh("optimizer"))
_B_REFRESH = typer.Option(None, "--refresh-every", help=_bh("refresh_every"))
_B_INIT = typer.Option(None, "--init", help=_bh("init"))
_B_INIT_SCALE = typer.Option(None, "--init-scale", help=_bh("init_scale"))
_B_SAMPLING = typer.Option(None, "--sampling", help=_bh("sampling"))
_B_ADVANTAGE = typer.Option(None, "--advantage", help=_bh("advantage"))
_B_NOISE = typer.Option(None, "--reward-noise", help=_bh("reward_noise"))
_B_NOISE_STD = typer.Option(None, "--noise-std", help=_bh("noise_std"))
_B_EPSILON = typer.Option(None, "--epsilon", help=_bh("epsilon"))
_B_LOG_EVERY = typer.Option(None, "--log-every", help=_bh("log_every"))
_B_DTYPE = typer.Option(None, "--dtype", help=_bh("dtype"))
_B_DEVICE = typer.Option(None, "--device", help=_bh("device"))
_B_POLICY_STEPS = typer.Option(None, "--policy-steps", help=_bh("policy_steps") + " (comma list)")
_B_OUT = typer.Option(
    None, "--out", "-o", help="results directory (default results/bandit/<command>-<time>)"
)
_B_THREADS = typer.Option(
    1,
    "--threads",
    help="torch intra-op threads; 1 is fastest for small sweeps (the bench shows when 2 pay)",
)


# the options `run` and `sweep` share: CLI parameter -> BanditConfig field
_B_SHARED = {
    **{
        name: name
        for name in (
            "landscape",
            "seed",
            "steps",
            "num_generations",
            "optimizer",
            "refresh_every",
            "init",
            "init_scale",
            "sampling",
            "advantage",
            "reward_noise",
            "noise_std",
            "epsilon",
            "log_every",
            "dtype",
            "device",
        )
    },
    "rewards": "rewards_file",
    "arms": "n_arms",
    "seeds": "n_seeds",
}


def _shared_bandit_fields(params: dict) -> dict:
    """The shared options of a `run` / `sweep` call as BanditConfig fields (None = not given)."""
    fields = {field: params[name] for name, field in _B_SHARED.items()}
    fields["policy_steps"] = _csv(params["policy_steps"], int)
    return fields


def _csv(text: str | None, kind: type = str) -> list | None:
    if text is None:
        return None
    items = [t.strip() for t in text.split(",") if t.strip()]
    try:
        return [kind(t) for t in items]
    except ValueError:
        raise ValueError(f"{text!r} is not a comma-separated list of {kind.__name__}s") from None


def _bandit_train(config, out: str | None, command: str, threads: int) -> None:
    """Train with a progress bar, save the result files, print the summary table."""
    import time

    import torch
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from bandit import results
    from bandit.config import expand_runs
    from bandit.trainer import NonFiniteError, prepare, train
    from labkit.io import check_output_dir

    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    torch.set_num_threads(threads)
    prepare(config)  # every check before the progress bar: bad input prints one line
    out_dir = out or f"results/bandit/{command}-{time.strftime('%Y%m%d-%H%M%S')}"
    check_output_dir(out_dir, "out")
    n_runs = len(expand_runs(config))
    console = Console(stderr=True)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} steps"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(f"{n_runs} runs", total=config.steps)
        try:
            result = train(config, lambda done, total: bar.update(task, completed=done))
        except NonFiniteError as e:
            bar.stop()
            fail(str(e), code=1)
    path = results.save(result, out_dir, command=["lad", *sys.argv[1:]])
    _print_summary(
        results.summarise(results.final_rows(result)),
        f"after {config.steps} steps ({result.seconds:.1f} s, {n_runs * config.steps / result.seconds:,.0f} run-steps/s)",
        refreshed=config.refresh_every > 0 or config.init != "uniform",
    )
    typer.echo(f"results: {path}/metrics.csv, policies.csv, config.json")


def _print_summary(
    rows: list[dict], title: str, refreshed: bool = False, source: list[str] | None = None
) -> None:
    """Final metrics per (objective, divergence, eta, lr): mean over seeds, (min-max) when seeds differ."""
    import math

    from rich.console import Console
    from rich.table import Table

    def cell(r: dict, m: str, fmt: str) -> str:
        mean, lo, hi = r[m], r[m + "_min"], r[m + "_max"]
        if math.isnan(mean):
            return "-"
        if format(lo, fmt) == format(hi, fmt):
            return format(mean, fmt)
        return f"{format(mean, fmt)} ({format(lo, fmt)}-{format(hi, fmt)})"

    table = Table(title=f"final metrics {title}", title_justify="left")
    heads = [
        *(["results"] if source else []),
        "objective",
        "div",
        "eta",
        "lr",
        "seeds",
        "TV(P_pi,P_A)",
    ]
    heads += ["TV(pi,P_A)"] if refreshed else []
    heads += ["modes covered", "max arm", "entropy", "expected reward", "TV to theory"]
    for h in heads:
        table.add_column(h, justify="left" if h in ("results", "objective", "div") else "right")
    for i, r in enumerate(rows):
        modes = cell(r, "modes_covered", ".0f") + f"/{r['modes_target']:.0f}"
        cells = [
            *([source[i]] if source else []),
            r["objective"],
            r["divergence"] or "-",
            f"{r['eta']:g}",
            f"{r['lr']:g}",
            str(r["n"]),
            cell(r, "tv", ".3f"),
        ]
        cells += [cell(r, "tv_pi", ".3f")] if refreshed else []
        cells += [
            modes,
            cell(r, "max_arm", ".3f"),
            cell(r, "entropy", ".2f"),
            cell(r, "expected_reward", ".3f"),
            cell(r, "tv_theory", ".3f"),
        ]
        table.add_row(*cells)
    Console(width=200).print(table)


@bandit_app.command("landscape")
@user_errors
def bandit_landscape(
    name: str = typer.Argument(
        "trimodal", help="built-in landscape: trimodal, trimodal_wide, bimodal, unimodal, plateau"
    ),
    rewards: str | None = _B_REWARDS,
    arms: int = typer.Option(50, "--arms", "-K", help=_bh("n_arms")),
    eta: float = typer.Option(1.0, help="temperature of P_A drawn (> 0)"),
    out: str | None = typer.Option(
        None,
        "--out",
        "-o",
        help="file stem for .png and .pdf (default results/bandit/landscape-<name>)",
    ),
) -> None:
    """Draw a landscape (rewards and P_A, coloured by mode) before training anything."""
    from bandit.landscapes import get_landscape
    from figures import style
    from figures.bandit_policies import draw_landscape

    if not eta > 0:
        raise ValueError(f"eta must be > 0, got {eta}")
    land = get_landscape(name, arms, rewards)
    target = land.target(eta)
    owner = [-1] * land.n_arms
    for j, mode in enumerate(land.modes):
        for a in mode:
            owner[a] = j
    typer.echo(
        f"{land.name}: K={land.n_arms}, rewards in [{min(land.rewards):.3g}, {max(land.rewards):.3g}], P_A(eta={eta:g}) max {target.max():.3f}"
    )
    for j, mode in enumerate(land.modes):
        typer.echo(
            f"  mode {j}: arms {mode[0]}-{mode[-1]}, target mass {target[list(mode)].sum():.3f}"
        )
    import numpy as np

    ax = draw_landscape(land.array(), target, np.asarray(owner), land.name)
    stem = out or f"results/bandit/landscape-{land.name.replace(':', '-')}"
    paths = style.save(ax.figure, stem, command=" ".join(["lad", *sys.argv[1:]]))
    typer.echo("wrote " + ", ".join(str(p) for p in paths))


@bandit_app.command("run")
@user_errors
def bandit_run(
    objective: str = typer.Option(
        "lad",
        "--objective",
        help="lad, lad_theory, reinforce (unclipped GRPO), grpo (clipped), kl_cov",
    ),
    divergence: str = typer.Option(
        "js", "--divergence", "-d", help="f-divergence of lad / lad_theory"
    ),
    eta: float | None = typer.Option(None, "--eta", help="LAD temperature eta > 0 (default 1)"),
    kappa: float | None = typer.Option(
        None, "--kappa", help="inverse temperature 1/eta (instead of --eta)"
    ),
    lr: float | None = typer.Option(None, "--lr", help="learning rate (default 5e-3)"),
    landscape: str | None = _B_LANDSCAPE,
    rewards: str | None = _B_REWARDS,
    arms: int | None = _B_ARMS,
    seed: int | None = _B_SEED,
    seeds: int | None = typer.Option(5, "--seeds", help=_bh("n_seeds")),
    steps: int | None = _B_STEPS,
    num_generations: int | None = _B_G,
    optimizer: str | None = _B_OPTIMIZER,
    refresh_every: int | None = _B_REFRESH,
    init: str | None = _B_INIT,
    init_scale: float | None = _B_INIT_SCALE,
    sampling: str | None = _B_SAMPLING,
    advantage: str | None = _B_ADVANTAGE,
    reward_noise: str | None = _B_NOISE,
    noise_std: float | None = _B_NOISE_STD,
    epsilon: float | None = _B_EPSILON,
    log_every: int | None = _B_LOG_EVERY,
    dtype: str | None = _B_DTYPE,
    device: str | None = _B_DEVICE,
    policy_steps: str | None = _B_POLICY_STEPS,
    out: str | None = _B_OUT,
    threads: int = _B_THREADS,
) -> None:
    """Train one configuration over several seeds (one vectorised call) and print final metrics."""
    from bandit.config import from_dict

    given = {
        "objectives": [objective],
        "divergences": [divergence],
        "etas": None if eta is None else [eta],
        "kappas": None if kappa is None else [kappa],
        "lrs": None if lr is None else [lr],
        **_shared_bandit_fields(locals()),
    }
    _bandit_train(from_dict({k: v for k, v in given.items() if v is not None}), out, "run", threads)


@bandit_app.command("sweep")
@user_errors
def bandit_sweep(
    config: str | None = typer.Option(
        None,
        "--config",
        "-c",
        help="YAML or TOML file of BanditConfig fields (configs/bandit/*.yaml); options below override it",
    ),
    objectives: str | None = typer.Option(
        None, "--objectives", help="comma list, e.g. reinforce,lad_theory,lad"
    ),
    divergences: str | None = typer.Option(
        None, "--divergences", help="comma list, e.g. kl,hellinger,js,tv"
    ),
    etas: str | None = typer.Option(None, "--etas", help="comma list of eta > 0"),
    kappas: str | None = typer.Option(
        None, "--kappas", help="comma list of kappa = 1/eta (instead of --etas)"
    ),
    lrs: str | None = typer.Option(None, "--lrs", help="comma list of learning rates"),
    landscape: str | None = _B_LANDSCAPE,
    rewards: str | None = _B_REWARDS,
    arms: int | None = _B_ARMS,
    seed: int | None = _B_SEED,
    seeds: int | None = _B_SEEDS,
    steps: int | None = _B_STEPS,
    num_generations: int | None = _B_G,
    optimizer: str | None = _B_OPTIMIZER,
    refresh_every: int | None = _B_REFRESH,
    init: str | None = _B_INIT,
    init_scale: float | None = _B_INIT_SCALE,
    sampling: str | None = _B_SAMPLING,
    advantage: str | None = _B_ADVANTAGE,
    reward_noise: str | None = _B_NOISE,
    noise_std: float | None = _B_NOISE_STD,
    epsilon: float | None = _B_EPSILON,
    log_every: int | None = _B_LOG_EVERY,
    dtype: str | None = _B_DTYPE,
    device: str | None = _B_DEVICE,
    policy_steps: str | None = _B_POLICY_STEPS,
    out: str | None = _B_OUT,
    threads: int = _B_THREADS,
) -> None:
    """Train a grid (objectives x divergences x eta x lr x seeds) in one vectorised call."""
    from bandit.config import BanditConfig, from_dict, load_config_file

    base = load_config_file(config) if config else BanditConfig()
    given = {
        "objectives": _csv(objectives),
        "divergences": _csv(divergences),
        "etas": _csv(etas, float),
        "kappas": _csv(kappas, float),
        "lrs": _csv(lrs, float),
        **_shared_bandit_fields(locals()),
    }
    if given["etas"] is not None:
        base = base.replace(kappas=None)
    if given["kappas"] is not None:
        base = base.replace(etas=None)
    _bandit_train(
        from_dict({k: v for k, v in given.items() if v is not None}, base), out, "sweep", threads
    )


@bandit_app.command("regime")
@user_errors
def bandit_regime(
    out: str = typer.Option("docs/results/regime", "--out", "-o", help="results directory"),
    steps: int = typer.Option(2000, "--steps", help="optimiser steps per run"),
    seeds: int = typer.Option(16, "--seeds", help="seeds per point (>= 2)"),
    mus: str = typer.Option("1,2,4,8,16,32,64,0", "--mus", help="updates per rollout; 0 = fixed"),
    ks: str = typer.Option("2,5,10", "--ks", help="correct arms of the plateau panels"),
    group_sizes: str = typer.Option("8,64", "--group-sizes", help="samples per step G"),
    full: bool = typer.Option(
        True, "--full/--main-only", help="also the exact-expectation, trimodal and side panels"
    ),
    workers: int = typer.Option(2, "--workers", "-j", help="processes (one thread each)"),
) -> None:
    """The regime map (docs/bandit-regimes.md): GRPO vs LAD against updates per rollout, reward
    structure and G; writes runs.csv, summary.json (95% bootstrap CIs) and config.json."""
    from bandit.regime import RegimeConfig, run_regime

    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    cfg = RegimeConfig(
        steps=steps,
        n_seeds=seeds,
        mus=tuple(_csv(mus, int)),
        ks=tuple(_csv(ks, int)),
        group_sizes=tuple(_csv(group_sizes, int)),
        trimodal=full,
        exact=full,
        side_panels=full,
    )
    path = run_regime(
        cfg, out, workers, lambda name: typer.echo(f"done: {name}"), ["lad", *sys.argv[1:]]
    )
    typer.echo(f"results: {path}/runs.csv, summary.json, config.json")


@bandit_app.command("compare")
@user_errors
def bandit_compare(
    dirs: list[str] = typer.Argument(
        ..., help="results directories written by run, sweep or lad figures"
    ),
    sort: str | None = typer.Option(
        None,
        "--sort",
        help="sort rows by a metric: tv, kl, tv_pi, tv_theory, modes_covered, max_arm, entropy, expected_reward",
    ),
    csv_out: str | None = typer.Option(None, "--csv", help="also write the table to this CSV file"),
) -> None:
    """A table of final metrics (mean over seeds) across result directories."""
    import csv
    import io
    from pathlib import Path

    from bandit import results
    from labkit.io import atomic_write

    rows, source = [], []
    refreshed = False
    for d in dirs:
        res = results.load(d)
        refreshed |= res.config.refresh_every > 0 or res.config.init != "uniform"
        for r in results.summarise(results.final_rows(res)):
            rows.append(r)
            source.append("/".join(Path(d).resolve().parts[-2:]))  # short label; --csv keeps it
    if sort is not None:
        if sort not in results.SUMMARY_METRICS:
            raise ValueError(
                f"sort={sort!r} is not valid; expected one of {list(results.SUMMARY_METRICS)}"
            )
        order = sorted(range(len(rows)), key=lambda i: rows[i][sort])
        rows, source = [rows[i] for i in order], [source[i] for i in order]
    _print_summary(
        rows,
        f"of {len(dirs)} result director{'y' if len(dirs) == 1 else 'ies'}",
        refreshed=refreshed,
        source=source,
    )
    if csv_out:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=["results", *rows[0].keys()], lineterminator="\n")
        writer.writeheader()
        for s, r in zip(source, rows, strict=True):
            writer.writerow({"results": s, **r})
        atomic_write(Path(csv_out), buf.getvalue())
        typer.echo(f"wrote {csv_out}")


@bandit_app.command("explore")
@user_errors
def bandit_explore(
    grid: str | None = typer.Option(
        None,
        "--grid",
        help="YAML file of grid fields (bandit/explore.py ExploreGrid; default: the built-in grid), or a saved sweep directory (lad bandit sweep --out) to show instead of training",
    ),
    landscape: str | None = typer.Option(
        None, "--landscape", help="one built-in landscape instead of the grid's"
    ),
    rewards: str | None = typer.Option(
        None, "--rewards", help="a reward vector file (.json, .csv, .npy) instead of landscapes"
    ),
    out: str = typer.Option(
        "results/explorer", "--out", "-o", help="directory for the results and explorer.html"
    ),
    open_page: bool = typer.Option(
        False, "--open", help="open the page in a web browser (else print its path)"
    ),
    workers: int = typer.Option(
        2, "--workers", "-j", help="processes that train the grid in parallel (one thread each)"
    ),
) -> None:
    """Train a grid of configurations and write one offline, interactive HTML page of them."""
    import time
    import webbrowser
    from pathlib import Path

    from bandit import explore
    from figures import explorer

    if landscape is not None and rewards is not None:
        raise ValueError(
            f"give --landscape or --rewards, not both (got {landscape!r} and {rewards!r})"
        )
    start = time.perf_counter()
    root = Path(out)
    if grid is not None and Path(grid).is_dir():
        if landscape or rewards:
            raise ValueError(
                "--landscape and --rewards apply to a grid that is trained, not to a saved sweep"
            )
        explore.saved_sweep(Path(grid), root)
    else:
        spec = explore.load_grid(
            grid,
            landscapes=(landscape,) if landscape else None,
            rewards_file=rewards,
        )
        explore.run_grid(spec, root, workers=workers)
    page = explorer.write_page(root, root / "explorer.html")
    typer.echo(f"wrote {page} ({explorer.size_mb(page)} MB, {time.perf_counter() - start:.0f} s)")
    if open_page:
        try:
            webbrowser.get()
        except webbrowser.Error:
            typer.echo(f"no web browser found here: open {page.resolve().as_uri()}")
            return
        webbrowser.open(page.resolve().as_uri())


# --- llm -------------------------------------------------------------------------------------

_OVERRIDES_HELP = "config overrides section.field=value (CLI wins over the YAML), e.g. algorithm.divergence=kl trainer.seed=3"


def _llm_config(config: str | None, overrides: list[str] | None, *extra: str):
    from llm.config_loading import load_config

    return load_config(config, [*(overrides or []), *extra])


@llm_app.command("train")
@user_errors
def llm_train(
    overrides: list[str] | None = typer.Argument(None, help=_OVERRIDES_HELP, show_default=False),
    config: str | None = typer.Option(
        None, "--config", "-c", help="YAML config (configs/llm/*.yaml)"
    ),
    resume: str | None = typer.Option(
        None, help="auto (latest checkpoint in output_dir) or a checkpoint directory"
    ),
    allow_config_change: bool = typer.Option(
        False,
        "--allow-config-change",
        help="with --resume auto: continue even if the config differs from the saved one",
    ),
) -> None:
    """Train a language model with LAD (or any labkit objective) on verifiable rewards."""
    from llm.rewards import RewardError
    from llm.trainer import NonFiniteError, Trainer

    extra = [f"trainer.resume={resume}"] if resume else []
    if allow_config_change:
        extra.append("trainer.allow_config_change=true")
    cfg = _llm_config(config, overrides, *extra)
    try:
        with Trainer(cfg) as trainer:
            last = trainer.train()
    except (NonFiniteError, RewardError) as e:
        fail(str(e), code=1)
    keys = ("reward", "entropy", "completions/mean_length", "tokens/s")
    summary = "  ".join(f"{k} {last[k]:.4g}" for k in keys if k in last)
    typer.echo(f"done: {cfg.trainer.max_steps} steps in {cfg.trainer.output_dir}  {summary}")


@llm_app.command("eval")
@user_errors
def llm_eval(
    overrides: list[str] | None = typer.Argument(None, help=_OVERRIDES_HELP, show_default=False),
    config: str | None = typer.Option(
        None, "--config", "-c", help="YAML config (data, eval and model sections)"
    ),
    checkpoint: str | None = typer.Option(
        None, help="a checkpoint directory or auto; default: the base model"
    ),
    out: str | None = typer.Option(None, help="output directory (default trainer.output_dir)"),
    label: str | None = typer.Option(None, help="name of this evaluation: eval_<label>.json"),
) -> None:
    """Sample eval.n completions per held-out prompt: avg@n, pass@k, maj@n, distinct-n (JSON + plot)."""
    from llm.evaluate import run_eval

    path, result = run_eval(
        _llm_config(config, overrides), checkpoint=checkpoint, out_dir=out, label=label
    )
    for k, v in result["metrics"].items():
        typer.echo(f"{k:<26} {v:.4f}")
    typer.echo(f"wrote {path} and {path.parent / 'eval.png'}")


@llm_app.command("sample")
@user_errors
def llm_sample(
    overrides: list[str] | None = typer.Argument(None, help=_OVERRIDES_HELP, show_default=False),
    config: str | None = typer.Option(None, "--config", "-c", help="YAML config"),
    checkpoint: str | None = typer.Option(
        None, help="a checkpoint directory or auto; default: the base model"
    ),
    prompt: list[str] | None = typer.Option(
        None, "--prompt", "-p", help="a user message (repeatable); default: eval records"
    ),
    n: int = typer.Option(2, "-n", help="completions per prompt"),
    num_prompts: int = typer.Option(3, help="eval records to sample for (without --prompt)"),
) -> None:
    """Print a few sampled completions (with their rewards when the prompts come from the data)."""
    from llm.evaluate import sample_completions

    rows = sample_completions(
        _llm_config(config, overrides), checkpoint, prompt, n=n, num_prompts=num_prompts
    )
    for row in rows:
        typer.echo(f"=== prompt\n{row['prompt']}")
        if row["answer"] is not None:
            typer.echo(f"--- gold answer: {row['answer']}")
        for i, (text, r) in enumerate(zip(row["completions"], row["rewards"], strict=True)):
            typer.echo(
                f"--- completion {i}" + ("" if r is None else f" (reward {r:.3g})") + f"\n{text}"
            )


@llm_app.command("config")
@user_errors
def llm_config(
    overrides: list[str] | None = typer.Argument(None, help=_OVERRIDES_HELP, show_default=False),
    config: str | None = typer.Option(None, "--config", "-c", help="YAML config to resolve"),
) -> None:
    """Print the resolved config as YAML (no arguments: every field, its default and help)."""
    from llm.config_loading import describe

    if config is None and not overrides:
        typer.echo(describe())
    else:
        typer.echo(_llm_config(config, overrides).to_yaml(), nl=False)


@llm_app.command("verl")
@user_errors
def llm_verl(
    overrides: list[str] | None = typer.Argument(
        None, help="extra verl Hydra overrides key.path=value, applied last", show_default=False
    ),
    preset: str = typer.Option(
        "single-gpu", help="qwen2.5-7b-dapo-8gpu (the paper's setting, 8 GPUs) or single-gpu"
    ),
    model: str | None = typer.Option(None, help="actor_rollout_ref.model.path (HF id or dir)"),
    train_files: str | None = typer.Option(None, help="data.train_files (verl parquet)"),
    val_files: str | None = typer.Option(None, help="data.val_files (verl parquet)"),
    n_gpus: int | None = typer.Option(None, help="trainer.n_gpus_per_node"),
    nnodes: int | None = typer.Option(None, help="trainer.nnodes"),
    divergence: str | None = typer.Option(None, help="LAD f-divergence (default js)"),
    eta: float | None = typer.Option(None, help="LAD temperature eta (give eta or kappa)"),
    kappa: float | None = typer.Option(None, help="inverse temperature kappa = 1/eta"),
    ratio_level: str | None = typer.Option(
        None, help="token, sequence-sum or sequence-mean likelihood ratios"
    ),
    standardized: bool | None = typer.Option(
        None, "--standardized/--no-standardized", help="use f(x) - f'(1)(x - 1)"
    ),
    loss_agg_mode: str | None = typer.Option(None, help="verl loss_agg_mode (default token-mean)"),
    python: str = typer.Option("python3", help="interpreter of the env with verl, vLLM, labkit"),
    run: bool = typer.Option(False, "--run", help="run the command instead of printing it"),
) -> None:
    """Print (or --run) the verl command of a LAD run: labkit's loss as verl's policy loss `lad`."""
    import subprocess

    from llm.integrations.verl_launch import main_ppo_command, render_script

    lad = dict(
        divergence=divergence,
        eta=eta,
        kappa=kappa,
        ratio_level=ratio_level,
        standardized=standardized,
        loss_agg_mode=loss_agg_mode,
    )
    argv = main_ppo_command(
        preset,
        lad=lad,
        overrides=overrides,
        python=python,
        model=model,
        train_files=train_files,
        val_files=val_files,
        n_gpus_per_node=n_gpus,
        nnodes=nnodes,
    )
    if not run:
        typer.echo(render_script(argv, preset), nl=False)
        return
    probe = subprocess.run([python, "-c", "import llm.integrations.verl"], capture_output=True)
    if probe.returncode != 0:
        fail(f"{python} cannot import verl and labkit's plug-in (see scripts/setup_verl_env.sh)")
    raise typer.Exit(subprocess.run(argv, check=False).returncode)


def _parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.replace(",", " ").split()]
    except ValueError:
        raise ValueError(
            f"--seeds {text!r} is not valid; expected integers such as 0,1,2"
        ) from None
    if not seeds:
        raise ValueError(f"--seeds {text!r} is not valid; expected at least one integer")
    return seeds


@llm_app.command("demo")
@user_errors
def llm_demo(
    quick: bool = typer.Option(
        False, "--quick", help="CI size: two seeds, 4 steps, 8 samples per prompt"
    ),
    out: str = typer.Option("results/llm_demo", "--out", "-o", help="output directory"),
    seeds: str | None = typer.Option(None, "--seeds", help="RL seeds, e.g. 0,1,2 (default 0-9)"),
    sweep: str = typer.Option(
        "main",
        help="main (GRPO, LAD-JS), eta (LAD-JS over kappa), divergence, or mu "
        "(GRPO and LAD-JS at 1, 2, 4, 8, 16 updates per rollout)",
    ),
    config: str | None = typer.Option(
        None, "--config", "-c", help="demo YAML (configs/llm/demo/demo.yaml)"
    ),
    methods: str | None = typer.Option(
        None,
        "--methods",
        help="run only these methods of the config or sweep, e.g. grpo,lad_js or grpo_mu1,lad_js_mu1",
    ),
    train: list[str] | None = typer.Option(
        None,
        "--train",
        help="extra trainer override for every method (repeatable), e.g. algorithm.num_iterations=4",
    ),
    workers: int | None = typer.Option(None, "--workers", "-j", help="runs in parallel"),
    figures: bool = typer.Option(True, "--figures/--no-figures", help="draw OUT/figures"),
    summarize: bool = typer.Option(
        False,
        "--summarize",
        help="train nothing: rewrite OUT/summary.json (summary_<sweep>.json) from the saved results",
    ),
) -> None:
    """LAD vs GRPO on a tiny language model, a task with many correct answers, CPU: paired
    differences over seeds with bootstrap CIs, on held-out prompts."""
    import dataclasses
    import time
    from pathlib import Path

    from figures.llm_demo import block_mu, block_table, summary_file, write_summary
    from llm.demo import run_demo
    from llm.demo_config import DemoConfig, results_file, sweep_config

    cfg = sweep_config(DemoConfig.from_yaml(config) if config else DemoConfig(), sweep)
    if quick:
        cfg = cfg.quick()
    if seeds is not None:
        cfg = dataclasses.replace(cfg, seeds=_parse_seeds(seeds))
    if workers is not None:
        cfg = dataclasses.replace(cfg, workers=workers)
    if train:
        cfg = dataclasses.replace(cfg, train=[*cfg.train, *train])
    if methods is not None:
        cfg = cfg.select(methods.replace(",", " ").split())
    command = " ".join(["lad", *sys.argv[1:]])
    start = time.perf_counter()
    if not summarize:
        run_demo(cfg, out, log=typer.echo, sweep=sweep, command=command)
    write_summary(out, sweep, command=command)
    if sweep in ("main", "mu"):
        typer.echo((block_table if sweep == "main" else block_mu)(Path(out)))
    if summarize:
        typer.echo(f"{out}/{summary_file(sweep)}")
        return
    if figures:
        from figures.llm import draw_all

        written = draw_all(out, f"{out}/figures", command)
        typer.echo(f"figures: {', '.join(str(p) for p in written if p.suffix == '.png')}")
    typer.echo(
        f"done in {time.perf_counter() - start:.0f} s; "
        f"{out}/{results_file(sweep)}, {out}/{summary_file(sweep)}"
    )


# --- figures ---------------------------------------------------------------------------------
# name and one-line help of every figure (figures.registry.FIGURES holds the same names; a test checks)
_FIGURES = (
    (
        "fig1",
        "Figure 1: final policies of GRPO, theoretical and practical LAD against P_A (50 arms)",
    ),
    ("fig2", "Figure 2: trajectories on the practical LAD loss, 3 arms (hellinger, js rows)"),
    ("weights", "how each f-divergence limits growth (analytic, no training)"),
    ("eta", "eta sweep: TV to P_A, modes covered and entropy against eta"),
    ("curves", "learning curves of Figure 1's runs with seed bands"),
    ("refresh", "pi_old fixed vs refreshed every step"),
    ("surrogate", "Theorem B.1: practical vs theoretical LAD gap against the trust-region size"),
    ("landscapes", "the built-in reward landscapes and their P_A"),
    ("regime", "regime map: correct answers kept by GRPO and LAD against updates per rollout"),
    ("explorer", "the interactive explorer page (explorer.html) of the default grid"),
)
_F_OUT = typer.Option(
    "results/figures", "--out", "-o", help="directory for the .png and .pdf files"
)
_F_DATA = typer.Option(
    None, "--data", help="where experiment results are written / read (default OUT/data)"
)
_F_REPLOT = typer.Option(
    False, "--replot", help="do not train: redraw from the results already in --data"
)
_F_WORKERS = typer.Option(
    2, "--workers", "-j", help="processes that run experiments in parallel (one thread each)"
)


def _make_figures(names: list[str], out: str, data: str | None, replot: bool, workers: int) -> None:
    """Run the experiments the figures read (unless replot), then draw them; rich progress bars."""
    import time
    from pathlib import Path

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    from figures.registry import draw_many, needed_experiments

    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    start = time.perf_counter()
    data_root = Path(data) if data else Path(out) / "data"
    experiments = needed_experiments(names)
    command = " ".join(["lad", *sys.argv[1:]])
    columns = (
        TextColumn("{task.description:<22}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True)) as bar:
        if experiments and not replot:
            import torch

            from bandit.experiments import EXPERIMENTS, run_experiments

            torch.set_num_threads(
                1
            )  # small tensors: more threads only contend (workers are processes)

            tasks = {e: bar.add_task(f"train {e}", total=1) for e in experiments}
            for e in experiments:
                EXPERIMENTS.get(e)
            run_experiments(
                experiments,
                data_root,
                workers,
                lambda e, done, total: bar.update(tasks[e], completed=done, total=total),
            )
        drawing = bar.add_task("draw figures", total=len(names))
        written = draw_many(names, data_root, out, command, workers, lambda _: bar.advance(drawing))
    typer.echo(
        f"{len(written)} files in {out} ({time.perf_counter() - start:.0f} s; results in {data_root})"
    )


def _figure_command(name: str, help_text: str) -> None:
    @figures_app.command(name, help=help_text)
    @user_errors
    def command(
        out: str = _F_OUT,
        data: str | None = _F_DATA,
        replot: bool = _F_REPLOT,
        workers: int = _F_WORKERS,
    ) -> None:
        _make_figures([name], out, data, replot, workers)


for _name, _help in _FIGURES:
    _figure_command(_name, _help)


@figures_app.command("all")
@user_errors
def figures_all(
    out: str = _F_OUT,
    data: str | None = _F_DATA,
    replot: bool = _F_REPLOT,
    workers: int = _F_WORKERS,
) -> None:
    """Regenerate every figure from scratch: run the experiments (training included), then draw."""
    _make_figures([n for n, _ in _FIGURES], out, data, replot, workers)
    _llm_figures_if_saved(out)  # LLM figures from saved `lad llm demo` logs (defined below)


@figures_app.command("list")
def figures_list() -> None:
    """List the figures and the experiments each one reads."""
    from figures.registry import FIGURES

    for name in FIGURES:
        spec = FIGURES.get(name)
        typer.echo(f"{name:<11} {spec.description}  [reads: {', '.join(spec.needs) or 'nothing'}]")


@figures_app.command("summary")
@user_errors
def figures_summary(
    data: str = typer.Option("results/figures/data", "--data", help="where `figures all` saved"),
    out: str = typer.Option(
        "docs/results/bandit/summary.json", "--out", help="the summary JSON the docs read"
    ),
) -> None:
    """Final bandit metrics with bootstrap CIs (fig1, onpolicy, eta) into one small JSON."""
    from figures import bandit_summary

    command = " ".join(["lad", *sys.argv[1:]])
    typer.echo(f"wrote {bandit_summary.write(data, out, command)}")


_LLM_RUNS = typer.Option(
    None,
    "--runs",
    help="run directories, or directories above them (repeatable); default results/llm_demo",
)


def _llm_figure(which: str, runs: list[str] | None, out: str) -> None:
    from pathlib import Path

    from figures import llm, style

    command = " ".join(["lad", *sys.argv[1:]])
    paths = runs or [str(llm.DEMO_ROOT)]
    if which == "llm":
        if len(paths) != 1:
            raise ValueError(f"--runs takes one demo directory for `figures llm`, got {paths}")
        figs = {"llm_demo": llm.figure_demo(paths[0]), "llm_answers": llm.figure_answers(paths[0])}
    else:
        logs = llm.find_runs(paths)
        draw = {"eta-sweep": llm.figure_eta_sweep, "divergences": llm.figure_divergences}
        stem = {"eta-sweep": "llm_eta", "divergences": "llm_divergences", "cost": "llm_cost"}[which]
        figs = {stem: draw.get(which, llm.figure_cost)(logs)}
    for stem, fig in figs.items():
        for path in style.save(fig, Path(out) / stem, command):
            typer.echo(f"wrote {path}")


@figures_app.command("llm")
@user_errors
def figures_llm(runs: list[str] | None = _LLM_RUNS, out: str = _F_OUT) -> None:
    """LLM demo: learning curves, distinct correct answers, answer histograms (from its logs)."""
    _llm_figure("llm", runs, out)


@figures_app.command("eta-sweep")
@user_errors
def figures_eta_sweep(runs: list[str] | None = _LLM_RUNS, out: str = _F_OUT) -> None:
    """Paper Fig. 3 from LLM run logs: avg@n and pass@n against eta (lad llm demo --sweep eta)."""
    _llm_figure("eta-sweep", runs, out)


@figures_app.command("divergences")
@user_errors
def figures_divergences(runs: list[str] | None = _LLM_RUNS, out: str = _F_OUT) -> None:
    """Paper Fig. 4 from LLM run logs: avg@n per divergence, strict / non-strict means dashed."""
    _llm_figure("divergences", runs, out)


@figures_app.command("cost")
@user_errors
def figures_cost(runs: list[str] | None = _LLM_RUNS, out: str = _F_OUT) -> None:
    """Paper Fig. 5 from LLM run logs: time per token across training, LAD vs GRPO."""
    _llm_figure("cost", runs, out)


def _llm_figures_if_saved(out: str) -> None:
    """`figures all`: redraw the LLM figures when saved demo logs exist (LLM runs are not
    retrained here; `lad llm demo` makes them)."""
    from figures import llm

    if not (llm.DEMO_ROOT / "results.json").is_file():
        typer.echo(f"LLM figures skipped: no {llm.DEMO_ROOT}/results.json (run `lad llm demo`)")
        return
    written = llm.draw_all(llm.DEMO_ROOT, out, " ".join(["lad", *sys.argv[1:]]))
    typer.echo(f"{len(written)} LLM figure files in {out} (from {llm.DEMO_ROOT})")


@app.command()
@user_errors
def report(
    check: bool = typer.Option(
        False, "--check", help="write nothing; list stale blocks and exit 1 if there are any"
    ),
) -> None:
    """Rewrite the generated blocks (<!-- report:NAME -->) of README.md and docs/*.md from the
    committed results files."""
    from figures import report as generated

    outcome = generated.update(check=check)
    typer.echo(generated.describe(outcome, check))
    if check and outcome.stale:
        raise typer.Exit(1)


def main() -> None:
    sys.exit(app())


if __name__ == "__main__":
    main()
