"""The GPU check (one go, < 8 minutes on one H100): labkit's own trainer on a ~0.5B-parameter
Qwen2-shaped model (random weights, Qwen2.5-0.5B's shapes) on CUDA in bf16, LAD vs GRPO.

Reports rollout and update tokens/s, time per token LAD vs GRPO (goal <= 1.05x), peak memory, and
the largest update micro-batch that fits; writes JSON. Needs only torch, transformers and
tokenizers (the GPU machines here have no network): run it through bench/gpu_check.sh.

The two trainers live in one process and their steps alternate, so drift in clocks or load hits
both alike. Random weights rarely emit EOS, so every completion has max_completion_length tokens:
the per-token times are for full-length completions.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]  # labkit/llm from the checkout; this file's reward

import torch  # noqa: E402

VOCAB, VOCAB_TINY = 151936, 1000

from labkit.io import relative, write_json  # noqa: E402


def parity_reward(prompts: list[str], completions: list[str], **columns) -> list[float]:
    """A verifiable toy reward that varies across samples: share of even-numbered words."""
    out = []
    for text in completions:
        words = text.split()
        out.append(sum(w[1:].isdigit() and int(w[1:]) % 2 == 0 for w in words) / max(1, len(words)))
    return out


def word_tokenizer(vocab_size: int):
    """A WordLevel tokenizer with vocab_size words w0..w{V-1} (ids 0, 1 are pad and eos)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<eos>": 1, **{f"w{i}": i for i in range(2, vocab_size)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>")
    hf.padding_side = "left"
    return hf


def qwen2_model(seed: int, tiny: bool = False):
    """Qwen2.5-0.5B's shapes with random weights (about 494M parameters); tiny: a CPU dry run."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    shape = (
        dict(
            vocab_size=VOCAB_TINY,
            hidden_size=128,
            intermediate_size=256,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
        )
        if tiny
        else dict(
            vocab_size=VOCAB,
            hidden_size=896,
            intermediate_size=4864,
            num_hidden_layers=24,
            num_attention_heads=14,
            num_key_value_heads=2,
        )
    )
    cfg = Qwen2Config(
        **shape, max_position_embeddings=4096, tie_word_embeddings=True, rope_theta=1e6
    )
    torch.manual_seed(seed)
    return Qwen2ForCausalLM(cfg)


def make_trainer(loss: str, args, tokenizer, records, out_dir: str):
    from llm.config_loading import load_config
    from llm.trainer import Trainer

    algo = (
        ["algorithm.loss_mode=lad", "algorithm.divergence=js", "algorithm.kappa=4"]
        if loss == "lad"
        else ["algorithm.loss_mode=grpo", "algorithm.epsilon=0.2", "algorithm.epsilon_high=0.28"]
    )
    cfg = load_config(
        None,
        [
            *algo,
            "data.reward_funcs=[gpu_check:parity_reward]",
            f"rollout.num_generations={args.num_generations}",
            f"rollout.max_completion_length={args.completion_length}",
            f"trainer.train_batch_size={args.prompts}",
            f"trainer.gradient_accumulation_steps={args.grad_accum}",
            "trainer.learning_rate=1e-6",
            f"trainer.device={args.device}",
            "trainer.bf16=true",
            "trainer.progress_bar=false",
            f"trainer.output_dir={out_dir}/{loss}",
            f"trainer.seed={args.seed}",
        ],
    )
    return Trainer(
        cfg,
        model=qwen2_model(args.seed, args.tiny),
        tokenizer=tokenizer,
        train_records=records,
        eval_records=[],
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--prompts", type=int, default=16, help="B prompts per step")
    p.add_argument("--num-generations", type=int, default=8, help="G completions per prompt")
    p.add_argument("--completion-length", type=int, default=256)
    p.add_argument("--prompt-length", type=int, default=64)
    p.add_argument("--grad-accum", type=int, default=2)
    p.add_argument(
        "--steps", type=int, default=4, help="measured steps per objective (after 1 warm-up)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="bench/results/gpu_check.json")
    p.add_argument("--device", default="cuda")
    p.add_argument(
        "--tiny", action="store_true", help="a tiny model: a dry run of this script on CPU"
    )
    args = p.parse_args()
    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        sys.exit(
            "error: bench/gpu_check.py needs a CUDA device (or --device cpu --tiny for a dry run)"
        )
    vocab = VOCAB_TINY if args.tiny else VOCAB

    import transformers

    tokenizer = word_tokenizer(vocab)
    g = torch.Generator().manual_seed(args.seed)
    records = [
        {
            "prompt": " ".join(
                f"w{i}"
                for i in torch.randint(2, vocab, (args.prompt_length,), generator=g).tolist()
            ),
            "answer": "",
        }
        for _ in range(args.prompts * (args.steps + 1))
    ]
    result: dict = {
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "config": {**vars(args), "out": relative(args.out)},
    }
    with tempfile.TemporaryDirectory() as tmp:
        trainers = {k: make_trainer(k, args, tokenizer, records, tmp) for k in ("lad", "grpo")}
        result["parameters"] = sum(p.numel() for p in trainers["lad"].model.parameters())
        times: dict[str, list[dict[str, float]]] = {k: [] for k in trainers}
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        for step in range(1, args.steps + 2):
            for name, tr in trainers.items():  # alternate: drift hits both alike
                m = {k: float(v) for k, v in tr.train_step(step).items()}
                if step > 1:  # step 1 warms up kernels and the allocator
                    times[name].append(m)
                print(
                    f"step {step} {name}: {m['timing/step_s']:.2f}s tokens {m['tokens/completion']:.0f} loss {m.get('actor/pg_loss', float('nan')):.4f}",
                    flush=True,
                )
        result["train_seconds"] = time.perf_counter() - t0
        if cuda:
            result["peak_memory_gib_two_trainers"] = torch.cuda.max_memory_allocated() / 2**30
        for name, rows in times.items():
            med = {
                k: statistics.median(r[k] for r in rows)
                for k in rows[0]
                if not k.startswith(("rewards/",))
            }
            result[name] = {
                "rollout_tokens_per_s": med["tokens/completion"] / med["timing/rollout_s"],
                "update_tokens_per_s": med["tokens/completion"] / med["timing/update_s"],
                "step_tokens_per_s": med["tokens/s"],
                "rollout_s_per_token": med["timing/rollout_per_token"],
                "update_s_per_token": med["timing/update_per_token"],
                "step_s": med["timing/step_s"],
            }
        result["lad_vs_grpo_update_time_per_token"] = [
            a["timing/update_per_token"] / b["timing/update_per_token"]
            for a, b in zip(times["lad"], times["grpo"], strict=True)
        ]
        result["lad_vs_grpo_update_ratio_median"] = statistics.median(
            result["lad_vs_grpo_update_time_per_token"]
        )
        result["lad_vs_grpo_step_ratio_median"] = statistics.median(
            a["timing/step_s"] / b["timing/step_s"]
            for a, b in zip(times["lad"], times["grpo"], strict=True)
        )
        if cuda:
            model = trainers["lad"].model
            del trainers["grpo"], tr  # free the second model and its optimizer state first
            trainers["lad"].optimizer.zero_grad(set_to_none=True)
            torch.cuda.empty_cache()
            seq = args.prompt_length + args.completion_length
            from logprob_memory import largest  # imports this module's qwen2_model

            rows = largest(model, seq, args.completion_length, None, 4096)
            result["largest_micro_batch_rows"] = {"seq_len": seq, "rows": rows}
    print(json.dumps(result, indent=2))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, result)


if __name__ == "__main__":
    main()
