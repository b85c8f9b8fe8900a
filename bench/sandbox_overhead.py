"""What the bubblewrap sandbox costs a code reward: per-program latency and batch throughput.

Latency: one program with two assert tests, run (a) in this process with `exec` (no isolation at
all), (b) in a plain child process with the harness (`sandbox="unsafe-subprocess"`), (c) under
bwrap (`sandbox="bwrap"`); the three are interleaved in a seeded random order in every repeat, so
machine noise hits them alike. The overhead of bwrap is the paired difference (c) - (b) per repeat.
Throughput: a batch of programs through `code_reward` with N worker threads, both sandboxes.
Means come with 95% percentile-bootstrap intervals over repeats. Prints a table, writes JSON.

    python bench/sandbox_overhead.py [--repeats 20] [--batch 32] [--workers 1 2 4 8]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from labkit.io import provenance, relative, write_json
from labkit.stats import bootstrap_ci
from llm.rewards import code_reward
from llm.sandbox import SandboxLimits, TestCases, bwrap_problem, run_tests

DEFAULT_OUT = "bench/results/sandbox_overhead.json"
PROGRAMS = {
    "add": (
        "def add(a, b):\n    return a + b\n",
        ("assert add(1, 2) == 3", "assert add(2, 2) == 4"),
    ),
    "numpy": (
        "import numpy as np\ndef add(a, b):\n    return int(np.add(a, b))\n",
        ("assert add(1, 2) == 3", "assert add(2, 2) == 4"),
    ),
}
MODES = ("in-process", "subprocess", "bwrap")
LIMITS = SandboxLimits(timeout_s=60.0, cpu_s=30, memory_mb=1024, test_timeout_s=30.0)


def _in_process(code: str, tests: tuple[str, ...]) -> list[bool]:
    ns: dict = {"__name__": "solution"}
    exec(compile(code, "solution.py", "exec"), ns)
    out = []
    for t in tests:
        try:
            exec(compile(t, "test.py", "exec"), ns)
            out.append(True)
        except Exception:
            out.append(False)
    return out


def _time_one(mode: str, code: str, tests: tuple[str, ...]) -> float:
    t0 = time.perf_counter()
    if mode == "in-process":
        passed = _in_process(code, tests)
    else:
        sandbox = "bwrap" if mode == "bwrap" else "unsafe-subprocess"
        passed = run_tests(code, TestCases(asserts=tests), LIMITS, sandbox)
    elapsed = time.perf_counter() - t0
    if not all(passed):
        raise RuntimeError(f"{mode}: a correct program failed its tests ({passed})")
    return elapsed


def _summary(values: list[float], rng: np.random.Generator) -> dict:
    arr = np.asarray(values, dtype=float)
    mean, low, high = bootstrap_ci(arr, rng)
    return {
        "mean": float(mean),
        "ci95": [float(low), float(high)],
        "median": float(np.median(arr)),
        "n": len(values),
    }


def measure(repeats: int, batch: int, workers: list[int], seed: int) -> dict:
    """Latency (ms) per program and mode, bwrap overhead (ms), throughput (programs/s)."""
    rng = np.random.default_rng(seed)
    latency: dict[str, dict[str, dict]] = {}
    overhead: dict[str, dict] = {}
    for name, (code, tests) in PROGRAMS.items():
        for mode in MODES:  # warm-up: page cache, first numpy import, the bwrap probe
            _time_one(mode, code, tests)
        times: dict[str, list[float]] = {m: [] for m in MODES}
        for _ in range(repeats):
            for i in rng.permutation(len(MODES)):
                times[MODES[i]].append(1000 * _time_one(MODES[i], code, tests))
        latency[name] = {m: _summary(times[m], rng) for m in MODES}
        diffs = [b - s for b, s in zip(times["bwrap"], times["subprocess"], strict=True)]
        overhead[name] = _summary(diffs, rng)
    code, tests = PROGRAMS["add"]
    completions = [f"```python\n{code}\n```"] * batch
    throughput: dict[str, dict[str, dict]] = {}
    for sandbox in ("unsafe-subprocess", "bwrap"):
        throughput[sandbox] = {}
        for n in workers:
            reward = code_reward(limits=LIMITS, max_workers=n, sandbox=sandbox)
            rates = []
            for _ in range(max(2, repeats // 5)):
                t0 = time.perf_counter()
                scores = reward(["q"] * batch, completions, tests=[list(tests)] * batch)
                rates.append(batch / (time.perf_counter() - t0))
                if scores != [1.0] * batch:
                    raise RuntimeError(f"{sandbox} with {n} workers: scores {scores}")
            throughput[sandbox][str(n)] = _summary(rates, rng)
    return {"latency_ms": latency, "bwrap_overhead_ms": overhead, "throughput_per_s": throughput}


def _fmt(s: dict, digits: int = 0) -> str:
    lo, hi = s["ci95"]
    return f"{s['mean']:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def report_markdown(path: str | Path = DEFAULT_OUT) -> str:
    """The `<!-- report:sandbox-overhead -->` block of docs/sandbox.md, rendered from the JSON."""
    import json

    data = json.loads(Path(path).read_text())
    cfg, res = data["config"], data["result"]
    lines = [
        f"Measured by `{data['provenance']['command']}` on {data['provenance']['machine']['cpu']} "
        f"({data['provenance']['machine']['cores']} cores, 1-min load average "
        f"{res['load_average_1min']['before']:.1f} before and {res['load_average_1min']['after']:.1f} "
        f"after; scorer {'root' if cfg['root'] else 'not root'}), "
        f"mean [95% bootstrap CI] over {cfg['repeats']} repeats.",
        "",
        "| program | in-process exec (ms) | plain subprocess (ms) | bwrap (ms) | bwrap - subprocess (ms) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, by_mode in res["latency_ms"].items():
        cells = [_fmt(by_mode[m], 1 if m == "in-process" else 0) for m in MODES]
        lines.append(
            f"| {name} | " + " | ".join(cells) + f" | {_fmt(res['bwrap_overhead_ms'][name])} |"
        )
    lines += [
        "",
        f"Throughput of `code_reward` on a batch of {cfg['batch']} programs (programs/s):",
        "",
        "| workers | plain subprocess | bwrap |",
        "| --- | --- | --- |",
    ]
    tp = res["throughput_per_s"]
    for n in tp["bwrap"]:
        lines.append(f"| {n} | {_fmt(tp['unsafe-subprocess'][n], 1)} | {_fmt(tp['bwrap'][n], 1)} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=DEFAULT_OUT)
    args = p.parse_args()
    for key in ("repeats", "batch"):
        if getattr(args, key) < 1:
            p.error(f"--{key}={getattr(args, key)} is not valid; expected an integer >= 1")
    if min(args.workers) < 1:
        p.error(f"--workers={args.workers} is not valid; expected integers >= 1")
    problem = bwrap_problem()
    if problem is not None:
        p.error(f"bwrap is not usable here ({problem}); apt-get install bubblewrap")
    config = {**vars(args), "root": os.geteuid() == 0, "limits": LIMITS.__dict__}
    config["out"] = relative(args.out)
    load_before = os.getloadavg()[0]
    result = measure(args.repeats, args.batch, args.workers, args.seed)
    # a loaded machine slows every mode; the load tells a reader how loaded this one was
    result["load_average_1min"] = {"before": load_before, "after": os.getloadavg()[0]}
    command = ["python", "bench/sandbox_overhead.py", *sys.argv[1:]]
    write_json(args.out, {"config": config, "result": result, "provenance": provenance(command)})
    print(report_markdown(args.out))


if __name__ == "__main__":
    main()
