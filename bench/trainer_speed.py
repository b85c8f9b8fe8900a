"""Training-step throughput of labkit's LLM trainer against TRL's GRPOTrainer, and LAD against
GRPO inside labkit's trainer. CPU, a tiny Qwen2-shaped model built in code.

One step = rollout (B prompts x G completions, HF generate) + rewards + one optimizer step.
Both trainers get the same model weights, tokenizer, prompts, reward function, B, G,
max_completion_length, learning rate, fp32, no gradient checkpointing, beta = 0, one update
epoch, and the PPO-clip loss with token-mean aggregation (TRL's default `dapo`; labkit
`loss_mode=grpo`). EOS is suppressed (an output bias of -1e9 on it), so every completion has
exactly max_completion_length tokens in both trainers and tokens/s compare like for like.

Pairing: rounds alternate TRL (a fresh GRPOTrainer running `steps` steps) and labkit (`steps`
steps), in one process, so load drift hits both; the first step of each round is a warm-up and
is dropped. The LAD vs GRPO comparison alternates single steps of two labkit trainers.

    python bench/trainer_speed.py                 # writes bench/results/trainer_speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import torch  # noqa: E402

from labkit.io import relative, write_json  # noqa: E402
from llm.config_loading import load_config  # noqa: E402
from llm.models import tiny_model, tiny_tokenizer  # noqa: E402
from llm.trainer import Trainer  # noqa: E402


def digit_fraction(prompts: list, completions: list, **columns) -> list[float]:
    """Toy reward (cheap, varies across samples): share of digit characters."""
    texts = [c if isinstance(c, str) else c[-1]["content"] for c in completions]
    return [sum(ch.isdigit() for ch in t) / max(1, len(t)) for t in texts]


def make_model(tokenizer, seed: int):
    """The tiny Qwen2 (hidden 128, 2 layers) with an output bias that forbids EOS."""
    model = tiny_model("qwen2", len(tokenizer), seed=seed)
    head = torch.nn.Linear(model.config.hidden_size, model.config.vocab_size, bias=True)
    with torch.no_grad():
        head.weight.copy_(model.lm_head.weight)
        head.bias.zero_()
        head.bias[tokenizer.eos_token_id] = -1e9
    model.lm_head = head
    model.config.tie_word_embeddings = False
    return model


def records(n: int) -> list[dict]:
    return [
        {"prompt": f"What is {i} + {2 * i + 1}? Think, then answer.", "answer": str(3 * i + 1)}
        for i in range(n)
    ]


def labkit_trainer(args, tokenizer, loss: str, out: str) -> Trainer:
    algo = (
        ["algorithm.loss_mode=lad", "algorithm.divergence=js", "algorithm.kappa=4"]
        if loss == "lad"
        else ["algorithm.loss_mode=grpo", "algorithm.epsilon=0.2", "algorithm.epsilon_high=0.2"]
    )
    cfg = load_config(
        None,
        [
            *algo,
            "algorithm.loss_agg_mode=token-mean",
            f"data.reward_funcs=[{Path(__file__).resolve()}:digit_fraction]",
            f"rollout.num_generations={args.num_generations}",
            f"rollout.max_completion_length={args.completion_length}",
            f"trainer.train_batch_size={args.prompts}",
            f"trainer.max_steps={10**6}",
            "trainer.learning_rate=1e-5",
            "trainer.device=cpu",
            "trainer.progress_bar=false",
            f"trainer.output_dir={out}",
            f"trainer.seed={args.seed}",
        ],
    )
    data = records(64)
    return Trainer(
        cfg,
        model=make_model(tokenizer, args.seed),
        tokenizer=tokenizer,
        train_records=data,
        eval_records=[],
    )


def trl_round(args, tokenizer, out: str) -> list[float]:
    """A fresh TRL GRPOTrainer for `steps` steps; returns the wall time of each step."""
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.times: list[float] = []

        def on_step_begin(self, *a, **k):
            self.t0 = time.perf_counter()

        def on_step_end(self, *a, **k):
            self.times.append(time.perf_counter() - self.t0)

    data = Dataset.from_list(
        [
            {"prompt": [{"role": "user", "content": r["prompt"]}], "answer": r["answer"]}
            for r in records(64)
        ]
    )
    config = GRPOConfig(
        output_dir=out,
        per_device_train_batch_size=args.prompts * args.num_generations,
        num_generations=args.num_generations,
        max_completion_length=args.completion_length,
        learning_rate=1e-5,
        max_steps=args.steps,
        beta=0.0,
        epsilon=0.2,
        loss_type="dapo",
        temperature=1.0,
        num_iterations=1,
        gradient_checkpointing=False,
        bf16=False,
        use_cpu=True,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        seed=args.seed,
        dataloader_num_workers=0,
    )
    timer = StepTimer()
    trainer = GRPOTrainer(
        model=make_model(tokenizer, args.seed),
        reward_funcs=[digit_fraction],
        args=config,
        train_dataset=data,
        processing_class=tokenizer,
        callbacks=[timer],
    )
    trainer.train()
    return timer.times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--prompts", type=int, default=4, help="B prompts per step")
    p.add_argument("--num-generations", type=int, default=8, help="G completions per prompt")
    p.add_argument(
        "--completion-length", type=int, default=64, help="tokens per completion (EOS suppressed)"
    )
    p.add_argument("--steps", type=int, default=5, help="steps per round (the first is a warm-up)")
    p.add_argument("--rounds", type=int, default=5, help="paired TRL / labkit rounds")
    p.add_argument(
        "--lad-steps",
        type=int,
        default=21,
        help="alternating LAD / GRPO steps (first pair dropped)",
    )
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-trl", action="store_true", help="only LAD vs GRPO (no TRL installed)")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "trainer_speed.json"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    import transformers

    tokenizer = tiny_tokenizer()
    tokens_per_step = args.prompts * args.num_generations * args.completion_length
    result: dict = {
        "command": "python bench/trainer_speed.py "
        + " ".join(relative(a) if a.startswith("/") else a for a in sys.argv[1:]),
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "threads": args.threads,
        },
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        },
        "config": {**vars(args), "out": relative(args.out)},
        "tokens_per_step": tokens_per_step,
    }
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_trl:
            import trl

            result["versions"]["trl"] = trl.__version__
            rounds = []
            for r in range(args.rounds):
                trl_times = trl_round(args, tokenizer, f"{tmp}/trl{r}")[1:]
                ours = labkit_trainer(args, tokenizer, "grpo", f"{tmp}/ours{r}")
                ours_times = []
                for step in range(1, args.steps + 1):
                    m = ours.train_step(step)
                    assert float(m["tokens/completion"]) == tokens_per_step
                    if step > 1:
                        ours_times.append(float(m["timing/step_s"]))
                row = {
                    "trl_step_s": statistics.median(trl_times),
                    "labkit_step_s": statistics.median(ours_times),
                }
                row["labkit_vs_trl_tokens_per_s"] = row["trl_step_s"] / row["labkit_step_s"]
                rounds.append(row)
                print(
                    f"round {r}: TRL {row['trl_step_s']:.3f}s/step  labkit {row['labkit_step_s']:.3f}s/step  ratio {row['labkit_vs_trl_tokens_per_s']:.2f}",
                    flush=True,
                )
            ratios = [x["labkit_vs_trl_tokens_per_s"] for x in rounds]
            result["vs_trl"] = {
                "rounds": rounds,
                "trl_tokens_per_s": tokens_per_step
                / statistics.median(x["trl_step_s"] for x in rounds),
                "labkit_tokens_per_s": tokens_per_step
                / statistics.median(x["labkit_step_s"] for x in rounds),
                "ratio_median": statistics.median(ratios),
                "ratio_min": min(ratios),
                "ratio_max": max(ratios),
            }
        trainers = {k: labkit_trainer(args, tokenizer, k, f"{tmp}/{k}") for k in ("lad", "grpo")}
        times: dict[str, list[dict[str, float]]] = {k: [] for k in trainers}
        for step in range(1, args.lad_steps + 1):
            for name, tr in trainers.items():
                m = {k: float(v) for k, v in tr.train_step(step).items()}
                if step > 1:
                    times[name].append(m)
        step_ratio = [
            a["timing/step_s"] / b["timing/step_s"]
            for a, b in zip(times["lad"], times["grpo"], strict=True)
        ]
        update_ratio = [
            a["timing/update_per_token"] / b["timing/update_per_token"]
            for a, b in zip(times["lad"], times["grpo"], strict=True)
        ]
        result["lad_vs_grpo"] = {
            "lad_step_s": statistics.median(m["timing/step_s"] for m in times["lad"]),
            "grpo_step_s": statistics.median(m["timing/step_s"] for m in times["grpo"]),
            "step_time_ratio_median": statistics.median(step_ratio),
            "update_time_per_token_ratio_median": statistics.median(update_ratio),
            "step_time_ratios": step_ratio,
        }
    print(json.dumps({k: v for k, v in result.items() if k != "config"}, indent=2))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, result)


if __name__ == "__main__":
    main()
