"""figures/: statistics on hand-made arrays, loaders on hand-written files, and every figure built
from (short) real experiment results, without rendering except where the files are the point."""

import numpy as np
import pytest
import torch

from figures import style
from figures.io import Table, load_bandit, read_csv
from figures.registry import FIGURES, draw, needed_experiments
from figures.stats import loglog_slope, seed_matrix, total_variation
from figures.theory import onpolicy_weight, push
from labkit.stats import bootstrap_ci


def test_bootstrap_ci_known_cases():
    rng = np.random.default_rng(0)
    values = np.array([[0.0, 5.0], [1.0, 5.0], [2.0, 5.0], [3.0, 5.0]])
    mean, lo, hi = bootstrap_ci(values, rng, n_boot=4000)
    np.testing.assert_allclose(mean, [1.5, 5.0])
    assert 0.0 <= lo[0] < 1.5 < hi[0] <= 3.0
    assert lo[1] == hi[1] == 5.0  # no spread, no interval
    # a fixed generator gives a fixed interval
    again = bootstrap_ci(values, np.random.default_rng(0), n_boot=4000)
    np.testing.assert_array_equal(again[1], lo)
    one = bootstrap_ci(values[:1], rng)
    np.testing.assert_array_equal(one[0], one[1])
    with pytest.raises(ValueError, match="leading seed axis"):
        bootstrap_ci(np.zeros((0, 3)), rng)


def test_bootstrap_ci_covers_the_mean_of_a_known_distribution():
    rng = np.random.default_rng(1)
    hits = 0
    for _ in range(200):
        sample = rng.normal(2.0, 1.0, size=(10, 1))
        _, lo, hi = bootstrap_ci(sample, rng, n_boot=500)
        hits += int(lo[0] <= 2.0 <= hi[0])
    assert (
        0.85 <= hits / 200 <= 0.99
    )  # nominal 95%, percentile bootstrap runs a bit narrow at n = 10


def test_tables_pivot_and_filter(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(
        "seed,step,objective,divergence,tv\n1,0,lad,kl,0.5\n0,10,lad,kl,0.1\n0,0,lad,kl,0.4\n1,10,lad,kl,0.2\n0,0,reinforce,,0.9\n"
    )
    t = read_csv(path, keep_str=("objective", "divergence"))
    assert t["seed"].dtype.kind == "f" and t["divergence"].tolist()[-1] == ""
    lad = t.where(objective="lad", divergence="kl")
    mat, steps = seed_matrix(lad, "tv")
    np.testing.assert_array_equal(steps, [0, 10])
    np.testing.assert_allclose(mat, [[0.4, 0.1], [0.5, 0.2]])
    assert t.unique("objective") == ["lad", "reinforce"]
    assert len(t.where(divergence="")) == 1
    # drop the first row (seed 1, step 0): a pivot with a hole must refuse, not return NaN
    holey = Table({k: v[1:] for k, v in lad.columns.items()})
    assert len(holey) == 3
    with pytest.raises(ValueError, match="missing some 'step' values"):
        seed_matrix(holey, "tv")
    with pytest.raises(ValueError, match="column 'nope' is not in the table"):
        t["nope"]
    with pytest.raises(FileNotFoundError):
        read_csv(tmp_path / "missing.csv")


def test_small_statistics():
    assert total_variation(np.array([1.0, 0.0]), np.array([0.5, 0.5])) == pytest.approx(0.5)
    x = np.geomspace(1e-3, 1, 7)
    assert loglog_slope(x, 3 * x**1.5) == pytest.approx(1.5)


def test_onpolicy_weights_match_method_md():
    a = np.linspace(-3, 3, 13)
    np.testing.assert_allclose(onpolicy_weight("kl", a), a, atol=1e-12)  # = GRPO's weight
    np.testing.assert_allclose(onpolicy_weight("rkl", a), np.exp(a) - 1.0, atol=1e-12)
    np.testing.assert_allclose(
        onpolicy_weight("js", a), 0.5 * (np.logaddexp(0, a) - np.log(2)), atol=1e-12
    )
    np.testing.assert_allclose(onpolicy_weight("hellinger", a), np.exp(a / 2) - 1.0, atol=1e-12)
    for div in ("kl", "rkl", "hellinger", "js", "pearson"):
        assert push(div, np.array([1.3]), 1.3)[0] == pytest.approx(
            0.0, abs=1e-12
        )  # stops at r = e^a
        assert push(div, np.array([0.5]), 1.3)[0] > 0 > push(div, np.array([2.0]), 1.3)[0]


def test_draw_functions_use_the_given_axes():
    from figures.bandit_policies import draw_policy
    from figures.bandit_sweeps import draw_band

    fig, axes = style.new_figure(1, 2)
    target = np.full(5, 0.2)
    pol = np.array([[0.1, 0.2, 0.3, 0.2, 0.2], [0.3, 0.2, 0.1, 0.2, 0.2]])
    assert draw_policy(target, pol, "#000000", "x", ax=axes[0]) is axes[0]
    assert len(axes[0].patches) == 5  # one bar per arm
    np.testing.assert_allclose(axes[0].lines[0].get_ydata(), pol.mean(0))
    ax = draw_band(
        np.arange(3), np.ones((4, 3)), "#000000", "y", np.random.default_rng(0), ax=axes[1]
    )
    assert ax is axes[1] and ax.get_legend_handles_labels()[1] == ["y (n=4)"]
    assert draw_policy(target, pol, "#000000", "z").figure is not fig  # ax=None: a fresh figure


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    from bandit.experiments import EXPERIMENTS, run_experiments

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("data")
    run_experiments(EXPERIMENTS.names(), root, steps=40)
    torch.set_num_threads(n)
    return root


def test_every_figure_builds_from_only_the_experiments_it_declares(data_root, tmp_path):
    """A figure that reads an experiment missing from its `needs` fails here: `lad figures X
    --replot` would otherwise pass the check in `draw` and crash mid-figure."""
    import matplotlib.pyplot as plt

    for name in FIGURES:
        spec = FIGURES.get(name)
        only = tmp_path / name
        only.mkdir()
        for experiment in spec.needs:
            (only / experiment).symlink_to(data_root / experiment, target_is_directory=True)
        if spec.write is not None:  # the explorer page: HTML, not a matplotlib figure
            (page,) = spec.write(only, tmp_path / f"{name}-out")
            assert page.suffix == ".html" and page.stat().st_size > 1e6, name
            continue
        fig = spec.draw(only)
        assert fig.axes, name
        plt.close(fig)


def test_needed_experiments_lists_each_once_in_order():
    assert needed_experiments(["refresh", "curves", "eta"]) == ["fig1", "onpolicy", "eta"]
    assert needed_experiments(["weights"]) == []


def test_fig1_says_which_grpo_it_drew(data_root):
    fig = FIGURES.get("fig1").draw(data_root)
    titles = [ax.get_title() for ax in fig.axes]
    assert (
        "GRPO (unclipped, fixed $\\pi_{old}$)" in titles and "GRPO (unclipped, on-policy)" in titles
    )
    assert (
        sum("LAD practical" in t for t in titles) == 4
        and sum("LAD theoretical" in t for t in titles) == 4
    )
    data = load_bandit(data_root / "fig1")
    lad_js = next(ax for ax in fig.axes if ax.get_title() == "LAD practical, JS")
    assert len(lad_js.patches) == len(data.rewards)  # P_A bars over every arm
    np.testing.assert_allclose(
        [p.get_height() for p in lad_js.patches], data.target(1.0), rtol=1e-5
    )


def test_draw_writes_png_and_pdf_with_the_command(data_root, tmp_path):
    from PIL import Image

    paths = draw("surrogate", data_root, tmp_path, command="lad figures surrogate")
    assert [p.suffix for p in paths] == [".png", ".pdf"]
    assert Image.open(paths[0]).info.get("Description") == "lad figures surrogate"
    assert paths[1].read_bytes()[:5] == b"%PDF-"
    with pytest.raises(FileNotFoundError, match="run without --replot"):
        draw("fig1", tmp_path / "nothing", tmp_path)
