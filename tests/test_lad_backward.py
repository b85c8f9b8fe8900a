"""The practical LAD loss's fused closed-form backward against autograd through the perspective."""

import pytest
import torch

from labkit import DIVERGENCES, LossConfig, get_divergence, lad_loss
from labkit.config import AGG_MODES, RATIO_LEVELS
from labkit.lad import weighted_divergence
from labkit.losses import agg_loss, check_inputs, log_ratio

NAMES = list(DIVERGENCES.names())


def _grid(dtype, lo=-6.0, hi=6.0, n=41):
    v = torch.linspace(lo, hi, n, dtype=dtype)
    lp, lq = torch.meshgrid(v, v, indexing="ij")
    return lp.flatten() + 1e-3, lq.flatten()  # off tv's kink at lp = lq


@pytest.mark.parametrize("standardized", [False, True])
@pytest.mark.parametrize("name", NAMES)
def test_weighted_grad_equals_autograd(name, standardized):
    div = get_divergence(name)
    lp, lq = _grid(torch.float64)
    lp.requires_grad_()
    (ref,) = torch.autograd.grad(div.weighted(lp, lq, standardized).sum(), lp)
    torch.testing.assert_close(
        div.weighted_grad(lp.detach(), lq, standardized), ref, rtol=1e-10, atol=1e-12
    )


@pytest.mark.parametrize("name", NAMES)
def test_gradcheck_float64(name):
    g = torch.Generator().manual_seed(0)
    log_r = (0.5 * torch.randn(6, 5, generator=g, dtype=torch.float64)).requires_grad_()
    a = torch.randn(6, 5, generator=g, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: weighted_divergence(x, a, name), (log_r,))
    # a broadcasting row of temperatures-scaled advantages against (6, 5) log-ratios
    assert torch.autograd.gradcheck(lambda x: weighted_divergence(x, a[:1], name, True), (log_r,))


def _reference_lad(old, new, adv, mask, agg, cfg):
    """lad_loss written with autograd through the perspective (the code before the fused op)."""
    adv, m = check_inputs(old, new, adv, mask)
    a = adv.detach() * cfg.inverse_temperature
    if cfg.ratio_level != "token":
        a = ((a * m).sum(-1) / m.sum(-1).clamp(min=1)).unsqueeze(-1).expand_as(a)
    lr = log_ratio(old.detach(), new, m, cfg.ratio_level)
    return agg_loss(get_divergence(cfg.divergence).weighted(lr, a, cfg.standardized), m, agg)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("ratio_level", RATIO_LEVELS)
@pytest.mark.parametrize("agg", AGG_MODES)
def test_lad_loss_value_and_gradient_equal_autograd(agg, ratio_level, dtype):
    g = torch.Generator().manual_seed(1)
    shape = (3, 8, 16)  # (runs, B, T)
    old = -torch.rand(shape, generator=g, dtype=dtype) * 3
    adv = torch.randn(3, 8, generator=g, dtype=dtype)
    mask = torch.rand(shape, generator=g) < 0.8
    eta = torch.tensor([0.5, 1.0, 4.0], dtype=dtype).view(3, 1, 1)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-12)
    for name in NAMES:
        cfg = LossConfig(divergence=name, eta=eta, ratio_level=ratio_level)
        new = (old + 0.2 * torch.randn(shape, generator=g, dtype=dtype)).requires_grad_()
        loss, _ = lad_loss(old, new, adv, mask, agg, cfg, metrics=False)
        ref = _reference_lad(old, new, adv, mask, agg, cfg)
        torch.testing.assert_close(loss, ref, **tol)
        (grad,) = torch.autograd.grad(loss.sum(), new)
        (grad_ref,) = torch.autograd.grad(ref.sum(), new)
        torch.testing.assert_close(grad, grad_ref, **tol)


@pytest.mark.parametrize("name", [n for n in NAMES if get_divergence(n).group != "extra"])
def test_backward_finite_at_the_far_corners_in_float32(name):
    """|log r|, |a| <= 50: the perspective is finite in float32 there, and so is its gradient
    (a product exp(log r)·f'(x) would overflow: rkl's f' reaches e^100)."""
    v = torch.tensor([-50.0, -20.0, 0.0, 20.0, 50.0])
    lp, lq = torch.meshgrid(v, v, indexing="ij")
    log_r = lp.flatten().clone().requires_grad_()
    out = weighted_divergence(log_r, lq.flatten(), name)
    assert torch.isfinite(out).all()
    (grad,) = torch.autograd.grad(out.sum(), log_r)
    assert torch.isfinite(grad).all()
