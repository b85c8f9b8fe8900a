"""Run outputs of the trainer: per-step metrics (JSONL, optional TensorBoard), sample completions
(JSONL) and a progress bar with ETA.

This is the one place where metric tensors become Python numbers: `log` stacks a step's tensors
and syncs once. Metric keys follow TRL/verl (docs/llm.md "Training logs" glossary): `reward`,
`reward_std`, `frac_reward_zero_std`, `entropy`, `completions/mean_length`,
`completions/clipped_ratio`, `actor/*`, `lad/*`, `tokens/s`, `timing/*`.

rich (progress bar) and tensorboard are optional and imported lazily: the trainer must import on
machines that have neither.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any

import torch

from labkit.io import append_jsonl, read_jsonl, write_jsonl

METRICS_FILE = "metrics.jsonl"
COMPLETIONS_FILE = "completions.jsonl"


def to_numbers(metrics: dict[str, Any]) -> dict[str, float]:
    """Tensors (0-d or 1-element) and numbers -> floats, with one device sync for all tensors."""
    keys = [k for k, v in metrics.items() if isinstance(v, torch.Tensor)]
    out = {k: float(v) for k, v in metrics.items() if not isinstance(v, torch.Tensor)}
    if keys:
        values = torch.stack([metrics[k].detach().float().reshape(()).cpu() for k in keys]).tolist()
        out.update(zip(keys, values, strict=True))
    return out


def _json_number(x: float) -> float | str | None:
    # JSON has no NaN/inf: write null for NaN (a skipped quantity), strings for inf
    if math.isnan(x):
        return None
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


class _Progress:
    """A rich progress bar with ETA; a plain line per logging step when rich is missing or the
    output is not a terminal."""

    def __init__(self, total: int, start: int) -> None:
        self.total = total
        self.bar = None
        try:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            if sys.stderr.isatty():
                self.bar = Progress(
                    TextColumn("[bold]train"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TimeRemainingColumn(),
                    TextColumn("{task.fields[info]}"),
                    transient=False,
                )
                self.bar.start()
                self.task = self.bar.add_task("train", total=total, completed=start, info="")
        except ImportError:
            self.bar = None
        self.t0 = time.perf_counter()
        self.start = start

    def update(self, step: int, info: str) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=step, info=info)
            return
        done = step - self.start
        rate = (time.perf_counter() - self.t0) / max(done, 1)
        eta = rate * (self.total - step)
        print(f"step {step}/{self.total}  {info}  eta {eta:,.0f}s", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


class MetricsLogger:
    """Writes `metrics.jsonl` (one line per step, every step) and `completions.jsonl` under
    `output_dir`, optionally TensorBoard scalars, and drives the progress bar.

    Args:
        output_dir: the run directory.
        total_steps: for the progress bar's ETA.
        start_step: the step a resumed run continues from (lines after it are dropped).
        report_to: extra sinks, e.g. ["tensorboard"] (needs the tensorboard package).
        progress_bar: show a progress bar / progress lines.
        logging_steps: refresh the progress display every N steps.
    """

    def __init__(
        self,
        output_dir: str | Path,
        total_steps: int,
        start_step: int = 0,
        report_to: list[str] | tuple[str, ...] = (),
        progress_bar: bool = True,
        logging_steps: int = 1,
    ) -> None:
        self.dir = Path(output_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        # a resumed run rewrites the steps after its checkpoint; a torn last line (a crash
        # mid-append) is dropped with a warning naming the file
        for name in (METRICS_FILE, COMPLETIONS_FILE):
            if (self.dir / name).is_file():
                rows = read_jsonl(self.dir / name)
                write_jsonl(self.dir / name, [r for r in rows if r.get("step", 0) <= start_step])
        self.logging_steps = logging_steps
        self.tb = None
        if "tensorboard" in report_to:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as e:
                raise ValueError(
                    f"trainer.report_to=['tensorboard'] needs the tensorboard package (pip install labkit[tensorboard]): {e}"
                ) from e
            self.tb = SummaryWriter(log_dir=str(self.dir / "tensorboard"))
        self.progress = _Progress(total_steps, start_step) if progress_bar else None

    def log(self, step: int, metrics: dict[str, Any]) -> dict[str, float]:
        """Append one JSONL line {"step": step, **metrics}; returns the metrics as floats."""
        numbers = to_numbers(metrics)
        record = {"step": step, **{k: _json_number(v) for k, v in numbers.items()}}
        append_jsonl(self.dir / METRICS_FILE, record)
        if self.tb is not None:
            for k, v in numbers.items():
                if math.isfinite(v):
                    self.tb.add_scalar(k, v, step)
        if self.progress is not None and step % self.logging_steps == 0:
            info = "  ".join(
                f"{k} {numbers[k]:.3g}"
                for k in ("reward", "entropy", "actor/pg_loss", "tokens/s")
                if k in numbers
            )
            self.progress.update(step, info)
        return numbers

    def log_completions(
        self,
        step: int,
        prompts: list[str],
        completions: list[str],
        rewards: torch.Tensor,
        advantages: torch.Tensor,
    ) -> None:
        """Append one line per sample: step, prompt, completion, reward, advantage."""
        r, a = rewards.detach().float().cpu().tolist(), advantages.detach().float().cpu().tolist()
        rows = [
            {
                "step": step,
                "prompt": p,
                "completion": c,
                "reward": _json_number(ri),
                "advantage": ai,
            }
            for p, c, ri, ai in zip(prompts, completions, r, a, strict=True)
        ]
        append_jsonl(self.dir / COMPLETIONS_FILE, rows)

    def message(self, text: str) -> None:
        if self.progress is not None and self.progress.bar is not None:
            self.progress.bar.console.print(text)
        else:
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.close()
        if self.tb is not None:
            self.tb.close()
