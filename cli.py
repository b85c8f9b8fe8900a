"""`lad`: the labkit command line. This file only parses arguments and calls library functions.

Options that set config fields are generated from the config dataclasses (help, type, default
and flags: labkit/config_cli.py) and figure commands from figures/registry.py, so nothing here
repeats them. Errors a user can cause (bad values, missing files, a run directory another process
holds) print one line to stderr and exit with code 2.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import typer

from bandit.config import BanditConfig
from bandit.experiments import SweepRun, run_sweep, run_with_bars
from bandit.explore import ExploreGrid, ExploreRun, build
from bandit.landscapes import get_landscape
from bandit.regime import RegimeConfig, RegimeRun, run_regime
from bandit.results import CompareRun, compare_table
from figures import bandit_summary, registry
from figures import report as generated
from figures.bandit_policies import LandscapeRun, save_landscape
from figures.bandit_summary import SummaryRun
from figures.llm import draw_saved_demo, saved_demo_message
from figures.registry import FIGURES, LLM_FIGURES, FigureRun
from labkit.config import LossConfig
from labkit.config_cli import config_options
from labkit.config_loading import describe, load
from labkit.errors import RunError
from labkit.io import LockedError
from llm.config import EvalRun, SampleRun, TrainConfig, TrainRun
from llm.demo_config import DemoConfig, DemoRun
from llm.integrations import verl_launch
from llm.integrations.verl_launch import LAD_KEYS, LaunchConfig

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
    """Turn the errors a user can cause into one line and exit code 2, and a run that stopped
    itself (NaN/inf, failing rewards) into one line and exit code 1 (no traceback)."""

    @wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except RunError as e:
            fail(str(e), code=1)
        except (ValueError, OSError, LockedError) as e:  # OSError: missing files, a file for a dir
            fail(str(e))

    return run


def command(group: typer.Typer, name: str | None = None) -> Callable[..., Any]:
    """Register a command of `group` whose user errors print one line (user_errors)."""
    return lambda fn: group.command(name)(user_errors(fn))


def _command_line() -> str:
    return " ".join(["lad", *sys.argv[1:]])


def make_figures(names: list[str], opts: FigureRun, command: str) -> str:
    """Train what the figures read (bandit, unless --replot), then draw them (figures)."""
    start, experiments = time.perf_counter(), registry.needed_experiments(names)
    if experiments and not opts.replot:
        run_with_bars(experiments, opts.data_root, opts.workers)
    written = registry.draw_many(names, opts.data_root, opts.out, command, opts.workers)
    seconds = time.perf_counter() - start
    return f"{len(written)} files in {opts.out} ({seconds:.0f} s; results in {opts.data_root})"


@app.command()
def info() -> None:
    """Print versions, the compute device and which optional backends import."""
    from labkit.install import info

    table, clash = info()
    typer.echo(table)
    if clash:
        fail(clash, code=1)


CONFIGS = {
    "bandit": BanditConfig,
    "regime": RegimeConfig,
    "explore": ExploreGrid,
    "llm": TrainConfig,
    "demo": DemoConfig,
    "figures": FigureRun,
}


@command(app, "config")
def config_reference(
    name: str = typer.Argument(..., help=f"which config: {', '.join(CONFIGS)}"),
    file: str | None = typer.Option(None, "--config", "-c", help="YAML or TOML file to resolve"),
    overrides: list[str] | None = typer.Argument(None, help="KEY=VALUE overrides"),
) -> None:
    """Print a config resolved from defaults < FILE < overrides: every field, value, type, help."""
    if name not in CONFIGS:
        raise ValueError(f"name={name!r} is not valid; expected one of {list(CONFIGS)}")
    typer.echo(describe(CONFIGS[name], load(CONFIGS[name], file, overrides or [])))


# --- bandit ----------------------------------------------------------------------------------


def _train_bandit(config: BanditConfig, run: SweepRun, command: str) -> None:
    from rich.console import Console

    table, path = run_sweep(config, run, command)
    Console(width=200).print(table)
    typer.echo(f"results: {path}/metrics.csv, policies.csv, config.json")


_FILE = "YAML (or TOML) file of config fields (configs/bandit/*.yaml); options override it"


@command(bandit_app, "run")
@config_options(SweepRun, into="run")
@config_options(BanditConfig, defaults=["n_seeds=5"])
def bandit_run(config: BanditConfig, run: SweepRun) -> None:
    """Train one configuration (5 seeds unless --seeds) in one vectorised call; print final metrics."""
    _train_bandit(config, run, "run")


@command(bandit_app, "sweep")
@config_options(SweepRun, into="run")
@config_options(BanditConfig, file=_FILE)
def bandit_sweep(config: BanditConfig, run: SweepRun) -> None:
    """Train a grid (objectives x divergences x eta x lr x seeds) in one vectorised call."""
    _train_bandit(config, run, "sweep")


@command(bandit_app, "regime")
@config_options(RegimeRun, into="run")
@config_options(RegimeConfig, file="YAML file of RegimeConfig fields; options override it")
def bandit_regime(config: RegimeConfig, run: RegimeRun) -> None:
    """The regime map (docs/bandit-regimes.md): GRPO vs LAD against updates per rollout, reward
    structure and G; writes runs.csv, summary.json (95% bootstrap CIs) and config.json."""
    done = lambda name: typer.echo(f"done: {name}")  # noqa: E731
    path = run_regime(run.apply(config), run.out, run.workers, done, ["lad", *sys.argv[1:]])
    typer.echo(f"results: {path}/runs.csv, summary.json, config.json")


@command(bandit_app, "explore")
@config_options(ExploreRun, into="run")
@config_options(ExploreGrid, only=("landscapes", "rewards_file"))
def bandit_explore(config_overrides: list[str], run: ExploreRun) -> None:
    """Train a grid of configurations and write one offline, interactive HTML page of them."""
    from figures import explorer

    start, root = time.perf_counter(), Path(run.out)
    build(run.grid, config_overrides, root, run.workers)
    page = explorer.write_page(root, root / "explorer.html")
    typer.echo(f"wrote {page} ({explorer.size_mb(page)} MB, {time.perf_counter() - start:.0f} s)")
    if run.open:
        typer.echo(explorer.open_in_browser(page))


@command(bandit_app, "landscape")
@config_options(LandscapeRun, into="run")
@config_options(BanditConfig, only=("rewards_file", "n_arms"))
def bandit_landscape(
    config: BanditConfig,
    run: LandscapeRun,
    name: str = typer.Argument("trimodal", help="built-in landscape (see lad bandit run --help)"),
) -> None:
    """Draw a landscape (rewards and P_A, coloured by mode) before training anything."""
    land = get_landscape(name, config.n_arms, config.rewards_file)
    typer.echo(land.summary(run.eta))
    paths = save_landscape(land, run, command=_command_line())
    typer.echo("wrote " + ", ".join(str(p) for p in paths))


@command(bandit_app, "compare")
@config_options(CompareRun, into="run")
def bandit_compare(
    run: CompareRun,
    dirs: list[str] = typer.Argument(
        ..., help="results directories written by run, sweep or lad figures"
    ),
) -> None:
    """A table of final metrics (mean over seeds) across result directories."""
    from rich.console import Console

    Console(width=200).print(compare_table(dirs, run))
    if run.csv_out:
        typer.echo(f"wrote {run.csv_out}")


# --- llm -------------------------------------------------------------------------------------
_LLM = {
    "file": "YAML config (configs/llm/*.yaml)",
    "args": "config overrides section.field=value (CLI wins over the YAML), e.g. trainer.seed=3",
}


def _draw_evals(run_dir: Any) -> None:
    from figures.llm_eval import draw_evals

    for path in draw_evals(run_dir, _command_line()):
        typer.echo(f"wrote {path}")


@command(llm_app, "train")
@config_options(TrainRun, into="run")
@config_options(TrainConfig, **_LLM)
def llm_train(config: TrainConfig, run: TrainRun) -> None:
    """Train a language model with LAD (or any labkit objective) on verifiable rewards."""
    from llm.trainer import Trainer, done_line

    config = run.apply(config)
    with Trainer(config) as trainer:
        last = trainer.train()
    typer.echo(done_line(config, last))
    _draw_evals(config.trainer.output_dir)


@command(llm_app, "eval")
@config_options(EvalRun, into="run")
@config_options(TrainConfig, **_LLM)
def llm_eval(config: TrainConfig, run: EvalRun) -> None:
    """Sample eval.n completions per held-out prompt: avg@n, pass@k, maj@n, distinct-n (JSON + plot)."""
    from llm.evaluate import run_eval

    path, result = run_eval(config, checkpoint=run.checkpoint, out_dir=run.out, label=run.label)
    for k, v in result["metrics"].items():
        typer.echo(f"{k:<26} {v:.4f}")
    typer.echo(f"wrote {path}")
    _draw_evals(path.parent)


@command(llm_app, "sample")
@config_options(SampleRun, into="run")
@config_options(TrainConfig, **_LLM)
def llm_sample(
    config: TrainConfig,
    run: SampleRun,
    prompt: list[str] | None = typer.Option(
        None, "--prompt", "-p", help="a user message (repeatable); default: eval records"
    ),
) -> None:
    """Print a few sampled completions (with their rewards when the prompts come from the data)."""
    from llm.evaluate import format_samples, sample_completions

    rows = sample_completions(config, run.checkpoint, prompt, run.n, run.num_prompts)
    typer.echo(format_samples(rows))


@command(llm_app, "config")
@config_options(TrainConfig, **_LLM)
def llm_config(
    config: TrainConfig,
    yaml: bool = typer.Option(False, "--yaml", help="plain YAML, without types and help text"),
) -> None:
    """Print the resolved config: every field, its value, type and help text (or --yaml)."""
    typer.echo(config.to_yaml().rstrip() if yaml else describe(TrainConfig, config))


@command(llm_app, "verl")
@config_options(LaunchConfig, into="launch")
@config_options(LossConfig, only=LAD_KEYS, into="lad")
def llm_verl(
    launch: LaunchConfig,
    lad: LossConfig,
    lad_given: list[str],
    extra: list[str] | None = typer.Argument(
        None, help="extra verl Hydra overrides key.path=value, applied last", show_default=False
    ),
    run: bool = typer.Option(False, "--run", help="run the command instead of printing it"),
) -> None:
    """Print (or --run) the verl command of a LAD run: labkit's loss as verl's policy loss `lad`."""
    given = {k: getattr(lad, k) for k in lad_given}
    argv = verl_launch.main_ppo_command(
        launch.preset, given, extra, launch.python, **launch.shorthands()
    )
    if run:
        raise typer.Exit(verl_launch.run_command(argv, launch.python))
    typer.echo(verl_launch.render_script(argv, launch.preset), nl=False)


_DEMO_OPTIONS = ("seeds", "warmup_correct_frac", "model_seed", "eval_n", "eval_every", "workers")


@command(llm_app, "demo")
@config_options(DemoRun, into="run")
@config_options(DemoConfig, _DEMO_OPTIONS, file="demo YAML (configs/llm/demo/demo.yaml)")
def llm_demo(
    config: DemoConfig,
    config_given: list[str],
    run: DemoRun,
    train: list[str] | None = typer.Option(
        None, help="extra trainer override for every method (repeatable), e.g. trainer.seed=1"
    ),
) -> None:
    """LAD vs GRPO on a tiny language model, a task with many correct answers, CPU: paired
    differences over seeds with bootstrap CIs, on held-out prompts."""
    from figures.llm_demo import report_demo
    from llm.demo import run_demo

    config = run.resolve(config, config_given, train or [])
    start, command = time.perf_counter(), _command_line()
    if not run.summarize:
        run_demo(config, run.out, log=typer.echo, sweep=run.sweep, command=command)
    typer.echo(report_demo(run.out, run.sweep, command, figures=run.figures and not run.summarize))
    typer.echo(f"done in {time.perf_counter() - start:.0f} s")


# --- figures: one command per entry of figures/registry.py ----------------------------------
_BANDIT_FIGURE_OPTIONS = ("out", "data", "replot", "workers")


def _figure_command(name: str, description: str, llm_figure: bool) -> None:
    @config_options(FigureRun, ("out", "runs") if llm_figure else _BANDIT_FIGURE_OPTIONS, "opts")
    def draw(opts: FigureRun) -> None:
        if not llm_figure:
            return typer.echo(make_figures([name], opts, _command_line()))
        for path in registry.draw_llm(name, opts.runs, opts.out, _command_line()):
            typer.echo(f"wrote {path}")

    figures_app.command(name, help=description)(user_errors(draw))


for _registry, _llm in ((FIGURES, False), (LLM_FIGURES, True)):
    for _name in _registry:
        _figure_command(_name, _registry.get(_name).description, _llm)


@command(figures_app, "all")
@config_options(FigureRun, only=_BANDIT_FIGURE_OPTIONS, into="opts")
def figures_all(opts: FigureRun) -> None:
    """Regenerate every figure: run the experiments (training included), draw them, and redraw
    the LLM figures when saved `lad llm demo` logs exist (LLM runs are not retrained here)."""
    typer.echo(make_figures(FIGURES.names(), opts, _command_line()))
    typer.echo(saved_demo_message(draw_saved_demo(opts.out, _command_line()), opts.out))


@figures_app.command("list")
def figures_list() -> None:
    """List the figures and what each one reads."""
    typer.echo(registry.listing())


@command(figures_app, "summary")
@config_options(SummaryRun, into="run")
def figures_summary(run: SummaryRun) -> None:
    """Final bandit metrics with bootstrap CIs (fig1, onpolicy, eta) into one small JSON."""
    typer.echo(f"wrote {bandit_summary.write(run.data, run.out, _command_line())}")


@command(app)
def report(
    check: bool = typer.Option(False, help="write nothing; list stale blocks, exit 1 if any"),
) -> None:
    """Rewrite the generated blocks (<!-- report:NAME -->) of README.md and docs/*.md from the
    committed results files and the config dataclasses."""
    outcome = generated.update(check=check)
    typer.echo(generated.describe(outcome, check))
    if check and outcome.stale:
        raise typer.Exit(1)


def main() -> None:
    sys.exit(app())


if __name__ == "__main__":
    main()
