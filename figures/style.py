"""The house style of every labkit figure: one place for sizes, colours, names and saving.

Figures are built on `matplotlib.figure.Figure` with the Agg canvas, never through pyplot, so no
figure lives in global state and no display is needed. Every draw function in this package takes
`ax=None`, draws into the axes it is given (or a fresh single-panel figure) and returns the axes;
a paper figure composes them and `save` writes PNG and PDF.

Names and colours are keyed on the strings the results files use (objective, divergence), so a
method has one colour and one label in every figure, bandit or LLM.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import ParamSpec, TypeVar

import matplotlib as mpl
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from labkit.io import atomic_write

RC = {
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.25,
    "grid.linewidth": 0.6,
    "lines.linewidth": 1.6,
    "legend.frameon": False,
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "pdf.fonttype": 42,  # embed TrueType: text stays editable in the PDF
}

# one colour per divergence (colour-blind-safe, Okabe-Ito) and per baseline
COLORS = {
    "kl": "#0072B2",
    "rkl": "#56B4E9",
    "jeffreys": "#009E73",
    "hellinger": "#009E73",
    "js": "#D55E00",
    "tv": "#CC79A7",
    "pearson": "#E69F00",
    "neyman": "#F0E442",
    "reinforce": "#222222",
    "grpo": "#888888",
    "kl_cov": "#999933",
    "target": "#BBBBBB",
}
DIVERGENCE_NAMES = {
    "kl": "KL",
    "rkl": "reverse KL",
    "jeffreys": "Jeffreys",
    "tv": "TV",
    "hellinger": "Hellinger",
    "js": "JS",
    "pearson": "Pearson",
    "neyman": "Neyman",
}
TARGET_LABEL = "$P_A$ (target)"
P = ParamSpec("P")
R = TypeVar("R")


@contextmanager
def styled() -> Iterator[None]:
    """Apply the house rcParams for the duration of a drawing (restored afterwards)."""
    with mpl.rc_context(RC):
        yield


def house_style(fn: Callable[P, R]) -> Callable[P, R]:
    """Decorator: run a draw function under the house rcParams."""

    @wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        with styled():
            return fn(*args, **kwargs)

    return run


@contextmanager
def _quiet(logger: str) -> Iterator[None]:
    """Silence a chatty library logger (fontTools warns about font timestamps on PDF export)."""
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def new_figure(
    nrows: int = 1, ncols: int = 1, panel: tuple[float, float] = (3.2, 2.5), **kwargs
) -> tuple[Figure, list[Axes]]:
    """A Figure of nrows x ncols panels of `panel` inches each; axes returned row-major, flat."""
    with styled():
        fig = Figure(figsize=(panel[0] * ncols, panel[1] * nrows), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(nrows, ncols, squeeze=False, **kwargs)
    return fig, [ax for row in axes for ax in row]


def axes_or_new(ax: Axes | None, panel: tuple[float, float] = (3.2, 2.5)) -> Axes:
    """The given axes, or the single panel of a fresh figure."""
    return ax if ax is not None else new_figure(1, 1, panel)[1][0]


def color(objective: str, divergence: str = "") -> str:
    """Colour of a method: by divergence for LAD variants, by name for baselines."""
    if objective in ("lad", "lad_theory") and divergence:
        return COLORS.get(divergence, "#333333")
    return COLORS.get(objective, "#333333")


def label(
    objective: str, divergence: str = "", refresh_every: int = 0, epsilon: float = 0.2
) -> str:
    """Legend name of a method; GRPO names its variant (clipped or not, pi_old fixed or not)."""
    pi_old = (
        "fixed $\\pi_{old}$"
        if refresh_every == 0
        else ("on-policy" if refresh_every == 1 else f"$\\pi_{{old}}$ every {refresh_every}")
    )
    if objective == "reinforce":
        return f"GRPO (unclipped, {pi_old})"
    if objective == "grpo":
        return f"GRPO (clip $\\epsilon$={epsilon:g}, {pi_old})"
    name = DIVERGENCE_NAMES.get(divergence, divergence)
    if objective == "lad":
        return f"LAD practical, {name}"
    if objective == "lad_theory":
        return f"LAD theoretical, {name}"
    return objective


def linestyle(objective: str) -> str:
    return "--" if objective == "lad_theory" else "-"


def panel_letter(ax: Axes, letter: str) -> None:
    ax.text(
        -0.02,
        1.02,
        f"({letter})",
        transform=ax.transAxes,
        ha="right",
        va="bottom",
        fontweight="bold",
    )


def save(
    fig: Figure,
    stem: str | Path,
    command: str | None = None,
    formats: Sequence[str] = ("png", "pdf"),
) -> list[Path]:
    """Write stem.png and stem.pdf atomically; the command that made the figure goes into the
    file metadata (PNG Description, PDF Subject)."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        path = stem.with_suffix(f".{fmt}")
        meta = {"Software" if fmt == "png" else "Creator": "labkit"}
        if command:
            meta["Description" if fmt == "png" else "Subject"] = command
        buf = io.BytesIO()
        with styled(), _quiet("fontTools"):
            fig.savefig(buf, format=fmt, metadata=meta)
        written.append(atomic_write(path, buf.getvalue()))
        # the first save laid the figure out; freeze it so the next format does not redo it
        fig.set_layout_engine("none")
    return written
