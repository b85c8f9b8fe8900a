"""`lad figures summary`: the bandit numbers the docs quote, from saved results, with seed CIs."""

import json
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from bandit import results
from bandit.experiments import run_experiments
from figures import bandit_summary


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    run_experiments([*bandit_summary.EXPERIMENTS, "surrogate"], root, steps=20)
    return root


def test_summary_holds_every_group_with_its_seed_statistics(data_root):
    summary = bandit_summary.summarise(data_root)
    fig1 = results.final_rows(results.load(data_root / "fig1"))
    groups = summary["experiments"]["fig1"]["groups"]
    assert len(groups) == len({(r["objective"], r["divergence"], r["eta"]) for r in fig1})
    for g in groups:
        mine = [
            r["tv"]
            for r in fig1
            if r["objective"] == g["objective"] and (g["divergence"] in (None, r["divergence"]))
        ]
        if g["divergence"] is None:  # baselines have one group per objective
            assert len(mine) == g["n"]
        tv = g["tv"]
        assert tv["min"] <= tv["ci_low"] <= tv["mean"] <= tv["ci_high"] <= tv["max"]
    lad_js = next(g for g in groups if g["objective"] == "lad" and g["divergence"] == "js")
    expected = np.mean(
        [r["tv"] for r in fig1 if r["objective"] == "lad" and r["divergence"] == "js"]
    )
    assert lad_js["tv"]["mean"] == pytest.approx(expected)
    assert set(summary["surrogate"]["slopes"]) == {"kl", "rkl", "hellinger", "js", "tv"}


def test_cli_writes_the_file_and_the_blocks_render_from_it(data_root, tmp_path, monkeypatch):
    from cli import app

    out = tmp_path / "summary.json"
    args = ["figures", "summary", "--data", str(data_root), "--out", str(out)]
    monkeypatch.setattr(sys, "argv", ["lad", *args])  # the command the file records
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    saved = json.loads(out.read_text())
    assert saved["provenance"]["command"].startswith("lad figures summary")
    assert "machine" in saved["provenance"] and "versions" in saved["provenance"]

    monkeypatch.setattr(bandit_summary, "SUMMARY", str(out))
    table = bandit_summary.fig1_table()
    js = next(g for g in saved["experiments"]["fig1"]["groups"] if g["divergence"] == "js")
    assert f"{js['tv']['mean']:.3f}" in table
    assert "command: `lad figures summary" in table
    assert bandit_summary.fig1_conclusion().startswith("With π_old fixed")
    assert "| kl |" in bandit_summary.surrogate_table()
    assert "η = 0.25" in bandit_summary.eta_table()


def test_cli_names_a_missing_results_directory(tmp_path):
    from cli import app

    out = tmp_path / "summary.json"
    result = CliRunner().invoke(
        app, ["figures", "summary", "--data", str(tmp_path / "none"), "--out", str(out)]
    )
    assert result.exit_code == 2
    assert "is not a bandit results directory" in result.output
    assert not out.exists()
