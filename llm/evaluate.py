"""Sampled evaluation: n completions per held-out prompt -> avg@n, pass@k, maj@n, distinct-n and
the number of distinct correct answers (llm.metrics.summarize), as JSON and a plot.

A sample is correct when the `eval.correct_reward` function (default: the first of
data.reward_funcs) gives it a reward >= eval.correct_threshold; a skipped sample (None) is not
correct. Sampling is seeded from eval.seed and the batch index, so two models (before / after
training, LAD / GRPO) are evaluated on the same prompts with the same seeds.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import torch

from labkit.io import atomic_write, write_json
from llm.config import TrainConfig
from llm.data import format_prompt, load_datasets, record_columns
from llm.metrics import extract_final_answer, summarize
from llm.rewards import RewardSet, with_code_sandbox
from llm.rollout import SamplingConfig, derive_seed
from llm.rollout_hf import HFGenerator


def evaluate_model(
    model: torch.nn.Module,
    tokenizer: Any,
    records: list[dict],
    config: TrainConfig,
    *,
    autocast_dtype: torch.dtype | None = None,
    generator: Any = None,
) -> dict[str, Any]:
    """Evaluate `model` on `records` (the first eval.max_prompts) with config.eval's sampling.

    generator: the rollout backend to sample with (the trainer passes its own, so a vLLM run
    evaluates with vLLM at the current weights); None samples with HF generate on `model`.

    Returns {"metrics": summarize(...) + reward/mean, completions/mean_length,
    completions/clipped_ratio; "samples": one row per prompt (prompt, answer, completions,
    rewards, correct, answers)}.
    """
    ev, data = config.eval, config.data
    records = records[: ev.max_prompts] if ev.max_prompts is not None else records
    if not records:
        raise ValueError(
            "eval: there are no eval records (data.eval_fraction = 0 and no data.eval_dataset?)"
        )
    reward = RewardSet(
        with_code_sandbox([ev.correct_reward or data.reward_funcs[0]], data.code_sandbox),
        timeout=data.reward_timeout_s,
        max_stuck=data.reward_max_stuck,
    )
    if generator is None:
        generator = HFGenerator(model, tokenizer, autocast_dtype=autocast_dtype)
    n = ev.n
    correct: list[list[bool]] = []
    answers: list[list[str | None]] = []
    texts: list[list[str]] = []
    samples: list[dict[str, Any]] = []
    total_reward, n_scored, n_tokens, n_clipped = 0.0, 0, 0, 0
    for b, start in enumerate(range(0, len(records), ev.batch_prompts)):
        chunk = records[start : start + ev.batch_prompts]
        prompts = [format_prompt(r, tokenizer, data.system_prompt, data.instruction) for r in chunk]
        sampling = SamplingConfig(
            num_generations=n,
            max_completion_length=ev.max_completion_length or config.rollout.max_completion_length,
            temperature=ev.temperature,
            top_p=ev.top_p,
            seed=derive_seed(ev.seed, b),
        )
        rollout = generator.generate(prompts, sampling)
        rows = [r for r in chunk for _ in range(n)]
        rewards, _ = reward([r["prompt"] for r in rows], rollout.completions, record_columns(rows))
        ok = (rewards >= ev.correct_threshold) & ~torch.isnan(rewards)
        scored = rewards[~torch.isnan(rewards)]
        total_reward += float(scored.sum())
        n_scored += scored.numel()
        n_tokens += int(rollout.completion_mask.sum())
        n_clipped += int(rollout.truncated.sum())
        for i, record in enumerate(chunk):
            sl = slice(i * n, (i + 1) * n)
            comps = rollout.completions[sl]
            row_ok = ok[sl].tolist()
            row_ans = [extract_final_answer(c) for c in comps]
            correct.append(row_ok)
            answers.append(row_ans)
            texts.append(comps)
            samples.append(
                {
                    "prompt": prompts[i],
                    "answer": record.get("answer"),
                    "completions": comps,
                    "rewards": [None if r != r else r for r in rewards[sl].tolist()],
                    "correct": row_ok,
                    "final_answers": row_ans,
                }
            )
    metrics = summarize(correct, answers, texts, ev.ks)
    metrics["reward/mean"] = total_reward / n_scored if n_scored else float("nan")
    metrics["completions/mean_length"] = n_tokens / (len(records) * n)
    metrics["completions/clipped_ratio"] = n_clipped / (len(records) * n)
    return {"metrics": metrics, "samples": samples}


def write_eval(path: str | Path, result: dict[str, Any], **meta: Any) -> None:
    """Write {"meta": ..., "metrics": ..., "samples": ...} atomically (NaN -> null)."""
    metrics = {
        k: (None if isinstance(v, float) and v != v else v) for k, v in result["metrics"].items()
    }
    write_json(path, {"meta": meta, "metrics": metrics, "samples": result["samples"]})


def plot_eval(results: dict[str, dict[str, Any]], path: str | Path) -> Path:
    """Pass@k against k (avg@n dashed) and distinct-1..4, one colour per result; PNG, atomic.

    results: label -> an eval JSON ({"metrics": {...}}) or a bare metrics dict.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_k, ax_d) = plt.subplots(1, 2, figsize=(9, 3.4))
    width = 0.8 / max(len(results), 1)
    for i, (label, res) in enumerate(results.items()):
        m = res.get("metrics", res)
        ks = sorted(int(k.split("@")[1]) for k in m if k.startswith("pass@"))
        line = ax_k.plot(ks, [m[f"pass@{k}"] for k in ks], marker="o", label=label)[0]
        avg = next((v for k, v in m.items() if k.startswith("avg@")), None)
        if avg is not None:
            ax_k.axhline(avg, color=line.get_color(), linestyle="--", linewidth=1)
        dn = [m.get(f"distinct-{j}") or 0.0 for j in range(1, 5)]
        ax_d.bar(
            [j + i * width for j in range(1, 5)],
            dn,
            width=width,
            color=line.get_color(),
            label=label,
        )
    ax_k.set_xscale("log", base=2)
    all_ks = sorted(
        {
            int(k.split("@")[1])
            for r in results.values()
            for k in r.get("metrics", r)
            if k.startswith("pass@")
        }
    )
    ax_k.set_xticks(all_ks, [str(k) for k in all_ks])
    ax_k.set_xlabel("k")
    ax_k.set_ylabel("pass@k (dashed: avg@n)")
    ax_k.set_ylim(0, 1.02)
    ax_k.legend(frameon=False)
    ax_d.set_xticks(
        [j + width * (len(results) - 1) / 2 for j in range(1, 5)],
        [f"distinct-{j}" for j in range(1, 5)],
    )
    ax_d.set_ylim(0, 1.02)
    fig.tight_layout()
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=120)
    finally:
        plt.close(fig)
    return atomic_write(path, buf.getvalue())


def run_eval(
    config: TrainConfig,
    checkpoint: str | None = None,
    out_dir: str | Path | None = None,
    label: str | None = None,
) -> tuple[Path, dict[str, Any]]:
    """`lad llm eval`: evaluate the base model (config.model.path) or a checkpoint.

    checkpoint: a checkpoint directory, "auto" (the latest in trainer.output_dir) or None.
    Writes <out_dir>/eval_<label>.json and <out_dir>/eval.png (all eval_*.json there, one
    curve each). out_dir defaults to trainer.output_dir. Returns (json path, result).
    """

    model, tokenizer, spec = load_for_inference(config, checkpoint)
    device = next(model.parameters()).device
    _, eval_records = load_datasets(config.data)
    autocast = torch.bfloat16 if config.trainer.bf16 and device.type == "cuda" else None
    result = evaluate_model(model, tokenizer, eval_records, config, autocast_dtype=autocast)
    out = Path(out_dir or config.trainer.output_dir)
    label = label or (Path(spec).name if checkpoint is not None else "base")
    path = out / f"eval_{label}.json"
    write_eval(path, result, label=label, model=spec, config=config.to_dict())
    results = {
        p.stem.removeprefix("eval_"): json.loads(p.read_text())
        for p in sorted(out.glob("eval_*.json"), key=lambda p: p.stat().st_mtime)
    }
    plot_eval(results, out / "eval.png")
    return path, result


def load_for_inference(
    config: TrainConfig, checkpoint: str | None = None
) -> tuple[torch.nn.Module, Any, str]:
    """(model in eval mode, tokenizer, the spec loaded) for the base model or a checkpoint
    (a checkpoint directory, or "auto" = the latest one in trainer.output_dir)."""
    from llm import checkpoint as ckpt
    from llm.models import load_model, load_tokenizer, pick_device

    spec = config.model.path
    if checkpoint == "auto":
        found = ckpt.latest_checkpoint(config.trainer.output_dir)
        if found is None:
            raise FileNotFoundError(
                f"no checkpoint in trainer.output_dir={config.trainer.output_dir!r}"
            )
        spec = str(found)
    elif checkpoint is not None:
        spec = checkpoint
    device = pick_device(config.trainer.device)
    model = load_model(spec, config.model.dtype, device, seed=config.trainer.seed).eval()
    return model, load_tokenizer(spec), spec


def sample_completions(
    config: TrainConfig,
    checkpoint: str | None = None,
    prompts: list[str] | None = None,
    n: int = 2,
    num_prompts: int = 3,
) -> list[dict[str, Any]]:
    """`lad llm sample`: n completions for each of `prompts` (plain user messages), or for the
    first `num_prompts` eval records (then with their rewards). Sampling as in config.eval."""

    if n < 1 or num_prompts < 1:
        raise ValueError(f"n and num_prompts must be >= 1, got n={n}, num_prompts={num_prompts}")
    model, tokenizer, _ = load_for_inference(config, checkpoint)
    if prompts:
        records = [{"prompt": p} for p in prompts]
    else:
        train, held_out = load_datasets(config.data)
        records = (held_out or train)[:num_prompts]
    data, ev = config.data, config.eval
    texts = [format_prompt(r, tokenizer, data.system_prompt, data.instruction) for r in records]
    sampling = SamplingConfig(
        num_generations=n,
        max_completion_length=ev.max_completion_length or config.rollout.max_completion_length,
        temperature=ev.temperature,
        top_p=ev.top_p,
        seed=ev.seed,
    )
    device = next(model.parameters()).device
    autocast = torch.bfloat16 if config.trainer.bf16 and device.type == "cuda" else None
    rollout = HFGenerator(model, tokenizer, autocast_dtype=autocast).generate(texts, sampling)
    rewards: list[float | None] = [None] * len(rollout.completions)
    if not prompts:
        rows = [r for r in records for _ in range(n)]
        rs = RewardSet(
            with_code_sandbox(data.reward_funcs, data.code_sandbox),
            data.reward_weights,
            timeout=data.reward_timeout_s,
            max_stuck=data.reward_max_stuck,
        )
        total, _ = rs([r["prompt"] for r in rows], rollout.completions, record_columns(rows))
        rewards = [None if r != r else r for r in total.tolist()]
    return [
        {
            "prompt": texts[i],
            "answer": records[i].get("answer"),
            "completions": rollout.completions[i * n : (i + 1) * n],
            "rewards": rewards[i * n : (i + 1) * n],
        }
        for i in range(len(records))
    ]
