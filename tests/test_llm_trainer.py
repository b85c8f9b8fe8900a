"""The LLM trainer end to end on a tiny Qwen2-shaped model built in code (CPU, seconds):
HF rollouts and their log-probs, LAD and GRPO training, every objective, gradient accumulation,
exact resume, checkpoints, and the NaN stop."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from llm import checkpoint as ckpt
from llm.config import load_config
from llm.logprobs import completion_log_probs
from llm.models import tiny_model, tiny_tokenizer
from llm.rollout import SamplingConfig
from llm.rollout_hf import HFGenerator, _Sampler, top_p_filter
from llm.trainer import NonFiniteError, Trainer

ROOT = Path(__file__).resolve().parent.parent
TOY_REWARD = f"{ROOT}/configs/llm/toy_reward.py:digit_fraction"
RECORDS = [
    {"prompt": f"What is {a} + {b}?", "answer": str(a + b)} for a in range(4) for b in range(3)
]
# timings, and the step's wall time in tokens/s, differ between two identical runs
TIMING_KEYS = ("timing/", "tokens/s")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run fastest on one thread, and on a shared machine OpenMP threads spinning
    against other processes' make a 2-thread run up to 20x slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def tiny_config(tmp_path: Path, *overrides: str):
    return load_config(
        None,
        [
            "model.path=tiny-qwen2",
            f"data.reward_funcs=[{TOY_REWARD}]",
            "rollout.num_generations=4",
            "rollout.max_completion_length=8",
            "trainer.train_batch_size=2",
            "trainer.max_steps=3",
            "trainer.learning_rate=1e-2",
            "trainer.progress_bar=false",
            "trainer.save_steps=0",
            "trainer.device=cpu",
            f"trainer.output_dir={tmp_path / 'run'}",
            *overrides,
        ],
    )


def make_trainer(cfg, **kw) -> Trainer:
    return Trainer(cfg, train_records=RECORDS, eval_records=RECORDS[:3], **kw)


def chat(tok, text: str) -> str:
    return tok.apply_chat_template(
        [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
    )


# --- rollouts ------------------------------------------------------------------------------------


def test_hf_rollout_log_probs_match_a_forward_pass_and_ignore_model_defaults():
    tok = tiny_tokenizer()
    model = tiny_model("qwen2", len(tok), seed=1)
    # a model's own sampling defaults must not leak into generate: the trainer assumes plain T / top-p
    model.generation_config.repetition_penalty = 1.8
    model.generation_config.top_k = 5
    gen = HFGenerator(model, tok)
    prompts = [chat(tok, "What is 2+3?"), chat(tok, "hi")]  # different lengths: left padding
    sampling = SamplingConfig(num_generations=3, max_completion_length=12, temperature=0.7, seed=5)
    rng_before = torch.get_rng_state()
    batch = gen.generate(prompts, sampling)
    assert torch.equal(torch.get_rng_state(), rng_before), "sampling must not touch the global RNG"
    assert batch.completion_ids.shape[0] == 6 and batch.group_ids.tolist() == [0, 0, 0, 1, 1, 1]
    ids = torch.cat([batch.prompt_ids, batch.completion_ids], 1)
    am = torch.cat([batch.prompt_mask, batch.completion_mask], 1)
    C = batch.completion_ids.shape[1]
    with torch.no_grad():
        lp, ent, _ = completion_log_probs(model, ids, am, C, 0.7, entropy="detached")
    mask = batch.completion_mask.bool()
    assert (lp - batch.sampling_log_probs)[mask].abs().max() < 1e-4
    assert (batch.sampling_log_probs[~mask] == 0).all()
    assert (ent[mask] > 0).all()
    # same seed -> same completions; another seed -> other completions
    assert torch.equal(gen.generate(prompts, sampling).completion_ids, batch.completion_ids)
    other = SamplingConfig(num_generations=3, max_completion_length=12, temperature=0.7, seed=6)
    assert not torch.equal(gen.generate(prompts, other).completion_ids, batch.completion_ids)


def test_hf_rollout_stops_at_eos_and_masks_after_it():
    tok = tiny_tokenizer()
    model = tiny_model("qwen2", len(tok), seed=0)
    eos, V = tok.eos_token_id, model.config.vocab_size
    # an output layer with bias only: every token has the same logit but EOS is 20x likelier,
    # so some completions stop early and some run to max_completion_length
    head = torch.nn.Linear(model.config.hidden_size, V, bias=True)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        head.bias[eos] = math.log(20.0)
    model.lm_head = head
    batch = HFGenerator(model, tok).generate(
        [chat(tok, "x")], SamplingConfig(num_generations=32, max_completion_length=40)
    )
    lengths = batch.completion_mask.sum(-1)
    for row, n in enumerate(lengths.tolist()):
        if batch.truncated[row]:
            assert n == 40 and (batch.completion_ids[row] != eos).all()
        else:
            assert batch.completion_ids[row, n - 1] == eos
            assert (batch.completion_ids[row, : n - 1] != eos).all()
            assert (batch.completion_ids[row, n:] == tok.pad_token_id).all()
    assert batch.truncated.any() and (~batch.truncated).any()
    log_z = math.log(V - 1 + 20.0)
    expected = (
        torch.where(batch.completion_ids == eos, math.log(20.0) - log_z, -log_z)
        * batch.completion_mask
    )
    torch.testing.assert_close(batch.sampling_log_probs, expected.float())


def test_sampler_draws_from_the_processed_distribution():
    """Frequencies of 40k draws match softmax(logits / T) renormalised over the top-p nucleus,
    and the recorded log-probs are those of that distribution."""
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    scores = (probs.log() * 0.5).expand(40_000, 4).clone()  # at T = 0.5 the probabilities are back
    for top_p, expected in ((1.0, probs), (0.8, torch.tensor([0.625, 0.375, 0.0, 0.0]))):
        sampler = _Sampler(0.5, top_p, torch.Generator().manual_seed(0))
        forced = sampler(torch.zeros(40_000, 1, dtype=torch.long), scores)
        token = forced.argmax(-1)
        assert (forced.isinf().sum(-1) == 3).all()  # one-hot: generate must take the sampled token
        freq = torch.bincount(token, minlength=4).float() / 40_000
        assert (freq - expected).abs().max() < 0.01, freq
        torch.testing.assert_close(sampler.log_probs[0], expected[token].log())


def test_top_p_keeps_the_smallest_nucleus():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = torch.isfinite(top_p_filter(logits, 0.8))
    assert kept.tolist() == [[True, True, False, False]]
    assert torch.isfinite(top_p_filter(logits, 0.81)).tolist() == [[True, True, True, False]]
    assert torch.isfinite(top_p_filter(logits, 0.1)).tolist() == [[True, False, False, False]]


# --- training ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "algo",
    [
        ["algorithm.loss_mode=lad", "algorithm.divergence=js", "algorithm.num_iterations=2"],
        ["algorithm.loss_mode=grpo", "algorithm.epsilon_high=0.28", "trainer.mini_batch_size=1"],
    ],
    ids=["lad", "grpo"],
)
def test_training_steps_end_to_end(tmp_path, algo):
    cfg = tiny_config(tmp_path, *algo, "trainer.log_completions_steps=1", "trainer.save_steps=2")
    trainer = make_trainer(cfg)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.train()
    out = Path(cfg.trainer.output_dir)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    for r in rows:
        for key in (
            "reward",
            "reward_std",
            "frac_reward_zero_std",
            "entropy",
            "completions/mean_length",
            "completions/clipped_ratio",
            "actor/pg_loss",
            "actor/grad_norm",
            "tokens/s",
            "timing/rollout_per_token",
            "timing/update_per_token",
            "sampling/sampling_logp_difference/max",
        ):
            assert isinstance(r[key], float), (key, r.get(key))
        assert 0 <= r["reward"] <= 1 and r["entropy"] > 0
        # pi_old recomputed by the trainer agrees with the sampler's log-probs
        assert r["sampling/sampling_logp_difference/max"] < 1e-4
    # 2 epochs x 1 minibatch for LAD, 1 epoch x 2 minibatches for GRPO
    assert rows[0]["actor/num_updates"] == 2
    if cfg.algorithm.loss_mode == "lad":
        assert "lad/frac_past_target" in rows[0]
    changed = [k for k, v in trainer.model.state_dict().items() if not torch.equal(v, before[k])]
    assert changed, "training must change the weights"
    saved = json.loads((out / "config.json").read_text())
    assert saved["config"]["algorithm"]["loss_mode"] == cfg.algorithm.loss_mode
    assert (out / "config.yaml").is_file()
    assert [p.name for p in ckpt.list_checkpoints(out)] == ["step_00000002", "step_00000003"]
    completions = (out / "completions.jsonl").read_text().splitlines()
    assert len(completions) == 3 * cfg.trainer.num_completions_to_log


@pytest.mark.parametrize(
    "algo",
    [
        ["algorithm.loss_mode=reinforce"],
        ["algorithm.loss_mode=clip_cov"],
        ["algorithm.loss_mode=kl_cov"],
        ["algorithm.loss_mode=flowrl", "algorithm.loss_agg_mode=seq-mean-token-mean"],
        [
            "algorithm.loss_mode=lad",
            "algorithm.divergence=hellinger",
            "algorithm.ratio_level=sequence-mean",
        ],
        ["algorithm.loss_mode=lad", "algorithm.beta=0.05", "algorithm.entropy_coef=0.01"],
        ["algorithm.loss_mode=grpo", "algorithm.loss_type=dr_grpo", "algorithm.estimator=dr_grpo"],
        [
            "algorithm.loss_mode=lad",
            "algorithm.rollout_is=sequence_mask",
            "algorithm.mask_truncated_completions=true",
        ],
    ],
    ids=[
        "reinforce",
        "clip_cov",
        "kl_cov",
        "flowrl",
        "lad-seq",
        "lad-kl-entropy",
        "dr_grpo",
        "lad-is-mask",
    ],
)
def test_every_objective_takes_a_finite_step(tmp_path, algo):
    cfg = tiny_config(tmp_path, *algo, "trainer.max_steps=1")
    trainer = make_trainer(cfg)
    metrics = trainer.train()
    assert all(math.isfinite(v) for k, v in metrics.items() if k.startswith("actor/")), metrics
    if cfg.algorithm.beta > 0:
        assert trainer.ref_model is not None and "actor/kl_loss" in metrics
    else:
        assert trainer.ref_model is None  # no reference model unless beta > 0 (as in TRL)
    if cfg.algorithm.loss_mode == "flowrl":
        assert "flowrl/log_z_mean" in metrics and "log_z" in trainer.modules


@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"])
def test_gradient_accumulation_gives_the_full_batch_gradient(tmp_path, agg):
    """One optimizer step over 8 rows in one micro-batch or in four: the same gradient."""
    grads = []
    for accum in (1, 4):
        cfg = tiny_config(
            tmp_path / f"{agg}{accum}",
            f"algorithm.loss_agg_mode={agg}",
            f"trainer.gradient_accumulation_steps={accum}",
            "trainer.max_steps=1",
            "trainer.max_grad_norm=0",
        )
        trainer = make_trainer(cfg)
        trainer.train()  # the gradients of the (only) optimizer step stay in .grad
        grads.append([p.grad.clone() for p in trainer.params])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-7)


def test_chunked_log_probs_give_the_same_training_step(tmp_path):
    """model.logprob_chunk_size changes only how the logits are computed: the same gradient, with
    pi_old recomputed (num_iterations=2) and the entropy metric through the chunked path too."""
    grads = []
    for chunk in ("null", "5"):
        cfg = tiny_config(
            tmp_path / chunk,
            f"model.logprob_chunk_size={chunk}",
            "algorithm.num_iterations=2",
            "trainer.max_steps=1",
            "trainer.max_grad_norm=0",
        )
        trainer = make_trainer(cfg)
        trainer.train()
        grads.append(torch.cat([p.grad.flatten() for p in trainer.params]))
    # float32: the head's matmul on other shapes rounds differently, and the second update
    # starts from weights the first one moved by that rounding
    scale = grads[0].abs().max()
    torch.testing.assert_close(grads[1], grads[0], rtol=0, atol=1e-3 * float(scale))
    assert (grads[1] - grads[0]).norm() < 1e-3 * grads[0].norm()


def test_resume_after_a_kill_equals_an_uninterrupted_run(tmp_path):
    overrides = (
        "trainer.max_steps=4",
        "trainer.save_steps=2",
        "algorithm.num_iterations=2",
        "trainer.warmup_steps=2",
    )
    full = make_trainer(tiny_config(tmp_path / "full", *overrides))
    full.train()
    # the same run "killed" after step 3: its last checkpoint is step 2, step 3 was logged
    cut_cfg = tiny_config(tmp_path / "cut", *overrides)
    make_trainer(cut_cfg).train(until=3)
    out = Path(cut_cfg.trainer.output_dir)
    assert ckpt.latest_checkpoint(out).name == "step_00000002"
    resumed = make_trainer(tiny_config(tmp_path / "cut", *overrides, "trainer.resume=auto"))
    resumed.train()

    def rows(run: Path) -> list[dict]:
        lines = (run / "run" / "metrics.jsonl").read_text().splitlines()
        return [
            {k: v for k, v in json.loads(x).items() if not k.startswith(TIMING_KEYS)} for x in lines
        ]

    assert rows(tmp_path / "cut") == rows(tmp_path / "full")  # exactly, every step and key
    for k, v in full.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k


def test_refuses_to_overwrite_a_run_without_resume(tmp_path):
    cfg = tiny_config(tmp_path, "trainer.max_steps=1")
    make_trainer(cfg).train()
    with pytest.raises(ValueError, match="already holds a run"):
        make_trainer(cfg).train()


def test_on_step_hook_sees_every_step_before_its_checkpoint(tmp_path):
    cfg = tiny_config(tmp_path, "trainer.save_steps=2")
    seen = []

    def hook(trainer: Trainer, step: int) -> None:
        ckpts = sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("step_*"))
        seen.append((step, trainer.step, len(ckpts)))

    make_trainer(cfg, on_step=hook).train()
    # called once per step with the trainer at that step; step 2's checkpoint comes after its hook
    assert seen == [(1, 1, 0), (2, 2, 0), (3, 3, 1)]


def test_non_finite_loss_stops_and_keeps_the_last_checkpoint(tmp_path):
    cfg = tiny_config(
        tmp_path, "trainer.max_steps=4", "trainer.save_steps=1", "trainer.keep_last=5"
    )
    trainer = make_trainer(cfg)
    trainer.train(until=2)
    good = ckpt.latest_checkpoint(cfg.trainer.output_dir)
    saved = {p.name: p.stat().st_mtime_ns for p in good.iterdir()}
    with torch.no_grad():  # a blow-up: the next forward pass is NaN
        trainer.model.model.norm.weight.fill_(float("nan"))
    with pytest.raises(NonFiniteError, match="non-finite"):
        trainer.train_step(3)
    assert ckpt.latest_checkpoint(cfg.trainer.output_dir) == good
    assert {p.name: p.stat().st_mtime_ns for p in good.iterdir()} == saved
    # and the checkpoint still loads into finite weights
    fresh = make_trainer(cfg)
    ckpt.load_checkpoint(
        good, model=fresh.model, optimizer=fresh.optimizer, scheduler=fresh.scheduler
    )
    assert all(torch.isfinite(p).all() for p in fresh.model.parameters())


def test_checkpoints_keep_last_and_ignore_partial_writes(tmp_path):
    cfg = tiny_config(
        tmp_path, "trainer.max_steps=4", "trainer.save_steps=1", "trainer.keep_last=2"
    )
    trainer = make_trainer(cfg)
    out = Path(cfg.trainer.output_dir)
    (out / "checkpoints" / "step_00000009").mkdir(parents=True)  # a killed write: no state file
    trainer.train()
    names = [p.name for p in ckpt.list_checkpoints(out)]
    assert names == ["step_00000003", "step_00000004"]
    state = torch.load(out / "checkpoints" / "step_00000004" / ckpt.STATE_FILE, weights_only=True)
    assert state["step"] == 4 and state["state"]["prompts_consumed"] == 8
    assert {"python", "numpy", "torch"} <= set(state["rng"])
    assert not list((out / "checkpoints").glob(".*.tmp"))


def test_data_order_visits_every_record_once_per_epoch(tmp_path):
    trainer = make_trainer(tiny_config(tmp_path, "trainer.train_batch_size=4"))
    n = len(RECORDS)
    seen = [r["prompt"] for step in range(1, n // 4 + 1) for r in trainer.step_records(step)]
    assert sorted(seen) == sorted(r["prompt"] for r in RECORDS)
    assert trainer.step_records(1) == trainer.step_records(1)  # a function of (seed, step)


def test_warmup_then_schedule():
    cfg = tiny_config(
        Path("/nonexistent"),
        "trainer.max_steps=5",
        "trainer.warmup_steps=3",
        "trainer.lr_scheduler_type=linear",
    )
    trainer = make_trainer(cfg)
    factors = [trainer._lr_factor(u) for u in range(trainer.total_updates + 1)]
    assert factors == [0.25, 0.5, 0.75, 1.0, 0.5, 0.0]


def test_trainer_imports_without_the_optional_packages():
    """GPU machines import the trainer directly: no typer, rich, matplotlib, tensorboard, vllm."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "for m in ('typer', 'rich', 'matplotlib', 'tensorboard', 'vllm', 'trl'): sys.modules[m] = None\n"
        "import llm.trainer, llm.evaluate, llm.checkpoint\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
