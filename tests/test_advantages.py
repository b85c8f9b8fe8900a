"""Advantage estimators against known groups and a per-group loop reference."""

import math

import pytest
import torch

from labkit import AdvantageConfig, compute_advantages

IDS = torch.tensor([0, 0, 0, 0, 1, 1, 1, 2, 2, 3])
R = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 3.0, 3.0, 5.0])


def test_grpo_known_groups():
    adv = compute_advantages(R, IDS, AdvantageConfig(estimator="grpo", epsilon=0.0))
    s = math.sqrt(1 / 3)  # unbiased std of [1, 0, 1, 0]
    expected = [0.5 / s, -0.5 / s, 0.5 / s, -0.5 / s]
    s1 = math.sqrt(1 / 3)  # [1, 0, 0]: mean 1/3, unbiased var 1/3
    expected += [
        (2 / 3) / s1,
        (-1 / 3) / s1,
        (-1 / 3) / s1,
        0.0,
        0.0,
        0.0,
    ]  # equal group, singleton -> 0
    torch.testing.assert_close(adv, torch.tensor(expected))


def test_dr_grpo_and_rloo_known_groups():
    dr = compute_advantages(R, IDS, AdvantageConfig(estimator="dr_grpo"))
    torch.testing.assert_close(dr[:7], torch.tensor([0.5, -0.5, 0.5, -0.5, 2 / 3, -1 / 3, -1 / 3]))
    rloo = compute_advantages(R, IDS, AdvantageConfig(estimator="rloo"))
    # R_i - mean of the others: group 1 -> 1 - 0, 0 - 0.5, 0 - 0.5
    torch.testing.assert_close(rloo[4:7], torch.tensor([1.0, -0.5, -0.5]))
    torch.testing.assert_close(rloo[:4], torch.tensor([2 / 3, -2 / 3, 2 / 3, -2 / 3]))
    assert torch.all(dr[7:] == 0) and torch.all(rloo[7:] == 0)


def test_equal_groups_give_zero_never_nan():
    r = torch.full((8,), 0.7)
    ids = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    for est in ("grpo", "dr_grpo", "rloo"):
        for scale in ("group", "batch", "none"):
            adv = compute_advantages(r, ids, AdvantageConfig(estimator=est, scale_rewards=scale))
            assert torch.equal(adv, torch.zeros(8)), (est, scale)


def test_none_rewards_are_skipped():
    r = torch.tensor([1.0, float("nan"), 0.0, 1.0])
    adv = compute_advantages(r, torch.zeros(4, dtype=torch.long), AdvantageConfig(epsilon=0.0))
    assert adv[1] == 0
    torch.testing.assert_close(
        adv[[0, 2, 3]], torch.tensor([1 / 3, -2 / 3, 1 / 3]) / math.sqrt(1 / 3)
    )


def _loop_reference(rewards, ids, estimator):
    out = torch.zeros_like(rewards)
    for g in ids.unique():
        idx = (ids == g).nonzero()[:, 0]
        r = rewards[idx]
        if len(r) < 2:
            continue
        if estimator == "grpo":
            out[idx] = (r - r.mean()) / (r.std() + 1e-6) if r.std() > 0 else 0.0
        elif estimator == "dr_grpo":
            out[idx] = r - r.mean()
        else:
            out[idx] = torch.stack([r[i] - (r.sum() - r[i]) / (len(r) - 1) for i in range(len(r))])
    return out


@pytest.mark.parametrize("estimator", ["grpo", "dr_grpo", "rloo"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorised_matches_loop(estimator, seed):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 9, (64,), generator=g)[torch.randperm(64, generator=g)]
    rewards = torch.randint(0, 3, (64,), generator=g).float()
    adv = compute_advantages(rewards, ids, AdvantageConfig(estimator=estimator))
    torch.testing.assert_close(adv, _loop_reference(rewards, ids, estimator))


def test_raw_passes_rewards_through():
    adv = compute_advantages(R, IDS, AdvantageConfig(estimator="raw"))
    assert torch.equal(adv, R)
