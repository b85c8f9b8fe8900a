"""The LLM config: defaults, YAML < CLI precedence, and errors that name the key."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from labkit import LossConfig, compute_loss
from llm.config import AlgorithmConfig, TrainConfig
from llm.config_loading import describe, load_config

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = sorted((ROOT / "configs" / "llm").glob("*.yaml"))


def test_defaults_are_lad_js_kappa_4():
    cfg = load_config()
    algo = cfg.algorithm
    assert isinstance(algo, LossConfig)  # goes to labkit.losses.compute_loss as is
    assert (algo.loss_mode, algo.divergence, algo.kappa, algo.eta) == ("lad", "js", 4.0, None)
    assert algo.inverse_temperature == 4.0
    assert algo.advantage_config().estimator == "grpo"
    assert cfg.rollout.sampling(seed=3).num_generations == cfg.rollout.num_generations


def test_every_field_has_help_text():
    for section in dataclasses.fields(TrainConfig):
        for f in dataclasses.fields(section.default_factory()):
            assert f.metadata.get("help"), f"{section.name}.{f.name} has no help text"
    text = describe()
    assert "algorithm:" in text and "kappa: 4.0" in text and "# LAD inverse temperature" in text


def test_yaml_then_cli_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "algorithm:\n  divergence: kl\n  epsilon_high: 0.28\ntrainer:\n  seed: 1\n  learning_rate: 1e-6\n"
        "data:\n  reward_funcs: [math_accuracy, format]\n"
    )
    cfg = load_config(path, ["trainer.seed=3", "algorithm.divergence=hellinger", "model.path=123"])
    assert cfg.trainer.seed == 3  # CLI wins
    assert cfg.algorithm.divergence == "hellinger"
    assert cfg.algorithm.epsilon_high == 0.28  # YAML over default
    assert cfg.trainer.learning_rate == 1e-6 and isinstance(
        cfg.trainer.learning_rate, float
    )  # YAML 1.1 "1e-6"
    assert cfg.data.reward_funcs == ["math_accuracy", "format"]
    assert cfg.model.path == "123"  # a string field takes the text as written
    cfg = load_config(
        path, ["data.reward_weights=[1, 0.5]", "eval.ks=null", "trainer.report_to=[]"]
    )
    assert cfg.data.reward_weights == [1.0, 0.5]


def test_eta_replaces_the_kappa_default_and_later_layers_win(tmp_path):
    assert load_config(None, ["algorithm.eta=0.5"]).algorithm.kappa is None
    path = tmp_path / "c.yaml"
    path.write_text("algorithm:\n  kappa: 8\n")
    cfg = load_config(path, ["algorithm.eta=2"])
    assert (cfg.algorithm.eta, cfg.algorithm.kappa) == (2.0, None)
    with pytest.raises(ValueError, match="eta or kappa, not both"):
        load_config(None, ["algorithm.eta=2", "algorithm.kappa=3"])


def test_trl_loss_type_sets_the_aggregation():
    assert (
        load_config(None, ["algorithm.loss_type=grpo"]).algorithm.loss_agg_mode
        == "seq-mean-token-mean"
    )
    assert (
        load_config(None, ["algorithm.loss_type=dr_grpo"]).algorithm.loss_agg_mode
        == "seq-mean-token-sum-norm"
    )
    with pytest.raises(ValueError, match="loss_type='grpo' means loss_agg_mode"):
        load_config(
            None, ["algorithm.loss_type=grpo", "algorithm.loss_agg_mode=seq-mean-token-sum"]
        )


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["trainer.seedx=1"], "unknown config key trainer.seedx"),
        (["optim.lr=1"], "unknown config section 'optim'"),
        (["trainer.seed=abc"], "trainer.seed='abc' has the wrong type; expected int"),
        (["trainer.seed=1.5"], "trainer.seed=1.5 has the wrong type; expected int"),
        (["algorithm.kappa=js"], "algorithm.kappa='js' has the wrong type; expected float"),
        (["trainer.bf16=3"], "trainer.bf16=3 has the wrong type; expected bool"),
        (
            ["data.reward_funcs=math_accuracy"],
            "data.reward_funcs='math_accuracy' has the wrong type; expected a list",
        ),
        (["eval.ks=[1, x]"], r"eval.ks\[1\]='x' has the wrong type"),
        (["trainer"], "expected section.field=value"),
        (["a.b.c=1"], "expected section.field"),
        (["algorithm.loss_mode=ppo2"], "loss_mode='ppo2' is not a known policy loss"),
        (["algorithm.divergence=chi"], "divergence='chi' is not a known f-divergence"),
        (["algorithm.estimator=gae"], "estimator='gae' is not a known advantage estimator"),
        (["rollout.backend=sglang"], "rollout.backend='sglang' is not valid"),
        (["rollout.temperature=0"], "temperature must be > 0"),
        (
            ["trainer.mini_batch_size=3"],
            "trainer.mini_batch_size=3 is not valid; expected a divisor",
        ),
        (["trainer.gradient_accumulation_steps=3"], "gradient_accumulation_steps=3 is not valid"),
        (["data.reward_weights=[1, 2]"], "one weight per reward function"),
        (["data.on_bad_record=ignore"], "data.on_bad_record='ignore' is not valid"),
        (["eval.ks=[16]"], "every k must be in"),
        (
            ["trainer.resume=/no/such/checkpoint"],
            "trainer.resume='/no/such/checkpoint' is not valid",
        ),
        (["algorithm.loss_mode=flowrl"], "flowrl' needs loss_agg_mode='seq-mean-token-mean'"),
    ],
)
def test_bad_values_name_the_key(overrides, message):
    with pytest.raises(ValueError, match=message):
        load_config(None, overrides)


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("trainer:\n  sed: 1\n")
    with pytest.raises(ValueError, match=r"unknown config key trainer\.sed"):
        load_config(bad)
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="must hold a mapping"):
        load_config(bad)


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_configs_load_and_round_trip(path, tmp_path):
    cfg = load_config(path)
    dumped = tmp_path / "resolved.yaml"
    dumped.write_text(cfg.to_yaml())
    assert load_config(dumped) == cfg


def test_the_trainers_default_objective_is_labkits_lad_at_kappa_4():
    """The LLM trainer's default loss is labkit's default LossConfig at the paper's main setting
    kappa = 4, field by field and as computed by labkit on the same tensors."""
    algo, paper = AlgorithmConfig(), LossConfig(kappa=4.0)
    assert {f.name: getattr(algo, f.name) for f in dataclasses.fields(LossConfig)} == (
        dataclasses.asdict(paper)
    )
    g = torch.Generator().manual_seed(0)
    old = -torch.rand(4, 6, generator=g, dtype=torch.float64)
    new = old + 0.2 * torch.randn(4, 6, generator=g, dtype=torch.float64)
    adv = torch.randn(4, 1, generator=g, dtype=torch.float64).expand(4, 6)
    mask = torch.ones(4, 6)
    mask[1, 4:] = 0
    loss_algo, metrics_algo = compute_loss(old, new, adv, mask, algo)
    loss_paper, metrics_paper = compute_loss(old, new, adv, mask, paper)
    assert torch.equal(loss_algo, loss_paper) and metrics_algo.keys() == metrics_paper.keys()


def test_cli_config_errors_are_one_line_exit_2():
    from cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["llm", "train", "trainer.seedx=1"])
    assert result.exit_code == 2
    assert result.output.strip().startswith("error: unknown config key trainer.seedx")
    assert "Traceback" not in result.output
    result = runner.invoke(app, ["llm", "train", "--config", "no/such.yaml"])
    assert result.exit_code == 2 and "does not exist" in result.output
    result = runner.invoke(app, ["llm", "config", "algorithm.divergence=kl"])
    assert result.exit_code == 0 and "divergence: kl" in result.output
