"""LLM run directories that cannot be corrupted, and steps without rewards that make no update:
the output-dir lock (a second process gets one line, exit 2), resume refusing a changed config,
resume falling back past a corrupt checkpoint, a torn metrics line, kill -9 inside a checkpoint
write, output dirs that are files, and all-skipped steps (weights and AdamW state bit-identical)."""

from __future__ import annotations

import copy
import json
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from labkit.io import read_jsonl
from llm import checkpoint as ckpt
from llm.rewards import RewardError, RewardSet
from tests.test_llm_trainer import (  # one_thread: autouse, one torch thread
    RECORDS,
    TOY_REWARD,
    make_trainer,
    one_thread,  # noqa: F401
    tiny_config,
)

ROOT = Path(__file__).resolve().parent.parent
# the CLI arguments of tests.test_llm_trainer.tiny_config
TINY_ARGS = [
    "model.path=tiny-qwen2",
    f"data.reward_funcs=[{TOY_REWARD}]",
    "rollout.num_generations=4",
    "rollout.max_completion_length=8",
    "trainer.train_batch_size=2",
    "trainer.learning_rate=1e-2",
    "trainer.progress_bar=false",
    "trainer.device=cpu",
]


def steps(out: Path) -> list[int]:
    return [r["step"] for r in read_jsonl(out / "metrics.jsonl")]


def lad(*args: str, data: Path | None = None) -> subprocess.CompletedProcess:
    """`lad llm train` in a fresh process on a JSONL copy of RECORDS."""
    if data is not None:
        data.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
        args = (*args, f"data.dataset={data}", "data.eval_fraction=0", "eval.after_train=false")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), "llm", "train", *TINY_ARGS, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


# --- steps without rewards ------------------------------------------------------------------------


def test_an_all_skipped_step_makes_no_update_and_n_in_a_row_stop(tmp_path, caplog):
    cfg = tiny_config(tmp_path, "trainer.weight_decay=0.1", "trainer.max_skipped_steps=2")
    trainer = make_trainer(cfg)
    trainer.train_step(1)  # a real step: AdamW has momentum now, and weight decay would act
    weights = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    opt_state = copy.deepcopy(trainer.optimizer.state_dict())
    lr = trainer.scheduler.get_last_lr()

    def exits(prompts, completions, **kw):  # a reward that ends the process, if let through
        raise SystemExit(0)

    trainer.rewards = RewardSet([exits])
    with caplog.at_level(logging.WARNING):
        metrics = trainer.train_step(2)
    assert metrics["actor/num_updates"] == 0.0 and metrics["skipped_step"] == 1.0
    assert "no optimizer step" in caplog.text and "SystemExit" in caplog.text
    for k, v in trainer.model.state_dict().items():
        assert torch.equal(v, weights[k]), k
    after = trainer.optimizer.state_dict()
    assert after["param_groups"] == opt_state["param_groups"]
    for i, s in opt_state["state"].items():
        for k, v in s.items():
            assert torch.equal(after["state"][i][k], v), (i, k)
    assert trainer.scheduler.get_last_lr() == lr
    with pytest.raises(RewardError, match=r"no sample got a reward in 2 consecutive steps"):
        trainer.train_step(3)


def test_the_skipped_steps_in_a_row_survive_a_resume(tmp_path):
    """A checkpoint taken inside a run of skipped steps keeps the count: the resumed run stops
    at the step the uninterrupted one would."""

    def nothing(prompts, completions, **kw):  # every reward skipped
        return [None] * len(completions)

    args = ("trainer.max_steps=4", "trainer.save_steps=1", "trainer.max_skipped_steps=2")
    first = make_trainer(tiny_config(tmp_path, *args))
    first.rewards = RewardSet([nothing])
    first.train(until=1)  # step 1 skipped, checkpoint at step 1
    resumed = make_trainer(tiny_config(tmp_path, *args, "trainer.resume=auto"))
    resumed.rewards = RewardSet([nothing])
    with pytest.raises(RewardError, match=r"^step 2: no sample got a reward in 2 consecutive"):
        resumed.train()


# --- the lock --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_second_process_on_a_running_output_dir_gets_one_line_and_exit_2(tmp_path):
    out = tmp_path / "run"
    cfg = tiny_config(tmp_path, "trainer.max_steps=2", "data.reward_timeout_s=600")
    trainer = make_trainer(cfg)
    go, in_reward = threading.Event(), threading.Event()

    def slow(prompts, completions, **kw):  # holds the first trainer inside step 1
        in_reward.set()
        go.wait(300)
        return [1.0 * (i % 2) for i in range(len(completions))]

    trainer.rewards = RewardSet([slow], timeout=600)
    first = threading.Thread(target=trainer.train)
    first.start()
    try:
        assert in_reward.wait(120)
        r = lad("trainer.max_steps=2", f"trainer.output_dir={out}", "--resume", "auto")
    finally:
        go.set()
        first.join(300)
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.count("\n") == 1 and "in use by another process" in r.stderr, r.stderr
    assert steps(out) == [1, 2]  # the first run's log, untouched


# --- resume ------------------------------------------------------------------------------------------


def test_resume_auto_refuses_a_changed_config_unless_allowed(tmp_path):
    out = tmp_path / "run"
    base = ("trainer.max_steps=3", "trainer.save_steps=1")
    make_trainer(tiny_config(tmp_path, *base)).train(until=2)
    saved_yaml = (out / "config.yaml").read_text()
    changed = (*base, "trainer.resume=auto", "trainer.learning_rate=0.02", "trainer.seed=5")
    with pytest.raises(ValueError) as e:
        make_trainer(tiny_config(tmp_path, *changed)).train()
    msg = str(e.value)
    assert "trainer.learning_rate (0.01 -> 0.02)" in msg and "trainer.seed (0 -> 5)" in msg
    assert "--allow-config-change" in msg and "trainer.max_steps" not in msg
    assert steps(out) == [1, 2] and (out / "config.yaml").read_text() == saved_yaml
    # the same config resumes; an allowed change resumes and is recorded
    make_trainer(tiny_config(tmp_path, *changed, "trainer.allow_config_change=true")).train()
    assert steps(out) == [1, 2, 3]
    (record,) = read_jsonl(out / "config_changes.jsonl")
    assert record["step"] == 2 and record["changes"]["trainer.seed"] == [0, 5]


@pytest.mark.parametrize("victim", ["model.safetensors", ckpt.STATE_FILE])
def test_resume_falls_back_past_a_corrupt_newest_checkpoint(tmp_path, victim):
    out = tmp_path / "run"
    base = ("trainer.max_steps=4", "trainer.save_steps=1", "trainer.keep_last=3")
    make_trainer(tiny_config(tmp_path, *base)).train(until=3)
    newest = out / "checkpoints" / "step_00000003"
    data = (newest / victim).read_bytes()
    (newest / victim).write_bytes(data[: len(data) // 2])  # a write the disk lost half of
    resumed = make_trainer(tiny_config(tmp_path, *base, "trainer.resume=auto"))
    with pytest.warns(UserWarning, match=r"step_00000003 does not load .*fell back"):
        resumed.train()
    assert resumed.step == 4 and steps(out) == [1, 2, 3, 4]
    assert (out / "checkpoints" / "corrupt_step_00000003").is_dir()
    assert [p.name for p in ckpt.list_checkpoints(out)][-1] == "step_00000004"


def test_a_torn_metrics_line_is_dropped_on_resume_with_a_warning(tmp_path):
    out = tmp_path / "run"
    base = ("trainer.max_steps=3", "trainer.save_steps=1")
    make_trainer(tiny_config(tmp_path, *base)).train(until=2)
    with open(out / "metrics.jsonl", "a") as fh:
        fh.write('{"step": 3, "rew')  # killed in the middle of an append
    with pytest.warns(UserWarning, match=r"metrics\.jsonl: dropped a torn last line"):
        make_trainer(tiny_config(tmp_path, *base, "trainer.resume=auto")).train()
    assert steps(out) == [1, 2, 3]


@pytest.mark.slow
def test_kill_9_inside_a_checkpoint_write_then_resume(tmp_path):
    """SIGKILL while step 2's checkpoint is half written: resume continues from step 1's."""
    out = tmp_path / "run"
    killer = tmp_path / "sitecustomize.py"  # loaded by the child at start-up
    killer.write_text(
        "import os, signal, torch\n"
        "from llm import checkpoint\n"
        "_save = torch.save\n"
        "def save(obj, f, *a, **k):\n"
        "    if obj.get('step') == 2:\n"
        "        open(f, 'wb').write(b'half a state file')\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    return _save(obj, f, *a, **k)\n"
        "checkpoint.torch.save = save\n"
    )
    args = ("trainer.max_steps=3", "trainer.save_steps=1", f"trainer.output_dir={out}")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}:{ROOT}", "OMP_NUM_THREADS": "1"}
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    cmd = [sys.executable, str(ROOT / "cli.py"), "llm", "train", *TINY_ARGS, *args]
    cmd += [f"data.dataset={data}", "data.eval_fraction=0", "eval.after_train=false"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == -9, r.stderr
    assert [p.name for p in ckpt.list_checkpoints(out)] == ["step_00000001"]
    r = lad(*args, "--resume", "auto", data=data)
    assert r.returncode == 0, r.stderr
    assert steps(out) == [1, 2, 3]
    assert not list((out / "checkpoints").glob(".*.tmp"))


# --- output dirs that are files -------------------------------------------------------------------


def test_an_output_dir_that_is_a_file_is_refused_before_anything_is_written(tmp_path):
    (tmp_path / "f").write_text("x")
    for out, what in [(tmp_path / "f", "is a file"), (tmp_path / "f" / "run", "parent")]:
        cfg = tiny_config(tmp_path, f"trainer.output_dir={out}")
        with pytest.raises(ValueError, match=rf"trainer\.output_dir=.*{what}"):
            make_trainer(cfg).train()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]
