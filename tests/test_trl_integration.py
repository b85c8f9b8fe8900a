"""LADTrainer / LADConfig on a tiny Qwen2 built in code (nothing downloaded), with real TRL.

Checks: real TRL training steps change the parameters and log `lad/` metrics; on a batch TRL
generated and scored itself, LADTrainer's loss equals labkit's `lad_loss` times the conversion to
GRPOTrainer's normalisation, for each of the four loss types; options that LAD cannot honour fail.
"""

from __future__ import annotations

import math

import pytest
import torch
from datasets import Dataset
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

from labkit.config import AGG_MODES
from labkit.lad import lad_loss
from labkit.losses import agg_loss
from llm.integrations import labkit_divisor
from llm.integrations.trl import LADConfig, LADTrainer

MAX_COMPLETION = 6


def _tiny_model(tokenizer, seed: int = 0) -> Qwen2ForCausalLM:
    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=128,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return Qwen2ForCausalLM(config)


def _tokenizer() -> PreTrainedTokenizerFast:
    """A character-level tokenizer (4 specials + 24 characters), built in code."""
    specials = ["<pad>", "<s>", "</s>", "<unk>"]
    vocab = {t: i for i, t in enumerate([*specials, *"abcdefghij0123456789 +=?"])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        padding_side="left",
    )


def exact_reward(completions, answer, **kwargs) -> list[float]:
    """1 when the completion contains the dataset's `answer` column (TRL passes columns by name)."""
    return [float(a in c) for c, a in zip(completions, answer, strict=True)]


def digit_reward(completions, **kwargs) -> list[float]:
    """A dense reward (share of digits), so an untrained model's group still has advantages."""
    return [sum(ch.isdigit() for ch in c) / max(len(c), 1) for c in completions]


def _dataset(n: int = 8) -> Dataset:
    return Dataset.from_list(
        [{"prompt": f"{i}+{i + 1}=?", "answer": str(2 * i + 1)} for i in range(n)]
    )


def _args(tmp_path, **overrides) -> LADConfig:
    base = dict(
        output_dir=str(tmp_path),
        per_device_train_batch_size=4,
        num_generations=4,
        max_completion_length=MAX_COMPLETION,
        learning_rate=5e-2,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        use_cpu=True,
        bf16=False,
        activation_checkpointing=False,
        dataloader_num_workers=0,
        seed=0,
        kappa=4.0,
        divergence="js",
    )
    base.update(overrides)
    return LADConfig(**base)


def _trainer(tmp_path, **overrides) -> LADTrainer:
    tokenizer = _tokenizer()
    return LADTrainer(
        model=_tiny_model(tokenizer),
        reward_funcs=[exact_reward, digit_reward],
        args=_args(tmp_path, **overrides),
        train_dataset=_dataset(),
        processing_class=tokenizer,
    )


def test_lad_trainer_trains_and_logs_lad_metrics(tmp_path):
    # two optimiser steps; num_iterations=2 reuses each generation, so pi_old != pi_theta on the second
    trainer = _trainer(tmp_path, max_steps=2, num_iterations=2)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    changed = [n for n, p in trainer.model.named_parameters() if not torch.equal(p, before[n])]
    assert len(changed) == len(before), f"unchanged: {sorted(set(before) - set(changed))}"
    logs = [row for row in trainer.state.log_history if "lad/weight_mean" in row]
    assert len(logs) == 2
    for row in logs:
        for key in (
            "lad/log_ratio_mean",
            "lad/log_x_mean",
            "lad/frac_past_target",
            "lad/weight_mean",
            "entropy",
        ):
            assert math.isfinite(row[key]), (key, row)
        assert 0.0 <= row["lad/frac_past_target"] <= 1.0
        assert not any(k.startswith("clip_ratio/") for k in row)  # LAD does not clip
    assert "reward" in logs[0] and "frac_reward_zero_std" in logs[0]  # TRL's reward logging, kept
    # step 1 is on-policy (r = 1); step 2 reuses the generation after one update, so r != 1
    assert logs[0]["lad/log_ratio_mean"] == 0.0
    assert abs(logs[1]["lad/log_ratio_mean"]) > 1e-4


def _generated_batch(trainer: LADTrainer) -> dict:
    """A batch generated and scored by TRL itself (2 prompts x 4 completions), with pi_old made
    different from pi_theta so the ratios are not 1."""
    rows = [row for row in _dataset(2) for _ in range(trainer.num_generations)]
    inputs = trainer._generate_and_score_completions(rows)
    gen = torch.Generator().manual_seed(1)
    noise = 0.3 * torch.randn(inputs["completion_ids"].shape, generator=gen)
    with torch.no_grad():
        logps, _, _ = trainer._get_per_token_logps_and_entropies(
            trainer.model,
            torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1),
            torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1),
            inputs["completion_ids"].size(1),
        )
    inputs["old_per_token_logps"] = logps + noise
    # nonzero advantages even if every reward was equal
    inputs["advantages"] = torch.linspace(-1.5, 1.5, inputs["completion_ids"].shape[0])
    return inputs


@pytest.mark.parametrize("loss_type", ["dapo", "bnpo", "grpo", "dr_grpo"])
def test_loss_equals_labkit_lad_loss_with_trl_normalisation(tmp_path, loss_type):
    trainer = _trainer(tmp_path, loss_type=loss_type, gradient_accumulation_steps=2)
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 2  # what Trainer's loop sets from the args
    inputs = _generated_batch(trainer)
    mask = inputs["completion_mask"].float()
    mask[0, 1:] = 0.0  # a short response, and an empty one: the cases where the divisors differ
    mask[1] = 0.0
    inputs["completion_mask"] = mask.long()
    # GRPOTrainer's dapo divisor: tokens of the generation batch / processes x accum / steps_per_gen
    inputs["num_items_in_batch"] = mask.sum() * 3
    loss = trainer._compute_loss(trainer.model, inputs)

    with torch.no_grad():
        logps, _, _ = trainer._get_per_token_logps_and_entropies(
            trainer.model,
            torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1),
            torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1),
            inputs["completion_ids"].size(1),
        )
    cfg = trainer.args.loss_config()
    ref, _ = lad_loss(
        inputs["old_per_token_logps"], logps, inputs["advantages"], mask, cfg.loss_agg_mode, cfg
    )
    accum, steps_per_gen = 2, trainer.args.steps_per_generation
    rows, length = mask.shape
    n_valid, n_tokens = float((mask.sum(-1) > 0).sum()), float(mask.sum())
    # GRPOTrainer._compute_loss's divisor for each loss type (TRL 1.16), written out by hand
    expected = {
        "dapo": ref * n_tokens / (3 * n_tokens * accum / steps_per_gen),
        "bnpo": ref / accum,
        "grpo": ref * n_valid / (rows * accum),
        "dr_grpo": ref * rows * length / (rows * MAX_COMPLETION * accum),
    }[loss_type]
    assert torch.allclose(loss.detach(), expected, rtol=1e-5, atol=1e-7), (loss, expected)
    assert loss.requires_grad


@pytest.mark.parametrize("loss_type", ["dapo", "bnpo", "grpo", "dr_grpo"])
def test_on_policy_kl_lad_matches_grpo_trainer_loss(tmp_path, loss_type):
    # At r = 1, LAD with f = kl and eta = 1 has per-token loss e^a f(e^-a) = -A, and GRPO's clipped
    # surrogate is -A too: so the two trainers' losses agree only if LADTrainer reproduces
    # GRPOTrainer's own normalisation code for this loss_type, gradient accumulation included.
    from trl import GRPOTrainer

    trainer = _trainer(
        tmp_path, loss_type=loss_type, gradient_accumulation_steps=2, divergence="kl", kappa=1.0
    )
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 2
    inputs = _generated_batch(trainer)
    inputs.pop("old_per_token_logps")  # on-policy: both use per_token_logps.detach()
    mask = inputs["completion_mask"].clone()
    mask[1, 2:] = 0
    inputs["completion_mask"] = mask
    lad = trainer._compute_loss(trainer.model, inputs)
    grpo = GRPOTrainer._compute_loss(trainer, trainer.model, inputs)
    assert torch.allclose(lad, grpo, rtol=1e-5, atol=1e-7), (lad, grpo)


@pytest.mark.parametrize("mode", AGG_MODES)
def test_labkit_divisor_is_agg_loss_denominator(mode):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(5, 7, generator=gen)
    mask = (torch.rand(5, 7, generator=gen) > 0.4).float()
    mask[2] = 0.0
    if mode == "seq-mean-token-mean":
        numerator = ((x * mask).sum(-1) / mask.sum(-1).clamp(min=1)).sum()
    else:
        numerator = (x * mask).sum()
    assert torch.allclose(
        agg_loss(x, mask, mode) * labkit_divisor(mask, mode), numerator, atol=1e-6
    )


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"loss_type": "cispo"}, "loss_type='cispo'"),
        ({"use_liger_kernel": True}, "use_liger_kernel"),
        ({"importance_sampling_level": "sequence"}, "ratio_level"),
        ({"entropy_coef": 0.01}, "entropy_coef=0.01"),
        ({"divergence": "nope"}, "divergence='nope'"),
        ({"eta": 0.5}, "give eta or kappa"),
    ],
)
def test_lad_config_rejects_what_lad_cannot_honour(tmp_path, overrides, needle):
    with pytest.raises(ValueError, match=needle.replace("(", r"\(")):
        _args(tmp_path, **overrides)


def test_lad_trainer_needs_a_lad_config(tmp_path):
    from trl import GRPOConfig

    tokenizer = _tokenizer()
    args = GRPOConfig(
        output_dir=str(tmp_path),
        use_cpu=True,
        bf16=False,
        report_to="none",
        activation_checkpointing=False,
    )
    with pytest.raises(ValueError, match="LADConfig"):
        LADTrainer(model=_tiny_model(tokenizer), reward_funcs=digit_reward, args=args)


def test_trl_token_masks_multiply_the_lad_loss(tmp_path):
    # the off-policy sequence mask and the high-entropy token mask act on LAD's per-token loss as
    # they act on GRPO's (vLLM's IS ratio takes the same path; vLLM does not run on CPU here)
    trainer = _trainer(
        tmp_path, loss_type="bnpo", top_entropy_quantile=0.5, off_policy_mask_threshold=0.0
    )
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1
    inputs = _generated_batch(trainer)
    loss = trainer._compute_loss(trainer.model, inputs)
    with torch.no_grad():
        logps, entropies, _ = trainer._get_per_token_logps_and_entropies(
            trainer.model,
            torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1),
            torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1),
            inputs["completion_ids"].size(1),
            compute_entropy=True,
        )
    mask = inputs["completion_mask"].float()
    old, adv = inputs["old_per_token_logps"], inputs["advantages"]
    keep_seq = trainer.get_off_policy_mask(adv.unsqueeze(1), logps, old, mask, 0.0)
    keep_tok = trainer.get_high_entropy_mask(entropies, mask, 0.5)
    assert 0 < float(keep_seq.sum()) < keep_seq.numel() and 0 < float(keep_tok.sum()) < float(
        mask.sum()
    )
    cfg = trainer.args.loss_config()
    ref, _ = lad_loss(
        old, logps, adv, mask, "token-mean", cfg, rollout_is_weights=keep_seq * keep_tok
    )
    assert torch.allclose(loss.detach(), ref, rtol=1e-5, atol=1e-7)
    unmasked, _ = lad_loss(old, logps, adv, mask, "token-mean", cfg)
    assert not torch.allclose(loss.detach(), unmasked)
