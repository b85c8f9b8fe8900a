"""The bandit stops on NaN/inf (naming the runs and the step, exit 1, nothing saved) and refuses an
output directory that is a file, or under one (one line, exit 2, nothing written)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from bandit.config import BanditConfig
from bandit.trainer import NonFiniteError, train
from cli import app
from tests.test_bandit_trainer import _one_thread  # noqa: F401  (autouse: one torch thread)

runner = CliRunner()


@pytest.mark.parametrize("divergence", ["rkl", "pearson"])
def test_non_finite_runs_stop_training_and_are_named(divergence):
    config = BanditConfig(
        divergences=(divergence, "kl"), etas=(0.01, 1.0), steps=100, log_every=50, n_seeds=2
    )
    with pytest.raises(NonFiniteError) as e:
        train(config)
    msg = str(e.value)
    assert f"lad/{divergence} eta=0.01 lr=0.005 seed=0 (step " in msg and "seed=1" in msg
    assert "in 2 of 8 runs" in msg and "lad/kl " not in msg and "eta=1 " not in msg
    assert "nothing saved" in msg and "\n" not in msg


def test_cli_exits_1_on_non_finite_and_saves_nothing(tmp_path):
    out = tmp_path / "run"
    args = ["bandit", "run", "-d", "rkl", "--eta", "0.01", "--steps", "100", "--seeds", "1"]
    res = runner.invoke(app, [*args, "--out", str(out)])
    assert res.exit_code == 1, res.output
    assert "non-finite loss or gradient" in res.output and "lad/rkl eta=0.01" in res.output
    assert not out.exists()


def test_cli_refuses_an_out_dir_that_is_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    for out, what in [("f", "is a file"), ("f/run", "has a parent that is a file")]:
        res = runner.invoke(app, ["bandit", "run", "--steps", "2", "--out", str(tmp_path / out)])
        assert res.exit_code == 2, res.output
        assert res.output.startswith("error: out=") and what in res.output
        assert res.output.count("\n") == 1 and "Traceback" not in res.output
    assert [p.name for p in tmp_path.iterdir()] == ["f"]
