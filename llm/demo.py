"""`lad llm demo`: LAD vs GRPO on a language model, on a CPU, in minutes.

The question (docs/method.md sections 1 and 8): on prompts with many correct answers, does LAD keep
several of them where GRPO piles its mass onto one, at equal accuracy?

Pipeline, all under one output directory:
1. `prompts.jsonl`: the multi-answer task (llm/tasks/multi_answer.py), 43 prompts.
2. `warmup/`: a tiny Llama (llm.models.tiny_model, head_dim 32) with a tokenizer built in code,
   taught the answer format by a short supervised warm-up on correct and wrong answers
   (llm/tasks/warmup.py); saved as a Hugging Face directory, with `eval.json` describing the
   policy every method starts from.
3. `runs/<method>/seed_<s>/`: one `llm.trainer.Trainer` run per method and seed, from that
   checkpoint with the same budget; the trainer writes config, metrics.jsonl and the final
   checkpoint; the demo adds `eval_curve.json` (accuracy, pass@k, distinct correct answers ...
   of eval_n samples per prompt at step 0, every eval_every steps and at the end) and
   `eval_final.json` (the last evaluation with its samples' answer counts).
4. `results.json`: every run's final metrics, means over seeds, the answer counts per prompt and
   method, and timings; figures under `figures/` (figures/llm.py, drawn from these files).

Runs go to `workers` processes with one torch thread each: a model this small gains nothing from
intra-op threads, and on a busy machine idle OpenMP threads spin for tens of times the work.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import random
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from llm.demo_config import DemoConfig, results_file, sweep_config
from llm.tasks.multi_answer import (
    build_tokenizer,
    default_specs,
    prompt_rows,
    valid_answers,
    warmup_examples,
)
from llm.tasks.scoring import evaluate_policy
from llm.tasks.warmup import WarmupConfig, supervised_warmup


def _write_json(path: Path, data: Any) -> None:
    from labkit.io import write_json

    write_json(path, data)


def _save_model_dir(final: Path, model, tokenizer) -> None:
    """save_pretrained into a temp sibling directory, then rename it into place."""
    import shutil
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def check_tokenizer_round_trip(model_dir: Path, tokenizer: Any) -> None:
    """The tokenizer the trainer loads from `model_dir` must encode the task as `tokenizer` does."""
    from llm.models import load_tokenizer

    loaded = load_tokenizer(str(model_dir))
    texts = [s.prompt for s in default_specs()] + [
        a for s in default_specs() for a in valid_answers(s)
    ]
    for text in texts:
        if loaded(text)["input_ids"] != tokenizer(text)["input_ids"]:
            raise ValueError(
                f"the tokenizer saved in {model_dir} reloads as {type(loaded).__name__} and encodes {text!r} "
                f"differently ({loaded.tokenize(text)} vs {tokenizer.tokenize(text)})"
            )


def prepare(config: DemoConfig, out: Path) -> tuple[Path, Path]:
    """Write prompts.jsonl and the warm-up checkpoint (reused when it is already there)."""
    from llm.models import tiny_model

    out.mkdir(parents=True, exist_ok=True)
    prompts = out / "prompts.jsonl"
    tmp = prompts.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in prompt_rows(default_specs())))
    os.replace(tmp, prompts)
    warm = out / "warmup"
    marker = warm / "warmup.json"
    settings = {
        "warmup": dataclasses.asdict(config.warmup),
        "correct_frac": config.warmup_correct_frac,
        "seed": config.model_seed,
    }
    if marker.is_file() and json.loads(marker.read_text()).get("settings") == settings:
        return prompts, warm
    if warm.exists():
        import shutil

        shutil.rmtree(warm)
    tokenizer = build_tokenizer()
    # llama, not qwen2: transformers 5's AutoTokenizer replaces a qwen2 checkpoint's tokenizer
    # pipeline with Qwen2Tokenizer's byte-level BPE, which cannot read this word-level vocabulary
    model = tiny_model("llama", vocab_size=len(tokenizer), seed=config.model_seed)
    n_pairs = config.warmup.steps * config.warmup.batch_size
    pairs = warmup_examples(
        default_specs(), n_pairs, config.warmup_correct_frac, random.Random(config.model_seed)
    )
    t0, c0 = time.perf_counter(), time.process_time()
    with one_thread():
        losses = supervised_warmup(model, tokenizer, pairs, config.warmup, seed=config.model_seed)
    timing = {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0}
    _save_model_dir(warm, model, tokenizer)
    check_tokenizer_round_trip(warm, tokenizer)
    records = [json.loads(line) for line in prompts.read_text().splitlines()]
    run_cfg = config.trainer_config(
        next(iter(config.methods)), config.model_seed, out / "runs", warm, prompts
    )
    with one_thread():
        ev = evaluate_policy(model, tokenizer, records, run_cfg, config.eval_n)
    _write_json(
        warm / "eval.json",
        {**ev, "loss_first": losses[0], "loss_last": sum(losses[-20:]) / len(losses[-20:])},
    )
    _write_json(marker, {"settings": settings, "timing": timing})
    return prompts, warm


@contextmanager
def one_thread() -> Iterator[None]:
    """torch on one intra-op thread inside the block (restored after; see the module docstring)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_one(job: dict[str, Any]) -> dict[str, Any]:
    """Train and evaluate one (method, seed) with one torch thread; runs in a worker process
    (or in this one with workers = 1). Returns its summary."""
    with one_thread():
        return _run_one(job)


def _run_one(job: dict[str, Any]) -> dict[str, Any]:
    from llm.models import load_model, load_tokenizer
    from llm.trainer import Trainer

    config = DemoConfig(**{**job["config"], "warmup": WarmupConfig(**job["config"]["warmup"])})
    out, warm, prompts = Path(job["out"]), Path(job["warmup"]), Path(job["prompts"])
    run_dir = out / "runs" / job["method"] / f"seed_{job['seed']}"
    if run_dir.exists():
        import shutil

        shutil.rmtree(run_dir)
    cfg = config.trainer_config(job["method"], job["seed"], run_dir, warm, prompts)
    records = [json.loads(line) for line in prompts.read_text().splitlines()]
    tokenizer = load_tokenizer(str(warm))
    # step 0 is the warm-up policy, evaluated with the same n and sampling seed
    warm_eval = json.loads((warm / "eval.json").read_text())
    curve: list[dict[str, Any]] = [{"step": 0, **warm_eval["metrics"]}]
    final: dict[str, Any] = {}
    max_steps = cfg.trainer.max_steps

    class EvalTrainer(Trainer):
        # save() is the trainer's hook every save_steps and at the end: evaluate there, and
        # write only the final checkpoint
        def save(self, step: int):
            if step == max_steps or (config.eval_every and step % config.eval_every == 0):
                ev = evaluate_policy(self.model, tokenizer, records, cfg, config.eval_n)
                curve.append({"step": step, **ev["metrics"]})
                final.update(ev)
            return super().save(step) if step == max_steps else None

    t0, c0 = time.perf_counter(), time.process_time()
    model = load_model(str(warm), seed=job["seed"])
    trainer = EvalTrainer(
        cfg, model=model, tokenizer=tokenizer, train_records=records, eval_records=records
    )
    trainer.train()
    summary = {
        "method": job["method"],
        "seed": job["seed"],
        "dir": str(run_dir.relative_to(out)),
        "objective": cfg.algorithm.loss_mode,
        "divergence": cfg.algorithm.divergence,
        "kappa": float(cfg.algorithm.inverse_temperature),
        "final": final["metrics"],
        "answer_counts": final["answer_counts"],
        "timing": {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0},
    }
    _write_json(
        run_dir / "eval_curve.json", {"method": job["method"], "seed": job["seed"], "curve": curve}
    )
    _write_json(
        run_dir / "eval_final.json", {"method": job["method"], "seed": job["seed"], **final}
    )
    _write_json(run_dir / "demo_run.json", {k: summary[k] for k in ("method", "seed", "timing")})
    return summary


def summarize_runs(runs: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """method -> metric -> {"mean", "std", "values"} over seeds (population std)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for method in dict.fromkeys(r["method"] for r in runs):
        rows = [r["final"] for r in runs if r["method"] == method]
        out[method] = {}
        for key in rows[0]:
            vals = [float(r[key]) for r in rows if r.get(key) is not None]
            if not vals:
                continue
            mean = sum(vals) / len(vals)
            std = (sum((v - mean) ** 2 for v in vals) / len(vals)) ** 0.5
            out[method][key] = {"mean": mean, "std": std, "values": vals}
    return out


def pooled_counts(runs: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, int]]]:
    """method -> spec key -> answer -> count, summed over seeds."""
    out: dict[str, dict[str, Counter]] = {}
    for r in runs:
        per = out.setdefault(r["method"], {})
        for key, counts in r["answer_counts"].items():
            per.setdefault(key, Counter()).update(counts)
    return {m: {k: dict(c) for k, c in per.items()} for m, per in out.items()}


def run_demo(config: DemoConfig, out: str | Path, log=print, sweep: str = "main") -> dict[str, Any]:
    """The whole comparison (or a sweep); writes out/results.json (results_<sweep>.json) and
    returns it."""
    config = sweep_config(config, sweep)
    out = Path(out)
    t0, c0 = time.perf_counter(), time.process_time()
    prompts, warm = prepare(config, out)
    warm_eval = json.loads((warm / "eval.json").read_text())
    m = warm_eval["metrics"]
    log(
        f"warm-up policy: avg@{config.eval_n} {m[f'avg@{config.eval_n}']:.3f}, "
        f"distinct correct/prompt {m['distinct_correct/mean']:.2f}, well-formed {m['well_formed']:.3f}"
    )
    jobs = [
        {
            "config": config.to_dict(),
            "method": method,
            "seed": seed,
            "out": str(out),
            "warmup": str(warm),
            "prompts": str(prompts),
        }
        for seed in config.seeds
        for method in config.methods
    ]
    runs: list[dict[str, Any]] = []
    if config.workers == 1:
        for job in jobs:
            runs.append(run_one(job))
            log(_line(runs[-1], config.eval_n))
    else:
        import multiprocessing as mp

        with ProcessPoolExecutor(
            max_workers=config.workers, mp_context=mp.get_context("spawn")
        ) as pool:
            for summary in pool.map(run_one, jobs):
                runs.append(summary)
                log(_line(summary, config.eval_n))
    children = os.times()
    results = {
        "sweep": sweep,
        "config": config.to_dict(),
        "versions": {"python": platform.python_version(), "torch": torch.__version__},
        "eval_n": config.eval_n,
        "warmup": {"dir": "warmup", "metrics": m, "answer_counts": warm_eval["answer_counts"]},
        "valid_answers": {s.key: valid_answers(s) for s in default_specs()},
        "prompts": {s.key: s.prompt for s in default_specs()},
        "runs": runs,
        "summary": summarize_runs(runs),
        "answer_counts": pooled_counts(runs),
        "timing": {
            "wall_s": time.perf_counter() - t0,
            # this process plus the worker processes it waited for
            "cpu_s": time.process_time() - c0 + children.children_user + children.children_system,
        },
    }
    _write_json(out / results_file(sweep), results)
    return results


def _line(run: dict[str, Any], n: int) -> str:
    f = run["final"]
    return (
        f"{run['method']:>10} seed {run['seed']}: avg@{n} {f[f'avg@{n}']:.3f}  pass@{n} {f[f'pass@{n}']:.3f}  "
        f"distinct correct {f['distinct_correct/mean']:.2f}  ({run['timing']['wall_s']:.0f}s)"
    )
