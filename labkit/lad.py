"""LAD objectives (docs/method.md sections 3-5).

- `lad_loss`: the practical loss, a registered policy loss: per sample e^a f(r e^-a), a = A/eta.
  No clipping, no entropy bonus; pi_old and A carry no gradient. Its gradient per sample is
  r·f'(x)·grad log pi (x = r e^-a): pushed up while x < 1, stopped at r = e^{A/eta}, reversed past it.
- `theoretical_lad_loss`: D_f(P_pi || P_A) with exact normalisers, for an enumerable action set.
- `trust_region_target`: the optimum pi_old·e^{A/eta}/Z (Lemma 3.1) both losses are minimised at.
"""

from __future__ import annotations

import torch

from labkit.config import LossConfig, Scalar
from labkit.divergences import get_divergence
from labkit.losses import (
    Metrics,
    agg_loss,
    check_inputs,
    log_ratio,
    masked_mean,
    register_policy_loss,
)

Tensor = torch.Tensor


class _Weighted(torch.autograd.Function):
    """e^a f(r e^-a) per entry, from log r and a, with a fused closed-form backward.

    Autograd would keep every intermediate of the perspective (for js: two exps, a softplus,
    products) and walk them back; the derivative is known, d/d log r = r·f'(x)
    (`Divergence.weighted_grad`), so forward keeps only its two inputs and backward is one
    elementwise expression. a carries no gradient (it is detached in the loss).
    """

    @staticmethod
    def forward(ctx, log_r: Tensor, a: Tensor, divergence: str, standardized: bool) -> Tensor:
        div = get_divergence(divergence)
        ctx.save_for_backward(log_r, a)
        ctx.div, ctx.standardized = div, standardized
        return div.weighted(log_r, a, standardized)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, None, None, None]:
        log_r, a = ctx.saved_tensors
        g = grad * ctx.div.weighted_grad(log_r, a, ctx.standardized)
        # a broadcast against a smaller log_r: reduce back to log_r's shape
        return g.sum_to_size(log_r.shape), None, None, None


def weighted_divergence(
    log_r: Tensor, a: Tensor, divergence: str, standardized: bool = False
) -> Tensor:
    """e^a f(e^{log r - a}) elementwise (broadcasting), differentiable in log_r through a
    closed-form backward; a is treated as a constant."""
    return _Weighted.apply(log_r, a.detach(), divergence, standardized)


@register_policy_loss("lad")
def lad_loss(
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
    """Practical LAD loss E_{y~pi_old}[e^a f(r e^-a)], a = A/eta.

    Args:
        old_log_prob, log_prob: (..., B, T) log-probs of the sampled tokens under pi_old / pi_theta.
        advantages: (..., B, T) or (..., B); detached inside.
        response_mask: (..., B, T), 1 on response tokens.
        loss_agg_mode: verl aggregation name (see `agg_loss`).
        config: divergence, eta or kappa (float or a tensor broadcasting against advantages),
            ratio_level, standardized.
        rollout_is_weights: optional (..., B, T) importance weights (rollout engine vs trainer).
        metrics: False skips the metrics (an empty dict), for callers that only need the loss.
    Returns:
        loss with the leading shape, and metrics: `lad/log_ratio_mean`, `lad/frac_past_target`
        (share of valid samples with x > 1), `lad/weight_mean` (mean f'(x)), `lad/log_x_mean`,
        `actor/pg_loss`, `actor/ppo_kl`.
    """
    config = config or LossConfig()
    advantages, mask = check_inputs(old_log_prob, log_prob, advantages, response_mask)
    div = get_divergence(config.divergence)
    a = advantages.detach() * config.inverse_temperature
    if config.ratio_level != "token":
        a = masked_mean(a, mask, dim=-1).unsqueeze(-1).expand_as(a)  # one advantage per response
    lr = log_ratio(old_log_prob.detach(), log_prob, mask, config.ratio_level)
    loss_mat = weighted_divergence(lr, a, config.divergence, config.standardized)
    if rollout_is_weights is not None:
        loss_mat = loss_mat * rollout_is_weights.detach()
    loss = agg_loss(loss_mat, mask, loss_agg_mode)
    if not metrics:
        return loss, {}
    with torch.no_grad():
        log_x = lr - a
        out = {
            "actor/pg_loss": loss.mean(),
            "actor/ppo_kl": masked_mean(-lr, mask),
            "lad/log_ratio_mean": masked_mean(lr, mask),
            "lad/log_x_mean": masked_mean(log_x, mask),
            "lad/frac_past_target": masked_mean((log_x > 0).to(lr.dtype), mask),
            # f'(x) can pass float32's range (rkl: e^{a - log r}); clamped for the metric only
            "lad/weight_mean": masked_mean(
                div.weight(log_x, config.standardized).clamp(-1e30, 1e30), mask
            ),
        }
    return loss, out


def advantage_distribution(advantages: Tensor, eta: Scalar) -> Tensor:
    """log P_A(y) = A(y)/eta - log Z_A over the last axis K. Shape (..., K)."""
    return torch.log_softmax(advantages / eta, dim=-1)


def policy_distribution(log_pi: Tensor, log_pi_old: Tensor) -> Tensor:
    """log P_pi(y) = log(pi/pi_old) - log Z_pi over the last axis K. Shape (..., K)."""
    return torch.log_softmax(log_pi - log_pi_old, dim=-1)


def trust_region_target(log_pi_old: Tensor, advantages: Tensor, eta: Scalar) -> Tensor:
    """log of pi* = pi_old e^{A/eta} / Z, the maximiser of E_pi[A] - eta KL(pi || pi_old)."""
    return torch.log_softmax(log_pi_old + advantages / eta, dim=-1)


def theoretical_lad_loss(
    log_pi: Tensor,
    log_pi_old: Tensor,
    advantages: Tensor,
    divergence: str = "js",
    eta: Scalar = 1.0,
    standardized: bool = False,
) -> Tensor:
    """D_f(P_pi || P_A) = sum_y P_A(y) f(P_pi(y)/P_A(y)) with exact normalisers.

    Args:
        log_pi, log_pi_old: (..., K) full log-probabilities of every action under pi_theta, pi_old.
        advantages: (..., K) advantage of every action (no gradient).
        divergence: registry name; eta: temperature (float or tensor broadcasting to (..., 1)).
    Returns:
        (...,) divergence, zero exactly when P_pi = P_A, i.e. when pi = trust_region_target.
    """
    div = get_divergence(divergence)
    log_p = policy_distribution(log_pi, log_pi_old.detach())
    log_q = advantage_distribution(advantages.detach(), eta)
    return div.weighted(log_p, log_q, standardized).sum(-1)
