"""`lad bandit ...` and `lad figures ...`: the files they write, and one line + exit 2 on bad input."""

import csv
import json

import pytest
import torch
from typer.testing import CliRunner

from cli import app
from figures.registry import FIGURES, LLM_FIGURES

runner = CliRunner()


@pytest.fixture(autouse=True)
def _restore_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_run_writes_tidy_results_and_prints_the_summary(tmp_path):
    out = tmp_path / "run"
    res = runner.invoke(
        app,
        [
            "bandit",
            "run",
            "--objective",
            "lad",
            "-d",
            "kl",
            "--steps",
            "30",
            "--seeds",
            "2",
            "--log-every",
            "10",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "final metrics after 30 steps" in res.output and "modes covered" in res.output
    rows = _rows(out / "metrics.csv")
    assert len(rows) == 2 * 4  # 2 runs x steps {0, 10, 20, 30}
    assert {r["objective"] for r in rows} == {"lad"} and {r["seed"] for r in rows} == {"0", "1"}
    meta = json.loads((out / "config.json").read_text())
    assert (
        meta["config"]["divergences"] == ["kl"] and meta["command"][0] == "lad"
    )  # then sys.argv[1:]
    assert len(_rows(out / "policies.csv")) == 2 * 2 * 50  # runs x (first, last step) x arms


def test_sweep_from_a_yaml_file_with_cli_overrides(tmp_path):
    cfg = tmp_path / "sweep.yaml"
    cfg.write_text(
        "objectives: [reinforce, lad]\ndivergences: [kl, js]\netas: [0.5, 2.0]\nsteps: 500\n"
    )
    out = tmp_path / "sweep"
    res = runner.invoke(
        app,
        [
            "bandit",
            "sweep",
            "-c",
            str(cfg),
            "--steps",
            "20",
            "--seeds",
            "2",
            "--kappas",
            "1,4",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    meta = json.loads((out / "config.json").read_text())
    assert (
        meta["config"]["steps"] == 20
        and meta["config"]["etas"] is None
        and meta["config"]["kappas"] == [1.0, 4.0]
    )
    assert (
        len(meta["runs"]) == (1 + 2) * 2 * 2
    )  # (reinforce + lad x 2 divergences) x 2 eta x 2 seeds
    assert sorted({r["eta"] for r in meta["runs"]}) == [0.25, 1.0]

    res = runner.invoke(
        app, ["bandit", "compare", str(out), "--sort", "tv", "--csv", str(tmp_path / "cmp.csv")]
    )
    assert res.exit_code == 0, res.output
    table = _rows(tmp_path / "cmp.csv")
    assert len(table) == 6 and [float(r["tv"]) for r in table] == sorted(
        float(r["tv"]) for r in table
    )


def test_refreshed_run_reports_the_policy_against_p_a(tmp_path):
    out = tmp_path / "refresh"
    args = [
        "bandit",
        "run",
        "--objective",
        "reinforce",
        "--refresh-every",
        "1",
        "--steps",
        "20",
        "--seeds",
        "2",
    ]
    res = runner.invoke(
        app, [*args, "--advantage", "grpo", "--reward-noise", "gaussian", "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    assert "TV(pi,P_A)" in res.output
    res = runner.invoke(app, ["bandit", "compare", str(out)])
    assert res.exit_code == 0 and "TV(pi,P_A)" in res.output, res.output


def test_landscape_draws_png_and_pdf(tmp_path):
    res = runner.invoke(app, ["bandit", "landscape", "trimodal", "--out", str(tmp_path / "land")])
    assert res.exit_code == 0, res.output
    assert "mode 2: arms 32-49" in res.output
    assert (tmp_path / "land.png").stat().st_size > 10_000 and (tmp_path / "land.pdf").is_file()


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["run", "--arms", "1"], "n_arms=1"),
        (["run", "--rewards", "EMPTY"], "is empty"),
        (["run", "--rewards", "TEXT"], "could not convert"),
        (["run", "--rewards", "NAN"], "arm 1 is nan"),
        (["run", "--rewards", "INF"], "arm 0 is inf"),
        (["run", "--landscape", "nope"], "landscape='nope' is not a known landscape"),
        (["run", "--eta", "0"], "eta=0.0 is not valid"),
        (["run", "--kappa", "-2"], "kappa=-2.0 is not valid"),
        (["run", "--steps", "0"], "steps=0 is not valid"),
        (["run", "--advantage", "grpo", "-G", "1"], "num_generations=1"),
        (["run", "--reward-noise", "bernoulli"], "needs rewards in [0, 1]"),
        (["sweep", "--etas", "1,x"], "etas='1,x' is not valid; expected a list of float"),
        (["sweep", "--objectives", "lad,ppo"], "objective='ppo'"),
        (["sweep", "-c", "MISSING"], "does not exist"),
        (["landscape", "nope"], "landscape='nope'"),
        (["run", "--device", "tpu"], "device='tpu' is not valid"),
        (["run", "--device", "cuda:7"], "device='cuda:7' is not available"),
        (["run", "--threads", "0"], "threads=0 is not valid"),
        (["run", "--steps", "x"], "steps='x' is not valid; expected int"),
        (["sweep", "-c", "BADYAML"], "is not valid YAML (line 2"),
        (["sweep", "-c", "UNKNOWNKEY"], "unknown config key stepz in config file"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_no_results(tmp_path, args, match):
    files = {
        "EMPTY": ("e.json", "[]"),
        "TEXT": ("t.csv", "1,x\n"),
        "NAN": ("n.json", "[1, NaN]"),
        "INF": ("i.json", "[Infinity, 1]"),
        "BADYAML": ("bad.yaml", "etas: [1, 2\n"),
        "UNKNOWNKEY": ("unknown.yaml", "stepz: 3\n"),
    }
    for i, a in enumerate(args):
        if a in files:
            name, text = files[a]
            (tmp_path / name).write_text(text)
            args[i] = str(tmp_path / name)
        elif a == "MISSING":
            args[i] = str(tmp_path / "missing.yaml")
    out = tmp_path / "out"
    res = runner.invoke(app, ["bandit", *args, "--out", str(out)])
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and match in lines[0], res.output
    assert not out.exists() and not (tmp_path / "out.png").exists()


def test_compare_rejects_a_directory_without_results(tmp_path):
    res = runner.invoke(app, ["bandit", "compare", str(tmp_path)])
    assert res.exit_code == 2 and "is not a bandit results directory" in res.output


def test_figure_commands_come_from_the_registry():
    res = runner.invoke(app, ["figures", "list"])
    names = [*FIGURES.names(), *LLM_FIGURES.names()]
    assert res.exit_code == 0 and all(n in res.output for n in names)
    for name in names:
        res = runner.invoke(app, ["figures", name, "--help"])
        description = (FIGURES if name in FIGURES else LLM_FIGURES).get(name).description
        assert res.exit_code == 0 and description.split(":")[0] in res.output, name


def test_weights_figure_needs_no_data(tmp_path):
    res = runner.invoke(app, ["figures", "weights", "--out", str(tmp_path), "--workers", "1"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "weights.png").stat().st_size > 10_000 and (
        tmp_path / "weights.pdf"
    ).is_file()


def test_replot_without_data_is_a_clear_error(tmp_path):
    res = runner.invoke(app, ["figures", "fig1", "--out", str(tmp_path), "--replot"])
    assert res.exit_code == 2 and "run without --replot" in res.output


@pytest.mark.slow
def test_figures_all_regenerates_everything(tmp_path):
    res = runner.invoke(app, ["figures", "all", "--out", str(tmp_path), "--workers", "2"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "explorer.html").stat().st_size > 1e6  # the explorer page
    for name in FIGURES.names():
        if name == "explorer":
            continue
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000 and (
            tmp_path / f"{name}.pdf"
        ).is_file()
    res = runner.invoke(
        app,
        [
            "figures",
            "fig1",
            "--out",
            str(tmp_path / "again"),
            "--data",
            str(tmp_path / "data"),
            "--replot",
        ],
    )
    assert res.exit_code == 0, res.output


def test_example_sweep_files_match_the_figure_experiments():
    from bandit.config import BanditConfig
    from bandit.experiments import eta_config, fig1_config, onpolicy_config
    from labkit.config_loading import load

    assert load(BanditConfig, "configs/bandit/fig1.yaml") == fig1_config().replace(etas=(1.0,))
    assert load(BanditConfig, "configs/bandit/eta_sweep.yaml") == eta_config()
    assert load(BanditConfig, "configs/bandit/onpolicy.yaml") == onpolicy_config()
    for name in ("iterative.toml", "lr_grid.yaml"):
        assert load(BanditConfig, f"configs/bandit/{name}").steps > 0
