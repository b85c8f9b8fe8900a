"""Closed-form gradients of the bandit's losses with respect to the softmax logits.

Every bandit loss is a weighted mean over entries i (the G samples, or the K arms weighted by pi_old
or by their draw counts) of a per-entry loss l_i that depends on the logits z only through
lp_i = log pi(a_i) = z[a_i] - logsumexp(z). So

    d loss / d z = (1/W) sum_i w_i c_i (e_{a_i} - pi),    c_i = d l_i / d lp_i,

and c_i has a closed form for each objective (below, r = e^{lp - lp_old}, A the advantage):

- lad (practical): l = e^a f(r e^-a), c = r f'(x), x = r e^-a (standardised: f' - f'(1));
- reinforce: l = -A r (log r clamped to [-20, 20] as in labkit), c = -A r inside the clamp, else 0;
- grpo: PPO's clipped surrogate, c = -A r where the clip does not bind, else 0;
- kl_cov: -A r plus coef |log r| on the highest-covariance samples, c = -A r + coef sign(log r);
- lad_theory: D_f(P_pi || P_A) with log P_pi = log_softmax(z - log pi_old), so
  d/dz = c - P_pi sum(c) with c = P_pi f'(P_pi / P_A).

With one token per response the four verl aggregations are all the same mean, so W is G for the
sampled path and sum_a w_a (clamped at 1, as labkit's masked mean) for the weighted one. These are
the derivatives autograd takes of labkit's losses (same conventions at kinks: sign(0) = 0, a tie
in the clip counts as unclipped), which tests/test_bandit_gradients.py asserts for every
objective x divergence x aggregation; they skip the graph, which is most of a step's cost.
"""

from __future__ import annotations

import torch

from labkit.baselines import _token_covariance, _top_fraction
from labkit.config import LossConfig
from labkit.divergences import get_divergence
from labkit.lad import advantage_distribution, policy_distribution

Tensor = torch.Tensor
_CLAMP = 20.0  # labkit.baselines clamps log r to [-20, 20] before exp


def _inside_clamp(lr: Tensor) -> Tensor:
    return ((lr >= -_CLAMP) & (lr <= _CLAMP)).to(lr.dtype)


def entry_weight(
    config: LossConfig,
    old_log_prob: Tensor,
    log_prob: Tensor,
    advantages: Tensor,
    mask: Tensor | None = None,
) -> Tensor:
    """c = d l / d log_prob for each entry of a registered loss (lad, reinforce, grpo, kl_cov).

    Args: old_log_prob, log_prob, advantages of the same shape (..., N, 1), detached; config as
    given to the loss (eta / kappa may be tensors broadcasting against them); mask (..., N, 1)
    the loss's response mask (kl_cov ranks entries by a covariance under it; default ones).
    Returns: (..., N, 1).
    """
    lr = log_prob - old_log_prob
    adv = advantages
    mode = config.loss_mode
    if mode == "lad":
        div = get_divergence(config.divergence)
        return div.weighted_grad(lr, adv * config.inverse_temperature, config.standardized)
    ratio = torch.exp(lr.clamp(-_CLAMP, _CLAMP))
    c = -adv * ratio * _inside_clamp(lr)
    if mode == "reinforce":
        return c
    if mode == "grpo":
        loss1 = -adv * ratio
        loss2 = -adv * ratio.clamp(1.0 - config.epsilon, 1.0 + config.clip_high)
        keep = ~(loss2 > loss1)
        if config.clip_ratio_c is not None:
            clipped = torch.maximum(loss1, loss2)
            keep = keep & ~((adv < 0) & (clipped > -adv * config.clip_ratio_c))
        return c * keep.to(c.dtype)
    if mode == "kl_cov":
        mask = torch.ones_like(lr) if mask is None else mask
        cov = _token_covariance(adv, log_prob, mask)
        chosen = _top_fraction(cov, mask > 0, mask.sum((-2, -1)), config.kl_cov_ratio)
        return c + chosen.to(c.dtype) * config.ppo_kl_coef * torch.sign(lr)
    raise ValueError(f"no closed-form gradient for loss_mode={mode!r}")


def sampled_grad(c: Tensor, arms: Tensor, pi: Tensor) -> Tensor:
    """(R, K) gradient of the mean over G samples: c (R, G) entry weights, arms (R, G) int64,
    pi (R, K) the current policy."""
    per_arm = torch.zeros_like(pi).scatter_add_(1, arms, c)
    return (per_arm - pi * c.sum(-1, keepdim=True)) / c.shape[-1]


def weighted_grad(c: Tensor, weights: Tensor, pi: Tensor) -> Tensor:
    """(R, K) gradient of the weighted mean over the K arms: c (R, K) entry weights, weights
    (R, K) (pi_old or draw counts), pi (R, K)."""
    wc = weights * c
    total = weights.sum(-1, keepdim=True).clamp(min=1)
    return (wc - pi * wc.sum(-1, keepdim=True)) / total


def theoretical_grad(
    log_pi: Tensor,
    log_pi_old: Tensor,
    advantages: Tensor,
    divergence: str,
    eta: Tensor | float,
    standardized: bool = False,
) -> Tensor:
    """(R, K) gradient of `labkit.theoretical_lad_loss` w.r.t. the logits (same arguments)."""
    div = get_divergence(divergence)
    log_p = policy_distribution(log_pi, log_pi_old)
    log_q = advantage_distribution(advantages, eta)
    c = div.weighted_grad(log_p, log_q, standardized)
    return c - log_p.exp() * c.sum(-1, keepdim=True)
