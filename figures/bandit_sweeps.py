"""Bandit curves over steps and over eta, with bootstrap bands over seeds.

- `figure_curves` (data: fig1): TV(P_pi, P_A) and entropy over steps for every objective of
  Figure 1, mean and 95% bootstrap CI over seeds.
- `figure_eta` (data: eta): final TV to P_A(eta), modes covered and entropy against eta.
- `figure_refresh` (data: fig1, onpolicy): pi_old fixed at the initial policy against pi_old
  refreshed every step (iterative RL): TV(pi, P_A) and largest arm mass over steps, and the final
  policies with refreshing. The policy itself is compared with P_A here (`tv_pi`), because the
  policy-induced P_pi is measured against a pi_old that moves.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from figures import style
from figures.bandit_policies import draw_policy
from figures.io import BanditData, Table, load_bandit
from figures.stats import policy_matrix, seed_matrix
from labkit.stats import bootstrap_ci

BAND_SEED = 0  # bootstrap resamples are drawn from np.random.default_rng(BAND_SEED)


def methods(data: BanditData) -> list[tuple[str, str]]:
    """(objective, divergence) pairs of a results directory, in run order."""
    m = data.metrics
    pairs: dict[tuple[str, str], None] = {}
    for o, d in zip(m["objective"].tolist(), m["divergence"].tolist(), strict=True):
        pairs.setdefault((o, d), None)
    return list(pairs)


@style.house_style
def draw_band(
    x: np.ndarray,
    values: np.ndarray,
    color: str,
    name: str,
    rng: np.random.Generator,
    ax: Axes | None = None,
    ls: str = "-",
) -> Axes:
    """Mean of values (n_seeds, n_x) over seeds with a 95% bootstrap band."""
    ax = style.axes_or_new(ax)
    mean, lo, hi = bootstrap_ci(values, rng)
    ax.fill_between(x, lo, hi, color=color, alpha=0.2, lw=0)
    ax.plot(x, mean, color=color, ls=ls, label=f"{name} (n={values.shape[0]})")
    return ax


def _curve(table: Table, value: str) -> tuple[np.ndarray, np.ndarray]:
    mat, steps = seed_matrix(table, value)
    return steps, mat


@style.house_style
def figure_curves(data_root: Path) -> Figure:
    """Learning curves of Figure 1's runs (pi_old fixed)."""
    data = load_bandit(Path(data_root) / "fig1")
    rng = np.random.default_rng(BAND_SEED)
    fig, axes = style.new_figure(1, 2, panel=(4.2, 3.0))
    cfg = data.config
    for obj, div in methods(data):
        m = data.metrics.where(objective=obj, divergence=div)
        name = style.label(obj, div, cfg["refresh_every"], cfg["epsilon"])
        steps, tv = _curve(m, "tv")
        draw_band(
            steps,
            np.maximum(tv, 1e-5),
            style.color(obj, div),
            name,
            rng,
            ax=axes[0],
            ls=style.linestyle(obj),
        )
        steps, ent = _curve(m, "entropy")
        draw_band(steps, ent, style.color(obj, div), name, rng, ax=axes[1], ls=style.linestyle(obj))
    target = data.target(1.0)
    axes[1].axhline(
        -(target * np.log(target)).sum(), color="black", ls=":", lw=1, label="entropy of $P_A$"
    )
    axes[0].set_yscale("log")
    axes[0].set_ylabel("TV($P_\\pi$, $P_A$) (floored at 1e-5)")
    axes[1].set_ylabel("entropy of $\\pi$ (nats)")
    for ax in axes:
        ax.set_xlabel("step")
    axes[1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=7)
    fig.suptitle(
        f"Learning curves, {data.meta['landscape']['name']} bandit, $\\pi_{{old}}$ fixed (mean, 95% bootstrap CI over seeds)",
        fontsize=9,
    )
    return fig


@style.house_style
def figure_eta(data_root: Path) -> Figure:
    """Final metrics against eta (the eta sweep)."""
    data = load_bandit(Path(data_root) / "eta")
    rng = np.random.default_rng(BAND_SEED)
    fig, axes = style.new_figure(1, 3, panel=(3.2, 2.7))
    etas = np.asarray(sorted({float(e) for e in data.metrics["eta"]}))
    last = data.metrics.where(step=int(data.meta["log_steps"][-1]))
    for obj, div in methods(data):
        m = last.where(objective=obj, divergence=div)
        name = style.label(obj, div, data.config["refresh_every"], data.config["epsilon"])
        for ax, value in zip(axes, ("tv", "modes_covered", "entropy"), strict=True):
            mat, xs = seed_matrix(m, value, x="eta")
            draw_band(xs, mat, style.color(obj, div), name, rng, ax=ax, ls=style.linestyle(obj))
            ax.plot(xs, mat.mean(0), ls="none", marker="o", ms=3, color=style.color(obj, div))
    target_entropy = [-(p * np.log(p)).sum() for p in (data.target(e) for e in etas)]
    axes[2].plot(etas, target_entropy, color="black", ls=":", lw=1.2, label="entropy of $P_A$")
    modes_target = seed_matrix(
        last.where(objective=methods(data)[0][0], divergence=methods(data)[0][1]),
        "modes_target",
        x="eta",
    )[0][0]
    axes[1].plot(etas, modes_target, color="black", ls=":", lw=1.2, label="modes of $P_A$")
    axes[0].set_ylabel("final TV($P_\\pi$, $P_A$)")
    axes[0].set_yscale("log")
    axes[1].set_ylabel("modes covered")
    axes[2].set_ylabel("final entropy (nats)")
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_xlabel("$\\eta$ (temperature of $P_A$)")
    axes[2].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=7)
    cfg = data.config
    fig.suptitle(
        f"$\\eta$ sweep, {data.meta['landscape']['name']} bandit, {cfg['steps']} steps, $\\pi_{{old}}$ fixed; "
        "the target $P_A \\propto e^{A/\\eta}$ changes with $\\eta$ (GRPO's policy does not)",
        fontsize=9,
    )
    return fig


@style.house_style
def figure_refresh(data_root: Path, show: tuple[str, ...] = ("reinforce", "kl", "js")) -> Figure:
    """pi_old fixed vs refreshed every step: curves of the shown methods, final refreshed policies."""
    fixed = load_bandit(Path(data_root) / "fig1")
    refreshed = load_bandit(Path(data_root) / "onpolicy")
    rng = np.random.default_rng(BAND_SEED)
    chosen = [(o, d) for o, d in methods(refreshed) if o == "reinforce" or d in show][:3]
    fig, axes = style.new_figure(2, 3, panel=(3.3, 2.5))
    for data, ls in ((fixed, "-"), (refreshed, "--")):
        refresh = data.config["refresh_every"]
        for obj, div in [*chosen, *([("grpo", "")] if data is fixed else [])]:
            m = data.metrics.where(objective=obj, divergence=div)
            name = style.label(obj, div, refresh, data.config["epsilon"])
            obj_ls = ":" if obj == "grpo" else ls
            for ax, value in zip(axes[:3], ("tv_pi", "max_arm", "entropy"), strict=True):
                steps, mat = _curve(m, value)
                draw_band(steps, mat, style.color(obj, div), name, rng, ax=ax, ls=obj_ls)
    axes[0].set_ylabel("TV($\\pi$, $P_A$)")
    axes[1].set_ylabel("largest arm mass")
    axes[2].set_ylabel("entropy of $\\pi$ (nats)")
    for ax in axes[:3]:
        ax.set_xlabel("step")
    axes[2].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=7)
    step = int(refreshed.meta["log_steps"][-1])
    for ax, (obj, div) in zip(axes[3:], chosen, strict=True):
        pol = policy_matrix(refreshed.policies.where(objective=obj, divergence=div), step)
        draw_policy(
            refreshed.target(1.0), pol, style.color(obj, div), style.label(obj, div, 1), ax=ax
        )
        ax.set_xlabel("arm")
        ax.set_title(f"{style.label(obj, div, 1)}\nfinal policy", fontsize=8)
    fig.suptitle(
        "$\\pi_{old}$ fixed at the initial policy (solid) vs refreshed every step (dashed; bottom row: final policies).\n"
        "Dotted: clipped GRPO with fixed $\\pi_{old}$, which stalls once its ratios leave $[1-\\epsilon, 1+\\epsilon]$.",
        fontsize=9,
    )
    return fig
