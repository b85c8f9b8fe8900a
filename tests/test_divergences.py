"""The f-divergences: values against their textbook formulas, derivatives against autograd."""

import math

import pytest
import torch

from labkit import DIVERGENCES, get_divergence

NAIVE = {  # f(x) as written in docs/method.md section 6
    "kl": lambda x: x * torch.log(x),
    "rkl": lambda x: -torch.log(x),
    "jeffreys": lambda x: (x - 1) * torch.log(x),
    "tv": lambda x: (x - 1).abs(),
    "hellinger": lambda x: (x.sqrt() - 1) ** 2,
    "js": lambda x: 0.5 * (x * torch.log(x) - (x + 1) * torch.log((x + 1) / 2)),
    "pearson": lambda x: (x - 1) ** 2,
    "neyman": lambda x: (x - 1) ** 2 / x,
}


def test_registry_holds_the_eight_of_method_md():
    assert DIVERGENCES.names() == sorted(NAIVE)


@pytest.mark.parametrize("name", sorted(NAIVE))
def test_perspective_matches_the_formula(name):
    div = get_divergence(name)
    g = torch.Generator().manual_seed(0)
    lp = torch.randn(200, generator=g, dtype=torch.float64) * 3
    lq = torch.randn(200, generator=g, dtype=torch.float64) * 3
    expected = lq.exp() * NAIVE[name]((lp - lq).exp())
    torch.testing.assert_close(div.weighted(lp, lq), expected, rtol=1e-9, atol=1e-12)
    assert div.f(torch.zeros(1, dtype=torch.float64)).abs().item() < 1e-15  # f(1) = 0


@pytest.mark.parametrize("name", sorted(NAIVE))
def test_derivative_matches_autograd(name):
    div = get_divergence(name)
    x = torch.linspace(0.05, 6.0, 97, dtype=torch.float64)
    x = x[(x - 1).abs() > 1e-3].requires_grad_()  # tv has a kink at 1
    (grad,) = torch.autograd.grad(NAIVE[name](x).sum(), x)
    torch.testing.assert_close(div.weight(x.detach().log()), grad, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("name", sorted(NAIVE))
def test_standardised_form_has_zero_slope_at_one_and_same_value_shape(name):
    div = get_divergence(name)
    one = torch.zeros(1, dtype=torch.float64)
    assert div.weight(one, standardized=True).abs().item() < 1e-12
    lp, lq = torch.tensor([0.3], dtype=torch.float64), torch.tensor([-0.2], dtype=torch.float64)
    shift = div.weighted(lp, lq) - div.weighted(lp, lq, standardized=True)
    assert shift.item() == pytest.approx(div.fprime_at_1 * (math.exp(0.3) - math.exp(-0.2)))


def test_groups_follow_the_paper():
    strict = {n for n in DIVERGENCES if get_divergence(n).strict}
    assert strict == {"tv", "hellinger", "js"}
    assert {n for n in DIVERGENCES if get_divergence(n).group == "non-strict"} == {
        "kl",
        "rkl",
        "jeffreys",
    }
