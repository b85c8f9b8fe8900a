"""The f-divergences of docs/method.md section 6, evaluated in log space.

Every divergence is stored through its *perspective* q·f(p/q), evaluated from log p and log q.
That single function serves both LAD losses:

- practical loss (docs/method.md section 5): e^a·f(r·e^-a) = perspective(log_p=log r, log_q=a);
- theoretical loss (section 4): D_f(P_pi || P_A) = sum_y perspective(log P_pi(y), log P_A(y)).

Working from logs keeps |log r| <= 50 and |a| <= 50 finite in float32 for every divergence except
pearson and neyman, whose values reach e^(2|log r| + |a|) (about e^150 at the far corner, past
float32's e^88): use float64 there.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from labkit.registry import Registry

Tensor = torch.Tensor
LOG2 = math.log(2.0)


@dataclass(frozen=True)
class Divergence:
    """One f-divergence.

    Attributes:
        name: registry key.
        perspective: (log_p, log_q) -> q·f(p/q), elementwise, broadcasting.
        derivative: log_x -> f'(x), elementwise; at a kink (tv at x = 1) the subgradient 0.
        grad_log_p: (log_p, log_q) -> d perspective / d log_p = p·f'(p/q), written per
            divergence so that it stays finite wherever the perspective is (p·f' as a product
            of exp(log p) and f' would overflow first: rkl's is -q, not p·(-q/p)).
        fprime_at_1: f'(1), used by the standardised form f(x) - f'(1)(x - 1).
        strict: the paper's "strict" group (tv, hellinger, js); False for kl, rkl, jeffreys.
        group: "strict", "non-strict" or "extra" (pearson, neyman).
    """

    name: str
    perspective: Callable[[Tensor, Tensor], Tensor]
    derivative: Callable[[Tensor], Tensor]
    fprime_at_1: float
    group: str
    grad_log_p: Callable[[Tensor, Tensor], Tensor]

    @property
    def strict(self) -> bool:
        return self.group == "strict"

    def f(self, log_x: Tensor) -> Tensor:
        """f(x) from log x (the perspective with q = 1)."""
        return self.perspective(log_x, torch.zeros_like(log_x))

    def weighted(self, log_p: Tensor, log_q: Tensor, standardized: bool = False) -> Tensor:
        """q·f(p/q), optionally with f replaced by f(x) - f'(1)(x - 1).

        The standardised form has the same minimisers and f'(1) = 0, so that at r = 1 an update
        carries no constant weight (lower Monte-Carlo variance for kl and rkl).
        """
        out = self.perspective(log_p, log_q)
        if standardized and self.fprime_at_1 != 0.0:
            out = out - self.fprime_at_1 * (log_p.exp() - log_q.exp())
        return out

    def weighted_grad(self, log_p: Tensor, log_q: Tensor, standardized: bool = False) -> Tensor:
        """d weighted(log_p, log_q) / d log_p = p·f'(p/q) (minus f'(1)·p when standardised):
        the closed-form backward of the LAD losses (log_q carries no gradient in them)."""
        out = self.grad_log_p(log_p, log_q)
        if standardized and self.fprime_at_1 != 0.0:
            out = out - self.fprime_at_1 * log_p.exp()
        return out

    def weight(self, log_x: Tensor, standardized: bool = False) -> Tensor:
        """f'(x) from log x: the per-sample policy-gradient weight of LAD (docs/method.md section 5)."""
        w = self.derivative(log_x)
        return w - self.fprime_at_1 if standardized else w


DIVERGENCES: Registry[Divergence] = Registry("f-divergence", "divergence")


def _add(name: str, perspective, derivative, fprime_at_1: float, group: str, grad) -> None:
    DIVERGENCES.add(name, Divergence(name, perspective, derivative, fprime_at_1, group, grad))


def _exp(t: Tensor) -> Tensor:
    return t.exp()


# f(x) = x log x
_add(
    "kl",
    lambda lp, lq: _exp(lp) * (lp - lq),
    lambda lx: lx + 1.0,
    1.0,
    "non-strict",
    lambda lp, lq: _exp(lp) * (lp - lq + 1.0),
)
# f(x) = -log x
_add(
    "rkl",
    lambda lp, lq: _exp(lq) * (lq - lp),
    lambda lx: -torch.exp(-lx),
    -1.0,
    "non-strict",
    lambda lp, lq: -_exp(lq).expand(torch.broadcast_shapes(lp.shape, lq.shape)),
)
# f(x) = (x - 1) log x
_add(
    "jeffreys",
    lambda lp, lq: (_exp(lp) - _exp(lq)) * (lp - lq),
    lambda lx: lx + 1.0 - torch.exp(-lx),
    0.0,
    "non-strict",
    lambda lp, lq: _exp(lp) * (lp - lq + 1.0) - _exp(lq),
)
# f(x) = |x - 1|
_add(
    "tv",
    lambda lp, lq: (_exp(lp) - _exp(lq)).abs(),
    lambda lx: torch.sign(lx),
    0.0,
    "strict",
    lambda lp, lq: _exp(lp) * torch.sign(lp - lq),
)
# f(x) = (sqrt x - 1)^2
_add(
    "hellinger",
    lambda lp, lq: (torch.exp(0.5 * lq) * torch.expm1(0.5 * (lp - lq))).square(),
    lambda lx: 1.0 - torch.exp(-0.5 * lx),
    0.0,
    "strict",
    lambda lp, lq: _exp(lp) - torch.exp(0.5 * (lp + lq)),
)


# f(x) = 1/2 [x log x - (x + 1) log((x + 1)/2)]. With z = log x: q f(p/q) = 1/2 [(p + q)(log 2 -
# softplus(z)) + p z]; one softplus, and no two large terms are subtracted.
def _js(lp: Tensor, lq: Tensor) -> Tensor:
    z = lp - lq
    p = _exp(lp)
    return 0.5 * ((p + _exp(lq)) * (LOG2 - F.softplus(z)) + p * z)


_add(
    "js",
    _js,
    lambda lx: 0.5 * (LOG2 - F.softplus(-lx)),
    0.0,
    "strict",
    lambda lp, lq: 0.5 * _exp(lp) * (LOG2 - F.softplus(lq - lp)),
)
# Squares of sqrt(q)·expm1(..) below: accurate near x = 1, and no intermediate exceeds the result.
# f(x) = (x - 1)^2
_add(
    "pearson",
    lambda lp, lq: (torch.exp(0.5 * lq) * torch.expm1(lp - lq)).square(),
    lambda lx: 2.0 * torch.expm1(lx),
    0.0,
    "extra",
    lambda lp, lq: 2.0 * _exp(lp) * torch.expm1(lp - lq),
)


def _neyman_grad(lp: Tensor, lq: Tensor) -> Tensor:
    # p f'(p/q) = p - q^2/p = -(sqrt(p) expm1(y)) (sqrt(p) (expm1(y) + 2)), y = log q - log p:
    # expm1(2y) split in two so that no factor overflows before the product does
    # (in place on fresh temporaries: this runs in every LAD-neyman backward, and the
    # allocations cost as much as the arithmetic on CPU)
    s = torch.exp(lp * 0.5)
    u = torch.expm1(lq - lp).mul_(s)
    return u.add(s, alpha=2.0).mul_(u).neg_()


# f(x) = (x - 1)^2 / x
_add(
    "neyman",
    lambda lp, lq: (torch.exp(0.5 * lp) * torch.expm1(lq - lp)).square(),
    lambda lx: -torch.expm1(-2.0 * lx),
    0.0,
    "extra",
    _neyman_grad,
)


def get_divergence(name: str) -> Divergence:
    """Look a divergence up by name; unknown names raise a ValueError listing the valid ones."""
    return DIVERGENCES.get(name)
