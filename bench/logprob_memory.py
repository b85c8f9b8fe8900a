"""Peak memory and time of one update micro-batch (forward + backward, LAD loss) with the
log-softmax over the vocabulary computed at once or in chunks (`model.logprob_chunk_size`), on a
~0.5B-parameter Qwen2-shaped model (random weights, Qwen2.5-0.5B's shapes, vocabulary 151,936),
bf16 autocast; and the largest micro-batch (rows doubling from 8) that fits each way.

    python bench/logprob_memory.py [--chunks none,4096,1024] [--rows 32] [--out ...]
    python bench/logprob_memory.py --device cpu --tiny      # a dry run of this script

Run it on a GPU through bench/gpu_check.sh (needs only torch and transformers).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import torch  # noqa: E402
from gpu_check import qwen2_model  # noqa: E402

from labkit import LossConfig, compute_loss  # noqa: E402
from labkit.io import relative, write_json  # noqa: E402
from llm.logprobs import completion_log_probs  # noqa: E402


def update(model, rows: int, seq_len: int, completion_len: int, chunk: int | None, device: str):
    """One forward + backward of the LAD loss on `rows` random sequences."""
    ids = torch.randint(2, model.config.vocab_size, (rows, seq_len), device=device)
    am = torch.ones_like(ids)
    with torch.autocast(device.split(":")[0], dtype=torch.bfloat16):
        lp, _, _ = completion_log_probs(model, ids, am, completion_len, 1.0, chunk_size=chunk)
    loss, _ = compute_loss(
        lp.detach(),
        lp,
        torch.randn(rows, device=device),
        torch.ones_like(lp),
        LossConfig(kappa=4.0),
    )
    loss.backward()
    model.zero_grad(set_to_none=True)


def measure(model, rows: int, seq_len: int, completion_len: int, chunk: int | None, device: str):
    """(seconds, peak GiB) of one update, after a warm-up; peak is CUDA-only (None on CPU)."""
    cuda = device.startswith("cuda")
    update(model, rows, seq_len, completion_len, chunk, device)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    update(model, rows, seq_len, completion_len, chunk, device)
    if cuda:
        torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
    return time.perf_counter() - t, peak


def largest(model, seq_len: int, completion_len: int, chunk: int | None, limit: int) -> int:
    """Largest number of rows (doubling from 8, up to limit) whose update fits on the GPU."""
    fits, rows = 0, 8
    while rows <= limit:
        try:
            update(model, rows, seq_len, completion_len, chunk, "cuda")
            fits, rows = rows, rows * 2
        except torch.cuda.OutOfMemoryError:
            break
        finally:
            torch.cuda.empty_cache()
    return fits


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--chunks", default="none,4096,1024", help="chunk sizes in tokens; none = off")
    p.add_argument("--rows", type=int, default=32, help="rows of the timed micro-batch")
    p.add_argument("--prompt-length", type=int, default=64)
    p.add_argument("--completion-length", type=int, default=256)
    p.add_argument("--limit", type=int, default=1024, help="largest row count tried")
    p.add_argument("--device", default="cuda")
    p.add_argument("--tiny", action="store_true", help="a tiny model (CPU dry run)")
    p.add_argument("--out", default="bench/results/logprob_memory.json")
    args = p.parse_args()
    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        sys.exit("error: needs a CUDA device (or --device cpu --tiny for a dry run)")
    model = qwen2_model(0, args.tiny).to(args.device)
    seq = args.prompt_length + args.completion_length
    chunks = [None if c.strip() == "none" else int(c) for c in args.chunks.split(",")]
    rows = []
    for chunk in chunks:
        sec, peak = measure(model, args.rows, seq, args.completion_length, chunk, args.device)
        row = {
            "chunk_size": chunk,
            "rows": args.rows,
            "seconds": sec,
            "tokens_per_s": args.rows * args.completion_length / sec,
            "peak_gib": peak,
        }
        if cuda:
            row["largest_rows"] = largest(model, seq, args.completion_length, chunk, args.limit)
        rows.append(row)
        print(row, flush=True)
    result = {
        "benchmark": "logprob_memory",
        "command": "python bench/logprob_memory.py "
        + " ".join(relative(a) if a.startswith("/") else a for a in sys.argv[1:]),
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "torch": torch.__version__,
        "vocab_size": model.config.vocab_size,
        "parameters": sum(p.numel() for p in model.parameters()),
        "seq_len": seq,
        "completion_len": args.completion_length,
        "rows": rows,
    }
    write_json(Path(args.out), result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
