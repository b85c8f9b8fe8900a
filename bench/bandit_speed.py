"""Run-steps per second of the vectorised bandit against a plain per-run loop (style guide 9, 14).

Both compute the same thing: practical LAD (js, eta = 1) on the trimodal landscape, K = 50 arms,
G = 64 samples per step from a fixed uniform pi_old, Adam lr 5e-3, one run per seed.
- vectorised: `bandit.trainer.train` with R runs in one batched computation per step, timed side
  by side for each gradient path: `closed` (the closed-form gradient, eager torch; the default),
  `compiled` (the same step fused by torch.compile) and `autograd` (the reference);
- loop: for each run, a textbook loop a user would write: a (K,) logit vector, torch.optim.Adam,
  the same counter-based draws (bandit.rng, keyed on the seed) and labkit's `lad_loss` on (G, 1)
  inputs, one run after another.
Rates are steady-state: steps 2..N, timed from train()'s progress callback, so the one-off first
step (set-up, and for `compiled` the compilation) is left out and reported on its own: the
first-step seconds of the first repeat, with inductor's cache emptied at the start (a cold
compile); later repeats reuse the graph. The loop's rate does not depend on R, so it is measured
once on `--loop-runs` runs (always on the CPU, one thread); the check compares the loop's final
policies with the vectorised runs of the same seeds. Every rate is the best of `--repeats`
(other processes share the machine), paths and loop interleaved. `--device cuda` runs the
vectorised simulator on a GPU (the draws are the same as on the CPU).

    python bench/bandit_speed.py [--sizes 1,4,16,64,256,1024,4096] [--threads 1,2]
        [--gradients closed,compiled,autograd] [--device cpu]
        [--out bench/results/bandit_speed.json]

`report_markdown()` renders the committed JSON as a table (for `lad report`).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from bandit.config import BanditConfig
from bandit.landscapes import get_landscape
from bandit.trainer import OldPolicy, train
from labkit import LossConfig, lad_loss
from labkit.io import provenance, write_json

RESULT = Path(__file__).parent / "results" / "bandit_speed.json"


def vectorised(
    r: int, steps: int, device: str, gradient: str = "closed"
) -> tuple[float, float, torch.Tensor]:
    """(seconds of step 1, seconds per later step, final policies (R, K)) of R runs trained
    together. Step 1 starts when train() is called (so it holds the set-up and any
    compilation); progress is reported after every step (steps <= 200), and train() copies its
    results to the host at the end, so a GPU timing includes every kernel."""
    config = BanditConfig(
        n_seeds=r,
        steps=steps,
        log_every=steps,
        policy_steps=(steps,),
        device=device,
        gradient=gradient,
    )
    marks: dict[int, float] = {}
    t0 = time.perf_counter()
    res = train(config, progress=lambda done, total: marks.setdefault(done, time.perf_counter()))
    t_end = time.perf_counter()
    return marks[1] - t0, (t_end - marks[1]) / (steps - 1), torch.as_tensor(res.policies[-1])


def loop(n_runs: int, steps: int) -> tuple[float, torch.Tensor]:
    """(seconds, final policies (n_runs, K)) of the same runs, one after another."""
    land = get_landscape("trimodal")
    rewards = torch.tensor(land.rewards)
    k, g = land.n_arms, 64
    cfg = LossConfig(loss_mode="lad", divergence="js", eta=1.0)
    mask = torch.ones(g, 1)
    out = []
    t0 = time.perf_counter()
    for seed in range(n_runs):
        logits = torch.zeros(k, requires_grad=True)
        opt = torch.optim.Adam([logits], lr=5e-3)
        log_pi_old = torch.log_softmax(logits.detach(), -1)
        old = OldPolicy(logits.detach().unsqueeze(0), True, rewards)  # the trainer's sampler
        adv_all = rewards - log_pi_old.exp() @ rewards
        seeds = torch.tensor([seed])
        for step in range(1, steps + 1):
            arms = old.sample(seeds, step, g)[0]
            log_prob = torch.log_softmax(logits, -1)[arms].unsqueeze(-1)
            loss, _ = lad_loss(
                log_pi_old[arms].unsqueeze(-1),
                log_prob,
                adv_all[arms],
                mask,
                "token-mean",
                cfg,
                metrics=False,
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
        out.append(torch.softmax(logits.detach(), -1))
    return time.perf_counter() - t0, torch.stack(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1,4,16,64,256,1024,4096", help="numbers of runs R")
    p.add_argument(
        "--threads", default="1,2", help="torch intra-op thread counts for the vectorised runs"
    )
    p.add_argument("--gradients", default="closed,compiled,autograd", help="gradient paths to time")
    p.add_argument("--steps", type=int, default=200, help="training steps per timing (<= 200)")
    p.add_argument("--device", default="cpu", help="device of the vectorised runs: cpu or cuda")
    p.add_argument("--loop-runs", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default="bench/results/bandit_speed.json")
    args = p.parse_args()
    if not 2 <= args.steps <= 200:
        p.error(f"--steps={args.steps}: expected 2 to 200 (progress is reported every step)")
    sizes = [int(s) for s in args.sizes.split(",")]
    thread_counts = [int(t) for t in args.threads.split(",")]
    gradients = args.gradients.split(",")
    load_before = os.getloadavg()
    # an empty inductor cache, so the first compiled step of each shape is a cold compile
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="bandit_speed_inductor_")

    torch.set_num_threads(1)
    vectorised(2, 2, args.device)  # warm-up: imports, allocator, CUDA context
    loop_best, loop_pol = float("inf"), None
    rows = []
    cols = [(g, th) for g in gradients for th in thread_counts]
    for r in sizes:
        row: dict = {"R": r}
        best = dict.fromkeys(cols, float("inf"))
        first: dict = {}
        pols = {}
        for _ in range(args.repeats):
            for g, th in cols:
                torch.set_num_threads(th)
                first_s, per_step, pols[g] = vectorised(r, args.steps, args.device, g)
                best[g, th] = min(best[g, th], per_step)
                first.setdefault((g, th), first_s)  # the first repeat's: set-up, cold compile
            torch.set_num_threads(1)
            lsec, loop_pol = loop(args.loop_runs, args.steps)
            loop_best = min(loop_best, lsec)
        for g, th in cols:
            row[f"{g}_run_steps_per_s_{th}t"] = r / best[g, th]
            row[f"{g}_first_step_s_{th}t"] = first[g, th]
        for g in gradients:
            if g != "closed" and "closed" in pols:
                row[f"max_abs_diff_closed_vs_{g}"] = float((pols["closed"] - pols[g]).abs().max())
        if r >= args.loop_runs:
            row["max_abs_diff_vs_loop"] = float(
                (pols[gradients[0]][: args.loop_runs] - loop_pol).abs().max()
            )
        rows.append(row)
        rates = "  ".join(f"{g} {th}t: {row[f'{g}_run_steps_per_s_{th}t']:,.0f}" for g, th in cols)
        print(f"R={r:5d}  run-steps/s  {rates}", flush=True)
    loop_rate = args.loop_runs * args.steps / loop_best
    for row in rows:
        row["loop_run_steps_per_s"] = loop_rate
        best_of = {
            g: max(row[f"{g}_run_steps_per_s_{th}t"] for th in thread_counts) for g in gradients
        }
        row["speedup_vs_loop"] = max(best_of.values()) / loop_rate
        if "autograd" in best_of and "closed" in best_of:
            row["closed_over_autograd"] = best_of["closed"] / best_of["autograd"]
        if "compiled" in best_of and "closed" in best_of:
            row["compiled_over_closed"] = best_of["compiled"] / best_of["closed"]
    print(f"loop (1 thread): {loop_rate:,.0f} run-steps/s")
    result = {
        "benchmark": "bandit_speed",
        "command": "python bench/bandit_speed.py "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "out"),
        "setup": {
            "K": 50,
            "G": 64,
            "objective": "lad",
            "divergence": "js",
            "eta": 1.0,
            "optimizer": "adam",
            "lr": 5e-3,
            "pi_old": "fixed uniform",
            "steps": args.steps,
            "device": args.device,
            "repeats": args.repeats,
            "loop_runs": args.loop_runs,
            "target_run_steps_per_s_at_4096": 3e6,
            "rates": "steady state: steps 2..N; first_step_s is step 1 of the first repeat "
            "(set-up, and the cold compile of gradient=compiled)",
            "note": "gradient paths timed interleaved in one run (a shared machine: compare ratios)",
        },
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
        },
        "rows": rows,
        "provenance": provenance(),
    }
    write_json(Path(args.out), result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
