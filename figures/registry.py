"""Every figure `lad figures` can draw: name -> what it reads and how it is drawn.

A figure reads the results of one or more experiments, each a directory data_root/<experiment>
written by the code that trained it (bandit/experiments.py for the bandit). Adding a figure (for
example an LLM one) is a new module with a `figure_<name>(data_root) -> Figure` function plus one
`FIGURES.add` line below; `lad figures <name>` and `lad figures all` then pick it up.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure

from figures import bandit_dynamics, bandit_policies, bandit_sweeps, regime, style, theory
from labkit.registry import Registry


@dataclass(frozen=True)
class FigureSpec:
    """name (also the file stem), a one-line description, the experiments whose results it
    reads, and draw(data_root) -> Figure."""

    name: str
    description: str
    needs: tuple[str, ...]
    draw: Callable[[Path], Figure] | None
    # a figure that is not a matplotlib Figure (the explorer page): write(data_root, out_dir)
    write: Callable[[Path, Path], list[Path]] | None = None


FIGURES: Registry[FigureSpec] = Registry("figure", "figure")


def _add(
    name: str,
    description: str,
    needs: tuple[str, ...],
    draw: Callable[[Path], Figure] | None,
    write: Callable[[Path, Path], list[Path]] | None = None,
) -> None:
    FIGURES.add(name, FigureSpec(name, description, needs, draw, write))


def _explorer_page(data_root: Path, out_dir: Path) -> list[Path]:
    from figures import explorer  # plotly is imported only when the page is written

    return [explorer.write_page(data_root / "explorer", out_dir / "explorer.html")]


_add(
    "fig1",
    "Figure 1: final policies of GRPO, theoretical and practical LAD against P_A (50 arms)",
    ("fig1", "onpolicy"),
    bandit_policies.figure_fig1,
)
_add(
    "fig2",
    "Figure 2: trajectories on the practical LAD loss, 3 arms (hellinger, js rows)",
    ("dynamics",),
    bandit_dynamics.figure_fig2,
)
_add(
    "weights",
    "how each f limits growth: on-policy weight and push against the ratio",
    (),
    theory.figure_weights,
)
_add(
    "eta",
    "eta sweep: TV to P_A, modes covered and entropy against eta",
    ("eta",),
    bandit_sweeps.figure_eta,
)
_add(
    "curves",
    "learning curves of Figure 1's runs (TV to P_A, entropy; seed bands)",
    ("fig1",),
    bandit_sweeps.figure_curves,
)
_add(
    "refresh",
    "pi_old fixed vs refreshed every step",
    ("fig1", "onpolicy"),
    bandit_sweeps.figure_refresh,
)
_add(
    "surrogate",
    "Theorem B.1: practical vs theoretical loss gap against the trust-region size",
    ("surrogate",),
    theory.figure_surrogate,
)
_add(
    "landscapes",
    "the built-in reward landscapes and their P_A",
    ("landscapes",),
    bandit_policies.figure_landscapes,
)
_add(
    "explorer",
    "the interactive explorer page (explorer.html) of the default grid",
    ("explorer",),
    None,
    _explorer_page,
)


_add(
    "regime",
    "regime map: correct answers kept by GRPO and LAD against updates per rollout",
    (),  # reads data_root/regime or the committed docs/results/regime (lad bandit regime)
    regime.figure_regime,
)


def needed_experiments(names: list[str]) -> list[str]:
    """The experiments the named figures read, each once, in order."""
    out: dict[str, None] = {}
    for n in names:
        for e in FIGURES.get(n).needs:
            out.setdefault(e, None)
    return list(out)


def draw(
    name: str, data_root: str | Path, out_dir: str | Path, command: str | None = None
) -> list[Path]:
    """Draw one figure from data_root and write out_dir/<name>.png and .pdf."""
    spec = FIGURES.get(name)
    root = Path(data_root)
    missing = [e for e in spec.needs if not (root / e).is_dir()]
    if missing:
        raise FileNotFoundError(
            f"figure {name!r} reads {', '.join(str(root / e) for e in missing)}, which does not exist; run without --replot to create it"
        )
    if spec.write is not None:
        return spec.write(root, Path(out_dir))
    return style.save(spec.draw(root), Path(out_dir) / name, command=command)


def draw_many(
    names: list[str],
    data_root: str | Path,
    out_dir: str | Path,
    command: str | None = None,
    workers: int = 1,
    progress: Callable[[str], None] | None = None,
) -> list[Path]:
    """Draw several figures, in `workers` spawned processes when > 1 (matplotlib is
    single-threaded; the figures are independent). progress(name) is called as each one ends."""
    for n in names:
        FIGURES.get(n)
    if workers <= 1 or len(names) <= 1:
        written: list[Path] = []
        for n in names:
            written += draw(n, data_root, out_dir, command)
            if progress is not None:
                progress(n)
        return written
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        futures = {pool.submit(draw, n, str(data_root), str(out_dir), command): n for n in names}
        written = []
        for f in as_completed(futures):
            written += f.result()
            if progress is not None:
                progress(futures[f])
    return written
