"""Practical and theoretical LAD: gradients, special cases and minimisers (docs/method.md sections 3-5)."""

import math

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from labkit import (
    AGG_MODES,
    RATIO_LEVELS,
    LossConfig,
    agg_loss,
    get_divergence,
    get_policy_loss,
    lad_loss,
    theoretical_lad_loss,
    trust_region_target,
)

DIVS = ["kl", "rkl", "jeffreys", "tv", "hellinger", "js", "pearson", "neyman"]
F64 = torch.float64


def _batch(seed=0, B=5, T=7, scale=0.5):
    g = torch.Generator().manual_seed(seed)
    old = -torch.rand(B, T, generator=g, dtype=F64) * 3
    new = old + scale * torch.randn(B, T, generator=g, dtype=F64)
    adv = torch.randn(B, generator=g, dtype=F64)
    mask = torch.ones(B, T, dtype=F64)
    mask[1, 4:] = 0
    mask[3, 1:] = 0
    mask[4] = 0  # an empty response: left out, never NaN
    return old, new, adv, mask


def _agg_weights(mask, mode):
    """d agg_loss / d loss_mat: agg is linear, so this is the per-token weight of each mode."""
    w = torch.zeros_like(mask, requires_grad=True)
    (g,) = torch.autograd.grad(agg_loss(w, mask, mode), w)
    return g


@pytest.mark.parametrize("mode", AGG_MODES)
@pytest.mark.parametrize("level", RATIO_LEVELS)
@pytest.mark.parametrize("name", DIVS)
def test_gradient_is_f_prime_times_grad_log_pi(name, level, mode):
    """d loss / d log pi = (aggregation weight) * r * f'(x), x = r e^{-a}: i.e. the policy
    gradient weight f'(x) under pi_theta (docs/method.md section 5)."""
    old, new, adv, mask = _batch()
    new.requires_grad_()
    cfg = LossConfig(divergence=name, eta=0.7, ratio_level=level, loss_agg_mode=mode)
    loss, _ = lad_loss(old, new, adv, mask, mode, cfg)
    (grad,) = torch.autograd.grad(loss, new)

    a = (adv / 0.7)[:, None]
    lr = (new.detach() - old) * mask
    if level == "token":
        log_r = lr
        chain = torch.ones_like(mask)
    else:
        n = mask.sum(-1, keepdim=True).clamp(min=1)
        log_r = lr.sum(-1, keepdim=True) / (n if level == "sequence-mean" else 1)
        chain = mask / n if level == "sequence-mean" else mask
    f_prime = get_divergence(name).weight(log_r - a)
    w = _agg_weights(mask, mode)
    if level != "token":
        w = w.sum(-1, keepdim=True)  # the response's loss stands at each of its tokens
    expected = w * log_r.exp() * f_prime * chain
    torch.testing.assert_close(grad * mask, expected * mask, rtol=1e-8, atol=1e-12)


def test_kl_at_ratio_one_is_policy_gradient_with_weight_a_over_eta():
    old, _, adv, mask = _batch()
    eta = 0.4
    for cfg, mode in [(LossConfig(divergence="kl", eta=eta, standardized=True), "token-mean")]:
        new = old.clone().requires_grad_()
        (g_lad,) = torch.autograd.grad(lad_loss(old, new, adv, mask, mode, cfg)[0], new)
        new2 = old.clone().requires_grad_()
        pg, _ = get_policy_loss("reinforce")(old, new2, adv / eta, mask, mode, LossConfig())
        (g_pg,) = torch.autograd.grad(pg, new2)
        torch.testing.assert_close(g_lad, g_pg)
    # without standardising, kl carries the constant weight f'(1) = 1 on top
    new = old.clone().requires_grad_()
    cfg = LossConfig(divergence="kl", eta=eta)
    (g_raw,) = torch.autograd.grad(lad_loss(old, new, adv, mask, "token-mean", cfg)[0], new)
    torch.testing.assert_close(g_raw - g_pg, _agg_weights(mask, "token-mean"))


def test_js_at_ratio_one_transforms_the_advantage():
    """At r = 1 every LAD variant is a policy gradient with weight w(a) = -f'(e^{-a});
    for js w(a) = (softplus(a) - log 2)/2 (docs/method.md section 5)."""
    a = torch.linspace(-8, 8, 33, dtype=F64)
    old = torch.zeros(33, 1, dtype=F64)
    new = old.clone().requires_grad_()
    loss, _ = lad_loss(
        old, new, a, torch.ones(33, 1, dtype=F64), "seq-mean-token-sum", LossConfig(divergence="js")
    )
    (g,) = torch.autograd.grad(loss, new)
    w = 0.5 * (torch.nn.functional.softplus(a) - math.log(2))
    torch.testing.assert_close(-g[:, 0] * 33, w)


def _expected_practical_loss(logits, log_pi_old, adv, name, eta):
    """E_{y~pi_old}[e^a f(r e^-a)] exactly, through the registered loss: one 'response' per arm,
    weighted by K * pi_old (rollout_is_weights) under token-mean aggregation."""
    K = logits.shape[-1]
    log_pi = torch.log_softmax(logits, -1)
    w = (K * log_pi_old.exp())[:, None]
    loss, _ = lad_loss(
        log_pi_old[:, None],
        log_pi[:, None],
        adv,
        torch.ones(K, 1, dtype=F64),
        "token-mean",
        LossConfig(divergence=name, eta=eta),
        rollout_is_weights=w,
    )
    return loss


def _minimise(fn, K, seed):
    x = torch.randn(K, dtype=F64, generator=torch.Generator().manual_seed(seed)).requires_grad_()
    opt = torch.optim.LBFGS(
        [x],
        lr=1,
        max_iter=2000,
        tolerance_grad=1e-13,
        tolerance_change=1e-15,
        history_size=50,
        line_search_fn="strong_wolfe",
    )

    def closure():
        opt.zero_grad()
        loss = fn(x)
        loss.backward()
        return loss

    for _ in range(5):
        opt.step(closure)
    return torch.softmax(x.detach(), -1)


@pytest.mark.parametrize("name", ["kl", "rkl", "js", "hellinger", "jeffreys"])
def test_practical_loss_minimiser_is_the_tilted_policy(name):
    K, eta = 50, 0.5
    g = torch.Generator().manual_seed(1)
    log_pi_old = torch.log_softmax(torch.randn(K, generator=g, dtype=F64), -1)
    adv = torch.randn(K, generator=g, dtype=F64) * 0.5
    pi = _minimise(lambda x: _expected_practical_loss(x, log_pi_old, adv, name, eta), K, seed=2)
    target = trust_region_target(log_pi_old, adv, eta).exp()
    assert 0.5 * (pi - target).abs().sum().item() < 1e-4


@pytest.mark.parametrize("name", ["kl", "js", "hellinger", "tv", "rkl"])
def test_theoretical_loss_is_zero_exactly_at_the_target(name):
    K, eta = 50, 1.0
    g = torch.Generator().manual_seed(3)
    log_pi_old = torch.log_softmax(torch.randn(K, generator=g, dtype=F64), -1)
    adv = torch.randn(K, generator=g, dtype=F64)
    target = trust_region_target(log_pi_old, adv, eta)
    assert theoretical_lad_loss(target, log_pi_old, adv, name, eta).abs().item() < 1e-12
    assert theoretical_lad_loss(log_pi_old, log_pi_old, adv, name, eta).item() > 1e-3
    if name != "tv":  # tv is not strictly convex: its minimiser need not be unique
        pi = _minimise(
            lambda x: theoretical_lad_loss(torch.log_softmax(x, -1), log_pi_old, adv, name, eta),
            K,
            4,
        )
        assert 0.5 * (pi - target.exp()).abs().sum().item() < 1e-4


def test_trust_region_optimum_matches_a_constrained_solve():
    """Lemma 3.1: argmax_pi E_pi[A] - eta KL(pi || pi_old) = pi_old e^{A/eta} / Z."""
    K, eta = 12, 0.7
    rng = np.random.default_rng(5)
    pi_old = rng.dirichlet(np.ones(K))
    A = rng.normal(size=K)

    def neg_objective(p):
        p = np.clip(p, 1e-300, None)
        return -(p @ A - eta * np.sum(p * np.log(p / pi_old)))

    res = minimize(
        neg_objective,
        np.full(K, 1 / K),
        method="SLSQP",
        bounds=[(0, 1)] * K,
        constraints=[{"type": "eq", "fun": lambda p: p.sum() - 1}],
        options={"ftol": 1e-14, "maxiter": 1000},
    )
    expected = trust_region_target(torch.tensor(np.log(pi_old)), torch.tensor(A), eta).exp().numpy()
    assert res.success
    np.testing.assert_allclose(res.x, expected, atol=1e-5)


def test_per_run_eta_tensor_broadcasts_like_separate_runs():
    """The bandit passes eta as an (R, 1, 1) tensor: each run must equal a run with a float eta."""
    g = torch.Generator().manual_seed(7)
    old = -torch.rand(3, 6, 1, generator=g, dtype=F64)
    new = old + 0.3 * torch.randn(3, 6, 1, generator=g, dtype=F64)
    adv = torch.randn(3, 6, generator=g, dtype=F64)
    etas = torch.tensor([0.5, 1.0, 4.0], dtype=F64)
    mask = torch.ones_like(old)
    batched, _ = lad_loss(old, new, adv, mask, "token-mean", LossConfig(eta=etas[:, None, None]))
    assert batched.shape == (3,)
    for i in range(3):
        single, _ = lad_loss(
            old[i], new[i], adv[i], mask[i], "token-mean", LossConfig(eta=float(etas[i]))
        )
        torch.testing.assert_close(batched[i], single)


def test_metrics_are_detached_scalars():
    old, new, adv, mask = _batch()
    _, m = lad_loss(old, new.requires_grad_(), adv, mask, "token-mean", LossConfig())
    assert {
        "lad/log_ratio_mean",
        "lad/frac_past_target",
        "lad/weight_mean",
        "actor/pg_loss",
    } <= set(m)
    assert all(v.dim() == 0 and not v.requires_grad for v in m.values())
    assert 0 <= m["lad/frac_past_target"].item() <= 1
