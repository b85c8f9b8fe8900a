"""`lad`: the labkit command line. This file only parses arguments and calls library functions.

Options that set config fields are generated from the config dataclasses (help text included),
and figure commands from figures/registry.py, so nothing here repeats them. Errors a user can
cause (bad values, missing files) print one line to stderr and exit with code 2.
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
import typing
from collections.abc import Callable, Sequence
from functools import wraps
from typing import Any

import typer

from bandit.config import BanditConfig
from labkit.config import LossConfig
from labkit.config_loading import cli_fields, describe, load, type_name
from llm.demo_config import DemoConfig
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
    """Turn the errors a user can cause into one line and exit code 2 (no traceback)."""

    @wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (ValueError, OSError) as e:  # bad values, missing files, a file where a dir goes
            fail(str(e))

    return run


def config_options(
    cls: type, only: Sequence[str] = (), into: str = "overrides"
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add one option per field of `cls` (or of `only`), help and flags from the field; the
    command's parameter `into` gets `field=value` for each option given, parsed and checked by
    labkit.config_loading like any override. Sections and mappings are YAML-only."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        sig = inspect.signature(fn)
        params = [p for p in sig.parameters.values() if p.name != into]
        for name, tp, default, text, flags in cli_fields(cls):
            if (only and name not in only) or dataclasses.is_dataclass(tp) or _is_dict(tp):
                continue
            if tp is bool:
                flags = (f"{flags[0]}/--no-{flags[0][2:]}",)
            text += f" [{type_name(tp)}{'' if default is None else f'; default {default}'}]"
            option = typer.Option(None, *flags, help=text, show_default=False)
            params.append(
                inspect.Parameter(f"{into}__{name}", inspect.Parameter.KEYWORD_ONLY, default=option)
            )
            params[-1] = params[-1].replace(annotation=bool | None if tp is bool else str | None)

        @wraps(fn)
        def command(**kwargs: Any) -> Any:
            mine = {
                k[len(into) + 2 :]: kwargs.pop(k) for k in list(kwargs) if k.startswith(f"{into}__")
            }
            kwargs[into] = [f"{k}={_text(v)}" for k, v in mine.items() if v is not None]
            return fn(**kwargs)

        command.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
        return command

    return wrap


def _is_dict(tp: Any) -> bool:
    return typing.get_origin(tp) is dict


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _command_line() -> str:
    return " ".join(["lad", *sys.argv[1:]])


def _progress(*columns: Any) -> Any:
    """A rich progress bar on stderr (description, bar, the given columns, elapsed time)."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description:<22}"),
        BarColumn(),
        *columns,
        TimeElapsedColumn(),
        console=Console(stderr=True),
    )


@app.command()
def info() -> None:
    """Print versions, the compute device and which optional backends import."""
    from labkit.io import environment

    for k, v in environment().items():
        typer.echo(f"{k:<13}  {v}")


# --- bandit ----------------------------------------------------------------------------------

_OUT = typer.Option(
    None, "--out", "-o", help="results directory (default results/bandit/<command>-<time>)"
)
_THREADS = typer.Option(
    1, "--threads", help="torch intra-op threads; 1 is fastest for small sweeps"
)
_CONFIG = typer.Option(None, "--config", "-c", help="YAML (or TOML) config file")


def _train_bandit(config: BanditConfig, out: str | None, command: str, threads: int) -> None:
    """Train with a progress bar, save the result files, print the summary table."""
    import torch
    from rich.console import Console
    from rich.progress import TextColumn, TimeRemainingColumn

    from bandit import results
    from bandit.experiments import run_sweep
    from bandit.trainer import prepare

    if threads < 1:
        raise ValueError(f"threads={threads} is not valid; expected an integer >= 1")
    torch.set_num_threads(threads)
    prepare(config)  # every check before the progress bar: bad input prints one line
    with _progress(TextColumn("{task.completed}/{task.total} steps"), TimeRemainingColumn()) as bar:
        task = bar.add_task("training", total=config.steps)
        result, path = run_sweep(config, out, command, lambda d, _: bar.update(task, completed=d))
    speed = len(result.runs) * config.steps / result.seconds
    title = f"after {config.steps} steps ({result.seconds:.1f} s, {speed:,.0f} run-steps/s)"
    rows = results.summarise(results.final_rows(result))
    Console(width=200).print(results.summary_table(rows, title, results.refreshed(config)))
    typer.echo(f"results: {path}/metrics.csv, policies.csv, config.json")


@bandit_app.command("run")
@user_errors
@config_options(BanditConfig)
def bandit_run(out: str | None = _OUT, threads: int = _THREADS, overrides: list[str] = ()) -> None:
    """Train one configuration (5 seeds unless --seeds) in one vectorised call; print final metrics."""
    _train_bandit(load(BanditConfig, None, ["n_seeds=5", *overrides]), out, "run", threads)


@bandit_app.command("sweep")
@user_errors
@config_options(BanditConfig)
def bandit_sweep(
    config: str | None = _CONFIG,
    out: str | None = _OUT,
    threads: int = _THREADS,
    overrides: list[str] = (),
) -> None:
    """Train a grid (objectives x divergences x eta x lr x seeds) in one vectorised call; the
    options override the --config file (configs/bandit/*.yaml)."""
    _train_bandit(load(BanditConfig, config, overrides), out, "sweep", threads)


@bandit_app.command("config")
@user_errors
@config_options(BanditConfig)
def bandit_config(config: str | None = _CONFIG, overrides: list[str] = ()) -> None:
    """Print the resolved sweep config: every field, its value, type and help text."""
    typer.echo(describe(BanditConfig, load(BanditConfig, config, overrides)))


@bandit_app.command("landscape")
@user_errors
def bandit_landscape(
    name: str = typer.Argument("trimodal", help="built-in landscape (see `lad bandit run --help`)"),
    rewards: str | None = typer.Option(
        None, "--rewards", help="reward vector file (.json, .csv, .npy)"
    ),
    arms: int = typer.Option(50, "--arms", "-K", help="number of arms K of a built-in landscape"),
    eta: float = typer.Option(1.0, help="temperature of the P_A drawn (> 0)"),
    out: str | None = typer.Option(
        None,
        "--out",
        "-o",
        help="file stem of .png and .pdf (default results/bandit/landscape-<name>)",
    ),
) -> None:
    """Draw a landscape (rewards and P_A, coloured by mode) before training anything."""
    from bandit.landscapes import get_landscape
    from figures import style
    from figures.bandit_policies import draw_landscape

    if not eta > 0:
        raise ValueError(f"eta={eta} is not valid; expected a number > 0")
    land = get_landscape(name, arms, rewards)
    typer.echo(land.summary(eta))
    ax = draw_landscape(land.array(), land.target(eta), land.owner(), land.name)
    stem = out or f"results/bandit/landscape-{land.name.replace(':', '-')}"
    paths = style.save(ax.figure, stem, command=_command_line())
    typer.echo("wrote " + ", ".join(str(p) for p in paths))


@bandit_app.command("compare")
@user_errors
def bandit_compare(
    dirs: list[str] = typer.Argument(
        ..., help="results directories written by run, sweep or lad figures"
    ),
    sort: str | None = typer.Option(None, "--sort", help="sort rows by a summary metric, e.g. tv"),
    csv_out: str | None = typer.Option(None, "--csv", help="also write the table to this CSV file"),
) -> None:
    """A table of final metrics (mean over seeds) across result directories."""
    from rich.console import Console

    from bandit import results
    from labkit.io import atomic_write

    rows, source, refreshed = results.compare(dirs, sort)
    title = f"of {len(dirs)} result director{'y' if len(dirs) == 1 else 'ies'}"
    Console(width=200).print(results.summary_table(rows, title, refreshed, source))
    if csv_out:
        atomic_write(csv_out, results.summary_csv(rows, source))
        typer.echo(f"wrote {csv_out}")


# --- llm -------------------------------------------------------------------------------------
_OVERRIDES = typer.Argument(
    None,
    help="config overrides section.field=value (CLI wins over the YAML), e.g. algorithm.divergence=kl trainer.seed=3",
    show_default=False,
)
_LLM_CONFIG = typer.Option(None, "--config", "-c", help="YAML config (configs/llm/*.yaml)")
_CHECKPOINT = typer.Option(None, help="a checkpoint directory or auto; default: the base model")


def _llm_config(config: str | None, overrides: list[str] | None, *extra: str) -> Any:
    from llm.config import load_config

    return load_config(config, [*(overrides or []), *extra])


def _draw_evals(run_dir: Any) -> None:
    from figures.llm_eval import draw_evals

    for path in draw_evals(run_dir, _command_line()):
        typer.echo(f"wrote {path}")


@llm_app.command("train")
@user_errors
def llm_train(
    overrides: list[str] | None = _OVERRIDES,
    config: str | None = _LLM_CONFIG,
    resume: str | None = typer.Option(
        None, help="auto (latest checkpoint in output_dir) or a checkpoint directory"
    ),
) -> None:
    """Train a language model with LAD (or any labkit objective) on verifiable rewards."""
    from llm.trainer import NonFiniteError, Trainer

    cfg = _llm_config(config, overrides, *([f"trainer.resume={resume}"] if resume else []))
    try:
        last = Trainer(cfg).train()
    except NonFiniteError as e:
        fail(str(e), code=1)
    keys = ("reward", "entropy", "completions/mean_length", "tokens/s")
    summary = "  ".join(f"{k} {last[k]:.4g}" for k in keys if k in last)
    typer.echo(f"done: {cfg.trainer.max_steps} steps in {cfg.trainer.output_dir}  {summary}")
    _draw_evals(cfg.trainer.output_dir)


@llm_app.command("eval")
@user_errors
def llm_eval(
    overrides: list[str] | None = _OVERRIDES,
    config: str | None = _LLM_CONFIG,
    checkpoint: str | None = _CHECKPOINT,
    out: str | None = typer.Option(None, help="output directory (default trainer.output_dir)"),
    label: str | None = typer.Option(None, help="name of this evaluation: eval_<label>.json"),
) -> None:
    """Sample eval.n completions per held-out prompt: avg@n, pass@k, maj@n, distinct-n (JSON + plot)."""
    from llm.evaluate import run_eval

    cfg = _llm_config(config, overrides)
    path, result = run_eval(cfg, checkpoint=checkpoint, out_dir=out, label=label)
    for k, v in result["metrics"].items():
        typer.echo(f"{k:<26} {v:.4f}")
    typer.echo(f"wrote {path}")
    _draw_evals(path.parent)


@llm_app.command("sample")
@user_errors
def llm_sample(
    overrides: list[str] | None = _OVERRIDES,
    config: str | None = _LLM_CONFIG,
    checkpoint: str | None = _CHECKPOINT,
    prompt: list[str] | None = typer.Option(
        None, "--prompt", "-p", help="a user message (repeatable); default: eval records"
    ),
    n: int = typer.Option(2, "-n", help="completions per prompt"),
    num_prompts: int = typer.Option(3, help="eval records to sample for (without --prompt)"),
) -> None:
    """Print a few sampled completions (with their rewards when the prompts come from the data)."""
    from llm.evaluate import sample_completions

    cfg = _llm_config(config, overrides)
    for row in sample_completions(cfg, checkpoint, prompt, n=n, num_prompts=num_prompts):
        typer.echo(f"=== prompt\n{row['prompt']}")
        if row["answer"] is not None:
            typer.echo(f"--- gold answer: {row['answer']}")
        for i, (text, r) in enumerate(zip(row["completions"], row["rewards"], strict=True)):
            reward = "" if r is None else f" (reward {r:.3g})"
            typer.echo(f"--- completion {i}{reward}\n{text}")


@llm_app.command("config")
@user_errors
def llm_config(
    overrides: list[str] | None = _OVERRIDES,
    config: str | None = _LLM_CONFIG,
    full: bool = typer.Option(
        False, "--describe", help="every field with its type and help text as YAML comments"
    ),
) -> None:
    """Print the resolved config as YAML (no arguments: the reference of every field)."""
    from llm.config import TrainConfig

    cfg = _llm_config(config, overrides)
    if full or (config is None and not overrides):
        typer.echo(describe(TrainConfig, cfg))
    else:
        typer.echo(cfg.to_yaml(), nl=False)


@llm_app.command("verl")
@user_errors
@config_options(LaunchConfig, into="launch")
@config_options(LossConfig, only=LAD_KEYS, into="lad")
def llm_verl(
    extra: list[str] | None = typer.Argument(
        None, help="extra verl Hydra overrides key.path=value, applied last", show_default=False
    ),
    run: bool = typer.Option(False, "--run", help="run the command instead of printing it"),
    launch: list[str] = (),
    lad: list[str] = (),
) -> None:
    """Print (or --run) the verl command of a LAD run: labkit's loss as verl's policy loss `lad`."""
    import subprocess

    from llm.integrations.verl_launch import main_ppo_command, render_script

    opts, loss = load(LaunchConfig, None, launch), load(LossConfig, None, lad)
    given = {k: getattr(loss, k) for k in (o.partition("=")[0] for o in lad)}
    argv = main_ppo_command(opts.preset, given, extra, opts.python, **opts.shorthands())
    if not run:
        typer.echo(render_script(argv, opts.preset), nl=False)
        return
    probe = subprocess.run([opts.python, "-c", "import llm.integrations.verl"], capture_output=True)
    if probe.returncode != 0:
        fail(f"{opts.python} cannot import verl and labkit's plug-in (scripts/setup_verl_env.sh)")
    raise typer.Exit(subprocess.run(argv, check=False).returncode)


@llm_app.command("demo")
@user_errors
@config_options(
    DemoConfig,
    only=("seeds", "warmup_correct_frac", "model_seed", "eval_n", "eval_every", "workers"),
)
def llm_demo(
    quick: bool = typer.Option(
        False, "--quick", help="CI size: one seed, 4 steps, 8 samples per prompt"
    ),
    out: str = typer.Option("results/llm_demo", "--out", "-o", help="output directory"),
    sweep: str = typer.Option(
        "main", help="main (GRPO, LAD-JS, LAD-KL), eta (LAD-JS over kappa) or divergence"
    ),
    config: str | None = typer.Option(
        None, "--config", "-c", help="demo YAML (configs/llm/demo/demo.yaml)"
    ),
    methods: str | None = typer.Option(
        None, "--methods", help="run only these methods, e.g. grpo,lad_js"
    ),
    train: list[str] | None = typer.Option(
        None,
        "--train",
        help="extra trainer override for every method (repeatable), e.g. algorithm.num_iterations=4",
    ),
    figures: bool = typer.Option(True, "--figures/--no-figures", help="draw OUT/figures"),
    overrides: list[str] = (),
) -> None:
    """LAD vs GRPO on a tiny language model, a task with many correct answers, CPU, minutes."""
    import time

    from llm.demo import run_demo, summary_text
    from llm.demo_config import results_file

    cfg = load(DemoConfig, config)
    if quick:
        cfg = cfg.quick()
    cfg = load(DemoConfig, None, overrides, base=cfg)
    if train:
        cfg = dataclasses.replace(cfg, train=[*cfg.train, *train])
    if methods is not None:
        cfg = cfg.select(methods.replace(",", " ").split())
    start = time.perf_counter()
    results = run_demo(cfg, out, log=typer.echo, sweep=sweep)
    typer.echo(summary_text(results))
    if figures:
        from figures.llm import draw_all

        written = draw_all(out, f"{out}/figures", _command_line())
        typer.echo(f"figures: {', '.join(str(p) for p in written if p.suffix == '.png')}")
    t = results["timing"]
    typer.echo(
        f"done in {time.perf_counter() - start:.0f} s (cpu {t['cpu_s']:.0f} s); "
        f"{out}/{results_file(sweep)}"
    )


# --- figures: one command per entry of figures/registry.py ----------------------------------
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
_F_RUNS = typer.Option(
    None,
    "--runs",
    help="run directories, or directories above them (repeatable); default results/llm_demo",
)


def _make_figures(names: list[str], out: str, data: str | None, replot: bool, workers: int) -> None:
    """Run the experiments the figures read (unless replot), then draw them."""
    import time
    from pathlib import Path

    from rich.progress import TaskProgressColumn

    from figures.registry import draw_many, needed_experiments

    if workers < 1:
        raise ValueError(f"workers={workers} is not valid; expected an integer >= 1")
    start = time.perf_counter()
    data_root = Path(data) if data else Path(out) / "data"
    experiments = needed_experiments(names)
    with _progress(TaskProgressColumn()) as bar:
        if experiments and not replot:
            import torch

            from bandit.experiments import run_experiments

            torch.set_num_threads(1)  # small tensors: more threads only contend
            tasks = {e: bar.add_task(f"train {e}", total=1) for e in experiments}
            run_experiments(
                experiments,
                data_root,
                workers,
                lambda e, d, t: bar.update(tasks[e], completed=d, total=t),
            )
        drawing = bar.add_task("draw figures", total=len(names))
        written = draw_many(
            names, data_root, out, _command_line(), workers, lambda _: bar.advance(drawing)
        )
    seconds = time.perf_counter() - start
    typer.echo(f"{len(written)} files in {out} ({seconds:.0f} s; results in {data_root})")


def _figure_command(name: str, description: str) -> None:
    def command(
        out: str = _F_OUT,
        data: str | None = _F_DATA,
        replot: bool = _F_REPLOT,
        workers: int = _F_WORKERS,
    ) -> None:
        _make_figures([name], out, data, replot, workers)

    figures_app.command(name, help=description)(user_errors(command))


def _llm_figure_command(name: str, description: str) -> None:
    def command(runs: list[str] | None = _F_RUNS, out: str = _F_OUT) -> None:
        from figures.registry import draw_llm

        for path in draw_llm(name, runs, out, _command_line()):
            typer.echo(f"wrote {path}")

    figures_app.command(name, help=description)(user_errors(command))


def _register_figures() -> None:
    from figures.registry import FIGURES, LLM_FIGURES

    for name in FIGURES:
        _figure_command(name, FIGURES.get(name).description)
    for name in LLM_FIGURES:
        _llm_figure_command(name, LLM_FIGURES.get(name).description)


_register_figures()


@figures_app.command("all")
@user_errors
def figures_all(
    out: str = _F_OUT,
    data: str | None = _F_DATA,
    replot: bool = _F_REPLOT,
    workers: int = _F_WORKERS,
) -> None:
    """Regenerate every figure: run the experiments (training included), draw them, and redraw
    the LLM figures when saved `lad llm demo` logs exist (LLM runs are not retrained here)."""
    from figures import llm
    from figures.registry import FIGURES

    _make_figures(FIGURES.names(), out, data, replot, workers)
    if not (llm.DEMO_ROOT / "results.json").is_file():
        typer.echo(f"LLM figures skipped: no {llm.DEMO_ROOT}/results.json (run `lad llm demo`)")
        return
    written = llm.draw_all(llm.DEMO_ROOT, out, _command_line())
    typer.echo(f"{len(written)} LLM figure files in {out} (from {llm.DEMO_ROOT})")


@figures_app.command("list")
def figures_list() -> None:
    """List the figures and what each one reads."""
    from figures.registry import FIGURES, LLM_FIGURES

    for name in FIGURES:
        spec = FIGURES.get(name)
        typer.echo(f"{name:<11} {spec.description}  [reads: {', '.join(spec.needs) or 'nothing'}]")
    for name in LLM_FIGURES:
        typer.echo(f"{name:<11} {LLM_FIGURES.get(name).description}  [reads: LLM run logs]")


def main() -> None:
    sys.exit(app())


if __name__ == "__main__":
    main()
