"""The LM demo's statistics and report blocks, from saved results only (never trains).

`demo_summary` reads a demo's `results.json` (or `results_mu.json`) and pairs every LAD method
with GRPO at the same updates per rollout mu: per seed (same warm-up checkpoint, same seed, same
budget) the difference LAD - GRPO of each metric, the mean difference over seeds and its 95%
paired percentile-bootstrap CI (`labkit.stats.paired_bootstrap_ci`), on the held-out prompts (the
headline) and on the training prompts. Metrics: avg@n, pass@4, pass@n, distinct correct answers
per prompt at the end, and distinct correct answers at matched accuracy (read off each run's eval
curve where its avg@n first reaches the highest accuracy every run of the pair reaches).

`write_summary` writes it as `summary.json` (`summary_<sweep>.json`) beside the results;
`REPORT_BLOCKS` turn the committed summaries under docs/results/demo/ into markdown tables
(`lad report` fills `<!-- report:NAME -->` blocks with them).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from figures.llm_logs import read_json, value_at_accuracy
from labkit.io import ROOT, provenance, relative, write_json
from labkit.stats import bootstrap_ci, paired_bootstrap_ci

RESULTS = ROOT / "docs" / "results" / "demo"
CI_SEED = 0  # seed of the bootstrap resamples: the summary is a function of the results file
# below this many seeds a percentile-bootstrap interval is far too narrow (2 seeds of the same
# sign give an interval excluding 0 half the time under no effect): no verdict is drawn
MIN_SEEDS = 5
VIEWS = {"heldout": ("final", "curve"), "train": ("final_train", "curve_train")}
MATCHED = "distinct_correct@matched"
NAMES = {"js": "JS", "kl": "KL", "rkl": "reverse KL", "hellinger": "Hellinger", "tv": "TV"}


def summary_file(sweep: str) -> str:
    """summary.json for the main comparison, summary_<sweep>.json for a sweep."""
    return "summary.json" if sweep == "main" else f"summary_{sweep}.json"


def metric_keys(n: int) -> list[str]:
    """The compared metrics of an evaluation with n samples per prompt."""
    return [
        f"avg@{n}",
        *dict.fromkeys(f"pass@{k}" for k in (4, n) if k <= n),
        "distinct_correct/mean",
        MATCHED,
    ]


def label(run: dict[str, Any]) -> str:
    """GRPO (clip) or LAD-<divergence> (the run's method without its sweep suffix)."""
    if run["objective"] == "lad":
        return f"LAD-{NAMES.get(run['divergence'], run['divergence'])}"
    return "GRPO (clip)" if run["objective"] == "grpo" else run["objective"]


def _ci(values: np.ndarray, rng: np.random.Generator) -> dict[str, Any]:
    mean, low, high = bootstrap_ci(values, rng)
    return {"mean": float(mean), "low": float(low), "high": float(high), "values": values.tolist()}


def pair_summary(
    lad: list[dict[str, Any]],
    base: list[dict[str, Any]],
    view: str,
    n: int,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """LAD - GRPO on one view for runs of the same seeds (matched by seed).

    Returns {"seeds", "matched_accuracy", "metrics": {metric: {"lad", "base", "diff",
    "significant"}}}; "diff" holds the per-seed differences, their mean and the paired CI, and
    "significant" is whether that CI excludes 0 (never with fewer than MIN_SEEDS seeds)."""
    final, curve = VIEWS[view]
    by_seed = {r["seed"]: r for r in base}
    pairs = [
        (r, by_seed[r["seed"]])
        for r in sorted(lad, key=lambda r: r["seed"])
        if r["seed"] in by_seed
    ]
    if not pairs:
        raise ValueError(f"no seed has both a {lad[0]['method']} and a {base[0]['method']} run")
    acc = f"avg@{n}"
    level = min(max(c[acc] for c in r[curve]) for pair in pairs for r in pair)

    def value(run: dict[str, Any], key: str) -> float:
        if key == MATCHED:
            c = run[curve]
            return value_at_accuracy(
                [x[acc] for x in c], [x["distinct_correct/mean"] for x in c], level
            )
        return float(run[final][key])

    metrics = {}
    for key in metric_keys(n):
        a = np.asarray([value(x, key) for x, _ in pairs])
        b = np.asarray([value(y, key) for _, y in pairs])
        diff, low, high = paired_bootstrap_ci(a, b, rng)
        metrics[key] = {
            "lad": _ci(a, rng),
            "base": _ci(b, rng),
            "diff": {"mean": diff, "low": low, "high": high, "values": (a - b).tolist()},
            "significant": bool(len(pairs) >= MIN_SEEDS and (low > 0 or high < 0)),
        }
    return {"seeds": [x["seed"] for x, _ in pairs], "matched_accuracy": level, "metrics": metrics}


def demo_summary(results: dict[str, Any]) -> dict[str, Any]:
    """Every LAD method paired with GRPO at its mu, on both views (see the module docstring)."""
    rng = np.random.default_rng(CI_SEED)
    n = results["eval_n"]
    runs = results["runs"]
    methods = list(dict.fromkeys(r["method"] for r in runs))
    of = {m: [r for r in runs if r["method"] == m] for m in methods}
    pairs = []
    for m in methods:
        lad = of[m]
        if lad[0]["objective"] != "lad":
            continue
        mu = lad[0]["mu"]
        base = [b for b in methods if of[b][0]["objective"] == "grpo" and of[b][0]["mu"] == mu]
        if not base:
            continue
        pairs.append(
            {
                "lad": m,
                "base": base[0],
                "lad_label": label(lad[0]),
                "base_label": label(of[base[0]][0]),
                "mu": mu,
                "views": {v: pair_summary(lad, of[base[0]], v, n, rng) for v in VIEWS},
            }
        )
    return {
        "eval_n": n,
        "ci": "95% paired percentile bootstrap over seeds (10000 resamples)",
        "pairs": pairs,
    }


def write_summary(root: str | Path, sweep: str = "main", command: str | None = None) -> Path:
    """Read root/results(_<sweep>).json, write root/summary(_<sweep>).json; return its path."""
    root = Path(root)
    name = "results.json" if sweep == "main" else f"results_{sweep}.json"
    results = read_json(root / name)
    if results is None:
        raise FileNotFoundError(f"{str(root / name)!r} does not exist; run `lad llm demo` first")
    summary = {
        "provenance": provenance(command),
        "source": {
            "file": name,
            "provenance": results.get("provenance"),
            "timing": results["timing"],
        },
        **demo_summary(results),
    }
    return write_json(root / summary_file(sweep), summary)


# --- markdown ------------------------------------------------------------------------------------


def fmt_diff(d: dict[str, float], digits: int = 3) -> str:
    return f"{d['mean']:+.{digits}f} [{d['low']:+.{digits}f}, {d['high']:+.{digits}f}]"


def verdict(m: dict[str, Any], lad: str, base: str) -> str:
    if len(m["diff"]["values"]) < MIN_SEEDS:
        return f"too few seeds for a verdict (< {MIN_SEEDS})"
    if not m["significant"]:
        return "no significant difference"
    return f"{lad} higher" if m["diff"]["mean"] > 0 else f"{base} higher"


def metric_label(key: str, level: float) -> str:
    if key == MATCHED:
        return f"distinct correct / prompt at matched accuracy ({level:.3f})"
    if key == "distinct_correct/mean":
        return "distinct correct / prompt (final)"
    return key


def conclusion(pair: dict[str, Any], view: str = "heldout") -> str:
    """One sentence stated from the CIs: diversity at matched accuracy and accuracy."""
    v = pair["views"][view]
    n_seeds = len(v["seeds"])
    acc = next(k for k in v["metrics"] if k.startswith("avg@"))
    parts = []
    for key, what in ((MATCHED, "distinct correct answers at matched accuracy"), (acc, acc)):
        m = v["metrics"][key]
        parts.append(f"{what} {fmt_diff(m['diff'], 2)}: {verdict(m, 'LAD', 'GRPO')}")
    where = "held-out" if view == "heldout" else "training"
    return (
        f"On {where} prompts, {pair['lad_label']} − {pair['base_label']} over {n_seeds} paired seeds: "
        + "; ".join(parts)
        + "."
    )


def pair_table(pair: dict[str, Any], view: str) -> list[str]:
    v = pair["views"][view]
    lad, base = pair["lad_label"], pair["base_label"]
    rows = [
        f"| metric | {base} | {lad} | {lad} − {base} [95% CI] | |",
        "|---|---|---|---|---|",
    ]
    for key, m in v["metrics"].items():
        rows.append(
            f"| {metric_label(key, v['matched_accuracy'])} | {m['base']['mean']:.3f} | "
            f"{m['lad']['mean']:.3f} | {fmt_diff(m['diff'])} | {verdict(m, 'LAD', 'GRPO')} |"
        )
    return rows


def _load(sweep: str, root: Path | None = None) -> dict[str, Any]:
    path = (root or RESULTS) / summary_file(sweep)
    summary = read_json(path)
    if summary is None:
        raise FileNotFoundError(
            f"{relative(path)} does not exist; run `lad llm demo` (see docs/llm-demo.md)"
        )
    return summary


def _command(summary: dict[str, Any]) -> str:
    src = summary["source"]["provenance"] or {}
    machine = src.get("machine", {})
    commands = dict.fromkeys([src.get("command", "?"), summary["provenance"]["command"]])
    return (
        f"command: {' then '.join(f'`{c}`' for c in commands)}; commit "
        f"`{str(src.get('commit', '?'))[:12]}`; {machine.get('cpu', '?')}, "
        f"{summary['source']['timing'].get('workers', '?')} workers"
    )


def block_headline(root: Path | None = None) -> str:
    """README: the held-out table of the first LAD method, its conclusion on held-out and on
    training prompts."""
    s = _load("main", root)
    pair = s["pairs"][0]
    lines = [conclusion(pair, "heldout"), conclusion(pair, "train")]
    return "\n".join([*pair_table(pair, "heldout"), "", " ".join(lines), "", _command(s)])


def block_table(root: Path | None = None) -> str:
    """docs/llm-demo.md: every LAD method vs GRPO, held-out prompts then training prompts."""
    s = _load("main", root)
    lines = []
    for view, title in (
        ("heldout", "Held-out prompts (never trained on)"),
        ("train", "Training prompts"),
    ):
        for pair in s["pairs"]:
            seeds = pair["views"][view]["seeds"]
            lines += [
                f"**{title}: {pair['lad_label']} vs {pair['base_label']}** ({len(seeds)} seeds, mu = {pair['mu']})",
                "",
            ]
            lines += [*pair_table(pair, view), "", conclusion(pair, view), ""]
    return "\n".join([*lines, _command(s)])


def block_mu(root: Path | None = None) -> str:
    """docs/llm-demo.md: LAD - GRPO at every updates-per-rollout mu (held-out, then training
    prompts); a mu the
    sweep did not run is taken from the main comparison when it ran it (mu = 8 by default)."""
    s = _load("mu", root)
    main = read_json((root or RESULTS) / summary_file("main"))
    n = s["eval_n"]
    acc = f"avg@{n}"
    lad, base = s["pairs"][0]["lad_label"], s["pairs"][0]["base_label"]
    pairs = {p["mu"]: p for p in s["pairs"]}
    extra = (
        []
        if main is None
        else [p for p in main["pairs"] if p["lad_label"] == lad and p["mu"] not in pairs]
    )
    pairs |= {p["mu"]: p for p in extra if main["eval_n"] == n}
    out = []
    for view, title in (("heldout", "Held-out prompts"), ("train", "Training prompts")):
        rows = [
            f"**{title}**",
            "",
            f"| mu | seeds | {base} {acc} | {lad} {acc} | Δ {acc} [95% CI] | matched accuracy | "
            f"Δ distinct correct at matched accuracy [95% CI] | |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for mu, p in sorted(pairs.items()):
            v = p["views"][view]
            a, d = v["metrics"][acc], v["metrics"][MATCHED]
            rows.append(
                f"| {mu}{' (main run)' if p in extra else ''} | {len(v['seeds'])} | "
                f"{a['base']['mean']:.3f} | {a['lad']['mean']:.3f} | {fmt_diff(a['diff'])} | "
                f"{v['matched_accuracy']:.3f} | {fmt_diff(d['diff'], 2)} | {verdict(d, 'LAD', 'GRPO')} |"
            )
        diffs = {mu: p["views"][view]["metrics"][MATCHED] for mu, p in sorted(pairs.items())}
        up = [mu for mu, m in diffs.items() if m["significant"] and m["diff"]["mean"] > 0]
        down = [mu for mu, m in diffs.items() if m["significant"] and m["diff"]["mean"] < 0]
        line = (
            f"LAD keeps significantly more distinct correct answers at matched accuracy at mu = {', '.join(map(str, up))}"
            if up
            else "At no mu does LAD keep significantly more distinct correct answers at matched accuracy"
        )
        if down:
            line += f"; GRPO keeps more at mu = {', '.join(map(str, down))}"
        out += [*rows, "", f"{line} ({title.lower()}).", ""]
    commands = [_command(s)] + ([_command(main)] if extra else [])
    return "\n".join([*out, *commands])


def block_cost(root: Path | None = None) -> str:
    """docs/llm-demo.md: what the runs cost, in CPU seconds (what a busy machine does not change)
    and in wall-clock seconds under the load they ran with."""
    rows = [
        "| run | runs | CPU s per run (mean, min-max) | CPU s in all | wall s | workers | load average (start, end) | ≈ wall s on 2 idle cores |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for sweep in ("main", "mu"):
        results = read_json(
            (root or RESULTS) / ("results.json" if sweep == "main" else f"results_{sweep}.json")
        )
        if results is None:
            continue
        cpu = np.asarray([r["timing"]["cpu_s"] for r in results["runs"]])
        t = results["timing"]
        rows.append(
            f"| `{results['provenance']['command']}` | {len(cpu)} | {cpu.mean():.0f} ({cpu.min():.0f}-{cpu.max():.0f}) | "
            f"{t['cpu_s']:.0f} | {t['wall_s']:.0f} | {t['workers']} | {t['loadavg_start']:.1f}, {t['loadavg_end']:.1f} | "
            f"{t['cpu_s'] / 2:.0f} |"
        )
    return "\n".join(rows)


REPORT_BLOCKS: dict[str, Callable[[], str]] = {
    "demo-cost": block_cost,
    "demo-headline": block_headline,
    "demo-table": block_table,
    "demo-mu": block_mu,
}


def report_demo(out: str | Path, sweep: str, command: str, figures: bool = True) -> str:
    """After `lad llm demo`: write OUT/summary*.json from the saved results, draw OUT/figures
    (when `figures`), and return what to print (the table of a main or mu sweep, the files)."""
    from figures.llm import draw_all

    root = Path(out)
    lines = [str(write_summary(root, sweep, command=command))]
    if sweep in ("main", "mu"):
        lines.insert(0, (block_table if sweep == "main" else block_mu)(root))
    if figures:
        written = draw_all(root, root / "figures", command)
        lines.append("figures: " + ", ".join(str(p) for p in written if p.suffix == ".png"))
    return "\n".join(lines)
