"""Cost of the practical LAD loss against GRPO's clipped surrogate (target: LAD costs no more).

Forward + backward of each loss on (B, T) = (64, 4096) token tensors, in one process, with the
objectives interleaved in every repeat so that machine noise hits all of them alike. `lad-<div>`
is labkit's loss (fused closed-form backward); `lad-<div>-autograd` the same loss with autograd
through the divergence's perspective (the reference the fused backward is tested equal to).
Prints the median time per call and the median of the per-repeat ratios to GRPO; writes JSON.
`report_markdown()` renders the committed JSON as a table (for `lad report`).

    python bench/loss_cost.py [--device cuda] [--repeats 30] [--out bench/results/loss_cost.json]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from labkit import DIVERGENCES, LossConfig, get_divergence, get_policy_loss, lad
from labkit.io import provenance, write_json

RESULT = Path(__file__).parent / "results" / "loss_cost.json"
TARGET_RATIO = 1.0


def _unfused(log_r, a, divergence, standardized=False):
    """The perspective with autograd's backward (what lad_loss computed before the fused op)."""
    return get_divergence(divergence).weighted(log_r, a.detach(), standardized)


def _lad_autograd(*args, **kwargs):
    """labkit's lad_loss, metrics included, with the fused op swapped for `_unfused`: the same
    code but the backward."""
    fused = lad.weighted_divergence
    lad.weighted_divergence = _unfused
    try:
        return lad.lad_loss(*args, **kwargs)
    finally:
        lad.weighted_divergence = fused


def _loss_fn(name: str):
    return _lad_autograd if name == "lad-autograd" else get_policy_loss(name)


def _step(name: str, cfg: LossConfig, old, new, adv, mask, sync) -> float:
    new.grad = None
    fn = _loss_fn(name)
    t0 = time.perf_counter()
    loss, _ = fn(old, new, adv, mask, "token-mean", cfg)
    loss.backward()
    sync()
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--tokens", type=int, default=4096)
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="bench/results/loss_cost.json")
    args = p.parse_args()

    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    g = torch.Generator(device=dev).manual_seed(args.seed)
    shape = (args.batch, args.tokens)
    old = -torch.rand(shape, generator=g, device=dev) * 3
    new = (old + 0.1 * torch.randn(shape, generator=g, device=dev)).requires_grad_()
    adv = torch.randn(args.batch, generator=g, device=dev)
    mask = (torch.rand(shape, generator=g, device=dev) < 0.8).float()

    cases = {"grpo": ("grpo", LossConfig(loss_mode="grpo"))}
    for d in DIVERGENCES:
        cases[f"lad-{d}"] = ("lad", LossConfig(divergence=d, kappa=4.0))
        cases[f"lad-{d}-autograd"] = ("lad-autograd", LossConfig(divergence=d, kappa=4.0))
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(3):  # warm-up
        for name, cfg in cases.values():
            _step(name, cfg, old, new, adv, mask, sync)
    ratios: dict[str, list[float]] = {k: [] for k in cases if k != "grpo"}
    for _ in range(args.repeats):
        row = {k: _step(n, c, old, new, adv, mask, sync) for k, (n, c) in cases.items()}
        for k, v in row.items():
            times[k].append(v)
        for k in ratios:
            ratios[k].append(row[k] / row["grpo"])

    result = {
        "command": "python bench/loss_cost.py "
        + " ".join(f"--{k} {v}" for k, v in vars(args).items() if k != "out"),
        "device": torch.cuda.get_device_name(dev)
        if dev.type == "cuda"
        else f"cpu ({torch.get_num_threads()} threads, {platform.processor() or platform.machine()})",
        "torch": torch.__version__,
        "shape": list(shape),
        "median_ms": {k: 1e3 * statistics.median(v) for k, v in times.items()},
        "median_ratio_vs_grpo": {k: statistics.median(v) for k, v in ratios.items()},
        "target_ratio": TARGET_RATIO,
        "loadavg": os.getloadavg(),
        "provenance": provenance(),
    }
    print(f"{'objective':<14} {'median ms':>10} {'ratio vs grpo':>14}")
    for k in cases:
        r = result["median_ratio_vs_grpo"].get(k, 1.0)
        print(f"{k:<14} {result['median_ms'][k]:>10.2f} {r:>14.3f}")
    write_json(Path(args.out), result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
