"""Exact metrics of every run, computed over all K arms (no sampling), vectorised over runs.

P_pi is the policy-induced distribution (pi / pi_old) / Z_pi and P_A = softmax(A / eta) the
advantage-induced target (docs/method.md section 3); with pi_old fixed at a uniform initial policy,
P_pi is the policy itself. Columns (all per run):

- tv, kl: TV(P_pi, P_A) = 1/2 sum |P_pi - P_A| and KL(P_pi || P_A), in nats.
- tv_pi: TV(pi, P_A), the policy itself against the target (differs from tv when pi_old is
  refreshed or not uniform).
- entropy: H(pi) in nats; expected_reward: E_pi[reward]; max_arm: the largest single-arm mass.
- modes_target: landscape modes on which P_A puts at least mode_min_mass.
- modes_covered: those of them on which pi puts at least half the mass P_A puts there.
"""

from __future__ import annotations

import torch

Tensor = torch.Tensor

METRICS = (
    "tv",
    "kl",
    "tv_pi",
    "entropy",
    "expected_reward",
    "max_arm",
    "modes_covered",
    "modes_target",
)


@torch.no_grad()
def policy_metrics(
    log_pi: Tensor,
    log_pi_old: Tensor,
    log_pa: Tensor,
    rewards: Tensor,
    modes: Tensor,
    mode_min_mass: float,
) -> Tensor:
    """Args: log_pi, log_pi_old, log_pa (R, K) log-probabilities; rewards (K,); modes (K, M) 0/1.
    Returns (R, len(METRICS)) in the order of METRICS."""
    pa = log_pa.exp()
    log_ppi = torch.log_softmax(log_pi - log_pi_old, dim=-1)
    ppi = log_ppi.exp()
    pi = log_pi.exp()
    tv = 0.5 * (ppi - pa).abs().sum(-1)
    # 0 log 0 = 0: a zero-probability arm contributes nothing
    kl = torch.where(ppi > 0, ppi * (log_ppi - log_pa), torch.zeros_like(ppi)).sum(-1)
    tv_pi = 0.5 * (pi - pa).abs().sum(-1)
    entropy = -torch.where(pi > 0, pi * log_pi, torch.zeros_like(pi)).sum(-1)
    expected_reward = pi @ rewards
    max_arm = pi.max(-1).values
    target_mass = pa @ modes  # (R, M)
    is_target = target_mass >= mode_min_mass
    covered = is_target & (pi @ modes >= 0.5 * target_mass)
    return torch.stack(
        [
            tv,
            kl,
            tv_pi,
            entropy,
            expected_reward,
            max_arm,
            covered.sum(-1).to(pi.dtype),
            is_target.sum(-1).to(pi.dtype),
        ],
        dim=-1,
    )
