"""Landscapes: built-ins are what they claim, files load, bad files fail with one clear message."""

import json

import numpy as np
import pytest

from bandit.landscapes import LANDSCAPES, get_landscape, load_rewards, peak_modes


def test_trimodal_target_is_a_mixture_of_three_gaussians():
    k = np.arange(50)
    for name, sigma in (("trimodal", 50 / 45), ("trimodal_wide", 50 / 16)):
        land = get_landscape(name)
        # centres 0.2, 0.5, 0.8 of the arm range snap to arms 10, 24, 39
        mix = 0.02 + sum(
            h * np.exp(-0.5 * ((k - c) / sigma) ** 2) for c, h in ((10, 1.0), (24, 0.6), (39, 0.35))
        )
        np.testing.assert_allclose(land.target(1.0), mix / mix.sum(), rtol=1e-12)
        assert land.n_arms == 50 and len(land.modes) == 3
        masses = land.target(1.0) @ land.mode_matrix()
        assert masses[0] > masses[1] > masses[2] > 0.15  # unequal heights, all substantial


def test_each_mode_has_one_top_arm():
    # a centre between two arms would make them nearly tied, which slows every collapse
    r = get_landscape("trimodal").array()
    for arm in (10, 24, 39):
        assert r[arm] > max(r[arm - 1], r[arm + 1])
        assert r[arm - 1] == pytest.approx(r[arm + 1], rel=1e-6, abs=0.05)
    top2 = np.sort(r)[-2:]
    assert top2[1] - top2[0] > 0.35  # the gap sampled GRPO has to resolve


@pytest.mark.parametrize("name", LANDSCAPES.names())
def test_modes_are_disjoint_and_rewards_finite(name):
    land = get_landscape(name, 50)
    arms = [a for m in land.modes for a in m]
    assert len(arms) == len(set(arms))
    assert np.isfinite(land.array()).all()
    np.testing.assert_allclose(land.target(0.5).sum(), 1.0)


def test_plateau_has_equal_good_arms_in_unit_interval():
    land = get_landscape("plateau")
    r = land.array()
    assert set(np.unique(r)) == {0.0, 1.0}
    assert len(land.modes) == int(r.sum()) == 10
    assert all(len(m) == 1 and r[m[0]] == 1.0 for m in land.modes)


def test_target_shift_invariant():
    land = get_landscape("bimodal")
    from bandit.landscapes import Landscape

    shifted = Landscape("s", tuple(r + 7.0 for r in land.rewards), land.modes)
    np.testing.assert_allclose(shifted.target(2.0), land.target(2.0))


def test_peak_modes_count_runs_of_equal_values_once():
    assert peak_modes(np.array([0, 1, 0, 0, 2, 2, 2, 0])) == ((0, 1, 2, 3), (4, 5, 6, 7))
    assert peak_modes(np.array([1.0, 1.0, 1.0])) == ((0, 1, 2),)
    # a plateau that then rises is not a peak
    assert len(peak_modes(np.array([0, 1, 1, 3, 0]))) == 1


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("r.json", json.dumps([0.0, 1.5, 3.0])),
        ("r.json", json.dumps({"rewards": [0.0, 1.5, 3.0]})),
        ("r.csv", "reward\n0\n1.5\n3\n"),
        ("r.csv", "0,1.5,3\n"),
    ],
)
def test_reward_files_load(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content)
    np.testing.assert_allclose(load_rewards(path), [0.0, 1.5, 3.0])
    land = get_landscape(rewards_file=path)
    assert land.name == "file:r" and land.n_arms == 3 and len(land.modes) == 1


def test_npy_loads(tmp_path):
    np.save(tmp_path / "r.npy", np.array([0.0, 2.0, 0.0, 1.0]))
    land = get_landscape(rewards_file=tmp_path / "r.npy")
    assert land.modes == ((0, 1, 2), (3,))


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("e.json", "[]", "is empty"),
        ("e.csv", "", "is empty"),
        ("t.json", '["a", 1]', "list of numbers"),
        ("t.csv", "1,x\n", "could not convert"),
        ("n.json", "[1, NaN, 2]", "arm 1 is nan"),
        ("i.json", "[1, Infinity]", "arm 1 is inf"),
        ("o.json", "[1]", "at least 2 arms"),
        ("d.json", "[[1, 2], [3, 4]]", "1-D"),
        ("x.txt", "1 2", "unknown extension"),
        ("b.json", "{not json", "r"),
    ],
)
def test_bad_reward_files(tmp_path, name, content, match):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ValueError, match=match) as err:
        load_rewards(path)
    assert str(path) in str(err.value)


def test_missing_file_and_unknown_name():
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_rewards("/nonexistent/r.json")
    with pytest.raises(
        ValueError, match=r"landscape='nope' is not a known landscape; expected one of \['bimodal'"
    ):
        get_landscape("nope")
    with pytest.raises(ValueError, match="n_arms must be an integer >= 2"):
        get_landscape("trimodal", 1)
