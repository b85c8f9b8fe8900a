"""Result files of a bandit run, and the final-metrics table that `run`, `sweep` and `compare` print.

A results directory holds (each file written with labkit.io.atomic_write: never torn, fsynced):
- metrics.csv: one row per run x logged step: run, objective, divergence, eta, lr, seed, step and
  the metrics of bandit/metrics.py;
- policies.csv: one row per run x saved step x arm: ..., step, arm, prob;
- config.json: the full BanditConfig, the landscape (rewards, modes), the run table, the seeds,
  library versions, wall time and the command line.
Figures read these files and never retrain.
"""

from __future__ import annotations

import csv
import io
import json
import platform
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bandit.config import BanditConfig
from bandit.landscapes import Landscape
from bandit.metrics import METRICS
from bandit.trainer import BanditResult
from labkit.config_loading import from_dict
from labkit.io import atomic_write, check_output_dir, read_table

RUN_COLUMNS = ("run", "objective", "divergence", "eta", "lr", "seed", "refresh", "epsilon_high")
FILES = ("metrics.csv", "policies.csv", "config.json")


def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__}
    try:
        out["labkit"] = metadata.version("labkit")
    except metadata.PackageNotFoundError:
        out["labkit"] = "not installed"
    return out


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def save(result: BanditResult, out_dir: str | Path, command: list[str] | None = None) -> Path:
    """Write the three result files into out_dir (created if needed) and return it."""
    out = check_output_dir(out_dir, "out")
    run_cells = [
        [
            str(i),
            r.objective,
            r.divergence,
            _fmt(r.eta),
            _fmt(r.lr),
            str(r.seed),
            str(r.refresh),
            "" if r.epsilon_high is None else _fmt(r.epsilon_high),
        ]
        for i, r in enumerate(result.runs)
    ]

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([*RUN_COLUMNS, "step", *METRICS])
    for li, step in enumerate(result.log_steps):
        for ri, cells in enumerate(run_cells):
            w.writerow([*cells, str(step), *(_fmt(v) for v in result.metrics[li, ri])])
    metrics_text = buf.getvalue()

    # the largest file (runs x steps x arms rows): lines joined directly, the same text csv.writer
    # writes for these cells (none needs quoting), several times faster
    lines = [",".join([*RUN_COLUMNS, "step", "arm", "prob"])]
    prefixes = [",".join(cells) for cells in run_cells]
    for si, step in enumerate(result.snapshot_steps):
        for ri, prefix in enumerate(prefixes):
            lines.extend(
                f"{prefix},{step},{arm},{p:.6g}"
                for arm, p in enumerate(result.policies[si, ri].tolist())
            )
    policies_text = "\n".join(lines) + "\n"

    meta = {
        "kind": "bandit",
        "config": result.config.to_dict(),
        "landscape": result.landscape.to_dict(),
        "runs": [_run_dict(i, r) for i, r in enumerate(result.runs)],
        "seeds": list(result.config.seeds),
        "log_steps": [int(s) for s in result.log_steps],
        "snapshot_steps": list(result.snapshot_steps),
        "seconds": round(result.seconds, 3),
        "versions": versions(),
        "command": command if command is not None else sys.argv,
    }
    atomic_write(out / "metrics.csv", metrics_text)
    atomic_write(out / "policies.csv", policies_text)
    # config.json last: its presence marks a complete results directory
    atomic_write(out / "config.json", json.dumps(meta, indent=1) + "\n")
    return out


def _run_dict(i: int, r: Any) -> dict[str, Any]:
    values = [i, r.objective, r.divergence, r.eta, r.lr, r.seed, r.refresh, r.epsilon_high]
    return dict(zip(RUN_COLUMNS, values, strict=True))


@dataclass
class Results:
    """A results directory read back: the same arrays as BanditResult."""

    path: Path
    config: BanditConfig
    landscape: Landscape
    runs: list[dict[str, Any]]
    log_steps: np.ndarray
    metrics: np.ndarray  # (L, R, len(METRICS))
    snapshot_steps: tuple[int, ...]
    policies: np.ndarray  # (S, R, K)


def load(path: str | Path) -> Results:
    """Read a results directory written by `save`. Raises ValueError when it is not one."""
    path = Path(path)
    meta_path = path / "config.json"
    if not meta_path.is_file():
        raise ValueError(f"{str(path)!r} is not a bandit results directory (no config.json)")
    meta = json.loads(meta_path.read_text())
    if meta.get("kind") != "bandit":
        raise ValueError(
            f"{str(path)!r} holds {meta.get('kind')!r} results, expected bandit results"
        )
    land = meta["landscape"]
    landscape = Landscape(
        land["name"], tuple(land["rewards"]), tuple(tuple(m) for m in land["modes"])
    )
    config = from_dict(BanditConfig, meta["config"])
    runs = meta["runs"]
    log_steps = np.asarray(meta["log_steps"])
    snaps = tuple(meta["snapshot_steps"])
    n_runs, k = len(runs), landscape.n_arms
    metrics = np.full((len(log_steps), n_runs, len(METRICS)), np.nan)
    m = read_table(path / "metrics.csv", columns=("step", "run", *METRICS))
    metrics[np.searchsorted(log_steps, m["step"]), m["run"].astype(int)] = np.stack(
        [m[name] for name in METRICS], axis=-1
    )
    policies = np.full((len(snaps), n_runs, k), np.nan)
    p = read_table(path / "policies.csv", columns=("step", "run", "arm", "prob"))
    snap = np.searchsorted(np.asarray(snaps), p["step"])
    policies[snap, p["run"].astype(int), p["arm"].astype(int)] = p["prob"]
    return Results(path, config, landscape, runs, log_steps, metrics, snaps, policies)


def final_rows(res: Results | BanditResult) -> list[dict[str, Any]]:
    """One row per run: its descriptors, the final logged metrics, and tv_theory, the TV between
    a practical `lad` run's final policy and the `lad_theory` run with the same divergence, eta,
    lr and seed (NaN when the sweep has no such pair or the last step's policy was not saved)."""
    runs = (
        # files written before the refresh and clip axes existed
        [{"refresh": res.config.refresh_every, "epsilon_high": None, **r} for r in res.runs]
        if isinstance(res, Results)
        else [_run_dict(i, r) for i, r in enumerate(res.runs)]
    )
    last_step = int(res.log_steps[-1])
    final_policy = (
        res.policies[res.snapshot_steps.index(last_step)]
        if last_step in res.snapshot_steps
        else None
    )
    key = {
        (r["objective"], r["divergence"], r["eta"], r["lr"], r["seed"], r["refresh"]): r["run"]
        for r in runs
    }
    rows = []
    for r in runs:
        row = {c: r[c] for c in RUN_COLUMNS}
        row.update({m: float(v) for m, v in zip(METRICS, res.metrics[-1, r["run"]], strict=True)})
        twin = (
            key.get(("lad_theory", r["divergence"], r["eta"], r["lr"], r["seed"], r["refresh"]))
            if r["objective"] == "lad"
            else None
        )
        row["tv_theory"] = (
            0.5 * float(np.abs(final_policy[r["run"]] - final_policy[twin]).sum())
            if twin is not None and final_policy is not None
            else float("nan")
        )
        rows.append(row)
    return rows


SUMMARY_METRICS = (
    "tv",
    "kl",
    "tv_pi",
    "tv_theory",
    "modes_covered",
    "max_arm",
    "entropy",
    "expected_reward",
)


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Group final rows by (objective, divergence, eta, lr, refresh, epsilon_high): n seeds, and
    mean/min/max of each summary metric over seeds (NaN-free means; NaN when a metric is
    missing for the group)."""
    keys = ("objective", "divergence", "eta", "lr", "refresh", "epsilon_high")
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(tuple(r.get(k) for k in keys), []).append(r)
    out = []
    for group, members in groups.items():
        s: dict[str, Any] = {**dict(zip(keys, group, strict=True)), "n": len(members)}
        for m in SUMMARY_METRICS:
            vals = np.asarray([x[m] for x in members], dtype=float)
            ok = vals[~np.isnan(vals)]
            s[m] = float(ok.mean()) if ok.size else float("nan")
            s[m + "_min"] = float(ok.min()) if ok.size else float("nan")
            s[m + "_max"] = float(ok.max()) if ok.size else float("nan")
        s["modes_target"] = float(np.mean([x["modes_target"] for x in members]))
        out.append(s)
    return out


def refreshed(config: BanditConfig) -> bool:
    """Whether pi differs from pi_old at the start of a step (then TV(pi, P_A) is shown too)."""
    return config.refresh_every > 0 or config.init != "uniform"


def compare(dirs: list[str], sort: str | None = None) -> tuple[list[dict], list[str], bool]:
    """Summary rows of several results directories: (rows, the directory of each row, whether
    any of them refreshed pi_old); rows sorted by the metric `sort` when given."""
    if sort is not None and sort not in SUMMARY_METRICS:
        raise ValueError(f"sort={sort!r} is not valid; expected one of {list(SUMMARY_METRICS)}")
    rows, source, any_refreshed = [], [], False
    for d in dirs:
        res = load(d)
        any_refreshed |= refreshed(res.config)
        for r in summarise(final_rows(res)):
            rows.append(r)
            source.append("/".join(Path(d).resolve().parts[-2:]))  # short label
    if sort is not None:
        order = sorted(range(len(rows)), key=lambda i: rows[i][sort])
        rows, source = [rows[i] for i in order], [source[i] for i in order]
    return rows, source, any_refreshed


@dataclass
class CompareRun:
    """How `lad bandit compare` orders its rows and whether it writes them to a CSV file."""

    sort: str | None = field(
        default=None, metadata={"help": "sort rows by a summary metric, e.g. tv"}
    )
    csv_out: str | None = field(
        default=None,
        metadata={"help": "also write the table to this CSV file", "flags": ("--csv",)},
    )


def compare_table(dirs: list[str], run: CompareRun) -> Any:
    """`lad bandit compare`: the rich Table of compare(dirs); writes run.csv_out when given."""
    rows, source, any_refreshed = compare(dirs, run.sort)
    if run.csv_out:
        atomic_write(run.csv_out, summary_csv(rows, source))
    title = f"of {len(dirs)} result director{'y' if len(dirs) == 1 else 'ies'}"
    return summary_table(rows, title, any_refreshed, source)


def summary_csv(rows: list[dict], source: list[str]) -> str:
    """The compared rows as CSV text (a `results` column, then every summary field)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["results", *rows[0].keys()], lineterminator="\n")
    writer.writeheader()
    for s, r in zip(source, rows, strict=True):
        writer.writerow({"results": s, **r})
    return buf.getvalue()


def summary_table(
    rows: list[dict], title: str, refreshed: bool = False, source: list[str] | None = None
) -> Any:
    """A rich Table of final metrics per (objective, divergence, eta, lr): the mean over seeds,
    with (min-max) when the seeds differ at the shown precision."""
    import math

    from rich.table import Table

    def cell(r: dict, m: str, fmt: str) -> str:
        mean, lo, hi = r[m], r[m + "_min"], r[m + "_max"]
        if math.isnan(mean):
            return "-"
        if format(lo, fmt) == format(hi, fmt):
            return format(mean, fmt)
        return f"{format(mean, fmt)} ({format(lo, fmt)}-{format(hi, fmt)})"

    metrics = [("tv", "TV(P_pi,P_A)", ".3f")]
    metrics += [("tv_pi", "TV(pi,P_A)", ".3f")] if refreshed else []
    metrics += [
        ("modes_covered", "modes covered", ".0f"),
        ("max_arm", "max arm", ".3f"),
        ("entropy", "entropy", ".2f"),
        ("expected_reward", "expected reward", ".3f"),
        ("tv_theory", "TV to theory", ".3f"),
    ]
    table = Table(title=f"final metrics {title}", title_justify="left")
    for h in [*(["results"] if source else []), "objective", "div"]:
        table.add_column(h, justify="left")
    for h in ["eta", "lr", "seeds", *(head for _, head, _ in metrics)]:
        table.add_column(h, justify="right")
    for i, r in enumerate(rows):
        cells = [*([source[i]] if source else []), r["objective"], r["divergence"] or "-"]
        cells += [f"{r['eta']:g}", f"{r['lr']:g}", str(r["n"])]
        for m, _, fmt in metrics:
            extra = f"/{r['modes_target']:.0f}" if m == "modes_covered" else ""
            cells.append(cell(r, m, fmt) + extra)
        table.add_row(*cells)
    return table
