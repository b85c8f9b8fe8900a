"""`lad llm eval` / `lad llm sample` and the evaluation behind them, on a tiny model built in code."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from figures.llm_eval import figure_evals
from figures.style import save
from llm.evaluate import evaluate_model
from llm.models import tiny_model, tiny_tokenizer
from tests.test_llm_trainer import RECORDS, TOY_REWARD, tiny_config

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def brute_force_pass_at_k(row: list[bool], k: int) -> float:
    """Share of the k-subsets of the n samples that hold a correct one."""
    subsets = list(itertools.combinations(row, k))
    return sum(any(s) for s in subsets) / len(subsets)


def test_eval_metrics_agree_with_the_samples(tmp_path):
    # a sample is "correct" when at least 10% of its characters are digits: some are, some not
    cfg = tiny_config(
        tmp_path,
        "eval.n=6",
        "eval.correct_threshold=0.1",
        "eval.ks=[1, 2, 3, 6]",
        "eval.batch_prompts=2",
    )
    tok = tiny_tokenizer()
    model = tiny_model("qwen2", len(tok), seed=0)
    result = evaluate_model(model, tok, RECORDS[:5], cfg)
    m, samples = result["metrics"], result["samples"]
    correct = [s["correct"] for s in samples]
    assert len(samples) == 5 and all(len(row) == 6 for row in correct)
    assert 0 < sum(map(sum, correct)) < 30, "the toy threshold should split the samples"
    for k in (1, 2, 3, 6):
        expected = sum(brute_force_pass_at_k(row, k) for row in correct) / len(correct)
        assert m[f"pass@{k}"] == pytest.approx(expected, abs=1e-12)
    assert m["avg@6"] == pytest.approx(sum(map(sum, correct)) / 30)
    assert m["pass@1"] == pytest.approx(m["avg@6"])
    for s in samples:
        assert s["correct"] == [r >= 0.1 for r in s["rewards"]]
    assert {"maj@6", "distinct-1", "distinct-4", "distinct_correct/mean", "reward/mean"} <= set(m)
    # same seeds, same model -> the same samples (two models are compared on equal terms)
    again = evaluate_model(model, tok, RECORDS[:5], cfg)
    assert again["samples"] == samples


def test_plot_eval_writes_a_png(tmp_path):
    metrics = {
        "avg@4": 0.2,
        "pass@1": 0.2,
        "pass@2": 0.35,
        "pass@4": 0.5,
        "distinct-1": 0.5,
        "distinct-2": 0.7,
    }
    better = {k: min(1.0, v + 0.1) for k, v in metrics.items()}
    fig = figure_evals({"before": metrics, "after": better})
    assert [len(line.get_xdata()) for line in fig.axes[0].lines[::2]] == [3, 3]  # pass@1, 2, 4
    (path,) = save(fig, tmp_path / "eval", formats=("png",))
    assert path.read_bytes()[:8] == PNG


def _data_file(tmp_path: Path) -> Path:
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    return path


def test_cli_eval_base_and_checkpoint_and_sample(tmp_path):
    from cli import app

    run = tmp_path / "run"
    common = [
        "model.path=tiny-qwen2",
        f"data.dataset={_data_file(tmp_path)}",
        "data.eval_fraction=0.25",
        f"data.reward_funcs=[{TOY_REWARD}]",
        "rollout.num_generations=4",
        "rollout.max_completion_length=8",
        "trainer.train_batch_size=2",
        "trainer.max_steps=2",
        "trainer.learning_rate=1e-2",
        "trainer.device=cpu",
        "trainer.progress_bar=false",
        f"trainer.output_dir={run}",
        "eval.n=4",
        "eval.correct_threshold=0.1",
    ]
    runner = CliRunner()
    result = runner.invoke(app, ["llm", "eval", *common])
    assert result.exit_code == 0, result.output
    assert "pass@4" in result.output
    base = json.loads((run / "eval_base.json").read_text())
    assert base["meta"]["model"] == "tiny-qwen2" and base["metrics"]["n_prompts"] == 3.0
    assert (run / "eval.png").read_bytes()[:8] == PNG

    result = runner.invoke(app, ["llm", "train", *common])
    assert result.exit_code == 0, result.output
    assert "done: 2 steps" in result.output
    result = runner.invoke(app, ["llm", "eval", "--checkpoint", "auto", *common])
    assert result.exit_code == 0, result.output
    after = json.loads((run / "eval_step_00000002.json").read_text())
    assert after["meta"]["model"].endswith("step_00000002")
    assert after["samples"][0]["prompt"] == base["samples"][0]["prompt"]

    result = runner.invoke(app, ["llm", "sample", "-n", "2", "--num-prompts", "2", *common])
    assert result.exit_code == 0, result.output
    assert result.output.count("=== prompt") == 2 and result.output.count("--- completion") == 4
    assert "(reward" in result.output
    result = runner.invoke(
        app, ["llm", "sample", "--checkpoint", "auto", "-p", "hello", "-n", "1", *common]
    )
    assert result.exit_code == 0 and "hello" in result.output

    result = runner.invoke(app, ["llm", "eval", "--checkpoint", str(tmp_path / "nope"), *common])
    assert result.exit_code == 2 and "error:" in result.output
