"""`lad llm eval` / `lad llm train` evaluations, drawn from the eval_<label>.json files of a run
directory (written by llm/evaluate.py; this module never imports llm/).

`figure_evals`: pass@k against k (avg@n dashed) and distinct-1..4, one colour per evaluation.
`draw_evals`: that figure saved as <run>/eval.png, or nothing when the run has no evaluation.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from figures import style


def read_evals(run_dir: str | Path) -> dict[str, dict[str, Any]]:
    """label -> metrics of every eval_<label>.json in run_dir, oldest first."""
    paths = sorted(Path(run_dir).glob("eval_*.json"), key=lambda p: p.stat().st_mtime)
    return {p.stem.removeprefix("eval_"): json.loads(p.read_text())["metrics"] for p in paths}


def figure_evals(evals: dict[str, dict[str, Any]]) -> Figure:
    """evals: label -> metrics ({"pass@k": ..., "avg@n": ..., "distinct-j": ...})."""
    fig = Figure(figsize=(9, 3.4))
    ax_k, ax_d = fig.subplots(1, 2)
    width = 0.8 / max(len(evals), 1)
    all_ks: set[int] = set()
    for i, (label, m) in enumerate(evals.items()):
        ks = sorted(int(k.split("@")[1]) for k in m if k.startswith("pass@"))
        all_ks |= set(ks)
        line = ax_k.plot(ks, [m[f"pass@{k}"] for k in ks], marker="o", label=label)[0]
        avg = next((v for k, v in m.items() if k.startswith("avg@")), None)
        if avg is not None:
            ax_k.axhline(avg, color=line.get_color(), linestyle="--", linewidth=1)
        dn = [m.get(f"distinct-{j}") or 0.0 for j in range(1, 5)]
        ax_d.bar([j + i * width for j in range(1, 5)], dn, width=width, color=line.get_color())
    ax_k.set_xscale("log", base=2)
    ks = sorted(all_ks)
    ax_k.set_xticks(ks, [str(k) for k in ks])
    ax_k.set_xlabel("k")
    ax_k.set_ylabel("pass@k (dashed: avg@n)")
    ax_k.set_ylim(0, 1.02)
    ax_k.legend(frameon=False)
    ax_d.set_xticks(
        [j + width * (len(evals) - 1) / 2 for j in range(1, 5)],
        [f"distinct-{j}" for j in range(1, 5)],
    )
    ax_d.set_ylim(0, 1.02)
    fig.tight_layout()
    return fig


def draw_evals(run_dir: str | Path, command: str | None = None) -> list[Path]:
    """<run_dir>/eval.png from its evaluations; [] when it has none."""
    evals = read_evals(run_dir)
    if not evals:
        return []
    return style.save(figure_evals(evals), Path(run_dir) / "eval", command, formats=("png",))
