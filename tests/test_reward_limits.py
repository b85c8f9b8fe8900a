"""Reward functions under limits: any exception (BaseException included) or a timeout scores the
batch None with a log line naming the function; stuck calls are bounded; rewards that overflow
float32 are refused; advantages of huge rewards stay informative (float64)."""

from __future__ import annotations

import logging
import threading
import time

import pytest
import torch

from labkit.advantages import compute_advantages
from labkit.config import AdvantageConfig
from llm.rewards import RewardError, RewardSet


def one(prompts, completions, **kw):
    return [1.0] * len(completions)


@pytest.mark.parametrize(
    "exc", [SystemExit(0), SystemExit(3), KeyboardInterrupt(), GeneratorExit(), MemoryError()]
)
def test_any_exception_from_a_reward_scores_none_and_is_logged(exc, caplog):
    def raiser(prompts, completions, **kw):
        raise exc

    with caplog.at_level(logging.WARNING, logger="llm.rewards"):
        total, per = RewardSet([raiser, one])(["p", "p"], ["a", "b"], {})
    assert total.tolist() == [1.0, 1.0] and torch.isnan(per["raiser"]).all()
    assert "'raiser'" in caplog.text and type(exc).__name__ in caplog.text


def test_a_hung_reward_times_out_and_stuck_calls_are_bounded(caplog):
    release = threading.Event()

    def hang(prompts, completions, **kw):
        release.wait(60)
        return [1.0] * len(completions)

    rs = RewardSet([hang, one], timeout=0.3, max_stuck=2)
    try:
        with caplog.at_level(logging.WARNING, logger="llm.rewards"):
            for _ in range(2):
                t0 = time.perf_counter()
                total, per = rs(["p"], ["a"], {})
                assert time.perf_counter() - t0 < 5
                assert total.tolist() == [1.0] and torch.isnan(per["hang"]).all()
        assert "'hang'" in caplog.text and "TimeoutError" in caplog.text
        assert rs.failures == {"hang": rs.failures["hang"]} and "0.3 s" in rs.failures["hang"]
        # two calls still running: a third would pile up, so training stops with a clear error
        with pytest.raises(
            RewardError, match=r"2 reward calls are still running past their 0\.3 s"
        ):
            rs(["p"], ["a"], {})
    finally:
        release.set()
    # once they finish, the set works again
    for c in list(rs.stuck):
        c.thread.join(5)
    assert rs(["p"], ["a"], {})[0].tolist() == [2.0]


def test_rewards_not_finite_in_float32_are_refused():
    def huge(prompts, completions, **kw):
        return [1e39] + [0.0] * (len(completions) - 1)

    with pytest.raises(ValueError, match=r"'huge' returned 1e\+39, which is not finite in float32"):
        RewardSet([huge])(["p"] * 2, ["a", "b"], {})
    # each function finite, their weighted sum not
    with pytest.raises(
        ValueError, match=r"weighted sum of rewards reaches .* not finite in float32"
    ):
        RewardSet([lambda **kw: [3e38, 0.0]] * 2)(["p"] * 2, ["a", "b"], {})


def test_huge_finite_rewards_keep_their_advantages():
    """1e30 rewards: in float32 the group std overflowed and every advantage became 0."""

    def big(prompts, completions, **kw):
        return [1e30, 0.0, 0.0, 1e30]

    total, _ = RewardSet([big])(["p"] * 4, list("abcd"), {})
    adv = compute_advantages(total, torch.zeros(4, dtype=torch.long), AdvantageConfig("grpo"))
    assert adv.dtype == torch.float64 and torch.isfinite(adv).all()
    assert adv[0] > 0.5 and adv[1] < -0.5
