"""LLM figures, drawn from saved run logs only (never trains, never imports llm/).

Run logs are read by figures/llm_logs.py (`find_runs` accepts run directories or any directory
above them; a demo's `results.json` adds the answer counts per prompt).

Figures:
- `figure_demo`: training reward and token entropy over steps, distinct correct answers over
  steps and against accuracy, final distinct correct answers per prompt, and one prompt's answer
  histogram (LAD vs GRPO, the demo).
- `figure_answers`: answer histograms of several prompts against their valid answers.
- `figure_eta_sweep` (paper Fig. 3): avg@n and pass@n against eta (and distinct correct answers).
- `figure_divergences` (paper Fig. 4): avg@n per divergence, strict and non-strict means dashed
  (and distinct correct answers per divergence).
- `figure_cost` (paper Fig. 5): distribution over training steps of the time per token.
- `draw_all`: every one of them the logs under a directory allow (`lad figures all`, the demo).
Bands and error bars: 95% percentile-bootstrap CI of the mean over seeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from figures import style
from figures.bandit_sweeps import draw_band
from figures.llm_logs import (
    DEMO_ROOT,
    RunLog,
    common_eta,
    curve_matrix,
    diversity_at_accuracy,
    final_values,
    find_runs,
    grpo_runs,
    lad_runs,
    load_demo,
    load_run,
    matched_accuracy,
    n_of,
    read_json,
    step_matrix,
    sweep_divergences,
    time_per_token,
)
from labkit.stats import bootstrap_ci

BAND_SEED = 0
STRICT = ("tv", "hellinger", "js")
NON_STRICT = ("kl", "rkl", "jeffreys")
HISTOGRAM_PROMPTS = ("sum:9", "sum:12", "mult:3:40", "mult:2:20")


def method_label(run: RunLog) -> str:
    if run.objective == "lad":
        name = style.DIVERGENCE_NAMES.get(run.divergence, run.divergence)
        return f"LAD {name} ($\\kappa$={1 / run.eta:g})"
    if run.objective == "grpo":
        return "GRPO (clip)"
    return run.objective


def method_color(run: RunLog) -> str:
    return style.color(run.objective, run.divergence)


# --- statistics (numpy, from the logs) ---------------------------------------------------------------


# --- draw functions --------------------------------------------------------------------------------


@style.house_style
def draw_training_curve(
    groups: dict[str, list[RunLog]],
    key: str,
    ax: Axes | None = None,
    smooth: int = 5,
    ylabel: str | None = None,
) -> Axes:
    """A metrics.jsonl key over training steps, one band per method."""
    ax = style.axes_or_new(ax)
    rng = np.random.default_rng(BAND_SEED)
    for runs in groups.values():
        steps, vals = step_matrix(runs, key, smooth)
        draw_band(steps, vals, method_color(runs[0]), method_label(runs[0]), rng, ax=ax)
    ax.set_xlabel("training step")
    ax.set_ylabel(ylabel or key + (f" ({smooth}-step mean)" if smooth > 1 else ""))
    return ax


@style.house_style
def draw_eval_curve(
    groups: dict[str, list[RunLog]], key: str, ax: Axes | None = None, ylabel: str | None = None
) -> Axes:
    """An evaluation metric (eval_curve.json) over training steps, one band per method."""
    ax = style.axes_or_new(ax)
    rng = np.random.default_rng(BAND_SEED)
    for runs in groups.values():
        steps, vals = curve_matrix(runs, key)
        draw_band(steps, vals, method_color(runs[0]), method_label(runs[0]), rng, ax=ax)
        ax.plot(steps, vals.mean(0), "o", ms=3, color=method_color(runs[0]))
    ax.set_xlabel("training step")
    ax.set_ylabel(ylabel or key)
    return ax


@style.house_style
def draw_diversity_vs_accuracy(groups: dict[str, list[RunLog]], ax: Axes | None = None) -> Axes:
    """Distinct correct answers per prompt against avg@n along training (mean over seeds):
    the comparison at equal accuracy. Arrows follow training; the first point is the start."""
    ax = style.axes_or_new(ax)
    n = None
    for runs in groups.values():
        n = n_of(runs[0].curve[0])
        _, acc = curve_matrix(runs, f"avg@{n}")
        _, div = curve_matrix(runs, "distinct_correct/mean")
        c = method_color(runs[0])
        ax.plot(
            acc.mean(0),
            div.mean(0),
            "-o",
            ms=3,
            color=c,
            label=f"{method_label(runs[0])} (n={len(runs)})",
        )
        ax.plot(acc.mean(0)[-1], div.mean(0)[-1], "s", ms=6, color=c)
    level = matched_accuracy(groups)
    ax.axvline(level, color="k", ls=":", lw=0.8)
    at = [
        f"{_short_label(runs[0])} {np.nanmean([diversity_at_accuracy(r, level) for r in runs]):.2f}"
        for runs in groups.values()
    ]
    ax.set_title(f"at avg@{n} = {level:.2f}: " + ", ".join(at), fontsize=7)
    ax.set_xlabel(f"accuracy avg@{n}")
    ax.set_ylabel("distinct correct answers / prompt")
    return ax


@style.house_style
def draw_final_bars(
    groups: dict[str, list[RunLog]],
    key: str,
    ax: Axes | None = None,
    start: float | None = None,
    ylabel: str | None = None,
) -> Axes:
    """A final-evaluation metric per method: mean over seeds with bootstrap CI and the seeds as
    dots; `start` (the warm-up policy's value) as a dotted line."""
    ax = style.axes_or_new(ax)
    rng = np.random.default_rng(BAND_SEED)
    names = []
    for i, runs in enumerate(groups.values()):
        vals = final_values(runs, key)
        if vals.size == 0:
            continue
        mean, lo, hi = bootstrap_ci(vals[:, None], rng)
        ax.bar(i, mean[0], color=method_color(runs[0]), alpha=0.8, width=0.7)
        ax.errorbar(
            i, mean[0], yerr=[[mean[0] - lo[0]], [hi[0] - mean[0]]], color="k", capsize=3, lw=1
        )
        ax.plot(np.full(vals.size, i) + np.linspace(-0.15, 0.15, vals.size), vals, "k.", ms=4)
        names.append(method_label(runs[0]).replace(" ($", "\n($"))
    if start is not None:
        ax.axhline(start, color="k", ls=":", lw=1)
        ax.annotate(
            "before RL",
            (1.0, start),
            xycoords=("axes fraction", "data"),
            ha="right",
            va="bottom",
            fontsize=7,
        )
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel(ylabel or key)
    return ax


@style.house_style
def draw_answer_histogram(
    results: dict[str, Any], key: str, methods: Sequence[str] | None = None, ax: Axes | None = None
) -> Axes:
    """Share of the final samples on each valid answer of one prompt (pooled over seeds), per
    method and for the warm-up policy; the last two columns are wrong and malformed answers."""
    ax = style.axes_or_new(ax, panel=(6.4, 2.5))
    valid = results["valid_answers"].get(key)
    if valid is None:
        raise ValueError(
            f"prompt {key!r} is not in results.json; expected one of {sorted(results['valid_answers'])}"
        )
    columns = [*valid, "wrong", "malformed"]
    series = {"before RL (warm-up)": ("#BBBBBB", results["warmup"]["answer_counts"][key])}
    runs = {r["method"]: r for r in results["runs"]}
    for m in methods or list(results["answer_counts"]):
        run = runs[m]
        series[m] = (
            style.color(run["objective"], run["divergence"]),
            results["answer_counts"][m][key],
        )
    width = 0.8 / len(series)
    for i, (name, (c, counts)) in enumerate(series.items()):
        total = sum(counts.values())
        wrong = sum(v for a, v in counts.items() if a not in valid and a != "<malformed>")
        shares = [counts.get(a, 0) / total for a in valid] + [
            wrong / total,
            counts.get("<malformed>", 0) / total,
        ]
        label = name if name not in runs else _summary_label(runs[name])
        ax.bar(
            np.arange(len(columns)) + (i - (len(series) - 1) / 2) * width,
            shares,
            width,
            color=c,
            label=label,
        )
    ax.set_xticks(range(len(columns)), columns, rotation=90 if len(columns) > 14 else 0)
    ax.set_ylabel("share of samples")
    ax.set_title(f"{results['prompts'][key]!r}: {len(valid)} valid answers")
    ax.legend(ncols=2)
    return ax


def _summary_label(run: dict[str, Any]) -> str:
    if run["objective"] == "lad":
        return f"LAD {style.DIVERGENCE_NAMES.get(run['divergence'], run['divergence'])} ($\\kappa$={run['kappa']:g})"
    return "GRPO (clip)" if run["objective"] == "grpo" else run["objective"]


# --- figures ---------------------------------------------------------------------------------------


@style.house_style
def figure_demo(root: str | Path = DEMO_ROOT) -> Figure:
    """The demo at a glance: 2 x 3 panels (see the module docstring)."""
    results, groups = load_demo(root)
    n = results["eval_n"]
    warm = results["warmup"]["metrics"]
    fig, axes = style.new_figure(2, 3, panel=(3.6, 2.7))
    draw_training_curve(groups, "reward", ax=axes[0], ylabel="training reward (5-step mean)")
    draw_training_curve(groups, "entropy", ax=axes[1], ylabel="token entropy of rollouts (nats)")
    draw_eval_curve(
        groups, "distinct_correct/mean", ax=axes[2], ylabel=f"distinct correct / prompt (n={n})"
    )
    draw_diversity_vs_accuracy(groups, ax=axes[3])
    draw_final_bars(
        groups,
        "distinct_correct/mean",
        ax=axes[4],
        start=warm["distinct_correct/mean"],
        ylabel="final distinct correct / prompt",
    )
    draw_final_bars(
        groups,
        f"pass@{n}",
        ax=axes[5],
        start=warm[f"pass@{n}"],
        ylabel=f"final pass@{n} (dots: seeds)",
    )
    axes[0].legend(loc="lower right")
    for ax, letter in zip(axes, "abcdef", strict=True):
        style.panel_letter(ax, letter)
    return fig


@style.house_style
def figure_answers(
    root: str | Path = DEMO_ROOT, prompts: Sequence[str] = HISTOGRAM_PROMPTS
) -> Figure:
    """Answer histograms of a few prompts (the final samples of every seed pooled)."""
    results = read_json(Path(root) / "results.json")
    if results is None:
        raise FileNotFoundError(
            f"{str(Path(root) / 'results.json')!r} does not exist; run `lad llm demo` first"
        )
    fig, axes = style.new_figure(len(prompts), 1, panel=(7.5, 2.3))
    for key, ax in zip(prompts, axes, strict=True):
        draw_answer_histogram(results, key, ax=ax)
    return fig


@style.house_style
def figure_eta_sweep(runs: Sequence[RunLog]) -> Figure:
    """Paper Fig. 3: avg@n and pass@n of the final evaluation against eta (LAD runs, one line per
    divergence; GRPO as a dashed level), plus the distinct correct answers per prompt."""
    divs = sweep_divergences(runs)
    if not divs:
        raise ValueError(
            "the run logs hold no LAD divergence evaluated at two or more values of eta "
            "(run `lad llm demo --sweep eta`)"
        )
    lad = lad_runs(runs)
    n = n_of(lad[0].final)
    rng = np.random.default_rng(BAND_SEED)
    keys = [f"avg@{n}", f"pass@{n}"]
    if all("distinct_correct/mean" in r.final for r in lad):
        keys.append("distinct_correct/mean")
    fig, axes = style.new_figure(1, len(keys), panel=(3.2, 2.7))
    for ax, key in zip(axes, keys, strict=True):
        for div in divs:
            sub = [r for r in lad if r.divergence == div]
            etas = sorted({r.eta for r in sub})
            stats = [
                bootstrap_ci(final_values([r for r in sub if r.eta == e], key)[:, None], rng)
                for e in etas
            ]
            c = style.color("lad", div)
            ax.fill_between(
                etas, [s[1][0] for s in stats], [s[2][0] for s in stats], color=c, alpha=0.2, lw=0
            )
            seeds = min(len([r for r in sub if r.eta == e]) for e in etas)
            name = style.DIVERGENCE_NAMES.get(div, div)
            ax.plot(
                etas, [s[0][0] for s in stats], "-o", ms=3, color=c, label=f"LAD {name} (n={seeds})"
            )
        grpo = final_values(grpo_runs(runs), key)
        if grpo.size:
            ax.axhline(
                grpo.mean(), color=style.COLORS["grpo"], ls="--", label=f"GRPO (n={grpo.size})"
            )
        ax.set_xscale("log", base=2)
        ax.set_xlabel("$\\eta$ (= 1/$\\kappa$)")
        ax.set_ylabel("distinct correct / prompt" if key.startswith("distinct") else key)
    axes[0].legend()
    return fig


def _bars(
    ax: Axes, groups: dict[str, list[RunLog]], key: str, rng: np.random.Generator
) -> dict[str, float]:
    """One bar (mean, bootstrap CI) per divergence; returns the means."""
    means = {}
    for i, (div, runs) in enumerate(groups.items()):
        vals = final_values(runs, key)
        mean, lo, hi = bootstrap_ci(vals[:, None], rng)
        means[div] = float(mean[0])
        ax.bar(i, mean[0], color=style.color("lad", div), alpha=0.85)
        ax.errorbar(
            i, mean[0], yerr=[[mean[0] - lo[0]], [hi[0] - mean[0]]], color="k", capsize=3, lw=1
        )
    ax.set_xticks(
        range(len(groups)), [style.DIVERGENCE_NAMES.get(d, d) for d in groups], rotation=30
    )
    return means


@style.house_style
def figure_divergences(runs: Sequence[RunLog]) -> Figure:
    """Paper Fig. 4: final avg@n per divergence (LAD at the eta most divergences share), strict
    and non-strict means dashed, GRPO dotted; next to it the distinct correct answers."""
    eta = common_eta(runs)
    if eta is None:
        raise ValueError("no evaluated LAD runs among the run logs (final eval metrics missing)")
    lad = [r for r in lad_runs(runs) if round(r.eta, 9) == eta]
    n = n_of(lad[0].final)
    rng = np.random.default_rng(BAND_SEED)
    order = [d for d in (*STRICT, *NON_STRICT) if any(r.divergence == d for r in lad)]
    order += [d for d in dict.fromkeys(r.divergence for r in lad) if d not in order]
    groups = {d: [r for r in lad if r.divergence == d] for d in order}
    keys = [f"avg@{n}"] + (
        ["distinct_correct/mean"] if all("distinct_correct/mean" in r.final for r in lad) else []
    )
    fig, axes = style.new_figure(1, len(keys), panel=(3.8, 2.9))
    for ax, key in zip(axes, keys, strict=True):
        means = _bars(ax, groups, key, rng)
        for group, name, ls in ((STRICT, "strict", "--"), (NON_STRICT, "non-strict", "-.")):
            vals = [means[d] for d in group if d in means]
            if vals:
                ax.axhline(
                    np.mean(vals), color="k", ls=ls, lw=1, label=f"{name} mean {np.mean(vals):.3f}"
                )
        grpo = final_values(grpo_runs(runs), key)
        levels = list(means.values())
        if grpo.size:
            ax.axhline(
                grpo.mean(),
                color=style.COLORS["grpo"],
                ls=":",
                lw=1.5,
                label=f"GRPO {grpo.mean():.3f}",
            )
            levels.append(float(grpo.mean()))
        label = "distinct correct / prompt" if key.startswith("distinct") else key
        ax.set_ylabel(f"final {label} ($\\eta$={eta:g})")
        span = max(levels) - min(levels)
        ax.set_ylim(max(0.0, min(levels) - 0.6 * span - 0.02), max(levels) + 0.5 * span + 0.02)
        ax.legend(loc="lower right", fontsize=7)
    return fig


def _short_label(run: RunLog) -> str:
    if run.objective == "lad":
        return f"LAD-{style.DIVERGENCE_NAMES.get(run.divergence, run.divergence)}"
    return "GRPO" if run.objective == "grpo" else run.objective


@style.house_style
def figure_cost(runs: Sequence[RunLog]) -> Figure:
    """Paper Fig. 5: per-step time per completion token across training, GRPO vs each LAD
    divergence (at the common eta): violins over every step of every seed, for the whole step
    and for the update alone; the panel title gives each median relative to GRPO's.

    Wall-clock timings: compare runs that ran side by side on the same machine (a demo's
    methods), not runs from different sessions."""
    eta = common_eta(runs)
    keep = [r for r in runs if r.objective != "lad" or round(r.eta, 9) == eta]
    groups: dict[str, list[RunLog]] = {}
    for r in keep:
        groups.setdefault(_short_label(r), []).append(r)
    if not groups:
        raise ValueError("no run logs to draw the cost of")
    fig, axes = style.new_figure(1, 2, panel=(3.6, 2.8))
    for ax, part in zip(axes, ("step", "update"), strict=True):
        data = [
            1e3 * np.concatenate([time_per_token(r, part) for r in rs]) for rs in groups.values()
        ]
        parts = ax.violinplot(data, showmedians=True)
        for body, rs in zip(parts["bodies"], groups.values(), strict=True):
            body.set_facecolor(method_color(rs[0]))
            body.set_alpha(0.6)
        ax.set_xticks(range(1, len(groups) + 1), list(groups), rotation=30)
        ax.set_ylabel("ms per completion token")
        ax.set_yscale("log")
        medians = {name: float(np.median(d)) for name, d in zip(groups, data, strict=True)}
        title = "whole step" if part == "step" else "update only"
        if "GRPO" in medians:
            ratios = [
                f"{k}/GRPO {v / medians['GRPO']:.2f}" for k, v in medians.items() if k != "GRPO"
            ]
            title += "\nmedian " + ", ".join(ratios[:3]) + (" ..." if len(ratios) > 3 else "")
        ax.set_title(title, fontsize=8)
    return fig


def draw_all(root: str | Path, out_dir: str | Path, command: str | None = None) -> list[Path]:
    """Every LLM figure the logs under `root` allow, as out_dir/llm_*.png and .pdf:
    llm_demo and llm_answers (a demo's results.json), llm_eta (a divergence at >= 2 etas),
    llm_divergences (>= 2 divergences at one eta), llm_cost (any runs)."""
    root, out_dir = Path(root), Path(out_dir)
    written: list[Path] = []
    if (root / "results.json").is_file():
        written += style.save(figure_demo(root), out_dir / "llm_demo", command)
        written += style.save(figure_answers(root), out_dir / "llm_answers", command)
    runs = find_runs([root])
    if sweep_divergences(runs):
        written += style.save(figure_eta_sweep(runs), out_dir / "llm_eta", command)
    eta = common_eta(runs)
    if (
        eta is not None
        and len({r.divergence for r in lad_runs(runs) if round(r.eta, 9) == eta}) >= 2
    ):
        written += style.save(figure_divergences(runs), out_dir / "llm_divergences", command)
    if (root / "results.json").is_file():  # the demo's methods ran side by side: comparable times
        results = read_json(root / "results.json")
        runs = [load_run(root / r["dir"]) for r in results["runs"]]
    written += style.save(figure_cost(runs), out_dir / "llm_cost", command)
    return written


def draw_saved_demo(out_dir: str | Path, command: str | None = None) -> list[Path]:
    """`lad figures all`: the LLM figures of the saved demo under DEMO_ROOT ([] when there is
    none; LLM runs are never retrained here, `lad llm demo` makes them)."""
    if not (DEMO_ROOT / "results.json").is_file():
        return []
    return draw_all(DEMO_ROOT, out_dir, command)


def saved_demo_message(written: list[Path], out_dir: str | Path) -> str:
    """What `lad figures all` says about the LLM figures draw_saved_demo wrote (or skipped)."""
    if written:
        return f"{len(written)} LLM figure files in {out_dir} (from {DEMO_ROOT})"
    return f"LLM figures skipped: no {DEMO_ROOT}/results.json (run `lad llm demo`)"
