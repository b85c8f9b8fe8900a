"""`lad llm demo`: LAD vs GRPO on a language model, on a CPU, in minutes.

The question (method.md sections 1 and 8): on prompts with many correct answers, does LAD keep
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

import copy
import dataclasses
import json
import os
import platform
import random
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from llm.tasks.multi_answer import (
    Spec,
    build_tokenizer,
    default_specs,
    parse_answer,
    prompt_rows,
    valid_answers,
    warmup_examples,
)
from llm.tasks.warmup import WarmupConfig, supervised_warmup

REWARD_SPEC = "llm.tasks.multi_answer:multi_answer_reward"
DEFAULT_METHODS = {
    "grpo": ["algorithm.loss_mode=grpo", "algorithm.epsilon=0.2", "algorithm.epsilon_high=0.28"],
    "lad_js": ["algorithm.loss_mode=lad", "algorithm.divergence=js", "algorithm.kappa=4"],
    "lad_kl": ["algorithm.loss_mode=lad", "algorithm.divergence=kl", "algorithm.kappa=4"],
}
# paper grid {0.5, ..., 16}; whether it is eta or kappa is open (method.md section 2): here kappa
KAPPA_GRID = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
DIVERGENCE_GRID = ("kl", "rkl", "jeffreys", "tv", "hellinger", "js")
SWEEPS = ("main", "eta", "divergence")
DEFAULT_TRAIN = [
    "trainer.max_steps=60",
    "trainer.train_batch_size=16",
    "trainer.mini_batch_size=4",
    "trainer.learning_rate=0.001",
    "trainer.max_grad_norm=1.0",
    "rollout.num_generations=8",
    "rollout.max_completion_length=4",
    "rollout.temperature=1.0",
    "algorithm.num_iterations=2",
]


@dataclass
class DemoConfig:
    """Everything `lad llm demo` runs; configs/llm/demo.yaml spells out these defaults."""

    seeds: list[int] = field(
        default_factory=lambda: [0, 1, 2],
        metadata={"help": "RL seeds, one run per method and seed"},
    )
    methods: dict[str, list[str]] = field(
        default_factory=lambda: copy.deepcopy(DEFAULT_METHODS),
        metadata={"help": "method name -> trainer overrides (section.field=value) for that method"},
    )
    train: list[str] = field(
        default_factory=lambda: list(DEFAULT_TRAIN),
        metadata={"help": "trainer overrides shared by every method (same budget for all)"},
    )
    warmup: WarmupConfig = field(
        default_factory=lambda: WarmupConfig(steps=600), metadata={"help": "supervised warm-up"}
    )
    warmup_correct_frac: float = field(
        default=0.5,
        metadata={
            "help": "share of warm-up samples that are correct (the rest: random well-formed)"
        },
    )
    model_seed: int = field(
        default=0, metadata={"help": "seed of the model init and the warm-up data"}
    )
    eval_n: int = field(
        default=32,
        metadata={
            "help": "samples per prompt of every evaluation (warm-up, during training, final)"
        },
    )
    eval_every: int = field(
        default=20, metadata={"help": "evaluate during training every N steps (0 = final only)"}
    )
    workers: int = field(
        default=2, metadata={"help": "runs in parallel (processes, one torch thread each)"}
    )

    def __post_init__(self) -> None:
        if not self.seeds:
            raise ValueError("seeds must hold at least one seed, got []")
        if not self.methods:
            raise ValueError("methods must hold at least one method, got {}")
        if not 0 <= self.warmup_correct_frac <= 1:
            raise ValueError(
                f"warmup_correct_frac must be in [0, 1], got {self.warmup_correct_frac}"
            )
        for name in ("eval_n", "workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.eval_every < 0:
            raise ValueError(f"eval_every must be >= 0, got {self.eval_every}")
        self.trainer_config("check", 0, Path("runs/check"), Path("warmup"), Path("prompts.jsonl"))

    def trainer_config(self, method: str, seed: int, out: Path, warmup_dir: Path, prompts: Path):
        """The validated llm.config.TrainConfig of one run (demo settings win over the method's)."""
        from llm.config import load_config

        if method not in self.methods and method != "check":
            raise ValueError(
                f"method={method!r} is not valid; expected one of {sorted(self.methods)}"
            )
        pinned = [
            f"model.path={warmup_dir}",
            f"data.dataset={prompts}",
            f"data.eval_dataset={prompts}",
            f"data.reward_funcs=[{REWARD_SPEC}]",
            f"trainer.seed={seed}",
            f"trainer.output_dir={out}",
            f"trainer.save_steps={self.eval_every}",
            "trainer.progress_bar=false",
            "trainer.device=cpu",
            "eval.max_prompts=null",
        ]
        return load_config(None, [*self.train, *self.methods.get(method, []), *pinned])

    @classmethod
    def from_yaml(cls, path: str | Path) -> DemoConfig:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"demo config {str(path)!r} does not exist")
        data = yaml.safe_load(path.read_text()) or {}
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(
                f"unknown demo config keys {unknown} in {path}; expected some of {sorted(names)}"
            )
        if "warmup" in data:
            data["warmup"] = WarmupConfig(**data["warmup"])
        return cls(**data)

    def quick(self) -> DemoConfig:
        """The CI variant: one seed, a few steps, small evaluations (well under a minute)."""
        return dataclasses.replace(
            self,
            seeds=self.seeds[:1],
            train=[
                *self.train,
                "trainer.max_steps=4",
                "trainer.train_batch_size=8",
                "trainer.mini_batch_size=8",
            ],
            warmup=dataclasses.replace(self.warmup, steps=40),
            eval_n=8,
            eval_every=2,
            workers=1,
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def sweep_config(config: DemoConfig, sweep: str) -> DemoConfig:
    """The config of a sweep: main (config.methods), eta (LAD-JS at every kappa of KAPPA_GRID) or
    divergence (GRPO and LAD with every divergence of DIVERGENCE_GRID at kappa 4). Method names
    are run directory names, so sweeps can share an output directory with the main comparison."""
    if sweep == "main":
        return config
    lad = ["algorithm.loss_mode=lad"]
    if sweep == "eta":
        methods = {
            f"lad_js_kappa{k:g}": [*lad, "algorithm.divergence=js", f"algorithm.kappa={k}"]
            for k in KAPPA_GRID
        }
    elif sweep == "divergence":
        methods = {"grpo": list(DEFAULT_METHODS["grpo"])}
        methods |= {
            f"lad_{d}": [*lad, f"algorithm.divergence={d}", "algorithm.kappa=4"]
            for d in DIVERGENCE_GRID
        }
    else:
        raise ValueError(f"sweep={sweep!r} is not valid; expected one of {list(SWEEPS)}")
    return dataclasses.replace(config, methods=methods)


def results_file(sweep: str) -> str:
    """results.json for the main comparison, results_<sweep>.json for a sweep."""
    return "results.json" if sweep == "main" else f"results_{sweep}.json"


# --- scoring ------------------------------------------------------------------------------------


def score_samples(
    samples: list[dict[str, Any]], tokenizer: Any, ks: list[int] | None = None
) -> dict[str, Any]:
    """Metrics of an evaluation's samples with the task's own answer parser.

    `llm.evaluate` extracts "the last number" as the final answer, which reads "3+9" as "9"; here
    an answer is the whole canonical completion, so distinct correct answers count "3+9" and
    "4+8" apart. distinct-n is over the model's tokens. Adds `well_formed`,
    `distinct_correct/coverage` (mean over prompts of distinct correct / number of valid answers)
    and `correct_entropy` (mean over prompts of the entropy, in nats, of the empirical
    distribution of its correct answers).
    Returns {"metrics": {...}, "answer_counts": {spec key: {answer or "<malformed>": count}}}.
    """
    from llm.metrics import summarize

    correct, answers, texts, counts = [], [], [], {}
    coverage, entropy, well_formed, total = [], [], 0, 0
    for row in samples:
        spec = Spec.parse(row["answer"])
        parsed = [parse_answer(spec, c) for c in row["completions"]]
        correct.append([bool(x) for x in row["correct"]])
        answers.append(parsed)
        texts.append([" ".join(tokenizer.tokenize(c)) for c in row["completions"]])
        counts[spec.key] = dict(Counter(a if a is not None else "<malformed>" for a in parsed))
        good = Counter(a for a, ok in zip(parsed, correct[-1], strict=True) if ok and a is not None)
        coverage.append(len(good) / len(valid_answers(spec)))
        n_good = sum(good.values())
        entropy.append(
            -sum(c / n_good * torch.log(torch.tensor(c / n_good)).item() for c in good.values())
            if n_good
            else 0.0
        )
        well_formed += sum(a is not None for a in parsed)
        total += len(parsed)
    metrics = summarize(correct, answers, texts, ks)
    metrics["well_formed"] = well_formed / total
    metrics["distinct_correct/coverage"] = sum(coverage) / len(coverage)
    metrics["correct_entropy"] = sum(entropy) / len(entropy)
    return {"metrics": metrics, "answer_counts": counts}


def evaluate_policy(model, tokenizer, records: list[dict], config, n: int) -> dict[str, Any]:
    """Sample n completions per record with llm.evaluate (seeded by config.eval.seed); score them."""
    from llm.evaluate import evaluate_model

    cfg = copy.deepcopy(config)
    cfg.eval.n, cfg.eval.ks, cfg.eval.max_prompts = n, None, None
    cfg.eval.batch_prompts = len(records)
    result = evaluate_model(model, tokenizer, records, cfg)
    scored = score_samples(result["samples"], tokenizer)
    scored["metrics"]["completions/mean_length"] = result["metrics"]["completions/mean_length"]
    return scored


# --- the pipeline ---------------------------------------------------------------------------------


def _write_json(path: Path, data: Any) -> None:
    from llm.logging import write_json_atomic

    write_json_atomic(path, data)


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
    losses = supervised_warmup(model, tokenizer, pairs, config.warmup, seed=config.model_seed)
    timing = {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0}
    _save_model_dir(warm, model, tokenizer)
    check_tokenizer_round_trip(warm, tokenizer)
    records = [json.loads(line) for line in prompts.read_text().splitlines()]
    run_cfg = config.trainer_config(
        next(iter(config.methods)), config.model_seed, out / "runs", warm, prompts
    )
    ev = evaluate_policy(model, tokenizer, records, run_cfg, config.eval_n)
    _write_json(
        warm / "eval.json",
        {**ev, "loss_first": losses[0], "loss_last": sum(losses[-20:]) / len(losses[-20:])},
    )
    _write_json(marker, {"settings": settings, "timing": timing})
    return prompts, warm


def run_one(job: dict[str, Any]) -> dict[str, Any]:
    """Train and evaluate one (method, seed); runs in a worker process. Returns its summary."""
    from llm.models import load_model, load_tokenizer
    from llm.trainer import Trainer

    torch.set_num_threads(job["threads"])
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
            "threads": 1,
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
