"""Numerical check of the paper's Theorem B.1: practical LAD is an O(delta)-accurate surrogate of
theoretical LAD inside a trust region of size delta (docs/method.md section 5; the statement itself is
not available, so this module fixes a precise reading and measures it).

Reading. The trust-region problem max E_pi[A] - eta KL(pi || pi_old) has the optimum
pi* = pi_old e^{A/eta} / Z with Z = E_pi_old[e^{A/eta}]; its size is delta = KL(pi* || pi_old), which
shrinks as eta grows (delta ~ Var_pi_old(A) / (2 eta^2)). "Near pi_old" means every policy on the
logit segment from pi_old to pi* (all inside the trust region). Both losses are evaluated exactly
through labkit: the practical one as the pi_old-weighted mean over all arms (`compute_loss` with
the mask set to pi_old, i.e. the expectation its samples estimate), divided by the constant Z so
that its minimum value matches; the theoretical one with `theoretical_lad_loss`.

With pi_old uniform the two differ only by Z inside f: practical / Z = sum pi* f(pi / (Z pi*)) and
theory = sum pi* f(pi / pi*); since log Z = O(delta) the gap in values and in gradients (w.r.t. the
logits) is O(delta) or smaller (exactly linear when f'(1) != 0, as for kl; smaller, about
delta^1.5, when f'(1) = 0). `surrogate_gap` reports the largest gap on the segment per delta, and
`loglog_slope` the measured order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from labkit.config import LossConfig
from labkit.lad import theoretical_lad_loss, trust_region_target
from labkit.losses import compute_loss

Tensor = torch.Tensor
GAP_COLUMNS = (
    "divergence",
    "eta",
    "delta",
    "log_z",
    "loss_gap",
    "grad_gap",
    "loss_scale",
    "grad_scale",
)


def _losses(
    logits: Tensor, log_pi_old: Tensor, adv: Tensor, divergence: str, eta: float
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Practical (exact expectation) and theoretical losses (P,) at P policies, with gradients."""
    p, k = logits.shape
    logits = logits.detach().requires_grad_(True)
    log_pi = torch.log_softmax(logits, -1)
    old = log_pi_old.expand(p, k)
    a = adv.expand(p, k)
    cfg = LossConfig(loss_mode="lad", divergence=divergence, eta=eta)
    practical, _ = compute_loss(
        old.unsqueeze(-1), log_pi.unsqueeze(-1), a, old.exp().unsqueeze(-1), cfg
    )
    theory = theoretical_lad_loss(log_pi, old, a, divergence, eta)
    (g_p,) = torch.autograd.grad(practical.sum(), logits, retain_graph=True)
    (g_t,) = torch.autograd.grad(theory.sum(), logits)
    return practical.detach(), theory.detach(), g_p, g_t


def surrogate_gap(
    rewards: Sequence[float],
    divergences: Sequence[str],
    etas: Sequence[float],
    n_points: int = 21,
    pi_old_logits: Sequence[float] | None = None,
) -> list[dict[str, float | str]]:
    """One row per (divergence, eta): delta = KL(pi* || pi_old), log Z, and the largest gaps on the
    segment pi_old -> pi*: loss_gap = max |L_practical / Z - L_theory|, grad_gap = max of the L2
    norm of the gradient difference; loss_scale and grad_scale are the largest |L_theory| and
    gradient norm there (to read the gaps against). float64 throughout."""
    if n_points < 2:
        raise ValueError(f"n_points must be >= 2, got {n_points}")
    r = torch.tensor(list(rewards), dtype=torch.float64)
    k = r.numel()
    old_logits = (
        torch.zeros(k, dtype=torch.float64)
        if pi_old_logits is None
        else torch.tensor(list(pi_old_logits), dtype=torch.float64)
    )
    log_pi_old = torch.log_softmax(old_logits, -1)
    adv = r - log_pi_old.exp() @ r
    s = torch.linspace(0.0, 1.0, n_points, dtype=torch.float64).unsqueeze(-1)
    rows: list[dict[str, float | str]] = []
    for eta in etas:
        if not eta > 0:
            raise ValueError(f"eta must be > 0, got {eta}")
        log_target = trust_region_target(log_pi_old, adv, eta)
        delta = float((log_target.exp() * (log_target - log_pi_old)).sum())
        log_z = float(torch.logsumexp(log_pi_old + adv / eta, -1))
        logits = log_pi_old + s * (log_target - log_pi_old)  # (P, K) the segment
        for div in divergences:
            practical, theory, g_p, g_t = _losses(logits, log_pi_old, adv, div, eta)
            scale = math.exp(-log_z)
            rows.append(
                {
                    "divergence": div,
                    "eta": float(eta),
                    "delta": delta,
                    "log_z": log_z,
                    "loss_gap": float((practical * scale - theory).abs().max()),
                    "grad_gap": float((g_p * scale - g_t).norm(dim=-1).max()),
                    "loss_scale": float(theory.abs().max()),
                    "grad_scale": float(g_t.norm(dim=-1).max()),
                }
            )
    return rows


def loglog_slope(x: Sequence[float], y: Sequence[float]) -> float:
    """Least-squares slope of log y against log x (the order p in y ~ x^p)."""
    lx, ly = np.log(np.asarray(x, dtype=float)), np.log(np.asarray(y, dtype=float))
    return float(np.polyfit(lx, ly, 1)[0])
