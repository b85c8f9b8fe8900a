"""Time and size of the explorer page for the default grid (targets: <= 60 s on 2 cores, <= 20 MB).

Runs what `lad bandit explore` runs (train the grid in --workers processes, then write the page),
timing the two phases, and writes JSON. `report_markdown()` renders the committed JSON.

    python bench/explorer_build.py [--workers 2] [--out bench/results/explorer_build.json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from bandit.config import expand_runs
from bandit.explore import ExploreGrid, run_grid
from figures import explorer
from labkit.io import provenance, write_json

RESULT = Path(__file__).parent / "results" / "explorer_build.json"
# issue 12's goals for the default grid on 2 cores
TARGETS = {"total_seconds": 60.0, "page_mb": 20.0}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", default=str(RESULT))
    args = p.parse_args()
    grid = ExploreGrid()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        run_grid(grid, tmp, workers=args.workers)
        t1 = time.perf_counter()
        page = explorer.write_page(tmp, Path(tmp) / "explorer.html")
        t2 = time.perf_counter()
        size = page.stat().st_size
    runs = sum(len(expand_runs(c)) for c in grid.configs().values())
    result = {
        "benchmark": "explorer_build",
        "grid": grid.to_dict(),
        "runs": runs,
        "train_seconds": t1 - t0,
        "page_seconds": t2 - t1,
        "total_seconds": t2 - t0,
        "page_mb": size / 1e6,
        "workers": args.workers,
        "targets": TARGETS,
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "provenance": provenance(),
    }
    print(
        f"{runs} runs: train {t1 - t0:.1f} s, page {t2 - t1:.1f} s, {size / 1e6:.1f} MB "
        f"(load average {load_before[0]:.1f} before)"
    )
    write_json(Path(args.out), result)
    print(f"wrote {args.out}")


def report_markdown(path: Path = RESULT) -> str:
    res = json.loads(Path(path).read_text())
    return (
        f"`{res['provenance']['command']}`: {res['runs']} runs of {res['grid']['steps']} steps "
        f"trained in {res['train_seconds']:.0f} s, page written in {res['page_seconds']:.0f} s "
        f"({res['total_seconds']:.0f} s in all, {res['workers']} workers, load average "
        f"{res['loadavg_before'][0]:.1f} before), page {res['page_mb']:.1f} MB. "
        + _verdict(res)
        + "\n"
    )


def _verdict(res: dict) -> str:
    t = res.get("targets", TARGETS)
    met = res["total_seconds"] <= t["total_seconds"] and res["page_mb"] <= t["page_mb"]
    return f"Target ≤ {t['total_seconds']:.0f} s and ≤ {t['page_mb']:.0f} MB on 2 cores: " + (
        "met." if met else "NOT met."
    )


if __name__ == "__main__":
    main()
