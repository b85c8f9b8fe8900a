"""Read LLM run logs back for figures: run directories, a demo's results.json, and the
statistics the LLM figures draw (pure numpy; no llm/ import, files only).

A run directory is what `lad llm train` or `lad llm demo` writes: `config.json` (the trainer's
config), `metrics.jsonl` (one row per step), and, when evaluated, `eval_curve.json` /
`eval_final.json` (the demo) or `eval_after.json` (`lad llm train` with eval.after_train).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from labkit.io import read_jsonl

DEMO_ROOT = Path("results/llm_demo")


@dataclass
class RunLog:
    """One training run read back from its directory."""

    path: Path
    method: str
    objective: str
    divergence: str
    eta: float
    seed: int
    steps: list[dict[str, Any]]
    curve: list[dict[str, Any]] = field(default_factory=list)
    final: dict[str, Any] = field(default_factory=dict)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def load_run(path: str | Path) -> RunLog:
    """Read a run directory (config.json + metrics.jsonl; eval files when present)."""
    path = Path(path)
    cfg = read_json(path / "config.json")
    if cfg is None or not (path / "metrics.jsonl").is_file():
        raise FileNotFoundError(
            f"{str(path)!r} is not a run directory (config.json and metrics.jsonl)"
        )
    cfg = cfg.get("config", cfg)
    algo = cfg["algorithm"]
    eta = algo.get("eta") or (1.0 / algo["kappa"] if algo.get("kappa") else 1.0)
    objective = algo["loss_mode"]
    divergence = algo.get("divergence", "") if objective == "lad" else ""
    demo = read_json(path / "demo_run.json") or {}
    method = demo.get("method") or (f"lad_{divergence}" if objective == "lad" else objective)
    steps = read_jsonl(path / "metrics.jsonl")  # a live run's torn last line: dropped, warned
    curve = (read_json(path / "eval_curve.json") or {}).get("curve", [])
    final = (read_json(path / "eval_final.json") or read_json(path / "eval_after.json") or {}).get(
        "metrics", {}
    )
    return RunLog(
        path,
        method,
        objective,
        divergence,
        float(eta),
        int(cfg["trainer"]["seed"]),
        steps,
        curve,
        final,
    )


def find_runs(paths: Iterable[str | Path]) -> list[RunLog]:
    """Every run directory given, or found below the given directories, sorted by path."""
    found: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise FileNotFoundError(f"run directory {str(p)!r} does not exist")
        found += (
            [p] if (p / "metrics.jsonl").is_file() else [m.parent for m in p.rglob("metrics.jsonl")]
        )
    if not found:
        raise FileNotFoundError(f"no run logs (metrics.jsonl) under {[str(p) for p in paths]}")
    return [load_run(p) for p in sorted(set(found))]


def by_method(runs: Sequence[RunLog]) -> dict[str, list[RunLog]]:
    """method -> its runs (seeds), in order of first appearance."""
    out: dict[str, list[RunLog]] = {}
    for r in runs:
        out.setdefault(r.method, []).append(r)
    return out


def n_of(metrics: dict[str, Any]) -> int:
    """The n of the avg@n key of an evaluation."""
    keys = [k for k in metrics if k.startswith("avg@")]
    if not keys:
        raise ValueError(f"evaluation metrics have no avg@n key: {sorted(metrics)[:8]}")
    return int(keys[0].split("@")[1])


def step_matrix(runs: Sequence[RunLog], key: str, smooth: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(steps,), (n_seeds, n_steps) of a metrics.jsonl key; seeds cut to the shortest run.

    smooth: trailing moving-average window (1 = none)."""
    n = min(len(r.steps) for r in runs)
    steps = np.asarray([row["step"] for row in runs[0].steps[:n]], dtype=float)
    vals = np.asarray(
        [[np.nan if row.get(key) is None else row[key] for row in r.steps[:n]] for r in runs],
        dtype=float,
    )
    if smooth > 1:
        kernel = np.ones(smooth)
        num = np.apply_along_axis(lambda v: np.convolve(np.nan_to_num(v), kernel)[:n], 1, vals)
        den = np.apply_along_axis(lambda v: np.convolve(~np.isnan(v), kernel)[:n], 1, vals)
        vals = num / np.maximum(den, 1)
    return steps, vals


def curve_matrix(runs: Sequence[RunLog], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(eval steps,), (n_seeds, n_evals) of an eval_curve key at the steps every seed has."""
    common = sorted(set.intersection(*({c["step"] for c in r.curve} for r in runs)))
    vals = np.asarray(
        [[next(c[key] for c in r.curve if c["step"] == s) for s in common] for r in runs],
        dtype=float,
    )
    return np.asarray(common, dtype=float), vals


def final_values(runs: Sequence[RunLog], key: str) -> np.ndarray:
    """(n_seeds,) a final-evaluation metric; runs without it are left out."""
    return np.asarray([r.final[key] for r in runs if r.final.get(key) is not None], dtype=float)


def value_at_accuracy(acc: Sequence[float], val: Sequence[float], level: float) -> float:
    """`val` where `acc` (an eval curve's accuracy) first reaches `level`, linearly interpolated
    between the two evaluations around the crossing; NaN if it never does."""
    for i in range(1, len(acc)):
        if acc[i - 1] <= level <= acc[i] and acc[i] > acc[i - 1]:
            t = (level - acc[i - 1]) / (acc[i] - acc[i - 1])
            return float(val[i - 1] + t * (val[i] - val[i - 1]))
    return float(val[0]) if acc[0] == level else float("nan")


def diversity_at_accuracy(run: RunLog, level: float, key: str = "distinct_correct/mean") -> float:
    """`key` of the run's eval curve where its accuracy (avg@n) first reaches `level`
    (`value_at_accuracy`); NaN if it never does."""
    n = n_of(run.curve[0])
    return value_at_accuracy([c[f"avg@{n}"] for c in run.curve], [c[key] for c in run.curve], level)


def matched_accuracy(groups: dict[str, list[RunLog]]) -> float:
    """The highest accuracy every run of every method reaches: where methods are compared."""
    n = n_of(next(iter(groups.values()))[0].curve[0])
    return float(min(max(c[f"avg@{n}"] for c in r.curve) for runs in groups.values() for r in runs))


def time_per_token(run: RunLog, part: str = "step") -> np.ndarray:
    """Seconds per completion token of every step: part = step, rollout or update."""
    if part == "step":
        return np.asarray([r["timing/step_s"] / max(r["tokens/completion"], 1) for r in run.steps])
    return np.asarray([r[f"timing/{part}_per_token"] for r in run.steps])


def load_demo(root: str | Path = DEMO_ROOT) -> tuple[dict[str, Any], dict[str, list[RunLog]]]:
    """results.json of a demo and its runs grouped by method (the methods results.json lists)."""
    root = Path(root)
    results = read_json(root / "results.json")
    if results is None:
        raise FileNotFoundError(
            f"{str(root / 'results.json')!r} does not exist; run `lad llm demo --out {root}` first"
        )
    runs = [load_run(root / r["dir"]) for r in results["runs"]]
    return results, by_method(runs)


def lad_runs(runs: Sequence[RunLog]) -> list[RunLog]:
    """Evaluated LAD runs, one per (divergence, eta, seed): a demo and a sweep in one directory
    both hold the default setting, and the same config and seed is the same run."""
    out: dict[tuple[str, float, int], RunLog] = {}
    for r in runs:
        if r.objective == "lad" and r.final:
            out.setdefault((r.divergence, round(r.eta, 9), r.seed), r)
    return list(out.values())


def grpo_runs(runs: Sequence[RunLog]) -> list[RunLog]:
    out: dict[int, RunLog] = {}
    for r in runs:
        if r.objective == "grpo" and r.final:
            out.setdefault(r.seed, r)
    return list(out.values())


def sweep_divergences(runs: Sequence[RunLog]) -> list[str]:
    """Divergences evaluated at two or more values of eta (the lines of the eta figure)."""
    lad = lad_runs(runs)
    divs = dict.fromkeys(r.divergence for r in lad)
    return [d for d in divs if len({r.eta for r in lad if r.divergence == d}) >= 2]


def common_eta(runs: Sequence[RunLog]) -> float | None:
    """The eta at which the most divergences were evaluated (the divergence figure's setting)."""
    lad = lad_runs(runs)
    if not lad:
        return None
    etas = {round(r.eta, 9) for r in lad}
    return max(sorted(etas), key=lambda e: len({r.divergence for r in lad if round(r.eta, 9) == e}))
