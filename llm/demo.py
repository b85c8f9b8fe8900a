"""`lad llm demo`: LAD vs GRPO on a language model, on a CPU, with statistics over seeds.

The question (docs/llm-demo.md): on prompts with many correct answers, does LAD keep several of
them where GRPO piles its mass onto one, at equal accuracy, on prompts it never trained on?

Pipeline, all under one output directory:
1. `prompts.jsonl` (RL training prompts) and `heldout.jsonl` (prompts RL never sees): the
   multi-answer task (llm/tasks/multi_answer.py), 29 + 14 prompts.
2. `warmup/`: a tiny Llama (llm.models.tiny_model, head_dim 32) with a tokenizer built in code,
   taught the answer format by a short supervised warm-up on correct and wrong answers of all 43
   prompts (llm/tasks/warmup.py; it plays the pretrained base model); saved as a Hugging Face
   directory, with `eval.json` describing the policy every method starts from.
3. `runs/<method>/seed_<s>/`: one `llm.trainer.Trainer` run per method and seed, from that
   checkpoint with the same budget and seed; the trainer writes config, metrics.jsonl and the final
   checkpoint; the demo evaluates through the trainer's `on_step` hook and adds `eval_curve.json`
   (eval_n samples per prompt at step 0, every eval_every steps and at the end; `curve` on the
   held-out prompts, `curve_train` on the training prompts) and `eval_final.json`.
4. `results.json` (`results_<sweep>.json`): every run's curves and final metrics (per seed), means
   over seeds, the pooled answer counts, timings and provenance. The paired statistics
   (figures/llm_demo.py) and the figures (figures/llm.py) are computed from these files.

Runs go to `workers` processes with one torch thread each: a model this small gains nothing from
intra-op threads, and on a busy machine idle OpenMP threads spin for tens of times the work.
"""

from __future__ import annotations

import dataclasses
import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from labkit.config_loading import from_dict
from labkit.io import append_jsonl, provenance, read_jsonl, write_json, write_jsonl
from llm.demo_config import DemoConfig, results_file
from llm.tasks.multi_answer import (
    build_tokenizer,
    default_specs,
    prompt_rows,
    split_specs,
    valid_answers,
    warmup_examples,
)
from llm.tasks.scoring import evaluate_policy
from llm.tasks.warmup import supervised_warmup

VIEWS = ("heldout", "train")  # the headline first
RUNS_LOG = "runs.jsonl"


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


def evaluate_views(model, tokenizer, views: dict[str, list[dict]], config, n: int) -> dict:
    """evaluate_policy on each view's prompts: {"heldout": {...}, "train": {...}}."""
    return {
        name: evaluate_policy(model, tokenizer, recs, config, n) for name, recs in views.items()
    }


def read_views(out: Path) -> dict[str, list[dict]]:
    """The prompt records of each view: heldout.jsonl and prompts.jsonl (training)."""
    return {
        "heldout": read_jsonl(out / "heldout.jsonl"),
        "train": read_jsonl(out / "prompts.jsonl"),
    }


def prepare(config: DemoConfig, out: Path) -> tuple[Path, Path]:
    """Write prompts.jsonl, heldout.jsonl and the warm-up checkpoint (reused when it is already
    there with the same settings). Returns (training prompts file, warm-up directory)."""
    from llm.models import tiny_model, write_model_dir

    train_specs, heldout_specs = split_specs(default_specs())
    prompts = write_jsonl(out / "prompts.jsonl", prompt_rows(train_specs))
    write_jsonl(out / "heldout.jsonl", prompt_rows(heldout_specs))
    warm = out / "warmup"
    marker = warm / "warmup.json"
    settings = {
        "warmup": dataclasses.asdict(config.warmup),
        "correct_frac": config.warmup_correct_frac,
        "seed": config.model_seed,
        "eval_n": config.eval_n,
    }
    if marker.is_file() and read_json(marker).get("settings") == settings:
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
    write_model_dir(warm, model, tokenizer)
    check_tokenizer_round_trip(warm, tokenizer)
    run_cfg = config.trainer_config(
        next(iter(config.methods)), config.model_seed, out / "runs", warm, prompts
    )
    with one_thread():
        ev = evaluate_views(model, tokenizer, read_views(out), run_cfg, config.eval_n)
    write_json(
        warm / "eval.json",
        {**ev, "loss_first": losses[0], "loss_last": sum(losses[-20:]) / len(losses[-20:])},
    )
    write_json(marker, {"settings": settings, "timing": timing})
    return prompts, warm


def read_json(path: Path) -> Any:
    import json

    return json.loads(path.read_text())


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


def merged_counts(ev: dict[str, dict]) -> dict[str, dict[str, int]]:
    """spec key -> answer -> count over every view (views hold disjoint prompts)."""
    return {k: c for view in ev.values() for k, c in view["answer_counts"].items()}


def _run_one(job: dict[str, Any]) -> dict[str, Any]:
    from llm.models import load_model, load_tokenizer
    from llm.trainer import Trainer

    config = from_dict(DemoConfig, job["config"])
    out, warm, prompts = Path(job["out"]), Path(job["warmup"]), Path(job["prompts"])
    run_dir = out / "runs" / job["method"] / f"seed_{job['seed']}"
    if run_dir.exists():
        import shutil

        shutil.rmtree(run_dir)
    cfg = config.trainer_config(job["method"], job["seed"], run_dir, warm, prompts)
    views = read_views(out)
    tokenizer = load_tokenizer(str(warm))
    # step 0 is the warm-up policy, evaluated with the same n and sampling seed
    warm_eval = read_json(warm / "eval.json")
    curves: dict[str, list[dict[str, Any]]] = {
        v: [{"step": 0, **warm_eval[v]["metrics"]}] for v in VIEWS
    }
    final: dict[str, Any] = {}
    max_steps = cfg.trainer.max_steps

    def evaluate(trainer: Trainer, step: int) -> None:
        if step == max_steps or (config.eval_every and step % config.eval_every == 0):
            ev = evaluate_views(trainer.model, tokenizer, views, cfg, config.eval_n)
            for v in VIEWS:
                curves[v].append({"step": step, **ev[v]["metrics"]})
            final.clear()
            final.update(ev)

    t0, c0 = time.perf_counter(), time.process_time()
    model = load_model(str(warm), seed=job["seed"])
    trainer = Trainer(
        cfg,
        model=model,
        tokenizer=tokenizer,
        train_records=views["train"],
        eval_records=views["heldout"],
        on_step=evaluate,
    )
    trainer.train()
    t = cfg.trainer
    summary = {
        "method": job["method"],
        "seed": job["seed"],
        "dir": str(run_dir.relative_to(out)),
        "objective": cfg.algorithm.loss_mode,
        "divergence": cfg.algorithm.divergence,
        "kappa": float(cfg.algorithm.inverse_temperature),
        # optimizer steps per rollout: minibatches per epoch x epochs (the pi_old refresh period)
        "mu": cfg.algorithm.num_iterations
        * t.train_batch_size
        // (t.mini_batch_size or t.train_batch_size),
        "final": final["heldout"]["metrics"],
        "final_train": final["train"]["metrics"],
        # the curves' accuracy and diversity (all metrics are in the run's eval_curve.json)
        "curve": [_trim(c, config.eval_n) for c in curves["heldout"]],
        "curve_train": [_trim(c, config.eval_n) for c in curves["train"]],
        "timing": {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0},
    }
    counts = merged_counts(final)
    head = {"method": job["method"], "seed": job["seed"]}
    write_json(
        run_dir / "eval_curve.json",
        {**head, "curve": curves["heldout"], "curve_train": curves["train"]},
    )
    write_json(
        run_dir / "eval_final.json",
        {
            **head,
            "metrics": final["heldout"]["metrics"],
            "metrics_train": final["train"]["metrics"],
            "answer_counts": counts,
        },
    )
    write_json(run_dir / "demo_run.json", {k: summary[k] for k in ("method", "seed", "timing")})
    return {**summary, "answer_counts": counts}


def _trim(point: dict[str, Any], n: int) -> dict[str, Any]:
    keys = ("step", f"avg@{n}", f"pass@{n}", "distinct_correct/mean", "well_formed")
    return {k: point[k] for k in keys}


def summarize_runs(
    runs: list[dict[str, Any]], key: str = "final"
) -> dict[str, dict[str, dict[str, Any]]]:
    """method -> metric -> {"mean", "std", "values"} over seeds (population std) of run[key]."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for method in dict.fromkeys(r["method"] for r in runs):
        rows = [r[key] for r in runs if r["method"] == method]
        out[method] = {}
        for metric in rows[0]:
            vals = [float(r[metric]) for r in rows if r.get(metric) is not None]
            if not vals:
                continue
            mean = sum(vals) / len(vals)
            std = (sum((v - mean) ** 2 for v in vals) / len(vals)) ** 0.5
            out[method][metric] = {"mean": mean, "std": std, "values": vals}
    return out


def pooled_counts(runs: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, int]]]:
    """method -> spec key -> answer -> count, summed over seeds."""
    out: dict[str, dict[str, Counter]] = {}
    for r in runs:
        per = out.setdefault(r["method"], {})
        for key, counts in r["answer_counts"].items():
            per.setdefault(key, Counter()).update(counts)
    return {m: {k: dict(c) for k, c in per.items()} for m, per in out.items()}


def run_demo(
    config: DemoConfig, out: str | Path, log=print, sweep: str = "main", command: str | None = None
) -> dict[str, Any]:
    """Run every (method, seed) of `config` (for a sweep: `sweep_config(config, sweep)`, perhaps
    narrowed with `select`); write out/results.json (results_<sweep>.json) and return it. Each
    finished run is also appended to out/runs.jsonl as it ends."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    prov = provenance(command)  # at the start: the commit that ran, not the one at the end
    t0, c0 = time.perf_counter(), time.process_time()
    load_start = os.getloadavg()
    prompts, warm = prepare(config, out)
    warm_eval = read_json(warm / "eval.json")
    n = config.eval_n
    for v in VIEWS:
        m = warm_eval[v]["metrics"]
        log(
            f"warm-up policy, {v} prompts: avg@{n} {m[f'avg@{n}']:.3f}, distinct correct/prompt "
            f"{m['distinct_correct/mean']:.2f}, well-formed {m['well_formed']:.3f}"
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

    def done(summary: dict[str, Any]) -> None:
        runs.append(summary)
        append_jsonl(
            out / RUNS_LOG,
            {"sweep": sweep, **{k: v for k, v in summary.items() if k != "answer_counts"}},
        )
        log(_line(summary, n))

    if config.workers == 1:
        for job in jobs:
            done(run_one(job))
    else:
        import multiprocessing as mp

        with ProcessPoolExecutor(
            max_workers=config.workers, mp_context=mp.get_context("spawn")
        ) as pool:
            for summary in pool.map(run_one, jobs):
                done(summary)
    children = os.times()
    results = {
        "sweep": sweep,
        "provenance": prov,
        "config": config.to_dict(),
        "eval_n": n,
        "views": {v: [r["answer"] for r in recs] for v, recs in read_views(out).items()},
        "warmup": {
            "dir": "warmup",
            "timing": read_json(warm / "warmup.json")["timing"],  # trained once per directory
            "metrics": warm_eval["heldout"]["metrics"],
            "metrics_train": warm_eval["train"]["metrics"],
            "answer_counts": merged_counts({v: warm_eval[v] for v in VIEWS}),
        },
        "valid_answers": {s.key: valid_answers(s) for s in default_specs()},
        "prompts": {s.key: s.prompt for s in default_specs()},
        "runs": [{k: v for k, v in r.items() if k != "answer_counts"} for r in runs],
        "summary": summarize_runs(runs, "final"),
        "summary_train": summarize_runs(runs, "final_train"),
        "answer_counts": pooled_counts(runs),
        "timing": {
            "wall_s": time.perf_counter() - t0,
            # this process plus the worker processes it waited for
            "cpu_s": time.process_time() - c0 + children.children_user + children.children_system,
            "workers": config.workers,
            "torch_threads_per_run": 1,
            # the 1-minute load average before and after: how busy the machine was meanwhile
            "loadavg_start": load_start[0],
            "loadavg_end": os.getloadavg()[0],
        },
    }
    write_json(out / results_file(sweep), results)
    return results


def _line(run: dict[str, Any], n: int) -> str:
    f = run["final"]
    return (
        f"{run['method']:>12} seed {run['seed']}: held-out avg@{n} {f[f'avg@{n}']:.3f}  pass@{n} "
        f"{f[f'pass@{n}']:.3f}  distinct correct {f['distinct_correct/mean']:.2f}  "
        f"({run['timing']['wall_s']:.0f}s wall, {run['timing']['cpu_s']:.0f}s cpu)"
    )
