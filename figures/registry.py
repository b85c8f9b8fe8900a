"""Every figure `lad figures` can draw: name -> what it reads and how it is drawn.

FIGURES (bandit and theory): a figure reads the results of one or more experiments, each a
directory data_root/<experiment> written by the code that trained it (bandit/experiments.py).
LLM_FIGURES: a figure reads LLM run logs (run directories, or directories above them, as
`lad llm train` and `lad llm demo` write them). Adding a figure is a `figure_<name>` function in
a figures module plus one `_add` line below; `lad figures <name>` (with its help text from the
description here) and `lad figures all` then pick it up.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from matplotlib.figure import Figure

from figures import bandit_dynamics, bandit_policies, bandit_sweeps, llm, regime, style, theory
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


@dataclass
class FigureRun:
    """The options of `lad figures <name>`: where figures go and where their data comes from."""

    out: str = field(
        default="results/figures",
        metadata={"help": "directory for the .png and .pdf files", "flags": ("--out", "-o")},
    )
    data: str | None = field(
        default=None,
        metadata={"help": "where experiment results are written / read (default OUT/data)"},
    )
    replot: bool = field(
        default=False,
        metadata={"help": "do not train: redraw from the results already in --data"},
    )
    workers: int = field(
        default=2,
        metadata={
            "help": "processes that run experiments in parallel (one thread each)",
            "flags": ("--workers", "-j"),
        },
    )
    runs: list[str] | None = field(
        default=None,
        metadata={
            "help": "LLM figures: run directories, or directories above them; default "
            "results/llm_demo"
        },
    )

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"workers={self.workers} is not valid; expected an integer >= 1")

    @property
    def data_root(self) -> Path:
        return Path(self.data) if self.data else Path(self.out) / "data"


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


@dataclass(frozen=True)
class LLMFigureSpec:
    """name (the command), a one-line description, and draw(run paths) -> {file stem: Figure}."""

    name: str
    description: str
    draw: Callable[[list[str]], dict[str, Figure]]


LLM_FIGURES: Registry[LLMFigureSpec] = Registry("LLM figure", "figure")


def _demo(paths: list[str]) -> dict[str, Figure]:
    if len(paths) != 1:
        raise ValueError(f"--runs takes one demo directory for `figures llm`, got {paths}")
    return {"llm_demo": llm.figure_demo(paths[0]), "llm_answers": llm.figure_answers(paths[0])}


for _name, _stem, _fn, _description in (
    (
        "eta-sweep",
        "llm_eta",
        llm.figure_eta_sweep,
        "Paper Fig. 3 from LLM run logs: avg@n and pass@n against eta (lad llm demo --sweep eta)",
    ),
    (
        "divergences",
        "llm_divergences",
        llm.figure_divergences,
        "Paper Fig. 4 from LLM run logs: avg@n per divergence, strict / non-strict means dashed",
    ),
    (
        "cost",
        "llm_cost",
        llm.figure_cost,
        "Paper Fig. 5 from LLM run logs: time per token across training, LAD vs GRPO",
    ),
):
    LLM_FIGURES.add(
        _name,
        LLMFigureSpec(
            _name,
            _description,
            lambda paths, stem=_stem, fn=_fn: {stem: fn(llm.find_runs(paths))},
        ),
    )
LLM_FIGURES.add(
    "llm",
    LLMFigureSpec(
        "llm",
        "LLM demo: learning curves, distinct correct answers, answer histograms (from its logs)",
        _demo,
    ),
)


def draw_llm(
    name: str, runs: list[str] | None, out_dir: str | Path, command: str | None = None
) -> list[Path]:
    """Draw an LLM figure from run logs (default: the demo's directory) into out_dir."""
    figs = LLM_FIGURES.get(name).draw(runs or [str(llm.DEMO_ROOT)])
    return [p for stem, fig in figs.items() for p in style.save(fig, Path(out_dir) / stem, command)]


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


def listing() -> str:
    """`lad figures list`: one line per figure, with what it reads."""
    lines = [
        f"{n:<11} {FIGURES.get(n).description}  [reads: {', '.join(FIGURES.get(n).needs) or 'nothing'}]"
        for n in FIGURES
    ]
    lines += [
        f"{n:<11} {LLM_FIGURES.get(n).description}  [reads: LLM run logs]" for n in LLM_FIGURES
    ]
    return "\n".join(lines)
