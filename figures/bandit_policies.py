"""Learned policies against the target P_A: the paper's Figure 1 and the landscapes.

Figure 1 (data: the `fig1` and `onpolicy` experiments): small multiples over 50 arms, P_A as grey bars and each
objective's final policy (mean over seeds, band = min..max over seeds) as a line. Top row: GRPO as
advantage maximisation (the unclipped surrogate, loss_mode `reinforce`, pi_old fixed at the
initial policy) and theoretical LAD; bottom row: GRPO on-policy (pi_old refreshed every step, where
PPO's clip never binds) and practical LAD. Each panel states TV to P_A, modes covered and the
largest arm mass at the last step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from figures import style
from figures.io import BanditData, load_bandit, read_csv
from figures.stats import final_values, policy_matrix


@style.house_style
def draw_policy(
    target: np.ndarray,
    policies: np.ndarray,
    color: str,
    name: str,
    ax: Axes | None = None,
    note: str = "",
) -> Axes:
    """Bars of the target (K,) and the mean of policies (n_seeds, K) with a min..max band."""
    ax = style.axes_or_new(ax)
    arms = np.arange(target.shape[0])
    ax.bar(
        arms, target, width=0.9, color=style.COLORS["target"], label=style.TARGET_LABEL, zorder=1
    )
    mean = policies.mean(0)
    ax.fill_between(arms, policies.min(0), policies.max(0), color=color, alpha=0.25, lw=0, zorder=2)
    ax.plot(arms, mean, color=color, lw=1.3, marker="o", ms=1.8, label=name, zorder=3)
    ax.set_xlim(-1, target.shape[0])
    ax.set_ylim(0, max(target.max(), mean.max(), policies.max()) * 1.12)
    ax.set_title(name)
    if note:
        ax.text(
            0.98,
            0.97,
            note,
            transform=ax.transAxes,
            ha="right",
            va="top",
            fontsize=7.5,
            bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1.5},
        )
    return ax


def _note(data: BanditData, objective: str, divergence: str) -> str:
    m = data.metrics.where(objective=objective, divergence=divergence)
    n_seeds = len(np.unique(m["seed"]))
    tv_col = "tv" if data.config["refresh_every"] == 0 else "tv_pi"
    tv = final_values(m, tv_col)
    covered = final_values(m, "modes_covered")
    target_modes = int(final_values(m, "modes_target").max())
    top = final_values(m, "max_arm")
    lo, hi = int(covered.min()), int(covered.max())
    modes = f"{lo}" if lo == hi else f"{lo}-{hi}"
    return f"TV {tv.mean():.3f}\nmodes {modes}/{target_modes}\nmax arm {top.mean():.2f}\n{n_seeds} seeds"


def _panel(data: BanditData, objective: str, divergence: str, ax: Axes) -> Axes:
    step = int(data.meta["log_steps"][-1])
    pol = policy_matrix(data.policies.where(objective=objective, divergence=divergence), step)
    name = style.label(objective, divergence, data.config["refresh_every"], data.config["epsilon"])
    return draw_policy(
        data.target(1.0),
        pol,
        style.color(objective, divergence),
        name,
        ax=ax,
        note=_note(data, objective, divergence),
    )


@style.house_style
def figure_fig1(data_root: Path) -> Figure:
    """Figure 1 from data_root/fig1 (pi_old fixed) and data_root/onpolicy (its GRPO)."""
    fixed = load_bandit(Path(data_root) / "fig1")
    onpolicy = load_bandit(Path(data_root) / "onpolicy")
    divs = [d for d in fixed.config["divergences"]]
    fig, axes = style.new_figure(2, 1 + len(divs), panel=(2.7, 2.1))
    _panel(fixed, "reinforce", "", axes[0])
    _panel(onpolicy, "reinforce", "", axes[1 + len(divs)])
    for j, div in enumerate(divs):
        _panel(fixed, "lad_theory", div, axes[1 + j])
        _panel(fixed, "lad", div, axes[2 + len(divs) + j])
    for ax in axes[1 + len(divs) :]:
        ax.set_xlabel("arm")
    axes[0].set_ylabel("probability")
    axes[1 + len(divs)].set_ylabel("probability")
    handles = [
        Patch(color=style.COLORS["target"], label=style.TARGET_LABEL),
        Line2D([], [], color="#555555", marker="o", ms=2, label="final policy, mean over seeds"),
        Patch(color="#555555", alpha=0.25, label="min-max over seeds"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=8)
    cfg = fixed.config
    fig.suptitle(
        f"Bandit, {fixed.meta['landscape']['name']} landscape, K={len(fixed.rewards)}: final policy after "
        f"{cfg['steps']} steps (Adam lr {cfg['lrs'][0]:g}, G={cfg['num_generations']}, eta=1). "
        "GRPO = advantage maximisation (unclipped surrogate); LAD and the top-left GRPO keep $\\pi_{old}$ "
        "fixed at the uniform initial policy.",
        fontsize=8.5,
    )
    return fig


@style.house_style
def draw_landscape(
    rewards: np.ndarray,
    target: np.ndarray,
    mode_of_arm: np.ndarray,
    name: str,
    ax: Axes | None = None,
) -> Axes:
    """P_A bars coloured by mode, rewards as a line on a second axis."""
    ax = style.axes_or_new(ax)
    palette = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9"]
    arms = np.arange(len(rewards))
    colors = [palette[int(m) % len(palette)] if m >= 0 else "#BBBBBB" for m in mode_of_arm]
    ax.bar(arms, target, width=0.9, color=colors, alpha=0.8)
    ax.set_xlabel("arm")
    ax.set_ylabel("$P_A$ ($\\eta$ = 1)")
    n_modes = len({int(m) for m in mode_of_arm if m >= 0})
    ax.set_title(f"{name} ({n_modes} mode{'s' if n_modes != 1 else ''})")
    twin = ax.twinx()
    twin.plot(arms, rewards, color="black", lw=1.0)
    twin.set_ylabel("reward", color="black")
    twin.grid(False)
    twin.spines["right"].set_visible(True)
    return ax


@style.house_style
def figure_landscapes(data_root: Path) -> Figure:
    """Every built-in landscape from data_root/landscapes/landscapes.csv."""
    table = read_csv(Path(data_root) / "landscapes" / "landscapes.csv", keep_str=("landscape",))
    names = table.unique("landscape")
    fig, axes = style.new_figure(1, len(names), panel=(3.0, 2.3))
    for ax, name in zip(axes, names, strict=True):
        t = table.where(landscape=name)
        draw_landscape(t["reward"], t["target"], t["mode"], name, ax=ax)
    return fig


@dataclass
class LandscapeRun:
    """The options of `lad bandit landscape`: the temperature drawn and where the files go."""

    eta: float = field(default=1.0, metadata={"help": "temperature of the P_A drawn (> 0)"})
    out: str | None = field(
        default=None, metadata={"help": "file stem of the .png and .pdf", "flags": ("--out", "-o")}
    )

    def __post_init__(self) -> None:
        if not self.eta > 0:
            raise ValueError(f"eta={self.eta} is not valid; expected a number > 0")


def save_landscape(land: Any, run: LandscapeRun, command: str | None = None) -> list[Path]:
    """Draw a bandit Landscape (rewards and P_A at run.eta) into run.out (.png and .pdf)."""
    ax = draw_landscape(land.array(), land.target(run.eta), land.owner(), land.name)
    stem = run.out or f"results/bandit/landscape-{land.name.replace(':', '-')}"
    return style.save(ax.figure, stem, command=command)
