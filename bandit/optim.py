"""Adam and SGD over a (R, K) parameter with one learning rate per run.

torch.optim keeps one learning rate per parameter group, so a sweep over learning rates would need
R groups (a Python loop over runs). These updates are the same formulas with lr as an (R, 1)
tensor; `adam_step` matches torch.optim.Adam (no weight decay, no amsgrad) to float rounding, which
tests/test_bandit_trainer.py checks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

Tensor = torch.Tensor


@dataclass
class AdamState:
    """First and second moments (R, K) and the shared step count."""

    exp_avg: Tensor
    exp_avg_sq: Tensor
    step: int = 0

    @classmethod
    def zeros_like(cls, param: Tensor) -> AdamState:
        return cls(torch.zeros_like(param), torch.zeros_like(param))


def adam_bias(step: int | Tensor, betas: tuple[float, float]) -> tuple:
    """Adam's bias corrections (1 - beta1^t, sqrt(1 - beta2^t)) at step t >= 1 (an int, or a
    float64 tensor of steps for a table of them)."""
    beta1, beta2 = betas
    return 1.0 - beta1**step, (1.0 - beta2**step) ** 0.5


@torch.no_grad()
def adam_step(
    param: Tensor,
    grad: Tensor,
    state: AdamState,
    lr: Tensor,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    bias: tuple[Tensor, Tensor] | None = None,
) -> None:
    """In place: one Adam update of param (R, K) with per-run lr (R, 1).

    bias: `adam_bias` of this step, precomputed (0-d tensors). The compiled step passes them: a
    power computed from a step tensor lands inside inductor's fused loop, once per vector of
    every row, and costs more than the rest of Adam."""
    beta1, beta2 = betas
    state.step += 1
    state.exp_avg.lerp_(grad, 1.0 - beta1)
    state.exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
    bias1, bias2_sqrt = adam_bias(state.step, betas) if bias is None else bias
    denom = (state.exp_avg_sq.sqrt() / bias2_sqrt).add_(eps)
    param.sub_((lr / bias1) * state.exp_avg / denom)


@torch.no_grad()
def sgd_step(param: Tensor, grad: Tensor, lr: Tensor) -> None:
    """In place: param -= lr * grad, lr (R, 1)."""
    param.sub_(lr * grad)
