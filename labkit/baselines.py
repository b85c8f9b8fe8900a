"""Baseline objectives in the policy-loss interface (see labkit.losses for the signature).

- `reinforce`: the unclipped importance-weighted surrogate -A·r; at r = 1 its gradient is the
  vanilla policy gradient -A·grad log pi. With a fixed pi_old it is pure advantage maximisation
  (the "GRPO" of the paper's Figure 1).
- `grpo`: PPO's clipped surrogate with asymmetric clip (epsilon, epsilon_high) and optional dual
  clip (clip_ratio_c). Dr. GRPO is this loss with loss_agg_mode="seq-mean-token-sum-norm" and the
  `dr_grpo` advantage estimator.
- `clip_cov`, `kl_cov`: "The Entropy Mechanism of RL for Reasoning LMs" (arXiv 2505.22617): cut the
  gradient of / add |log r| to a few tokens of highest covariance between log-prob and advantage.
- `flowrl`: FlowRL trajectory balance w·(log Z + mean log pi - kappa·A - mean log pi_ref)^2 with a
  learned log-partition `log_z` (..., B); kappa plays FlowRL's beta (reward scale).
All accept ratio_level (token or sequence, GSPO-style) for the importance ratio where they use one.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from labkit.config import LossConfig
from labkit.losses import (
    Metrics,
    agg_loss,
    check_inputs,
    log_ratio,
    masked_mean,
    register_policy_loss,
)

Tensor = torch.Tensor


def _ratio(
    old_log_prob: Tensor, log_prob: Tensor, mask: Tensor, config: LossConfig
) -> tuple[Tensor, Tensor]:
    lr = log_ratio(old_log_prob.detach(), log_prob, mask, config.ratio_level)
    # clamp as verl does: an exploding ratio in one token must not overflow the loss
    return lr, torch.exp(lr.clamp(-20.0, 20.0))


def _finish(
    loss_mat: Tensor,
    mask: Tensor,
    lr: Tensor,
    loss_agg_mode: str,
    rollout_is_weights: Tensor | None,
    metrics: bool,
    extra: Callable[[], Metrics] = dict,
) -> tuple[Tensor, Metrics]:
    """Aggregate; with metrics, the common ones plus extra()'s (a thunk: nothing is computed
    when metrics are off)."""
    if rollout_is_weights is not None:
        loss_mat = loss_mat * rollout_is_weights.detach()
    loss = agg_loss(loss_mat, mask, loss_agg_mode)
    if not metrics:
        return loss, {}
    metrics = {
        "actor/pg_loss": loss.detach().mean(),
        "actor/ppo_kl": masked_mean(-lr.detach(), mask),
    }
    metrics.update({k: v.detach() for k, v in extra().items()})
    return loss, metrics


@register_policy_loss("reinforce")
def reinforce_loss(
    old_log_prob: Tensor,
    log_prob: Tensor,
    advantages: Tensor,
    response_mask: Tensor,
    loss_agg_mode: str = "token-mean",
    config: LossConfig | None = None,
    *,
    rollout_is_weights: Tensor | None = None,
    metrics: bool = True,
    **extras: object,
) -> tuple[Tensor, Metrics]:
    """-A·r per token (no clip). Shapes as in `labkit.lad.lad_loss`."""
    config = config or LossConfig()
    advantages, mask = check_inputs(old_log_prob, log_prob, advantages, response_mask)
    lr, ratio = _ratio(old_log_prob, log_prob, mask, config)
    return _finish(
        -advantages.detach() * ratio, mask, lr, loss_agg_mode, rollout_is_weights, metrics
    )


def _clipped_surrogate(
    adv: Tensor, ratio: Tensor, config: LossConfig
) -> tuple[Tensor, Tensor, Tensor]:
    """PPO's pessimistic surrogate; returns (loss, clipped-by-range, clipped-by-dual-clip)."""
    loss1 = -adv * ratio
    loss2 = -adv * ratio.clamp(1.0 - config.epsilon, 1.0 + config.clip_high)
    clipped = torch.maximum(loss1, loss2)
    clip_hit = loss2 > loss1
    dual_hit = torch.zeros_like(clip_hit)
    if config.clip_ratio_c is not None:
        loss3 = -adv * config.clip_ratio_c
        dual_hit = (adv < 0) & (clipped > loss3)
        clipped = torch.where(adv < 0, torch.minimum(clipped, loss3), clipped)
    return clipped, clip_hit, dual_hit


@register_policy_loss("grpo")
def grpo_loss(
    old_log_prob: Tensor,
    log_prob: Tensor,
    advantages: Tensor,
    response_mask: Tensor,
    loss_agg_mode: str = "token-mean",
    config: LossConfig | None = None,
    *,
    rollout_is_weights: Tensor | None = None,
    metrics: bool = True,
    **extras: object,
) -> tuple[Tensor, Metrics]:
    """PPO/GRPO clipped surrogate max(-A r, -A clip(r, 1-eps, 1+eps_high)), dual clip for A < 0.

    Metrics: actor/pg_clipfrac (share of tokens where the clip binds), actor/pg_clipfrac_lower
    (dual clip), clip_ratio/low_mean and clip_ratio/high_mean (TRL's split by side).
    """
    config = config or LossConfig()
    advantages, mask = check_inputs(old_log_prob, log_prob, advantages, response_mask)
    lr, ratio = _ratio(old_log_prob, log_prob, mask, config)
    adv = advantages.detach()
    loss_mat, clip_hit, dual_hit = _clipped_surrogate(adv, ratio, config)
    f = lr.dtype

    def extra() -> Metrics:
        return {
            "actor/pg_clipfrac": masked_mean(clip_hit.to(f), mask),
            "actor/pg_clipfrac_lower": masked_mean(dual_hit.to(f), mask),
            "clip_ratio/low_mean": masked_mean(
                ((ratio < 1 - config.epsilon) & (adv < 0)).to(f), mask
            ),
            "clip_ratio/high_mean": masked_mean(
                ((ratio > 1 + config.clip_high) & (adv > 0)).to(f), mask
            ),
        }

    return _finish(loss_mat, mask, lr, loss_agg_mode, rollout_is_weights, metrics, extra)


def _token_covariance(adv: Tensor, log_prob: Tensor, mask: Tensor) -> Tensor:
    """(A - mean A)(log pi - mean log pi) per token, centred over the valid tokens of each run."""
    dims = (-2, -1)
    a_mean = masked_mean(adv, mask, dim=dims)[..., None, None]
    lp = log_prob.detach()
    lp_mean = masked_mean(lp, mask, dim=dims)[..., None, None]
    return (adv - a_mean) * (lp - lp_mean)


def _top_fraction(score: Tensor, eligible: Tensor, n_valid: Tensor, fraction: float) -> Tensor:
    """Boolean (..., B, T): the max(1, int(fraction * n_valid)) highest-scoring eligible entries."""
    flat = torch.where(eligible, score, torch.full_like(score, -torch.inf)).flatten(-2)
    k = (fraction * n_valid).floor().clamp(min=1)  # (...,): one count per run
    rank = flat.argsort(dim=-1, descending=True).argsort(dim=-1)
    chosen = (rank < k.unsqueeze(-1)) & eligible.flatten(-2)
    return chosen.view_as(score)


@register_policy_loss("clip_cov")
def clip_cov_loss(
    old_log_prob: Tensor,
    log_prob: Tensor,
    advantages: Tensor,
    response_mask: Tensor,
    loss_agg_mode: str = "token-mean",
    config: LossConfig | None = None,
    *,
    rollout_is_weights: Tensor | None = None,
    generator: torch.Generator | None = None,
    metrics: bool = True,
    **extras: object,
) -> tuple[Tensor, Metrics]:
    """Clip-Cov: the clipped surrogate, with the gradient cut on clip_cov_ratio of the tokens,
    drawn at random (from `generator`) among unclipped tokens whose covariance lies in
    (clip_cov_lb, clip_cov_ub)."""
    config = config or LossConfig()
    advantages, mask = check_inputs(old_log_prob, log_prob, advantages, response_mask)
    lr, ratio = _ratio(old_log_prob, log_prob, mask, config)
    adv = advantages.detach()
    loss_mat, clip_hit, _ = _clipped_surrogate(adv, ratio, config)
    cov = _token_covariance(adv, log_prob, mask)
    eligible = (mask > 0) & ~clip_hit & (cov > config.clip_cov_lb) & (cov < config.clip_cov_ub)
    noise = torch.rand(cov.shape, generator=generator, device=cov.device, dtype=cov.dtype)
    n_valid = mask.sum((-2, -1))
    cut = _top_fraction(noise, eligible, n_valid, config.clip_cov_ratio)
    loss_mat = torch.where(cut, loss_mat.detach(), loss_mat)

    def extra() -> Metrics:
        return {
            "actor/pg_clipfrac": masked_mean((clip_hit | cut).to(lr.dtype), mask),
            "actor/cov_cut_frac": masked_mean(cut.to(lr.dtype), mask),
        }

    return _finish(loss_mat, mask, lr, loss_agg_mode, rollout_is_weights, metrics, extra)


@register_policy_loss("kl_cov")
def kl_cov_loss(
    old_log_prob: Tensor,
    log_prob: Tensor,
    advantages: Tensor,
    response_mask: Tensor,
    loss_agg_mode: str = "token-mean",
    config: LossConfig | None = None,
    *,
    rollout_is_weights: Tensor | None = None,
    metrics: bool = True,
    **extras: object,
) -> tuple[Tensor, Metrics]:
    """KL-Cov: -A·r, plus ppo_kl_coef·|log r| on the kl_cov_ratio tokens of highest covariance."""
    config = config or LossConfig()
    advantages, mask = check_inputs(old_log_prob, log_prob, advantages, response_mask)
    lr, ratio = _ratio(old_log_prob, log_prob, mask, config)
    adv = advantages.detach()
    cov = _token_covariance(adv, log_prob, mask)
    chosen = _top_fraction(cov, mask > 0, mask.sum((-2, -1)), config.kl_cov_ratio)
    loss_mat = -adv * ratio + chosen.to(lr.dtype) * config.ppo_kl_coef * lr.abs()

    def extra() -> Metrics:
        return {"actor/kl_cov_frac": masked_mean(chosen.to(lr.dtype), mask)}

    return _finish(loss_mat, mask, lr, loss_agg_mode, rollout_is_weights, metrics, extra)


@register_policy_loss("flowrl")
def flowrl_loss(
    old_log_prob: Tensor,
    log_prob: Tensor,
    advantages: Tensor,
    response_mask: Tensor,
    loss_agg_mode: str = "seq-mean-token-mean",
    config: LossConfig | None = None,
    *,
    rollout_is_weights: Tensor | None = None,
    log_z: Tensor | None = None,
    ref_log_prob: Tensor | None = None,
    metrics: bool = True,
    **extras: object,
) -> tuple[Tensor, Metrics]:
    """FlowRL trajectory balance per response:
    w·(log Z(x) + mean_t log pi - kappa·A - mean_t log pi_ref)^2, w = clip(r_seq, 1-eps, 1+eps_high)
    detached, r_seq the length-normalised sequence ratio. `log_z` (..., B) is learned (it gets a
    gradient); without `ref_log_prob` the reference term is 0. The per-response loss is broadcast
    over its tokens before aggregation (use seq-mean-token-mean for one term per response).
    """
    config = config or LossConfig()
    advantages, mask = check_inputs(old_log_prob, log_prob, advantages, response_mask)
    if log_z is None:
        raise ValueError(
            "flowrl needs log_z: the learned log-partition, a tensor of shape (..., B)"
        )
    if log_z.shape != log_prob.shape[:-1]:
        raise ValueError(
            f"log_z has shape {tuple(log_z.shape)}, expected {tuple(log_prob.shape[:-1])}"
        )
    n_tok = mask.sum(-1).clamp(min=1)
    mean_lp = (log_prob * mask).sum(-1) / n_tok
    mean_ref = (ref_log_prob * mask).sum(-1) / n_tok if ref_log_prob is not None else 0.0
    a = masked_mean(advantages.detach(), mask, dim=-1) * config.inverse_temperature
    lr = log_ratio(old_log_prob.detach(), log_prob.detach(), mask, "sequence-mean")
    w = torch.exp(lr[..., 0]).clamp(1.0 - config.epsilon, 1.0 + config.clip_high)
    residual = log_z + mean_lp - a - mean_ref
    seq_loss = w * residual.square()
    loss_mat = seq_loss.unsqueeze(-1).expand_as(log_prob)

    def extra() -> Metrics:
        return {
            "flowrl/residual_abs_mean": residual.detach().abs().mean(),
            "flowrl/log_z_mean": log_z.detach().mean(),
        }

    return _finish(loss_mat, mask, lr, loss_agg_mode, rollout_is_weights, metrics, extra)
