"""gradient=compiled (bandit.trainer.compiled_update): the closed-form step compiled by
torch.compile gives the eager closed-form step's training runs, up to float rounding.

Compiling is the slow part (tens of seconds per sweep shape on 2 cores, cold), so the default tier
compiles one sweep that crosses the two commonest samplers (a fixed uniform pi_old, drawn from
the hash, beside refreshed ones, drawn by inverse CDF) with arms weighted by their draws; the slow
tier covers every objective, the per-sample path with an estimator and reward noise, alias tables,
the exact expectation and SGD."""

import numpy as np
import pytest
from torch._dynamo.utils import counters

from bandit.config import BanditConfig
from bandit.trainer import train
from labkit.errors import NonFiniteError
from tests.test_bandit_trainer import _one_thread  # noqa: F401  (autouse: one intra-op thread)

SMALL = dict(n_seeds=2, n_arms=20, landscape="bimodal", steps=30, log_every=10, etas=(0.5, 2.0))


def _compare(config: BanditConfig, atol: float) -> None:
    eager = train(config)
    compiled = train(config.replace(gradient="compiled"))
    # fullgraph=True raises rather than fall back to eager; this checks a graph exists at all
    assert counters["stats"]["unique_graphs"] >= 1
    assert np.abs(eager.policies[-1] - eager.policies[0]).max() > 1e-3  # training moved
    np.testing.assert_allclose(compiled.policies, eager.policies, rtol=0, atol=atol)
    np.testing.assert_allclose(compiled.metrics, eager.metrics, rtol=0, atol=max(atol, 1e-6))


def test_compiled_step_equals_eager_step():
    config = BanditConfig(
        **SMALL,
        objectives=("grpo", "lad"),
        divergences=("js",),
        refresh_periods=(0, 3),
        num_generations=24,
        dtype="float64",
    )
    _compare(config, atol=1e-12)


@pytest.mark.slow
def test_a_second_sweep_of_the_same_shape_reuses_the_graph():
    config = BanditConfig(
        **SMALL, objectives=("lad",), divergences=("kl",), num_generations=24, gradient="compiled"
    )
    train(config)
    before = counters["stats"]["unique_graphs"]
    again = train(config.replace(lrs=(0.02,), seed=5))  # other values, same shapes and paths
    assert counters["stats"]["unique_graphs"] == before
    assert np.isfinite(again.policies).all()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("extra", "atol"),
    [
        (dict(refresh_periods=(0, 3), num_generations=24, dtype="float64"), 1e-12),
        (
            dict(init="random", advantage="grpo", reward_noise="gaussian", num_generations=8),
            2e-4,
        ),
        (dict(sampling="exact", optimizer="sgd", refresh_every=5, dtype="float64"), 1e-12),
    ],
    ids=["every-objective-mixed-samplers", "per-sample-alias-noise-float32", "exact-sgd"],
)
def test_compiled_step_equals_eager_step_everywhere(extra, atol):
    config = BanditConfig(
        **SMALL,
        objectives=("reinforce", "grpo", "kl_cov", "lad_theory", "lad"),
        divergences=("js", "kl", "tv"),
        **extra,
    )
    _compare(config, atol)


@pytest.mark.slow
def test_non_finite_runs_are_caught_on_the_compiled_path():
    """The non-finite guard is part of the compiled step: the same runs, first at the same
    steps, as on the eager path (tests/test_bandit_guard.py's sweep)."""
    config = BanditConfig(
        divergences=("pearson", "kl"), etas=(0.01, 1.0), steps=100, log_every=50, n_seeds=2
    )
    messages = []
    for gradient in ("closed", "compiled"):
        with pytest.raises(NonFiniteError) as e:
            train(config.replace(gradient=gradient))
        messages.append(str(e.value))
    assert "lad/pearson eta=0.01 lr=0.005 seed=0 (step " in messages[0]
    assert messages[1] == messages[0]


def test_without_a_cpp_compiler_compiled_fails_in_one_line_before_any_work(monkeypatch):
    from torch._inductor import config as inductor_config

    monkeypatch.setattr(inductor_config.cpp, "cxx", ("no-such-c++-compiler",))
    with pytest.raises(
        ValueError, match=r"^gradient='compiled' needs a C\+\+ compiler .*gradient=closed$"
    ):
        train(BanditConfig(**SMALL, gradient="compiled"))
    train(BanditConfig(**SMALL, gradient="closed"))  # the eager path needs none
