"""GRPO and friends against hand-computed examples; aggregation; regularisers."""

import pytest
import torch

from labkit import POLICY_LOSSES, LossConfig, agg_loss, compute_loss, get_policy_loss, kl_penalty

F64 = torch.float64


def _one_token(ratios, advs):
    """B responses of one token with the given ratios and advantages."""
    old = torch.zeros(len(ratios), 1, dtype=F64)
    new = torch.tensor(ratios, dtype=F64).log()[:, None].requires_grad_()
    return old, new, torch.tensor(advs, dtype=F64), torch.ones(len(ratios), 1, dtype=F64)


def test_grpo_clipped_surrogate_by_hand():
    old, new, adv, mask = _one_token([1.5, 0.5, 1.1, 5.0], [1.0, -1.0, 1.0, -1.0])
    per = []
    for i in range(4):
        loss, _ = get_policy_loss("grpo")(
            old[i : i + 1],
            new[i : i + 1],
            adv[i : i + 1],
            mask[i : i + 1],
            "token-mean",
            LossConfig(),
        )
        per.append(loss.item())
    # -min(rA, clip(r)A): 1.5 -> clipped to 1.2; A<0, r=0.5 -> max(0.5, 0.8); r=1.1 in range; r=5, A=-1 -> 5
    assert per == pytest.approx([-1.2, 0.8, -1.1, 5.0])
    loss, m = get_policy_loss("grpo")(old, new, adv, mask, "token-mean", LossConfig())
    assert loss.item() == pytest.approx(sum(per) / 4)
    assert m["actor/pg_clipfrac"].item() == pytest.approx(0.5)  # tokens 0 and 1


def test_clip_higher_and_dual_clip():
    old, new, adv, mask = _one_token([1.5, 5.0], [1.0, -1.0])
    cfg = LossConfig(loss_mode="grpo", epsilon=0.2, epsilon_high=0.28, clip_ratio_c=3.0)
    loss, m = get_policy_loss("grpo")(old, new, adv, mask, "seq-mean-token-sum", cfg)
    assert loss.item() == pytest.approx((-1.28 + 3.0) / 2)
    assert m["actor/pg_clipfrac_lower"].item() == pytest.approx(0.5)
    (g,) = torch.autograd.grad(loss, new)
    assert torch.all(g == 0)  # both tokens are clipped: no gradient


def test_reinforce_is_the_unclipped_surrogate():
    old, new, adv, mask = _one_token([1.5, 0.5], [2.0, -1.0])
    loss, _ = get_policy_loss("reinforce")(old, new, adv, mask, "seq-mean-token-sum", LossConfig())
    assert loss.item() == pytest.approx((-3.0 + 0.5) / 2)
    (g,) = torch.autograd.grad(loss, new)
    torch.testing.assert_close(g[:, 0], torch.tensor([-3.0, 0.5], dtype=F64) / 2)  # -A r / B


def test_aggregation_modes_by_hand():
    loss = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0], [9.0, 9.0, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])  # last row empty
    assert agg_loss(loss, mask, "token-mean").item() == pytest.approx(10 / 4)
    assert agg_loss(loss, mask, "seq-mean-token-sum").item() == pytest.approx((6 + 4) / 2)
    assert agg_loss(loss, mask, "seq-mean-token-mean").item() == pytest.approx((2 + 4) / 2)
    assert agg_loss(loss, mask, "seq-mean-token-sum-norm").item() == pytest.approx(10 / (3 * 3))
    assert agg_loss(
        loss, mask, "seq-mean-token-sum-norm", loss_scale_factor=5
    ).item() == pytest.approx(10 / 15)


def test_kl_estimators():
    lp = torch.tensor([-1.0, -2.0, -0.5])
    ref = torch.tensor([-1.5, -2.0, -0.1])
    d = ref - lp
    torch.testing.assert_close(kl_penalty(lp, ref, "k1"), -d)
    torch.testing.assert_close(kl_penalty(lp, ref, "k2"), 0.5 * d**2)
    k3 = kl_penalty(lp, ref, "k3")
    torch.testing.assert_close(k3, d.exp() - d - 1)
    assert torch.all(k3 >= 0) and k3[1] == 0


def test_compute_loss_adds_kl_and_entropy():
    old, new, adv, mask = _one_token([1.0, 1.0], [1.0, -1.0])
    ref = old - 0.3
    ent = torch.full_like(old, 2.0)
    base, _ = compute_loss(old, new, adv, mask, LossConfig(loss_mode="reinforce"))
    full, m = compute_loss(
        old,
        new,
        adv,
        mask,
        LossConfig(loss_mode="reinforce", beta=0.1, entropy_coef=0.01),
        ref_log_prob=ref,
        entropy=ent,
    )
    k3 = torch.expm1(torch.tensor(-0.3, dtype=F64)) + 0.3
    assert (full - base).item() == pytest.approx(0.1 * k3.item() - 0.01 * 2.0)
    assert "actor/kl_loss" in m and "actor/entropy_bonus" in m
    with pytest.raises(ValueError, match="ref_log_prob"):
        compute_loss(old, new, adv, mask, LossConfig(beta=0.1))


def test_kl_cov_penalises_the_highest_covariance_tokens():
    B = 100
    g = torch.Generator().manual_seed(0)
    old = -torch.rand(B, 1, generator=g, dtype=F64)
    new = (old + 0.1).requires_grad_()
    adv = torch.randn(B, generator=g, dtype=F64)
    mask = torch.ones(B, 1, dtype=F64)
    cfg = LossConfig(kl_cov_ratio=0.05, ppo_kl_coef=1.0)
    loss, m = get_policy_loss("kl_cov")(old, new, adv, mask, "token-mean", cfg)
    plain, _ = get_policy_loss("reinforce")(old, new, adv, mask, "token-mean", cfg)
    cov = (adv - adv.mean()) * (new.detach()[:, 0] - new.detach()[:, 0].mean())
    top = cov.topk(5).indices
    assert m["actor/kl_cov_frac"].item() == pytest.approx(0.05)
    assert (loss - plain).item() == pytest.approx(5 * 0.1 / B)  # |log r| = 0.1 on 5 tokens
    (g1,) = torch.autograd.grad(loss, new)
    others = torch.ones(B, dtype=torch.bool)
    others[top] = False
    torch.testing.assert_close(
        g1[others, 0], -adv[others] * torch.exp(torch.tensor(0.1, dtype=F64)) / B
    )


def test_clip_cov_cuts_gradient_of_sampled_high_covariance_tokens():
    B = 200
    g = torch.Generator().manual_seed(1)
    old = -torch.rand(B, 1, generator=g, dtype=F64) * 4
    new = old.clone().requires_grad_()
    adv = torch.randn(B, generator=g, dtype=F64) * 2
    mask = torch.ones(B, 1, dtype=F64)
    cfg = LossConfig(clip_cov_ratio=0.02, clip_cov_lb=0.5, clip_cov_ub=50.0)
    loss, m = get_policy_loss("clip_cov")(
        old, new, adv, mask, "token-mean", cfg, generator=torch.Generator().manual_seed(0)
    )
    (grad,) = torch.autograd.grad(loss, new)
    cut = grad[:, 0] == 0
    assert cut.sum().item() == 4  # 2% of 200
    cov = (adv - adv.mean()) * (old[:, 0] - old[:, 0].mean())
    assert torch.all((cov[cut] > 0.5) & (cov[cut] < 50.0))
    assert m["actor/cov_cut_frac"].item() == pytest.approx(0.02)


def test_flowrl_trajectory_balance():
    old = torch.full((2, 3), -1.0, dtype=F64)
    new = old.clone().requires_grad_()
    adv = torch.tensor([0.5, -0.5], dtype=F64)
    mask = torch.ones(2, 3, dtype=F64)
    cfg = LossConfig(kappa=2.0)
    # log Z + mean log pi - kappa A = 0 for both responses -> zero loss, zero gradient
    log_z = torch.tensor([1.0 + 1.0, 1.0 - 1.0], dtype=F64).requires_grad_()
    loss, _ = get_policy_loss("flowrl")(
        old, new, adv, mask, "seq-mean-token-mean", cfg, log_z=log_z
    )
    assert loss.item() == pytest.approx(0.0)
    log_z2 = (log_z.detach() + 0.5).requires_grad_()
    loss2, _ = get_policy_loss("flowrl")(
        old, new, adv, mask, "seq-mean-token-mean", cfg, log_z=log_z2
    )
    assert loss2.item() == pytest.approx(0.25)
    (gz,) = torch.autograd.grad(loss2, log_z2)
    torch.testing.assert_close(gz, torch.tensor([0.5, 0.5], dtype=F64))  # 2 * 0.5 / 2 responses


def test_every_registered_loss_takes_the_same_arguments():
    g = torch.Generator().manual_seed(0)
    old = -torch.rand(4, 3, generator=g)
    new = (old + 0.1 * torch.randn(4, 3, generator=g)).requires_grad_()
    adv, mask = torch.randn(4, 3, generator=g), torch.ones(4, 3)
    for name in POLICY_LOSSES:
        loss, metrics = get_policy_loss(name)(
            old, new, adv, mask, "token-mean", LossConfig(), log_z=torch.zeros(4)
        )
        assert loss.shape == () and torch.isfinite(loss), name
        assert "actor/pg_loss" in metrics, name
        (grad,) = torch.autograd.grad(loss, new)
        assert torch.isfinite(grad).all(), name


@pytest.mark.parametrize("name", POLICY_LOSSES.names())
def test_metrics_off_gives_the_same_loss_and_gradient_and_no_metrics(name):
    g = torch.Generator().manual_seed(0)
    old = torch.randn(2, 6, 3, dtype=F64, generator=g)
    new = (old + 0.3 * torch.randn(2, 6, 3, dtype=F64, generator=g)).requires_grad_()
    adv = torch.randn(2, 6, dtype=F64, generator=g)
    mask = torch.ones(2, 6, 3, dtype=F64)
    extras = {"log_z": torch.zeros(2, 6, dtype=F64)} if name == "flowrl" else {}
    cfg = LossConfig(loss_mode=name, beta=0.1)
    ref = old.detach() - 0.1
    results = []
    for metrics in (True, False):
        if name == "clip_cov":
            extras["generator"] = torch.Generator().manual_seed(1)
        loss, m = compute_loss(
            old, new, adv, mask, cfg, ref_log_prob=ref, metrics=metrics, **extras
        )
        (grad,) = torch.autograd.grad(loss.sum(), new)
        results.append((loss.detach(), grad, m))
    (loss_on, grad_on, m_on), (loss_off, grad_off, m_off) = results
    assert torch.equal(loss_on, loss_off) and torch.equal(grad_on, grad_off)
    assert m_on and m_off == {}
