"""The metrics logger: JSONL every step, TensorBoard scalars when asked, resumed runs truncated."""

import json

import pytest
import torch

from llm.logging import METRICS_FILE, MetricsLogger


def test_jsonl_and_tensorboard_scalars(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    log = MetricsLogger(tmp_path, total_steps=3, report_to=["tensorboard"], progress_bar=False)
    for step in (1, 2, 3):
        log.log(
            step,
            {
                "reward": torch.tensor(0.25 * step),
                "lad/weight_mean": -0.1 * step,
                "nan_metric": float("nan"),
            },
        )
    log.tb.flush()
    lines = [json.loads(x) for x in (tmp_path / METRICS_FILE).read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2, 3] and lines[2]["reward"] == pytest.approx(0.75)
    (events,) = list((tmp_path / "tensorboard").glob("events*"))
    acc = EventAccumulator(str(events))
    acc.Reload()
    assert [(e.step, round(e.value, 6)) for e in acc.Scalars("reward")] == [
        (1, 0.25),
        (2, 0.5),
        (3, 0.75),
    ]
    assert [e.step for e in acc.Scalars("lad/weight_mean")] == [1, 2, 3]
    assert "nan_metric" not in acc.Tags()["scalars"]  # non-finite values stay in the JSONL only


def test_resume_truncates_lines_after_the_checkpoint(tmp_path):
    log = MetricsLogger(tmp_path, total_steps=4, progress_bar=False)
    for step in (1, 2, 3, 4):
        log.log(step, {"reward": float(step)})
    MetricsLogger(tmp_path, total_steps=4, start_step=2, progress_bar=False)
    steps = [json.loads(x)["step"] for x in (tmp_path / METRICS_FILE).read_text().splitlines()]
    assert steps == [1, 2]
