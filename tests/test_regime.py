"""The regime map: outcome metrics, the exact iterated tilt, the refresh / clip grid axes of the
trainer, the CLI end to end, and the report blocks from the committed results."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from bandit.config import BanditConfig
from bandit.landscapes import get_landscape
from bandit.metrics import correct_metrics
from bandit.regime import POINT_KEYS, plateau_rewards, rollouts, summarise
from bandit.theory import iterated_tilt
from bandit.trainer import train
from labkit.stats import bootstrap_diff_ci


def test_correct_metrics_hand_computed():
    pi = torch.tensor(
        [
            [0.5, 0.25, 0.25, 0.0],  # correct shares 2/3, 1/3
            [0.9, 0.01, 0.09, 0.0],  # one correct arm holds 1.1% of the correct mass
            [0.3, 0.3, 0.2, 0.2],  # even over the correct arms
        ],
        dtype=torch.float64,
    )
    correct = torch.tensor([True, True, False, False])
    out = correct_metrics(pi, correct, keep_share=0.5).numpy()
    h = -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3))
    np.testing.assert_allclose(out[0], [0.75, math.exp(h), 2.0])
    q = np.array([0.9, 0.01]) / 0.91
    np.testing.assert_allclose(out[1], [0.91, math.exp(-(q * np.log(q)).sum()), 1.0])
    np.testing.assert_allclose(out[2], [0.6, 2.0, 2.0])
    with pytest.raises(ValueError, match="at least one"):
        correct_metrics(pi, torch.zeros(4, dtype=torch.bool))


def test_peak_arms_are_the_correct_answers():
    plateau = get_landscape("plateau")
    np.testing.assert_array_equal(plateau.peak_arms(), plateau.array() == 1.0)
    assert np.flatnonzero(get_landscape("trimodal").peak_arms()).tolist() == [10, 24, 39]
    # the regime's k = 10 plateau is the built-in one
    assert plateau_rewards(50, 10) == list(plateau.rewards)
    assert sum(plateau_rewards(50, 2)) == 2


def test_iterated_tilt_matches_closed_form():
    g = torch.Generator().manual_seed(0)
    r = torch.randn(12, generator=g, dtype=torch.float64)
    log_pi0 = torch.log_softmax(torch.randn(12, generator=g, dtype=torch.float64), -1)
    for eta, n in ((1.0, 0), (0.5, 1), (2.0, 7), (4.0, 40)):
        closed = torch.log_softmax(log_pi0 + n * r / eta, -1)
        np.testing.assert_allclose(iterated_tilt(log_pi0, r, eta, n), closed, rtol=1e-9, atol=1e-9)
    # equal rewards keep their ratios: the tilt never prefers one of two tied arms
    tied = torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64)
    start = torch.log(torch.tensor([0.1, 0.3, 0.6], dtype=torch.float64))
    p = iterated_tilt(start, tied, 1.0, 25).exp()
    assert p[1] / p[0] == pytest.approx(3.0)
    assert rollouts(2000, 0) == 1 and rollouts(2000, 3) == 667


def _final(config: BanditConfig) -> np.ndarray:
    torch.set_num_threads(1)
    return train(config).policies[-1]


def test_mixed_refresh_and_clip_axes_match_runs_alone():
    """Run i of a grid over refresh periods and grpo clips equals the same config run alone."""
    base = BanditConfig(
        landscape="plateau",
        objectives=("grpo", "lad"),
        divergences=("js",),
        lrs=(0.05,),
        n_seeds=2,
        steps=12,
        num_generations=8,
        log_every=12,
        dtype="float64",  # batch composition changes float32 reductions by an ulp
    )
    grid = base.replace(refresh_periods=(1, 3, 0), epsilon_highs=(0.2, 0.28))
    result = train(grid)
    pi = result.policies[-1]
    for i, run in enumerate(result.runs):
        alone = base.replace(
            objectives=(run.objective,),
            refresh_every=run.refresh,
            epsilon_highs=None if run.epsilon_high is None else (run.epsilon_high,),
            seed=run.seed,
            n_seeds=1,
        )
        np.testing.assert_allclose(pi[i], _final(alone)[0], rtol=1e-10, err_msg=str(run))
    # the axes change the runs: refreshed and fixed pi_old, and the two clips, differ
    by = {(r.objective, r.refresh, r.epsilon_high, r.seed): i for i, r in enumerate(result.runs)}
    assert not np.allclose(pi[by[("lad", 1, None, 0)]], pi[by[("lad", 0, None, 0)]])
    assert not np.allclose(pi[by[("grpo", 0, 0.2, 0)]], pi[by[("grpo", 0, 0.28, 0)]])


def test_bad_axes_are_one_line_errors():
    with pytest.raises(ValueError, match="refresh_periods"):
        BanditConfig(refresh_periods=(1, -2))
    with pytest.raises(ValueError, match="refresh_periods"):
        BanditConfig(refresh_periods=(1,), refresh_every=4)
    with pytest.raises(ValueError, match="epsilon_highs"):
        BanditConfig(epsilon_highs=())


def test_summarise_cis_and_differences():
    rows = []
    for seed in range(20):
        for obj, acc in (
            ("grpo eps 0.2", 0.5 + 0.01 * (seed % 3)),
            ("lad js", 0.8 + 0.01 * (seed % 5)),
        ):
            rows.append(
                dict(
                    panel="p",
                    structure="s",
                    G=8,
                    side="main",
                    objective=obj,
                    eta=1.0,
                    lr=0.05,
                    mu=1,
                    seed=seed,
                    accuracy=acc,
                    eff_correct=1.0,
                    kept_correct=1.0,
                    tv_target=0.1,
                )
            )
    out = summarise(rows, n_boot=500, seed=0)
    (lad,) = [p for p in out["points"] if p["objective"] == "lad js"]
    assert lad["n"] == 20 and lad["accuracy_lo"] < lad["accuracy"] < lad["accuracy_hi"]
    assert lad["eff_correct_lo"] == lad["eff_correct_hi"] == 1.0  # no spread, no interval
    (diff,) = out["diffs"]
    grpo_mean = np.mean([r["accuracy"] for r in rows if r["objective"] == "grpo eps 0.2"])
    assert diff["accuracy"] == pytest.approx(lad["accuracy"] - grpo_mean)
    assert 0 < diff["accuracy_lo"] < diff["accuracy"] < diff["accuracy_hi"]
    assert diff["tv_target"] == diff["tv_target_lo"] == diff["tv_target_hi"] == 0.0
    # a CI that covers 0 when the two samples come from one distribution
    rng = np.random.default_rng(1)
    _, lo, hi = bootstrap_diff_ci(rng.normal(size=40), rng.normal(size=40), rng, 1000)
    assert lo < 0 < hi


@pytest.mark.slow  # ~10 s on a quiet machine: trains a tiny grid, draws the 4-panel figure
def test_cli_regime_tiny_grid_then_figure(tmp_path):
    from cli import app

    runner = CliRunner()
    out = tmp_path / "data" / "regime"
    args = ["bandit", "regime", "--out", str(out), "--steps", "15", "--seeds", "2", "--mus", "2,0"]
    res = runner.invoke(app, [*args, "--ks", "2", "--group-sizes", "8", "--main-only", "-j", "1"])
    assert res.exit_code == 0, res.output
    meta = json.loads((out / "config.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    assert meta["kind"] == "regime" and meta["provenance"]["commit"]
    assert [p["name"] for p in meta["panels"]] == ["plateau k=2, G=8"]
    # 7 objectives (unclipped, 2 clips, 4 divergences) x 2 mus, 2 seeds each
    assert len(summary["points"]) == 14 and {p["n"] for p in summary["points"]} == {2}
    assert len((out / "runs.csv").read_text().splitlines()) == 1 + 28
    assert {t["mu"]: t["rollouts"] for t in summary["theory"]} == {2: 8, 0: 1}
    res = runner.invoke(
        app,
        [
            "figures",
            "regime",
            "--out",
            str(tmp_path / "fig"),
            "--data",
            str(tmp_path / "data"),
            "--replot",
        ],
    )
    assert res.exit_code == 0, res.output
    assert (tmp_path / "fig" / "regime.png").stat().st_size > 10_000


def test_cli_regime_bad_input_writes_nothing(tmp_path):
    from cli import app

    res = CliRunner().invoke(
        app, ["bandit", "regime", "--out", str(tmp_path / "r"), "--seeds", "1"]
    )
    assert res.exit_code == 2
    assert "n_seeds=1 is not valid" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "r").exists()


def test_report_blocks_render_from_committed_results():
    from figures import regime

    summary = regime.load()
    table = regime.REPORT_BLOCKS["regime-table"]()
    assert (
        table.startswith("| objective |") and "LAD JS" in table and "exact iterated tilt" in table
    )
    lad_fixed = next(
        p
        for p in summary["points"]
        if p["structure"] == "plateau k=10"
        and p["G"] == 64
        and p["side"] == "main"
        and p["objective"] == "lad js"
        and p["mu"] == 0
    )
    assert f"{lad_fixed['eff_correct']:.2f} [{lad_fixed['eff_correct_lo']:.2f}" in table
    line = regime.REPORT_BLOCKS["regime-conclusion"]()
    assert line.startswith("On plateau k=10, G=64:") and "\n" not in line


def test_committed_summary_is_what_summarise_gives_from_the_committed_runs():
    """The report blocks read summary.json; it must be the intervals of runs.csv (a summary left
    from an older grid, or computed another way, fails here)."""
    import csv

    from bandit.regime import OUTCOMES

    root = Path(__file__).parents[1] / "docs" / "results" / "regime"
    cfg = json.loads((root / "config.json").read_text())["config"]
    rows = []
    with open(root / "runs.csv", newline="") as f:
        for r in csv.DictReader(f):
            rows.append(
                {
                    **r,
                    "G": int(r["G"]) if r["G"] else None,
                    "eta": float(r["eta"]),
                    "lr": float(r["lr"]),
                    "mu": int(r["mu"]),
                    "seed": int(r["seed"]),
                    **{m: float(r[m]) for m in OUTCOMES},
                }
            )
    ours = summarise(rows, cfg["n_boot"], cfg["seed"])
    committed = json.loads((root / "summary.json").read_text())
    for kind in ("points", "diffs"):
        assert len(ours[kind]) == len(committed[kind])
        for a, b in zip(ours[kind], committed[kind], strict=True):
            assert {k: a[k] for k in POINT_KEYS} == {k: b[k] for k in POINT_KEYS}
            for m in OUTCOMES:
                for key in (m, m + "_lo", m + "_hi"):
                    # runs.csv keeps 6 significant digits, so the means move in the 6th
                    assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-5), (kind, a, key)
