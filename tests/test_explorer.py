"""The explorer: grid checks, the page's self-containment and data, the CLI command (no browser;
tests/test_explorer_browser.py drives the page in Chromium)."""

import base64
import json
import re

import numpy as np
import pytest
from typer.testing import CliRunner

import cli
from bandit import results
from bandit.explore import ExploreGrid, result_dirs, run_grid
from figures import explorer
from labkit.config_loading import load

TINY = dict(
    landscapes=("trimodal", "bimodal"),
    divergences=("js", "kl"),
    etas=(0.5, 1.0),
    lrs=(0.005, 0.02),
    refresh=(0, 5),
    generations=(0, 16),
    n_seeds=2,
    steps=30,
    every=10,
)


@pytest.fixture(scope="session")
def tiny_grid(tmp_path_factory):
    """A small grid, built once, with its page (shared with the browser tests)."""
    out = tmp_path_factory.mktemp("explorer")
    run_grid(ExploreGrid(**TINY), out, workers=1)
    explorer.write_page(out, out / "explorer.html")
    return out


def saved(grid_dir, key: str, step_index: int, seed: str = "all"):
    """The saved run's values behind a page key: policy (mean, min, max) at the step and every
    metric curve (mean, min, max), straight from the result files."""
    land, oid, eta, lr, mu, sampling = key.split("|")
    res = results.load(grid_dir / "runs" / f"{land}__mu{mu}__{sampling}")
    obj, _, div = oid.partition(":")
    runs = sorted(
        (
            r
            for r in res.runs
            if r["objective"] == obj
            and r["divergence"] == div
            and r["eta"] == float(eta)
            and r["lr"] == float(lr)
        ),
        key=lambda r: r["seed"],
    )
    if seed != "all":
        runs = [r for r in runs if r["seed"] == int(seed)]
    idx = [r["run"] for r in runs]
    assert idx, key
    pol = res.policies[step_index][idx]
    cols = [results.METRICS.index(m) for m, _ in explorer.METRICS]
    met = res.metrics[:, idx][:, :, cols]  # (L, n, 4)
    return (
        (pol.mean(0), pol.min(0), pol.max(0)),
        [(met[:, :, m].mean(1), met[:, :, m].min(1), met[:, :, m].max(1)) for m in range(4)],
    )


def test_page_is_self_contained_and_small(tiny_grid):
    html = (tiny_grid / "explorer.html").read_text()
    # no external script, stylesheet or image: the page works offline
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", html)
    assert html.count("Plotly.newPlot") == 4
    assert (tiny_grid / "explorer.html").stat().st_size < 20e6


def test_page_data_decode_to_the_saved_runs(tiny_grid):
    data = explorer.collect(tiny_grid)
    key = "bimodal|lad:kl|0.5|0.02|5|G16"
    point = data["points"][key]
    n, s = 2, len(data["steps"])
    pol = np.frombuffer(base64.b64decode(point["pol"]), "<f2").reshape(n, s, -1)
    met = np.frombuffer(base64.b64decode(point["met"]), "<f4").reshape(n, len(data["log_steps"]), 4)
    (mean, lo, hi), curves = saved(tiny_grid, key, step_index=3)
    np.testing.assert_allclose(pol[:, 3].astype(float).mean(0), mean, rtol=2e-3, atol=1e-4)
    np.testing.assert_allclose(pol[:, 3].min(0), lo, rtol=2e-3, atol=1e-4)
    np.testing.assert_allclose(pol[:, 3].max(0), hi, rtol=2e-3, atol=1e-4)
    np.testing.assert_allclose(met[:, :, 0].max(0), curves[0][2], rtol=1e-6)
    # every configuration of the grid is on the page
    assert len(data["points"]) == 2 * 2 * 2 * (2 + 2 * 2) * 2 * 2
    assert data["etas"] == ["0.5", "1"] and data["samplings"] == ["exact", "G16"]


def test_grid_errors_name_the_field(tmp_path):
    with pytest.raises(ValueError, match="every=0 is not valid"):
        ExploreGrid(every=0)
    with pytest.raises(ValueError, match="refresh=-1 is not valid"):
        ExploreGrid(refresh=(-1,))
    with pytest.raises(ValueError, match="objective='ppo' is not a bandit objective"):
        ExploreGrid(objectives=("ppo",))
    bad = tmp_path / "g.yaml"
    bad.write_text("etaz: [1]\n")
    with pytest.raises(ValueError, match="unknown config key etaz in config file"):
        load(ExploreGrid, bad)


def test_cli_one_line_errors(tmp_path):
    r = CliRunner().invoke(
        cli.app,
        [
            "bandit",
            "explore",
            "--landscape",
            "trimodal",
            "--rewards",
            "r.json",
            "--out",
            str(tmp_path),
        ],
    )
    assert r.exit_code == 2
    assert "give --landscape or --rewards, not both" in r.output
    assert "Traceback" not in r.output
    r = CliRunner().invoke(cli.app, ["bandit", "explore", "--grid", str(tmp_path / "no.yaml")])
    assert r.exit_code == 2 and "no.yaml' does not exist" in r.output
    assert not list(tmp_path.iterdir())  # nothing written


def test_cli_reads_a_saved_sweep(tmp_path):
    sweep = tmp_path / "sweep"
    r = CliRunner().invoke(
        cli.app,
        [
            "bandit", "sweep", "--objectives", "grpo,lad", "--divergences", "hellinger",
            "--seeds", "2", "--steps", "20", "--log-every", "5", "--policy-steps", "0,5,10,15,20",
            "--out", str(sweep),
        ],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    out = tmp_path / "page"
    r = CliRunner().invoke(cli.app, ["bandit", "explore", "--grid", str(sweep), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert result_dirs(out) == {"trimodal__mu0__G64": sweep.resolve()}
    data = explorer.collect(out)
    assert [o["id"] for o in data["objectives"]] == ["grpo", "lad:hellinger"]
    assert data["steps"] == [0, 5, 10, 15, 20]
    assert set(data["dynamics"]) == {"hellinger"}
    assert (out / "explorer.html").is_file()


def test_figures_registry_writes_the_page(tiny_grid, tmp_path):
    from figures.registry import FIGURES, draw

    assert FIGURES.get("explorer").needs == ("explorer",)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "explorer").symlink_to(tiny_grid)
    written = draw("explorer", tmp_path / "data", tmp_path / "figs")
    assert written == [tmp_path / "figs" / "explorer.html"]
    assert json.loads(
        re.search(r"const DATA = (\{.*?\}); const DEFAULTS", written[0].read_text()).group(1)
    )["steps"] == [0, 10, 20, 30]
