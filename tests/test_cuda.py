"""The core on a GPU: every loss gives the CPU's value and gradient, and the bandit trains the
CPU's runs (skipped without CUDA)."""

import pytest
import torch

from labkit import (
    POLICY_LOSSES,
    LossConfig,
    compute_advantages,
    get_policy_loss,
    theoretical_lad_loss,
)

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _run(name, device, dtype, div="js"):
    g = torch.Generator().manual_seed(0)
    old = -torch.rand(8, 32, generator=g) * 3
    new = old + 0.2 * torch.randn(8, 32, generator=g)
    adv = torch.randn(8, generator=g)
    mask = (torch.rand(8, 32, generator=g) < 0.9).float()
    t = [x.to(device=device, dtype=dtype) for x in (old, new, adv, mask)]
    t[1].requires_grad_()
    loss, _ = get_policy_loss(name)(
        *t,
        "token-mean",
        LossConfig(divergence=div, kappa=4.0),
        log_z=torch.zeros(8, device=device, dtype=dtype),
    )
    (grad,) = torch.autograd.grad(loss, t[1])
    return loss.float().cpu(), grad.float().cpu()


@pytest.mark.parametrize(
    "name", sorted(set(POLICY_LOSSES) - {"clip_cov"})
)  # clip_cov draws random tokens
def test_losses_match_cpu(name):
    l_cpu, g_cpu = _run(name, "cpu", torch.float32)
    l_gpu, g_gpu = _run(name, "cuda", torch.float32)
    torch.testing.assert_close(l_gpu, l_cpu, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g_gpu, g_cpu, rtol=1e-5, atol=1e-6)
    # bf16: the value only (a ratio rounded across a clip boundary flips that token's gradient)
    l_bf16, g_bf16 = _run(name, "cuda", torch.bfloat16)
    torch.testing.assert_close(l_bf16, l_cpu, rtol=3e-2, atol=3e-2)
    assert torch.isfinite(g_bf16).all()


@pytest.mark.parametrize(
    "div", ["kl", "rkl", "jeffreys", "tv", "hellinger", "js", "pearson", "neyman"]
)
def test_every_divergence_on_cuda(div):
    l_cpu, g_cpu = _run("lad", "cpu", torch.float32, div)
    l_gpu, g_gpu = _run("lad", "cuda", torch.float32, div)
    torch.testing.assert_close(l_gpu, l_cpu, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(g_gpu, g_cpu, rtol=1e-5, atol=1e-7)


def test_estimators_and_theory_on_cuda():
    r = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 0.0], device="cuda")
    ids = torch.tensor([0, 0, 0, 1, 1, 1], device="cuda")
    adv = compute_advantages(r, ids)
    assert adv.device.type == "cuda" and torch.isfinite(adv).all()
    logits = torch.randn(4, 50, device="cuda")
    loss = theoretical_lad_loss(
        torch.log_softmax(logits, -1),
        torch.log_softmax(torch.zeros_like(logits), -1),
        torch.randn(4, 50, device="cuda"),
    )
    assert loss.shape == (4,) and (loss >= 0).all()


def test_bandit_on_cuda_draws_the_cpu_samples_and_learns_the_same_policies():
    from bandit.config import BanditConfig
    from bandit.trainer import train

    config = BanditConfig(
        objectives=("reinforce", "lad_theory", "lad"),
        divergences=("kl", "js"),
        n_seeds=3,
        steps=200,
        dtype="float64",
    )
    cpu = train(config)
    gpu = train(config.replace(device="cuda"))
    # same counter-based draws on both devices, so only float rounding separates the runs
    assert abs(cpu.policies - gpu.policies).max() < 1e-9
    assert abs(cpu.metrics - gpu.metrics).max() < 1e-8
