"""The policy-loss registry, verl's loss aggregation, and the regularised objective.

Every policy loss has verl's signature (so it can be registered in verl unchanged)::

    fn(old_log_prob, log_prob, advantages, response_mask, loss_agg_mode, config,
       *, rollout_is_weights=None, metrics=True, **extras) -> (loss, metrics)

Shapes: log-probs, advantages and mask are (..., B, T) — B responses of T tokens, with any leading
run axes (the bandit passes (R, G, 1)); `advantages` may also be (..., B), one value per response.
`loss` has the leading shape (a scalar for 2-D inputs); `metrics` maps verl/TRL-style keys to
detached scalar tensors (no `.item()` here: a device sync belongs to the logger); `metrics=False`
returns an empty dict and skips their cost (the bandit, which logs exact metrics of its own).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch

from labkit.config import AGG_MODES, LossConfig
from labkit.registry import Registry

Tensor = torch.Tensor
Metrics = dict[str, Tensor]


class PolicyLossFn(Protocol):
    def __call__(
        self,
        old_log_prob: Tensor,
        log_prob: Tensor,
        advantages: Tensor,
        response_mask: Tensor,
        loss_agg_mode: str,
        config: LossConfig,
        *,
        rollout_is_weights: Tensor | None = None,
        metrics: bool = True,
        **extras: object,
    ) -> tuple[Tensor, Metrics]: ...


POLICY_LOSSES: Registry[PolicyLossFn] = Registry("policy loss", "loss_mode")


def register_policy_loss(name: str) -> Callable[[PolicyLossFn], PolicyLossFn]:
    return POLICY_LOSSES.register(name)


def get_policy_loss(name: str) -> PolicyLossFn:
    return POLICY_LOSSES.get(name)


def check_inputs(
    old_log_prob: Tensor, log_prob: Tensor, advantages: Tensor, response_mask: Tensor
) -> tuple[Tensor, Tensor]:
    """Validate shapes and dtypes; return (advantages as (..., B, T), mask as log_prob's dtype).

    Raises ValueError naming the argument, the value and what was expected.
    """
    if log_prob.dim() < 2:
        raise ValueError(f"log_prob must have shape (..., B, T), got {tuple(log_prob.shape)}")
    for name, t in (
        ("log_prob", log_prob),
        ("old_log_prob", old_log_prob),
        ("advantages", advantages),
    ):
        if not t.is_floating_point():
            raise ValueError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")
    if old_log_prob.shape != log_prob.shape:
        raise ValueError(
            f"old_log_prob has shape {tuple(old_log_prob.shape)}, expected log_prob's {tuple(log_prob.shape)}"
        )
    if response_mask.shape != log_prob.shape:
        raise ValueError(
            f"response_mask has shape {tuple(response_mask.shape)}, expected log_prob's {tuple(log_prob.shape)}"
        )
    if response_mask.is_complex():
        raise ValueError(
            f"response_mask must be bool, integer or float, got dtype {response_mask.dtype}"
        )
    if advantages.shape == log_prob.shape[:-1]:
        advantages = advantages.unsqueeze(-1).expand_as(log_prob)
    elif advantages.shape != log_prob.shape:
        raise ValueError(
            f"advantages has shape {tuple(advantages.shape)}, expected {tuple(log_prob.shape)} "
            f"(per token) or {tuple(log_prob.shape[:-1])} (per response)"
        )
    mask = response_mask.to(log_prob.dtype)
    if not bool(mask.any()):
        raise ValueError("response_mask is all zeros: there is no token to compute a loss on")
    return advantages, mask


def masked_mean(x: Tensor, mask: Tensor, dim: int | tuple[int, ...] | None = None) -> Tensor:
    """Mean of x over the entries where mask is 1 (0 where there are none, never NaN)."""
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def agg_loss(
    loss_mat: Tensor, mask: Tensor, loss_agg_mode: str, loss_scale_factor: float | None = None
) -> Tensor:
    """Reduce a (..., B, T) loss matrix over its last two axes, with verl's mode names.

    - token-mean: sum over valid tokens / number of valid tokens (TRL `bnpo`/`dapo`).
    - seq-mean-token-sum: per-response token sum, mean over responses.
    - seq-mean-token-mean: per-response token mean, mean over responses (TRL `grpo`).
    - seq-mean-token-sum-norm: sum / (B * loss_scale_factor), a constant divisor (Dr. GRPO, TRL
      `dr_grpo`); loss_scale_factor defaults to T (the max completion length). verl 0.9.1 divides
      by (valid responses x factor) instead; the two differ only when a response is fully masked.
    Responses with no valid token are left out of the response means.
    """
    if loss_agg_mode == "token-mean":
        return masked_mean(loss_mat, mask, dim=(-2, -1))
    seq_valid = (mask.sum(-1) > 0).to(loss_mat.dtype)
    n_seq = seq_valid.sum(-1).clamp(min=1)
    if loss_agg_mode == "seq-mean-token-sum":
        return (loss_mat * mask).sum(-1).sum(-1) / n_seq
    if loss_agg_mode == "seq-mean-token-mean":
        return (masked_mean(loss_mat, mask, dim=-1) * seq_valid).sum(-1) / n_seq
    if loss_agg_mode == "seq-mean-token-sum-norm":
        scale = float(loss_mat.shape[-1] if loss_scale_factor is None else loss_scale_factor)
        return (loss_mat * mask).sum((-2, -1)) / (loss_mat.shape[-2] * scale)
    raise ValueError(
        f"loss_agg_mode={loss_agg_mode!r} is not valid; expected one of {list(AGG_MODES)}"
    )


def log_ratio(old_log_prob: Tensor, log_prob: Tensor, mask: Tensor, level: str) -> Tensor:
    """log r per token, or one per response broadcast over its tokens. Shape (..., B, T).

    level: "token"; "sequence-sum" (log of the sequence likelihood ratio); "sequence-mean"
    (its length-normalised form, GSPO's choice).
    """
    lr = log_prob - old_log_prob
    if level == "token":
        return lr
    seq = (lr * mask).sum(-1, keepdim=True)
    if level == "sequence-mean":
        seq = seq / mask.sum(-1, keepdim=True).clamp(min=1)
    elif level != "sequence-sum":
        raise ValueError(
            f"ratio_level={level!r} is not valid; expected token, sequence-sum, sequence-mean"
        )
    return seq.expand_as(lr)


def kl_penalty(log_prob: Tensor, ref_log_prob: Tensor, estimator: str) -> Tensor:
    """Per-token estimate of KL(pi_theta || pi_ref) from samples of pi_theta (Schulman's k1/k2/k3).

    k1 = log pi - log ref; k2 = (log pi - log ref)^2 / 2; k3 = e^{ref - log pi} - (ref - log pi) - 1
    (unbiased and >= 0; verl `low_var_kl`, TRL's only one). Shape follows the inputs.
    """
    d = ref_log_prob - log_prob
    if estimator == "k1":
        return -d
    if estimator == "k2":
        return 0.5 * d.square()
    if estimator == "k3":
        return torch.expm1(d) - d
    raise ValueError(f"kl_estimator={estimator!r} is not valid; expected one of ['k1', 'k2', 'k3']")


def compute_loss(
    old_log_prob: Tensor,
    log_prob: Tensor,
    advantages: Tensor,
    response_mask: Tensor,
    config: LossConfig,
    *,
    ref_log_prob: Tensor | None = None,
    entropy: Tensor | None = None,
    rollout_is_weights: Tensor | None = None,
    metrics: bool = True,
    **extras: object,
) -> tuple[Tensor, Metrics]:
    """The full objective: the registered policy loss, + beta * KL to the reference,
    - entropy_coef * entropy, each aggregated with config.loss_agg_mode (as verl's actor does).

    ref_log_prob (..., B, T) is needed when config.beta > 0; entropy (..., B, T) when
    config.entropy_coef > 0. metrics=False returns an empty metrics dict.
    """
    fn = get_policy_loss(config.loss_mode)
    loss, out = fn(
        old_log_prob,
        log_prob,
        advantages,
        response_mask,
        config.loss_agg_mode,
        config,
        rollout_is_weights=rollout_is_weights,
        ref_log_prob=ref_log_prob,
        metrics=metrics,
        **extras,
    )
    mask = response_mask.to(log_prob.dtype)
    if config.beta > 0:
        if ref_log_prob is None:
            raise ValueError(
                f"beta={config.beta} > 0 needs ref_log_prob (the reference policy's log-probs)"
            )
        kl = agg_loss(
            kl_penalty(log_prob, ref_log_prob, config.kl_estimator), mask, config.loss_agg_mode
        )
        loss = loss + config.beta * kl
        if metrics:
            out["actor/kl_loss"] = kl.detach().mean()
    if config.entropy_coef > 0:
        if entropy is None:
            raise ValueError(f"entropy_coef={config.entropy_coef} > 0 needs the per-token entropy")
        ent = agg_loss(entropy, mask, config.loss_agg_mode)
        loss = loss - config.entropy_coef * ent
        if metrics:
            out["actor/entropy_bonus"] = ent.detach().mean()
    return loss, out
