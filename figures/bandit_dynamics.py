"""The paper's Figure 2: learning dynamics on a bandit small enough to draw (data: `dynamics`).

Three arms, logits (0, u, v): the plane (u, v) is every policy. Contours are the practical LAD
loss (its exact expectation under pi_old = the start policy); lines are the trajectories of GRPO
(unclipped surrogate, fixed pi_old), theoretical LAD and practical LAD from the same start, trained
with SGD on the exact expected loss (no sampling noise) so that the lines show the loss geometry.
One row per divergence; the right panel is TV(P_pi, P_A) over steps.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib import colors as mcolors
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from figures import style
from figures.io import BanditData, Table, load_bandit, read_csv

OBJECTIVES = ("reinforce", "lad_theory", "lad")


def trajectory(policies: Table) -> tuple[np.ndarray, np.ndarray]:
    """(u, v) = (log pi_1 - log pi_0, log pi_2 - log pi_0) at every saved step of one run."""
    steps = np.unique(policies["step"])
    probs = np.zeros((len(steps), 3))
    probs[np.searchsorted(steps, policies["step"]), policies["arm"].astype(int)] = policies["prob"]
    logp = np.log(probs)
    return logp[:, 1] - logp[:, 0], logp[:, 2] - logp[:, 0]


@style.house_style
def draw_loss_landscape(
    u: np.ndarray, v: np.ndarray, loss: np.ndarray, ax: Axes | None = None, levels: int = 14
) -> Axes:
    """Filled contours of loss (len(v), len(u)) on a log colour scale (shifted to be > 0)."""
    ax = style.axes_or_new(ax)
    shifted = loss - loss.min() + 1e-3
    lv = np.geomspace(shifted.min(), shifted.max(), levels)
    ax.contourf(u, v, shifted, levels=lv, cmap="Blues_r", norm=mcolors.LogNorm(), alpha=0.85)
    ax.contour(u, v, shifted, levels=lv, colors="white", linewidths=0.4, alpha=0.6)
    ax.set_xlabel("$u = \\theta_1 - \\theta_0$")
    ax.set_ylabel("$v = \\theta_2 - \\theta_0$")
    ax.set_xlim(u.min(), u.max())
    ax.set_ylim(v.min(), v.max())
    ax.grid(False)
    return ax


@style.house_style
def draw_trajectory(
    u: np.ndarray, v: np.ndarray, color: str, name: str, ax: Axes | None = None, ls: str = "-"
) -> Axes:
    """A path with a dot at every 10th step and a marker at its end."""
    ax = style.axes_or_new(ax)
    ax.plot(u, v, color=color, ls=ls, lw=1.8, label=name)
    ax.plot(u[::10], v[::10], ls="none", marker="o", ms=2.2, color=color)
    ax.plot(u[-1:], v[-1:], ls="none", marker="s", ms=4, color=color)
    return ax


def _target_point(data: BanditData) -> tuple[float, float]:
    """(u, v) of pi* = pi_old e^{A/eta} / Z (eta = 1), where both LAD losses are minimal."""
    start = np.asarray(data.config["init_logits"], dtype=float)
    logits = start + data.rewards  # the baseline shifts every logit alike
    return logits[1] - logits[0], logits[2] - logits[0]


@style.house_style
def figure_fig2(data_root: Path) -> Figure:
    """Figure 2 from data_root/dynamics/{runs, loss_grid.csv}."""
    root = Path(data_root) / "dynamics"
    data = load_bandit(root / "runs")
    grid = read_csv(root / "loss_grid.csv", keep_str=("divergence",))
    divs = data.config["divergences"]
    fig, axes = style.new_figure(len(divs), 2, panel=(3.6, 3.0))
    tu, tv = _target_point(data)
    for row, div in enumerate(divs):
        ax, ax_tv = axes[2 * row], axes[2 * row + 1]
        g = grid.where(divergence=div)
        u, v = np.unique(g["u"]), np.unique(g["v"])
        loss = np.zeros((len(v), len(u)))
        loss[np.searchsorted(v, g["v"]), np.searchsorted(u, g["u"])] = g["loss"]
        draw_loss_landscape(u, v, loss, ax=ax)
        for obj in OBJECTIVES:
            d = "" if obj == "reinforce" else div
            pol = data.policies.where(objective=obj, divergence=d)
            pu, pv = trajectory(pol)
            name = style.label(obj, d)
            draw_trajectory(
                pu,
                pv,
                style.color(obj, d) if obj != "lad_theory" else "#0b3d91",
                name,
                ax=ax,
                ls=style.linestyle(obj),
            )
            m = data.metrics.where(objective=obj, divergence=d)
            ax_tv.plot(
                m["step"],
                np.maximum(m["tv"], 1e-12),  # exact zeros cannot go on a log axis
                color=style.color(obj, d) if obj != "lad_theory" else "#0b3d91",
                ls=style.linestyle(obj),
                label=name,
            )
        s0 = data.config["init_logits"]
        ax.plot(
            [s0[1] - s0[0]],
            [s0[2] - s0[0]],
            marker="o",
            ms=6,
            color="white",
            mec="black",
            ls="none",
            label="start ($\\pi_{old}$)",
        )
        ax.plot(
            [tu],
            [tv],
            marker="*",
            ms=11,
            color="gold",
            mec="black",
            ls="none",
            label="$\\pi^*$ (target)",
        )
        ax.set_title(f"{style.DIVERGENCE_NAMES[div]}: practical LAD loss and trajectories")
        ax_tv.set_yscale("log")
        ax_tv.set_xlabel("step")
        ax_tv.set_ylabel("TV($P_\\pi$, $P_A$)")
        ax_tv.set_title(f"{style.DIVERGENCE_NAMES[div]}: distance to the target")
    axes[0].legend(loc="upper right", fontsize=7, framealpha=0.9, frameon=True)
    cfg = data.config
    fig.suptitle(
        f"3-arm bandit, rewards {tuple(data.rewards.round(2).tolist())}, eta = 1: SGD (lr {cfg['lrs'][0]:g}) on the exact "
        f"expected losses, {cfg['steps']} steps\nGRPO = unclipped surrogate with fixed $\\pi_{{old}}$ (advantage maximisation)",
        fontsize=8.5,
    )
    return fig
