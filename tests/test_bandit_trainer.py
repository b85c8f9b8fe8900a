"""The vectorised trainer: per-run reproducibility, agreement with per-run references, optimisers,
convergence to the trust-region target, and the result files."""

import json

import numpy as np
import pytest
import torch

from bandit import results
from bandit.config import BanditConfig, expand_runs
from bandit.metrics import METRICS, policy_metrics
from bandit.optim import AdamState, adam_step, sgd_step
from bandit.trainer import OldPolicy, _groups, by_arm, loss_per_run, train
from labkit import LossConfig, get_policy_loss, theoretical_lad_loss
from labkit.config_loading import from_dict, load


@pytest.fixture(autouse=True)
def _one_thread():
    # tiny tensors: intra-op threads only contend (10x slower on a loaded 2-core machine)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


MIXED = dict(
    objectives=("reinforce", "grpo", "kl_cov", "lad_theory", "lad"),
    divergences=("kl", "js"),
    etas=(0.5, 2.0),
    lrs=(1e-2, 3e-2),
    n_seeds=2,
    seed=11,
    steps=25,
    log_every=10,
    dtype="float64",
)


def _alone(config: BanditConfig, run) -> BanditConfig:
    return config.replace(
        objectives=(run.objective,),
        divergences=(run.divergence or "js",),
        etas=(run.eta,),
        kappas=None,
        lrs=(run.lr,),
        seed=run.seed,
        n_seeds=1,
        refresh_every=run.refresh,
        refresh_periods=None,
    )


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {
            "advantage": "grpo",
            "reward_noise": "gaussian",
            "refresh_every": 3,
            "init": "random",
            "init_scale": 0.5,
        },
        # fixed and refreshed pi_old in one sweep: two samplers (hash + cdf; alias + cdf) side by side
        {"refresh_periods": (0, 3), "num_generations": 16},
        {"refresh_periods": (0, 3), "num_generations": 16, "init": "random", "init_scale": 0.5},
    ],
    ids=[
        "fixed-exact",
        "refreshed-grpo-noise-random-init",
        "hash-and-cdf-samplers",
        "alias-and-cdf-samplers",
    ],
)
def test_run_in_a_sweep_equals_the_same_run_alone(extra):
    config = BanditConfig(**MIXED, **extra)
    sweep = train(config)
    runs = expand_runs(config)
    assert len(runs) == 56 * len(config.refresh_axis)
    for i in range(0, len(runs), 7):  # one run of every code path
        alone = train(_alone(config, runs[i]))
        np.testing.assert_allclose(alone.policies[:, 0], sweep.policies[:, i], rtol=0, atol=1e-12)
        np.testing.assert_allclose(alone.metrics[:, 0], sweep.metrics[:, i], rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("agg", "n_gen"), [("token-mean", 64), ("seq-mean-token-mean", 64), ("token-mean", 8)]
)
def test_batched_losses_equal_per_run_calls(agg, n_gen):
    """loss_per_run (R runs through one labkit call per group; arms weighted by their draws where
    `by_arm`) against a loop of 2-D calls on the G samples, value and gradient."""
    config = BanditConfig(
        **{**MIXED, "objectives": ("reinforce", "grpo", "kl_cov", "lad_theory", "lad")},
        loss_agg_mode=agg,
        num_generations=n_gen,
    )
    runs = expand_runs(config)
    eta = torch.tensor([r.eta for r in runs], dtype=torch.float64)
    seeds = torch.tensor([r.seed for r in runs])
    g = torch.Generator().manual_seed(0)
    k = 50
    rewards = torch.rand(k, generator=g, dtype=torch.float64) * 3
    logits = torch.randn(len(runs), k, generator=g, dtype=torch.float64).requires_grad_()
    old = OldPolicy(torch.randn(len(runs), k, generator=g, dtype=torch.float64), True, rewards)
    batched = loss_per_run(config, _groups(runs, config, eta, k), logits, old, seeds, step=4)
    assert by_arm(config, "lad", k) == (n_gen >= k) and not by_arm(config, "kl_cov", k)

    arms = old.sample(seeds, 4, config.num_generations)
    log_pi = torch.log_softmax(logits, -1)
    baseline = old.log_prob.exp() @ rewards
    for i, run in enumerate(runs):
        if run.objective == "lad_theory":
            ref = theoretical_lad_loss(
                log_pi[i], old.log_prob[i], rewards - baseline[i], run.divergence, run.eta
            )
        else:
            cfg = LossConfig(
                loss_mode=run.objective, divergence=run.divergence or "js", eta=run.eta
            )
            lp = log_pi[i, arms[i]].unsqueeze(-1)
            olp = old.log_prob[i, arms[i]].unsqueeze(-1)
            adv = rewards[arms[i]] - baseline[i]
            ref, _ = get_policy_loss(run.objective)(olp, lp, adv, torch.ones_like(lp), agg, cfg)
        torch.testing.assert_close(batched[i], ref, rtol=1e-12, atol=1e-12)
        (grad,) = torch.autograd.grad(batched[i], logits, retain_graph=True)
        (grad_ref,) = torch.autograd.grad(ref, logits, retain_graph=True)
        torch.testing.assert_close(grad, grad_ref, rtol=1e-10, atol=1e-12)


def test_exact_expectation_matches_many_samples():
    base = BanditConfig(objectives=("lad",), divergences=("js",), n_seeds=1, dtype="float64")
    runs = expand_runs(base)
    eta = torch.ones(1, dtype=torch.float64)
    rewards = torch.linspace(0, 3, 50, dtype=torch.float64)
    logits = torch.randn(1, 50, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    old = OldPolicy(torch.zeros(1, 50, dtype=torch.float64), True, rewards)
    seeds = torch.zeros(1, dtype=torch.int64)
    exact = loss_per_run(
        base.replace(sampling="exact"), _groups(runs, base, eta, 50), logits, old, seeds, 1
    )
    sampled = loss_per_run(
        base.replace(num_generations=100_000),
        _groups(runs, base, eta, 50),
        logits,
        old,
        seeds,
        1,
    )
    torch.testing.assert_close(sampled, exact, rtol=0.02, atol=1e-3)


def test_adam_matches_torch_adam_per_run():
    g = torch.Generator().manual_seed(0)
    lr = torch.tensor([[1e-3], [1e-2], [0.3]], dtype=torch.float64)
    param = torch.randn(3, 7, generator=g, dtype=torch.float64)
    refs = [param[i].clone().requires_grad_(True) for i in range(3)]
    opts = [
        torch.optim.Adam([p], lr=float(lr[i]), betas=(0.8, 0.99), eps=1e-6)
        for i, p in enumerate(refs)
    ]
    state = AdamState.zeros_like(param)
    for _ in range(25):
        grad = torch.randn(3, 7, generator=g, dtype=torch.float64)
        adam_step(param, grad, state, lr, (0.8, 0.99), 1e-6)
        for i, (p, opt) in enumerate(zip(refs, opts, strict=True)):
            p.grad = grad[i].clone()
            opt.step()
    torch.testing.assert_close(
        param, torch.stack([p.detach() for p in refs]), rtol=1e-12, atol=1e-12
    )
    param2 = torch.ones(3, 2, dtype=torch.float64)
    sgd_step(param2, torch.ones(3, 2, dtype=torch.float64), lr)
    torch.testing.assert_close(param2, 1 - lr.expand(3, 2))


def _rewards_file(tmp_path, values):
    path = tmp_path / "r.json"
    path.write_text(json.dumps(list(values)))
    return str(path)


@pytest.mark.parametrize("divergence", ["kl", "rkl", "hellinger", "js"])
def test_lad_converges_to_the_trust_region_target(tmp_path, divergence):
    """Both LAD losses reach P_pi = P_A (pi = pi_old e^{A/eta}/Z) from a random pi_old."""
    config = BanditConfig(
        rewards_file=_rewards_file(tmp_path, np.linspace(0, 2, 10) ** 2),
        objectives=("lad_theory", "lad"),
        divergences=(divergence,),
        etas=(0.7,),
        sampling="exact",
        init="random",
        lrs=(0.05,),
        steps=600,
        log_every=600,
        dtype="float64",
    )
    res = train(config)
    tv = res.metrics[-1, :, METRICS.index("tv")]
    assert (tv < 1e-3).all(), tv


def test_clipped_grpo_stalls_with_fixed_pi_old_and_unclipped_does_not(tmp_path):
    config = BanditConfig(
        rewards_file=_rewards_file(tmp_path, [0.0, 0.5, 1.0, 2.0]),
        objectives=("grpo", "reinforce"),
        sampling="exact",
        optimizer="sgd",
        lrs=(0.5,),
        steps=300,
        log_every=100,
        dtype="float64",
        policy_steps=(200, 300),
    )
    res = train(config)
    ratio = res.policies * 4  # pi / pi_old with a uniform pi_old over 4 arms
    clipped, unclipped = ratio[:, 0], ratio[:, 1]
    # every ratio left [1 - eps, 1 + eps] (or sits where its own clip binds): the gradient is 0
    np.testing.assert_allclose(clipped[0], clipped[1], rtol=0, atol=1e-12)
    assert clipped.max() < 1.5 and clipped.min() > 0.4
    assert unclipped[-1].max() > 3.5  # advantage maximisation piles onto the best arm


def test_noise_models():
    from bandit.trainer import _sampled_rewards

    seeds = torch.arange(4)
    mean = torch.full((4, 50_000), 0.3, dtype=torch.float64)
    b = _sampled_rewards(
        BanditConfig(landscape="plateau", reward_noise="bernoulli"), mean, seeds, 1
    )
    assert set(b.unique().tolist()) == {0.0, 1.0} and abs(float(b.mean()) - 0.3) < 0.01
    n = _sampled_rewards(BanditConfig(reward_noise="gaussian", noise_std=0.5), mean, seeds, 1)
    assert abs(float(n.mean()) - 0.3) < 0.01 and abs(float(n.std()) - 0.5) < 0.01


def test_policy_metrics_closed_forms():
    k = 4
    rewards = torch.tensor([0.0, 1.0, 2.0, 3.0], dtype=torch.float64)
    modes = torch.tensor([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=torch.float64)
    log_pa = torch.log(torch.tensor([[0.1, 0.1, 0.2, 0.6]], dtype=torch.float64))
    uniform = torch.full((1, k), -np.log(k), dtype=torch.float64)
    point = torch.log(torch.tensor([[1e-30, 1e-30, 1e-30, 1.0]], dtype=torch.float64))
    m = dict(
        zip(
            METRICS,
            policy_metrics(uniform, uniform, log_pa, rewards, modes, 0.01)[0].tolist(),
            strict=True,
        )
    )
    assert m["tv"] == pytest.approx(0.5 * (0.15 + 0.15 + 0.05 + 0.35))
    assert m["kl"] == pytest.approx(
        float((0.25 * np.log(0.25 / np.array([0.1, 0.1, 0.2, 0.6]))).sum())
    )
    assert m["entropy"] == pytest.approx(np.log(4)) and m["expected_reward"] == pytest.approx(1.5)
    assert (m["modes_covered"], m["modes_target"], m["max_arm"]) == (2, 2, 0.25)
    m = dict(
        zip(
            METRICS,
            policy_metrics(point, uniform, log_pa, rewards, modes, 0.01)[0].tolist(),
            strict=True,
        )
    )
    assert (
        m["modes_covered"] == 1
        and m["max_arm"] == pytest.approx(1.0)
        and m["tv"] == pytest.approx(0.4)
    )
    # a mode below mode_min_mass is not a target mode
    m = dict(
        zip(
            METRICS,
            policy_metrics(point, uniform, log_pa, rewards, modes, 0.5)[0].tolist(),
            strict=True,
        )
    )
    assert (m["modes_covered"], m["modes_target"]) == (1, 1)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"n_arms": 1}, "n_arms=1"),
        ({"landscape": "nope"}, "landscape='nope'"),
        ({"etas": (0.0,)}, "eta=0.0"),
        ({"kappas": (-1.0,)}, "kappa=-1.0"),
        ({"etas": (1.0,), "kappas": (1.0,)}, "not both"),
        ({"steps": 0}, "steps=0"),
        ({"advantage": "grpo", "num_generations": 1}, "num_generations=1"),
        ({"objectives": ("flowrl",)}, "objective='flowrl'"),
        ({"divergences": ("kld",)}, "divergence='kld'"),
        ({"sampling": "exact", "advantage": "grpo"}, "sampling="),
        ({"init": "given"}, "init_logits"),
        ({"seed": -1}, "seed=-1"),
    ],
)
def test_config_errors_name_the_field(changes, match):
    with pytest.raises(ValueError, match=match):
        BanditConfig(**changes)


def test_errors_found_at_train_time_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="bernoulli"):
        train(BanditConfig(reward_noise="bernoulli", steps=1))
    with pytest.raises(ValueError, match="init_logits has 2 values"):
        train(BanditConfig(init="given", init_logits=(0.0, 1.0), steps=1))


def test_config_files_check_keys_and_types(tmp_path):
    (tmp_path / "a.yaml").write_text(
        "objectives: [reinforce, lad]\ndivergences: kl\netas: [0.5, 1]\nsteps: 10\n"
    )
    c = load(BanditConfig, tmp_path / "a.yaml")
    assert (
        c.objectives == ("reinforce", "lad") and c.divergences == ("kl",) and c.etas == (0.5, 1.0)
    )
    (tmp_path / "b.toml").write_text('objectives = ["lad"]\nlrs = [0.01, 0.02]\n')
    assert load(BanditConfig, tmp_path / "b.toml").lrs == (0.01, 0.02)
    with pytest.raises(ValueError, match="unknown config key stepz; expected one of"):
        from_dict(BanditConfig, {"stepz": 3})
    with pytest.raises(ValueError, match="steps='3' is not valid; expected int"):
        from_dict(BanditConfig, {"steps": "3"})
    (tmp_path / "c.yaml").write_text("- a list\n")
    with pytest.raises(ValueError, match="must hold a mapping"):
        load(BanditConfig, tmp_path / "c.yaml")


def test_results_round_trip_and_theory_gap(tmp_path):
    config = BanditConfig(
        objectives=("lad_theory", "lad"), divergences=("kl",), n_seeds=2, steps=40, log_every=20
    )
    res = train(config)
    out = results.save(res, tmp_path / "run", command=["lad", "test"])
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "metrics.csv", "policies.csv"]
    meta = json.loads((out / "config.json").read_text())
    assert meta["seeds"] == [0, 1] and meta["config"]["steps"] == 40 and "torch" in meta["versions"]
    back = results.load(out)
    np.testing.assert_allclose(back.metrics, res.metrics, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(back.policies, res.policies, rtol=1e-5, atol=1e-7)
    rows = results.final_rows(back)
    assert len(rows) == 4 and all(np.isnan(r["tv_theory"]) for r in rows[:2])
    for r in rows[2:]:
        twin = back.policies[-1, r["run"] - 2]
        assert r["tv_theory"] == pytest.approx(
            0.5 * np.abs(back.policies[-1, r["run"]] - twin).sum()
        )
    summary = results.summarise(rows)
    assert [s["n"] for s in summary] == [2, 2]
