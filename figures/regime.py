"""The regime map (bandit/regime.py): correct answers kept by GRPO and LAD against updates per
rollout mu, from a saved summary.json (means and 95% bootstrap CIs over seeds).

`figure_regime(data_root)` reads data_root/regime when it holds a summary.json, else the committed
grid docs/results/regime (figures never train; `lad bandit regime` recomputes it). Rows: reward
structures; columns: the effective number of correct arms at G = 8, 64 and the exact expectation,
and accuracy at G = 64; a last row shows the lr and eta side panels. The exact iterated tilt (dashed black) is the theory curve.

`REPORT_BLOCKS[name]()` returns markdown for `<!-- report:name -->` blocks in the docs: a table
with CIs and a one-line conclusion, both computed from the committed summary.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from figures import style
from figures.io import read_json
from figures.report import command_line

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "docs" / "results" / "regime"
FIXED = 0
REFERENCE = "grpo eps 0.2"
HEADLINE = ("plateau k=10", 64)  # the panel the table and the conclusion quote
OBJECTIVES = {
    # label in the results -> (legend, colour, line style)
    "grpo unclipped": ("GRPO unclipped", style.COLORS["reinforce"], ":"),
    "grpo eps 0.2": ("GRPO clip 0.2", style.COLORS["grpo"], "-"),
    "grpo eps 0.2/0.28": ("GRPO clip 0.2/0.28", "#555555", "--"),
    **{
        f"lad {d}": (f"LAD {style.DIVERGENCE_NAMES[d]}", style.COLORS[d], "-")
        for d in style.COLORS
        if d in style.DIVERGENCE_NAMES
    },
    "exact tilt": ("exact iterated tilt", "black", (0, (4, 2))),
}
NAMES = {
    "eff_correct": "effective correct arms",
    "accuracy": "accuracy (mass on correct)",
    "kept_correct": "correct arms kept",
    "tv_target": "TV to target",
}


def results_dir(data_root: str | Path | None = None) -> Path:
    """data_root/regime when it holds a summary, else the committed docs/results/regime."""
    if data_root is not None and (Path(data_root) / "regime" / "summary.json").is_file():
        return Path(data_root) / "regime"
    return RESULTS


def load(path: str | Path = RESULTS) -> dict[str, Any]:
    """summary.json of a regime directory: points, diffs, theory, outcomes."""
    if not (Path(path) / "summary.json").is_file():
        raise FileNotFoundError(
            f"{str(Path(path) / 'summary.json')!r} does not exist; run `lad bandit regime --out {path}`"
        )
    return read_json(Path(path) / "summary.json")


def _x(mus: list[int]) -> tuple[np.ndarray, list[str]]:
    """x positions (log2 mu, fixed one step right of the largest mu) and tick labels."""
    finite = [m for m in mus if m != FIXED]
    right = np.log2(max(finite)) + 1.2 if finite else 0.0
    return np.array([np.log2(m) if m != FIXED else right for m in mus]), [
        f"{m}" if m != FIXED else "fixed" for m in mus
    ]


def _select(rows: list[dict[str, Any]], **where: Any) -> list[dict[str, Any]]:
    return [r for r in rows if all(r.get(k) == v for k, v in where.items())]


@style.house_style
def draw_panel(
    summary: dict[str, Any],
    outcome: str,
    ax: Axes | None = None,
    eta: float | None = None,
    **where: Any,
) -> Axes:
    """One axes: `outcome` against mu for every objective of the points matching `where`
    (e.g. structure, G, side), CI bands, and the exact tilt at eta 1 (or `eta`)."""
    ax = style.axes_or_new(ax)
    points = _select(summary["points"], **where)
    by_obj: dict[str, list[dict[str, Any]]] = {}
    for p in points:
        if eta is None or p["eta"] == eta:
            by_obj.setdefault(p["objective"], []).append(p)
    mus_all: list[int] = []
    for obj, rows in by_obj.items():
        rows = sorted(rows, key=lambda r: (r["mu"] == FIXED, r["mu"]))
        mus = [r["mu"] for r in rows]
        mus_all = mus if len(mus) > len(mus_all) else mus_all
        x, _ = _x(mus)
        legend, colour, ls = OBJECTIVES.get(obj, (obj, "#333333", "-"))
        y = np.array([r[outcome] for r in rows])
        ax.plot(x, y, color=colour, ls=ls, marker="o", ms=2.5, label=legend)
        ax.fill_between(
            x,
            [r[outcome + "_lo"] for r in rows],
            [r[outcome + "_hi"] for r in rows],
            color=colour,
            alpha=0.18,
            lw=0,
        )
    theory = sorted(
        _select(
            summary["theory"], structure=where.get("structure"), eta=eta if eta is not None else 1.0
        ),
        key=lambda r: (r["mu"] == FIXED, r["mu"]),
    )
    seen: dict[int, dict[str, Any]] = {r["mu"]: r for r in theory}  # the same curve in every panel
    if seen:
        rows = [seen[m] for m in mus_all if m in seen]
        legend, colour, ls = OBJECTIVES["exact tilt"]
        ax.plot(
            _x([r["mu"] for r in rows])[0],
            [r[outcome] for r in rows],
            color=colour,
            ls=ls,
            lw=1.2,
            label=legend,
        )
    x, labels = _x(mus_all)
    ax.set_xticks(x, labels)
    ax.set_xlabel("updates per rollout $\\mu$")
    ax.set_ylabel(NAMES.get(outcome, outcome))
    return ax


@style.house_style
def draw_eta(summary: dict[str, Any], structure: str, ax: Axes | None = None) -> Axes:
    """Effective correct arms of LAD against mu at each eta (eta = 1 from the main G = 64 panel);
    line style by eta, colour by divergence."""
    ax = style.axes_or_new(ax)
    pts = _select(summary["points"], structure=structure, G=64, side="eta")
    pts += [
        p
        for p in _select(summary["points"], structure=structure, G=64, side="main")
        if p["objective"] in {q["objective"] for q in pts}
    ]
    etas = sorted({p["eta"] for p in pts})
    dashes = ["-", "--", ":", "-."]
    for obj in dict.fromkeys(p["objective"] for p in pts):
        for e, eta in enumerate(etas):
            rows = sorted(
                _select(pts, objective=obj, eta=eta), key=lambda r: (r["mu"] == FIXED, r["mu"])
            )
            x, labels = _x([r["mu"] for r in rows])
            legend, colour, _ = OBJECTIVES.get(obj, (obj, "#333333", "-"))
            ax.plot(
                x,
                [r["eff_correct"] for r in rows],
                color=colour,
                ls=dashes[e % 4],
                marker="o",
                ms=2,
                label=f"{legend}, $\\eta$={eta:g}",
            )
            ax.fill_between(
                x,
                [r["eff_correct_lo"] for r in rows],
                [r["eff_correct_hi"] for r in rows],
                color=colour,
                alpha=0.12,
                lw=0,
            )
            ax.set_xticks(x, labels)
    ax.set_xlabel("updates per rollout $\\mu$")
    ax.set_ylabel(NAMES["eff_correct"])
    ax.set_title(f"{structure}, G=64: LAD at each $\\eta$")
    ax.legend(fontsize=6)
    return ax


def _conclusion_points(
    summary: dict[str, Any], structure: str, g: int, outcome: str = "eff_correct"
) -> dict[str, Any]:
    """For the headline panel: the LAD-JS - clipped GRPO differences by mu."""
    diffs = _select(summary["diffs"], structure=structure, G=g, side="main", objective="lad js")
    return {d["mu"]: d for d in diffs}


def _fmt(p: dict[str, Any], m: str, digits: int = 2) -> str:
    v, lo, hi = p[m], p[m + "_lo"], p[m + "_hi"]
    if lo == hi:
        return f"{v:.{digits}f}"
    return f"{v:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _mu_name(mu: int) -> str:
    return "fixed" if mu == FIXED else str(mu)


def conclusion(summary: dict[str, Any] | None = None) -> str:
    """One line, from the CIs: where LAD-JS keeps significantly more correct arms than clipped
    GRPO (eps 0.2) in the headline panel, where the difference is not significant, and the count
    over every sampled plateau panel and LAD divergence (on a plateau more correct arms is better:
    the target keeps all k)."""
    summary = summary if summary is not None else load()
    structure, g = HEADLINE
    diffs = _conclusion_points(summary, structure, g)
    pts = {
        (p["objective"], p["mu"]): p
        for p in _select(summary["points"], structure=structure, G=g, side="main")
    }
    order = lambda ms: sorted(ms, key=lambda m: (m == FIXED, m))  # noqa: E731
    more = order(mu for mu, d in diffs.items() if d["eff_correct_lo"] > 0 and mu != FIXED)
    same = order(mu for mu, d in diffs.items() if d["eff_correct_lo"] <= 0 <= d["eff_correct_hi"])
    less = order(mu for mu, d in diffs.items() if d["eff_correct_hi"] < 0)

    def pair(mu: int) -> str:
        return (
            f"{pts[('lad js', mu)]['eff_correct']:.2f} vs {pts[(REFERENCE, mu)]['eff_correct']:.2f}"
        )

    parts = []
    if more:
        best = max(more, key=lambda m: diffs[m]["eff_correct"])
        parts.append(
            f"LAD-JS keeps more correct arms than clipped GRPO at mu = {', '.join(map(_mu_name, more))} "
            f"(effective arms of 10 at mu = {_mu_name(best)}: {pair(best)})"
        )
    if same:
        parts.append(
            f"no significant difference at mu = {', '.join(map(_mu_name, same))}"
            + (f" ({pair(same[0])})" if same else "")
        )
    if less:
        parts.append(f"fewer at mu = {', '.join(map(_mu_name, less))}")
    if FIXED in diffs:
        lad, grpo = pts[("lad js", FIXED)], pts[(REFERENCE, FIXED)]
        parts.append(
            f"with pi_old fixed both keep nearly all ({pair(FIXED)}; accuracy "
            f"{lad['accuracy']:.2f} vs {grpo['accuracy']:.2f})"
        )
    plateau = [
        d
        for d in summary["diffs"]
        if d["side"] == "main"
        and d["G"] != 0
        and d["structure"].startswith("plateau")
        and d["objective"].startswith("lad ")
    ]
    ahead = sum(d["eff_correct_lo"] > 0 for d in plateau)
    behind = [d for d in plateau if d["eff_correct_hi"] < 0]
    who = sorted({d["objective"].removeprefix("lad ") for d in behind})
    n = pts[(REFERENCE, 1)]["n"] if (REFERENCE, 1) in pts else "?"
    who_text = f" ({', '.join(who)})" if who else ""
    return (
        f"On plateau k=10, G=64: {'; '.join(parts)}. Over all sampled plateau panels and LAD "
        f"divergences LAD is significantly ahead at {ahead} of {len(plateau)} (panel, mu) points "
        f"and behind at {len(behind)}{who_text} (95% bootstrap CIs, {n} seeds)."
    )


def trimodal_line(summary: dict[str, Any] | None = None) -> str:
    """One line on the graded landscape (G = 64): mass on the best arm below fixed, and TV to P_A
    with pi_old fixed, LAD-JS against clipped GRPO."""
    summary = summary if summary is not None else load()
    pts = {
        (p["objective"], p["mu"]): p
        for p in _select(summary["points"], structure="trimodal", G=64, side="main")
    }
    if not pts:
        return ""
    refreshed = [p for (o, mu), p in pts.items() if mu != FIXED]
    low = min(p["eff_correct"] for p in refreshed)
    high = max(p["eff_correct"] for p in refreshed)
    theory = {r["mu"]: r for r in _select(summary["theory"], structure="trimodal", eta=1.0)}
    t_ref = [r["eff_correct"] for mu, r in theory.items() if mu != FIXED]
    lad, grpo = pts[("lad js", FIXED)], pts[(REFERENCE, FIXED)]
    return (
        f"On trimodal (G=64) every objective with pi_old refreshed ends on the best arm "
        f"(effective correct arms {low:.2f} to {high:.2f}; the exact tilt {min(t_ref):.2f} to "
        f"{max(t_ref):.2f}); with pi_old fixed LAD-JS lands on P_A (TV {_fmt(lad, 'tv_target', 3)}) "
        f"and clipped GRPO does not (TV {_fmt(grpo, 'tv_target', 3)})."
    )


def table(
    summary: dict[str, Any] | None = None, mus: tuple[int, ...] = (1, 4, 16, 64, FIXED)
) -> str:
    """Markdown: effective correct arms (mean [95% CI]) per objective and mu, headline panel, with
    the exact tilt's value as the last row."""
    summary = summary if summary is not None else load()
    structure, g = HEADLINE
    pts = _select(summary["points"], structure=structure, G=g, side="main")
    objectives = [o for o in OBJECTIVES if any(p["objective"] == o for p in pts)]
    cells = {(p["objective"], p["mu"]): p for p in pts}
    head = "| objective | " + " | ".join(f"mu = {_mu_name(m)}" for m in mus) + " |"
    lines = [head, "|---" * (len(mus) + 1) + "|"]
    for o in objectives:
        row = [_fmt(cells[(o, m)], "eff_correct") if (o, m) in cells else "-" for m in mus]
        lines.append(f"| {OBJECTIVES[o][0]} | " + " | ".join(row) + " |")
    theory = {r["mu"]: r for r in _select(summary["theory"], structure=structure, eta=1.0)}
    lines_theory = (
        "| exact iterated tilt | "
        + " | ".join(f"{theory[m]['eff_correct']:.2f}" if m in theory else "-" for m in mus)
        + " |"
    )
    lines.append(lines_theory)
    meta_path = RESULTS / "config.json"
    source = (
        command_line(read_json(meta_path), meta_path.relative_to(ROOT))
        if meta_path.is_file()
        else ""
    )
    return "\n".join(lines) + (f"\n\n{source}" if source else "")


REPORT_BLOCKS: dict[str, Callable[[], str]] = {
    "regime-table": table,
    "regime-conclusion": conclusion,
    "regime-trimodal": trimodal_line,
}


def figure_regime(data_root: str | Path | None = None) -> Figure:
    """The map: rows = reward structures, columns = effective correct arms at each G and accuracy
    at G = 64; last row = lr and eta side panels of plateau k=10; the conclusion underneath."""
    summary = load(results_dir(data_root))
    points = summary["points"]
    structures = list(dict.fromkeys(p["structure"] for p in points))
    gs = sorted({p["G"] for p in points if p["side"] == "main"}, key=lambda g: (g == 0, g))
    sides = [s for s in dict.fromkeys(p["side"] for p in points) if s != "main"]
    side_structure = next(
        (
            s
            for s in ("plateau k=10", "trimodal")
            if any(p["structure"] == s and p["side"] != "main" for p in points)
        ),
        None,
    )
    ncols = len(gs) + 1
    nrows = len(structures) + (1 if side_structure else 0)
    fig, axes = style.new_figure(nrows, ncols, panel=(3.0, 2.2))
    g_acc = 64 if 64 in gs else gs[0]
    n_correct = {
        s: max(t["kept_correct"] for t in _select(summary["theory"], structure=s))
        for s in structures
    }
    for i, s in enumerate(structures):
        for j, g in enumerate(gs):
            ax = axes[i * ncols + j]
            draw_panel(summary, "eff_correct", ax, structure=s, G=g, side="main")
            ax.set_title(f"{s}, {'exact' if g == 0 else f'G={g}'}")
            ax.set_ylim(0.8, n_correct[s] + 0.4)
        ax = axes[i * ncols + len(gs)]
        draw_panel(summary, "accuracy", ax, structure=s, G=g_acc, side="main")
        ax.set_title(f"{s}, G={g_acc}: accuracy")
        ax.set_ylim(-0.02, 1.05)
    if side_structure:
        row = len(structures) * ncols
        used = 0
        for side in sides:
            if used >= ncols:
                break
            ax = axes[row + used]
            if side == "eta":
                draw_eta(summary, side_structure, ax)
            else:
                draw_panel(summary, "eff_correct", ax, structure=side_structure, G=64, side=side)
                ax.set_title(f"{side_structure}, G=64, {side}")
            ax.set_ylim(0.8, n_correct[side_structure] + 0.4)
            used += 1
        for ax in axes[row + used :]:
            ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", ncol=min(len(labels), 4))
    try:
        line = conclusion(summary)
    except (KeyError, ValueError):
        line = ""
    if line:
        # keep a strip under the panels for the conclusion (constrained layout fills the rect)
        fig.get_layout_engine().set(rect=(0, 0.045, 1, 0.955))
        fig.text(0.5, 0.004, _wrap(line, 200), ha="center", va="bottom", fontsize=8)
    return fig


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))
