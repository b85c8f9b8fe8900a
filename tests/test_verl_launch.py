"""`lad llm verl`: the verl command line it prints, the committed launch scripts, bad input.

Runs in the main env (no verl needed). That the printed overrides compose with verl's real
Hydra config and pass its `validate_config` is checked in .venv-verl (test_verl_integration.py).
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli import app
from llm.integrations.verl_launch import PRESETS, main_ppo_command, render_script

ROOT = Path(__file__).resolve().parent.parent


def _argv_of_script(text: str) -> list[str]:
    """What bash passes to python: join the continuation lines, drop comments and `set`."""
    body = [line for line in text.splitlines() if line and not line.startswith(("#", "set "))]
    return shlex.split(" ".join(line.rstrip("\\") for line in body))


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_committed_scripts_are_what_the_cli_prints(preset):
    result = CliRunner().invoke(app, ["llm", "verl", "--preset", preset])
    assert result.exit_code == 0, result.output
    path = ROOT / "configs" / "verl" / f"{preset}.sh"
    assert path.read_text() == result.output, f"regenerate: lad llm verl --preset {preset} > {path}"
    argv = _argv_of_script(result.output)
    assert argv == main_ppo_command(preset)
    assert argv[:3] == ["python3", "-m", "verl.trainer.main_ppo"]
    assert "actor_rollout_ref.model.external_lib=llm.integrations.verl" in argv
    assert "actor_rollout_ref.actor.policy_loss.loss_mode=lad" in argv


def test_paper_preset_is_8_gpus_kappa_4_js():
    argv = main_ppo_command("qwen2.5-7b-dapo-8gpu")
    for arg in (
        "trainer.n_gpus_per_node=8",
        "actor_rollout_ref.model.path=Qwen/Qwen2.5-7B",
        "+actor_rollout_ref.actor.policy_loss.kappa=4.0",
        "+actor_rollout_ref.actor.policy_loss.divergence=js",
    ):
        assert arg in argv
    assert not any("policy_loss.eta" in a for a in argv)


def test_options_and_overrides_replace_preset_values_once():
    result = CliRunner().invoke(
        app,
        [
            "llm", "verl", "--preset", "qwen2.5-7b-dapo-8gpu", "--eta", "0.5", "--divergence", "hellinger",
            "--n-gpus", "4", "--model", "~/m/7b", "--python", "/opt/verl/bin/python",
            "trainer.total_epochs=3", "+actor_rollout_ref.actor.clip_ratio_c=10",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    argv = _argv_of_script(result.output)
    assert argv[0] == "/opt/verl/bin/python"
    assert "+actor_rollout_ref.actor.policy_loss.eta=0.5" in argv
    assert not any("policy_loss.kappa" in a for a in argv)  # eta replaces the preset's kappa
    assert "+actor_rollout_ref.actor.policy_loss.divergence=hellinger" in argv
    assert "actor_rollout_ref.model.path='~/m/7b'" in argv
    keys = [a.lstrip("+").split("=", 1)[0] for a in argv[3:]]
    assert len(keys) == len(set(keys))  # one value per key: Hydra rejects duplicates
    assert "trainer.n_gpus_per_node=4" in argv and "trainer.total_epochs=3" in argv
    assert "actor_rollout_ref.actor.clip_ratio_c=10" in argv


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--preset", "nope"], "preset='nope'"),
        (["--eta", "1", "--kappa", "2"], "give eta or kappa"),
        (["--divergence", "nope"], "divergence='nope'"),
        (["--loss-agg-mode", "token-sum"], "loss_agg_mode='token-sum'"),
        (["--n-gpus", "0"], "n_gpus_per_node=0"),
        (["not-an-override"], "override='not-an-override'"),
        (["algorithm.rollout_correction.bypass_mode=True"], "bypass_mode=True"),
        (["--run", "--python", "/nonexistent/python"], "No such file"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, needle):
    result = CliRunner().invoke(app, ["llm", "verl", *args])
    assert result.exit_code == 2, result.output
    assert needle in result.output
    assert "Traceback" not in result.output


def test_render_script_quotes_for_bash():
    argv = main_ppo_command("single-gpu", train_files="~/my data/x.parquet")
    assert _argv_of_script(render_script(argv, "single-gpu")) == argv
