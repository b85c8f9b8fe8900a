"""Advantage estimators from outcome rewards and group ids, all with one signature:

    fn(rewards (N,), group_ids (N,) int, config: AdvantageConfig) -> advantages (N,)

Group statistics are vectorised with index_add (no loop over groups). A reward of NaN (a reward
function that returned None) is left out of its group's statistics and gets advantage 0, as in
TRL. A group whose rewards are all equal, or that has a single valid member, gets advantage 0,
never NaN.

- grpo: (R - mean_g) / (std_g + epsilon), std with Bessel's correction (TRL, verl);
  scale_rewards="batch" divides by the batch std, "none" does not divide (= dr_grpo).
- dr_grpo: R - mean_g (Dr. GRPO, "Understanding R1-Zero-like training").
- rloo: R - mean of the other members of the group (leave-one-out baseline).
- raw: R itself (e.g. rewards already centred, or the bandit's exact advantages).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from labkit.config import AdvantageConfig
from labkit.registry import Registry

Tensor = torch.Tensor
EstimatorFn = Callable[[Tensor, Tensor, AdvantageConfig], Tensor]

ESTIMATORS: Registry[EstimatorFn] = Registry("advantage estimator", "estimator")


def _check(rewards: Tensor, group_ids: Tensor) -> None:
    if rewards.dim() != 1 or not rewards.is_floating_point():
        raise ValueError(
            f"rewards must be a 1-D float tensor, got shape {tuple(rewards.shape)} dtype {rewards.dtype}"
        )
    if group_ids.shape != rewards.shape or group_ids.is_floating_point():
        raise ValueError(
            f"group_ids must be an integer tensor of rewards' shape {tuple(rewards.shape)}, "
            f"got shape {tuple(group_ids.shape)} dtype {group_ids.dtype}"
        )


def group_stats(rewards: Tensor, group_ids: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per-sample (count, mean, unbiased std) of the valid (non-NaN) rewards of its group."""
    _check(rewards, group_ids)
    valid = ~torch.isnan(rewards)
    r = torch.where(valid, rewards, torch.zeros_like(rewards))
    _, idx = torch.unique(group_ids, return_inverse=True)
    n_groups = int(idx.max()) + 1 if idx.numel() else 0
    count = torch.zeros(n_groups, dtype=r.dtype, device=r.device).index_add_(
        0, idx, valid.to(r.dtype)
    )
    total = torch.zeros_like(count).index_add_(0, idx, r)
    mean = total / count.clamp(min=1)
    dev = torch.where(valid, r - mean[idx], torch.zeros_like(r))
    sq = torch.zeros_like(count).index_add_(0, idx, dev.square())
    std = (sq / (count - 1).clamp(min=1)).sqrt()
    return count[idx], mean[idx], std[idx]


def _finish(adv: Tensor, rewards: Tensor, count: Tensor) -> Tensor:
    # no baseline information (singleton groups) and skipped samples get exactly 0
    ok = ~torch.isnan(rewards) & (count > 1)
    return torch.where(ok, adv, torch.zeros_like(adv))


@ESTIMATORS.register("grpo")
def grpo_advantages(rewards: Tensor, group_ids: Tensor, config: AdvantageConfig) -> Tensor:
    count, mean, std = group_stats(rewards, group_ids)
    centred = rewards - mean
    if config.scale_rewards == "group":
        # an all-equal group has centred == 0 exactly, so it stays 0 whatever epsilon is
        adv = torch.where(std > 0, centred / (std + config.epsilon), torch.zeros_like(centred))
    elif config.scale_rewards == "batch":
        valid = ~torch.isnan(rewards)
        batch_std = rewards[valid].std() if int(valid.sum()) > 1 else rewards.new_tensor(0.0)
        adv = centred / (batch_std + config.epsilon) if batch_std > 0 else torch.zeros_like(centred)
    else:
        adv = centred
    return _finish(adv, rewards, count)


@ESTIMATORS.register("dr_grpo")
def dr_grpo_advantages(rewards: Tensor, group_ids: Tensor, config: AdvantageConfig) -> Tensor:
    count, mean, _ = group_stats(rewards, group_ids)
    return _finish(rewards - mean, rewards, count)


@ESTIMATORS.register("rloo")
def rloo_advantages(rewards: Tensor, group_ids: Tensor, config: AdvantageConfig) -> Tensor:
    count, mean, _ = group_stats(rewards, group_ids)
    # R - (sum - R)/(n - 1) = n/(n - 1) (R - mean)
    return _finish(count / (count - 1).clamp(min=1) * (rewards - mean), rewards, count)


@ESTIMATORS.register("raw")
def raw_advantages(rewards: Tensor, group_ids: Tensor, config: AdvantageConfig) -> Tensor:
    _check(rewards, group_ids)
    return torch.nan_to_num(rewards, nan=0.0)


def compute_advantages(
    rewards: Tensor, group_ids: Tensor, config: AdvantageConfig | None = None
) -> Tensor:
    """Dispatch to the estimator named by config.estimator (default grpo)."""
    config = config or AdvantageConfig()
    return ESTIMATORS.get(config.estimator)(rewards, group_ids, config)
