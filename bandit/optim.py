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


@torch.no_grad()
def adam_step(
    param: Tensor,
    grad: Tensor,
    state: AdamState,
    lr: Tensor,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> None:
    """In place: one Adam update of param (R, K) with per-run lr (R, 1)."""
    beta1, beta2 = betas
    state.step += 1
    state.exp_avg.lerp_(grad, 1.0 - beta1)
    state.exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
    bias1 = 1.0 - beta1**state.step
    bias2_sqrt = (1.0 - beta2**state.step) ** 0.5
    denom = (state.exp_avg_sq.sqrt() / bias2_sqrt).add_(eps)
    param.sub_((lr / bias1) * state.exp_avg / denom)


@torch.no_grad()
def sgd_step(param: Tensor, grad: Tensor, lr: Tensor) -> None:
    """In place: param -= lr * grad, lr (R, 1)."""
    param.sub_(lr * grad)
