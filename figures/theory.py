"""Figures of the objective itself: how each divergence limits growth, and Theorem B.1.

- `figure_weights` (no data: curves computed from labkit's divergences): (a) the weight an
  on-policy step gives a sample, w(a) = f'(1) - f'(e^{-a}) against a = A/eta (GRPO's is a itself);
  (b) the push on log pi(y) of one sample with a = 1 as its ratio r grows: -r (f'(r e^{-a}) - f'(1))
  for LAD, which stops at r = e^a, against A·r (unclipped GRPO) and the PPO clip. The f'(1) term
  is dropped in both: it sums to zero over pi_old (docs/method.md section 6, "standardised").
- `figure_surrogate` (data: surrogate): the loss and gradient gaps between practical LAD (divided
  by Z = E_pi_old[e^{A/eta}]) and theoretical LAD near pi_old against the trust-region size delta,
  log-log with slope guides (bandit/theory.py states the reading of Theorem B.1).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from figures import style
from figures.io import read_csv
from figures.stats import loglog_slope
from labkit.divergences import get_divergence

WEIGHT_DIVERGENCES = ("kl", "rkl", "hellinger", "js", "tv")


def onpolicy_weight(divergence: str, a: np.ndarray) -> np.ndarray:
    """w(a) = -(f'(e^{-a}) - f'(1)): the policy-gradient weight of a sample at r = 1. The constant
    f'(1) (1 for kl, -1 for rkl) is left out: its term sums to zero in expectation over pi_old."""
    div = get_divergence(divergence)
    return -div.weight(-torch.as_tensor(a, dtype=torch.float64), standardized=True).numpy()


def push(divergence: str, log_r: np.ndarray, a: float) -> np.ndarray:
    """-r (f'(r e^{-a}) - f'(1)): minus the gradient of e^a f(r e^{-a}) with respect to log r,
    without the f'(1) term that cancels in expectation; zero exactly at r = e^a."""
    div = get_divergence(divergence)
    lr = torch.as_tensor(log_r, dtype=torch.float64)
    return (-lr.exp() * div.weight(lr - a, standardized=True)).numpy()


@style.house_style
def draw_weights(a: np.ndarray, ax: Axes | None = None) -> Axes:
    ax = style.axes_or_new(ax)
    ax.plot(a, a, color=style.COLORS["reinforce"], lw=1.2, label="GRPO: $a$")
    for d in WEIGHT_DIVERGENCES:
        ax.plot(
            a,
            onpolicy_weight(d, a),
            color=style.color("lad", d),
            label=f"LAD {style.DIVERGENCE_NAMES[d]}",
        )
    ax.axhline(0, color="black", lw=0.6)
    ax.set_xlabel("advantage $a = A/\\eta$")
    ax.set_ylabel("weight $f'(1) - f'(e^{-a})$ at $r = 1$")
    ax.set_ylim(-3, 5)
    ax.set_title("on-policy weight of a sample")
    return ax


@style.house_style
def draw_push(
    log_r: np.ndarray, a: float = 1.0, epsilon: float = 0.2, ax: Axes | None = None
) -> Axes:
    ax = style.axes_or_new(ax)
    r = np.exp(log_r)
    ax.plot(log_r, a * r, color=style.COLORS["reinforce"], lw=1.2, label="GRPO unclipped: $A r$")
    clipped = np.where(r <= 1 + epsilon, a * r, 0.0)
    ax.plot(
        log_r,
        clipped,
        color=style.COLORS["grpo"],
        ls=":",
        lw=1.4,
        label=f"GRPO clip $\\epsilon$={epsilon:g}",
    )
    for d in WEIGHT_DIVERGENCES:
        ax.plot(
            log_r,
            push(d, log_r, a),
            color=style.color("lad", d),
            label=f"LAD {style.DIVERGENCE_NAMES[d]}",
        )
    ax.axvline(a, color="black", lw=0.8, ls="--")
    ax.text(a, 0.98, " $r = e^{a}$", transform=ax.get_xaxis_transform(), va="top", fontsize=7.5)
    ax.axhline(0, color="black", lw=0.6)
    ax.set_xlabel("$\\log r$ (how far $\\pi$ has moved on this sample)")
    ax.set_ylabel("push on $\\log \\pi(y)$")
    ax.set_ylim(-4, 8)
    ax.set_title(f"one sample with $a$ = {a:g}: LAD stops at its target")
    return ax


@style.house_style
def figure_weights(data_root: Path | None = None) -> Figure:
    """Per-divergence weights (needs no data)."""
    fig, axes = style.new_figure(1, 2, panel=(3.8, 3.0))
    draw_weights(np.linspace(-3, 3, 301), ax=axes[0])
    draw_push(np.linspace(-1.5, 3.0, 301), ax=axes[1])
    axes[1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=7)
    fig.suptitle(
        "How each f-divergence limits growth (docs/method.md section 5): "
        "$\\nabla L = E_{\\pi_{old}}[e^a f'(x)\\, x\\, \\nabla\\log\\pi]$, $x = r e^{-a}$\n"
        "f'(1) is subtracted (its term sums to zero over $\\pi_{old}$), so KL's on-policy weight is GRPO's",
        fontsize=9,
    )
    return fig


def gap_curve(t, value: str) -> tuple[np.ndarray, np.ndarray, float | None]:
    """One divergence's gap against delta: (delta, gap) above rounding level, sorted by delta, and
    the log-log slope on the 4 smallest delta (None when the gap is at rounding level: exact)."""
    order = np.argsort(t["delta"])
    x, y = t["delta"][order], t[value][order]
    ok = y > 1e-12 * max(1.0, float(np.abs(t[value.replace("gap", "scale")]).max()))
    if ok.sum() < 2:
        return x[ok], y[ok], None
    return x[ok], y[ok], loglog_slope(x[ok][:4], y[ok][:4])


@style.house_style
def draw_gaps(table, value: str, ax: Axes | None = None) -> Axes:
    """Gap against delta, one line per divergence; solid: uniform pi_old, dashed: random pi_old."""
    ax = style.axes_or_new(ax)
    for pi_old, ls, alpha in (("uniform", "-", 1.0), ("random", "--", 0.45)):
        sub = table.where(pi_old=pi_old)
        for d in sub.unique("divergence"):
            x, y, slope = gap_curve(sub.where(divergence=d), value)
            if slope is None:
                if pi_old == "uniform":  # a gap at rounding level: the two agree exactly
                    ax.plot(
                        [],
                        [],
                        ls="none",
                        marker="x",
                        color=style.color("lad", d),
                        label=f"{style.DIVERGENCE_NAMES[d]}: 0 (exact)",
                    )
                continue
            name = (
                f"{style.DIVERGENCE_NAMES[d]} (slope {slope:.2f})" if pi_old == "uniform" else None
            )
            ax.plot(
                x,
                y,
                ls=ls,
                marker="o",
                ms=2.5,
                color=style.color("lad", d),
                alpha=alpha,
                label=name,
            )
    x = np.geomspace(table["delta"].min(), table["delta"].max(), 10)
    for p, anchor in ((1.0, 1.0), (1.5, 0.1)):
        ax.plot(
            x, anchor * (x / x[0]) ** p * x[0], color="black", lw=0.8, ls=(0, (1, 3)), alpha=0.7
        )
        ax.text(
            x[-1],
            anchor * (x[-1] / x[0]) ** p * x[0],
            f" $\\delta^{{{p:g}}}$",
            fontsize=7,
            va="center",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("trust-region size $\\delta$ = KL($\\pi^*$ || $\\pi_{old}$)")
    return ax


@style.house_style
def figure_surrogate(data_root: Path) -> Figure:
    """Theorem B.1 check from data_root/surrogate/surrogate.csv."""
    table = read_csv(
        Path(data_root) / "surrogate" / "surrogate.csv", keep_str=("divergence", "pi_old")
    )
    fig, axes = style.new_figure(1, 2, panel=(3.8, 3.0))
    draw_gaps(table, "loss_gap", ax=axes[0])
    axes[0].set_ylabel("max |$L_{practical}/Z - L_{theory}$|")
    axes[0].set_title("loss gap near $\\pi_{old}$")
    draw_gaps(table, "grad_gap", ax=axes[1])
    axes[1].set_ylabel("max ||$\\nabla L_{practical}/Z - \\nabla L_{theory}$||")
    axes[1].set_title("gradient gap near $\\pi_{old}$")
    for ax in axes:
        ax.legend(loc="lower right", fontsize=6.5, title="uniform $\\pi_{old}$", title_fontsize=6.5)
    fig.suptitle(
        "Theorem B.1 check, trimodal bandit: largest gap on the segment $\\pi_{old} \\to \\pi^*$ against $\\delta$\n"
        "solid: uniform $\\pi_{old}$ (slopes fitted on the 4 smallest $\\delta$); dashed: a random $\\pi_{old}$",
        fontsize=8.5,
    )
    return fig
