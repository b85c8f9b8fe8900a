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
        try:
            return fn(*args, **kwargs)
        except (ValueError, FileNotFoundError, IsADirectoryError, PermissionError) as e:
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
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        typer.echo(f"{k:<{width}}  {v}")


# --- bandit ----------------------------------------------------------------------------------

# --- llm -------------------------------------------------------------------------------------

_OVERRIDES_HELP = "config overrides section.field=value (CLI wins over the YAML), e.g. algorithm.divergence=kl trainer.seed=3"


def _llm_config(config: str | None, overrides: list[str] | None, *extra: str):
    from llm.config import load_config

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
    from llm.config import describe

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


# --- figures ---------------------------------------------------------------------------------


def main() -> None:
    sys.exit(app())


if __name__ == "__main__":
    main()
