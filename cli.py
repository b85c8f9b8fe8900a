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

# --- figures ---------------------------------------------------------------------------------


def main() -> None:
    sys.exit(app())


if __name__ == "__main__":
    main()
