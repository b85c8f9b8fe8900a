"""The closed-form gradients (bandit/gradients.py) against autograd through the labkit losses:
every objective x divergence x aggregation the bandit supports, sampled and weighted paths, and
whole training runs that agree step for step."""

import numpy as np
import pytest
import torch

from bandit.config import BanditConfig, expand_runs
from bandit.trainer import OldPolicy, _groups, grad_per_run, loss_per_run, train
from labkit import DIVERGENCES
from labkit.config import AGG_MODES
from tests.test_bandit_trainer import _one_thread  # noqa: F401  (autouse: one intra-op thread)

ALL = dict(
    objectives=("reinforce", "grpo", "kl_cov", "lad_theory", "lad"),
    divergences=tuple(DIVERGENCES.names()),
    etas=(0.5, 2.0),
    n_seeds=2,
    seed=3,
    dtype="float64",
)


def _both(config: BanditConfig, fixed: bool, k: int = 12, step: int = 5):
    runs = expand_runs(config)
    eta = torch.tensor([r.eta for r in runs], dtype=torch.float64)
    seeds = torch.tensor([r.seed for r in runs])
    g = torch.Generator().manual_seed(1)
    rewards = torch.rand(k, generator=g, dtype=torch.float64) * 3
    # logits far enough from pi_old that grpo's clip binds on some samples
    logits = torch.randn(len(runs), k, generator=g, dtype=torch.float64).requires_grad_()
    old = OldPolicy(logits.detach() + 0.3 * torch.randn(len(runs), k, generator=g), fixed, rewards)
    groups = _groups(runs, config, eta, k)
    loss = loss_per_run(config, groups, logits, old, seeds, step)
    (ref,) = torch.autograd.grad(loss.sum(), logits)
    closed = grad_per_run(config, groups, logits.detach(), old, seeds, step)
    return closed, ref


@pytest.mark.parametrize("agg", AGG_MODES)
@pytest.mark.parametrize(
    "extra",
    [
        dict(num_generations=16),  # K <= G: arms weighted by draw counts (by_arm)
        dict(num_generations=5),  # G < K: one entry per sample
        dict(sampling="exact"),  # arms weighted by pi_old
        dict(num_generations=8, advantage="grpo", reward_noise="gaussian"),
        dict(num_generations=8, standardized=True),
        dict(num_generations=8, epsilon=0.05, reward_noise="bernoulli"),
    ],
    ids=["by-arm", "per-sample", "exact", "grpo-adv-noise", "standardized", "tight-clip"],
)
def test_closed_form_gradient_equals_autograd(agg, extra):
    config = BanditConfig(**ALL, loss_agg_mode=agg, **extra)
    closed, ref = _both(config, fixed=extra.get("sampling") != "exact")
    assert closed.shape == ref.shape
    assert ref.abs().max() > 1e-3  # the comparison is not between two zeros
    torch.testing.assert_close(closed, ref, rtol=1e-9, atol=1e-12)


def test_grpo_clip_binds_in_the_gradient_test():
    """The tight-clip case really exercises a clipped gradient: some grpo rows differ from
    reinforce's (the same surrogate without the clip)."""
    config = BanditConfig(**{**ALL, "objectives": ("reinforce", "grpo")}, epsilon=0.05)
    closed, _ = _both(config, fixed=True)
    half = closed.shape[0] // 2
    assert (closed[:half] - closed[half:]).abs().max() > 1e-3


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_training_with_closed_form_equals_autograd(dtype):
    config = BanditConfig(
        **{**ALL, "dtype": dtype},
        steps=30,
        log_every=10,
        refresh_every=7,
        num_generations=24,
        n_arms=20,
        landscape="bimodal",
    )
    closed = train(config)
    ref = train(config.replace(gradient="autograd"))
    tol = 1e-9 if dtype == "float64" else 2e-4
    np.testing.assert_allclose(closed.policies, ref.policies, rtol=0, atol=tol)
    np.testing.assert_allclose(closed.metrics, ref.metrics, rtol=0, atol=max(tol, 1e-6))


def test_gradient_field_is_validated():
    with pytest.raises(
        ValueError, match="gradient='numeric' is not valid; expected closed, compiled or"
    ):
        BanditConfig(gradient="numeric")
