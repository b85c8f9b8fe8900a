"""Property tests over extreme inputs: |log r| <= 50, |A/eta| <= 50, eta in [0.01, 100], masks with
empty rows. Loss and gradient stay finite for every objective in float32, except pearson and
neyman: their values reach e^(2|log r| + |a|), past float32's range, so they are checked in float64."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from labkit import POLICY_LOSSES, LossConfig, get_policy_loss, theoretical_lad_loss

B, T = 4, 3
WIDE = ["pearson", "neyman"]  # need float64 at the far corners
DIVS = ["kl", "rkl", "jeffreys", "tv", "hellinger", "js"]

floats50 = st.floats(-50, 50, allow_nan=False, width=32)


@st.composite
def batches(draw):
    log_r = torch.tensor(draw(st.lists(floats50, min_size=B * T, max_size=B * T))).view(B, T)
    a = torch.tensor(draw(st.lists(floats50, min_size=B, max_size=B)))
    eta = draw(st.floats(0.01, 100))
    rows = draw(st.lists(st.integers(0, T), min_size=B, max_size=B).filter(lambda r: sum(r) > 0))
    mask = (torch.arange(T)[None, :] < torch.tensor(rows)[:, None]).float()
    old = -torch.rand(B, T, generator=torch.Generator().manual_seed(0)) * 5
    return old, old + log_r, a * eta, eta, mask


def _finite(name, old, new, adv, mask, cfg, dtype):
    new = new.to(dtype).requires_grad_()
    loss, metrics = get_policy_loss(name)(
        old.to(dtype),
        new,
        adv.to(dtype),
        mask.to(dtype),
        cfg.loss_agg_mode,
        cfg,
        log_z=torch.zeros(B, dtype=dtype),
    )
    (grad,) = torch.autograd.grad(loss, new)
    assert torch.isfinite(loss), (name, cfg, loss)
    assert torch.isfinite(grad).all(), (name, cfg, grad)
    assert all(torch.isfinite(v) for v in metrics.values()), (name, metrics)


@settings(max_examples=60, deadline=None)
@given(
    batches(),
    st.sampled_from(["token", "sequence-mean"]),
    st.sampled_from(["token-mean", "seq-mean-token-mean"]),
)
def test_lad_finite_float32(batch, level, mode):
    old, new, adv, eta, mask = batch
    for div in DIVS:
        cfg = LossConfig(divergence=div, eta=eta, ratio_level=level, loss_agg_mode=mode)
        _finite("lad", old, new, adv, mask, cfg, torch.float32)


@settings(max_examples=40, deadline=None)
@given(batches())
def test_pearson_neyman_finite_float64(batch):
    old, new, adv, eta, mask = batch
    for div in WIDE:
        _finite("lad", old, new, adv, mask, LossConfig(divergence=div, eta=eta), torch.float64)


@settings(max_examples=40, deadline=None)
@given(batches())
def test_baselines_finite_float32(batch):
    old, new, adv, eta, mask = batch
    for name in sorted(set(POLICY_LOSSES) - {"lad"}):
        _finite(name, old, new, adv, mask, LossConfig(eta=eta, clip_ratio_c=3.0), torch.float32)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(floats50, min_size=8, max_size=8),
    st.lists(floats50, min_size=8, max_size=8),
    st.floats(0.01, 100),
)
def test_theoretical_loss_finite_float32(logits, adv, eta):
    logits = torch.tensor(logits).requires_grad_()
    log_old = torch.log_softmax(torch.zeros(8), -1)
    for div in DIVS:
        loss = theoretical_lad_loss(
            torch.log_softmax(logits, -1), log_old, torch.tensor(adv) * eta, div, eta
        )
        (g,) = torch.autograd.grad(loss, logits)
        assert torch.isfinite(loss) and torch.isfinite(g).all(), div
