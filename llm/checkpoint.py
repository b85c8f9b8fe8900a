"""Trainer checkpoints: written atomically, the last N kept, and enough state to resume exactly.

Layout of `<output_dir>/checkpoints/step_00000042/`:
- the model as a Hugging Face directory (`save_pretrained`: config.json, *.safetensors) and the
  tokenizer, so `lad llm eval` / `load_model` open a checkpoint like any model directory;
- `trainer_state.pt`: step, prompts consumed, optimizer, scheduler, extra modules (e.g. FlowRL's
  log-Z head), the RNG states of python, numpy and torch (CPU and CUDA), and the config.

A checkpoint is written into a temporary sibling directory, fsynced and renamed into place
(labkit.io.atomic_dir), so a killed run leaves either the whole checkpoint or none (a leftover
`.*.tmp` directory is ignored and cleaned). A checkpoint that is corrupt anyway (a lost write, a
disk error) is set aside by `load_latest_intact`, which resumes from the newest one that loads. Data order, sampling and minibatch shuffles are keyed on (seed, step) in the trainer,
so restoring the step restores them; the global RNG states are restored as well for any code
that draws from them.
"""

from __future__ import annotations

import os
import random
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from labkit.io import atomic_dir

STATE_FILE = "trainer_state.pt"
PREFIX = "step_"


def checkpoints_root(output_dir: str | Path) -> Path:
    return Path(output_dir) / "checkpoints"


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """Complete checkpoints (their state file exists), oldest first."""
    root = checkpoints_root(output_dir)
    if not root.is_dir():
        return []
    done = [p for p in root.iterdir() if p.name.startswith(PREFIX) and (p / STATE_FILE).is_file()]
    return sorted(done, key=lambda p: int(p.name.removeprefix(PREFIX)))


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    found = list_checkpoints(output_dir)
    return found[-1] if found else None


def rng_state() -> dict[str, Any]:
    """Global RNG states as tensors and plain lists (loadable with weights_only=True)."""
    py = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [kind, torch.from_numpy(np.asarray(keys, dtype=np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    output_dir: str | Path,
    step: int,
    *,
    model: torch.nn.Module,
    tokenizer: Any,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    state: dict[str, Any],
    modules: dict[str, torch.nn.Module] | None = None,
    keep_last: int = 2,
) -> Path:
    """Write checkpoint `step` atomically and durably (labkit.io.atomic_dir: every file fsynced
    before the rename), then delete all but the newest `keep_last`.

    state: plain values to restore (prompts consumed, config dict, ...); stored under "state".
    """
    root = checkpoints_root(output_dir)
    final = root / f"{PREFIX}{step:08d}"
    # a rerun of this step (resume from an older checkpoint) replaces the old copy
    with atomic_dir(final) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        payload = {
            "step": step,
            "state": state,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "modules": {k: m.state_dict() for k, m in (modules or {}).items()},
            "rng": rng_state(),
        }
        torch.save(payload, tmp / STATE_FILE)
    for old in list_checkpoints(output_dir)[:-keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    for stale in root.glob(".*.tmp"):  # leftovers of a run killed mid-write
        shutil.rmtree(stale, ignore_errors=True)
    return final


def read_model_weights(directory: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint's safetensors files (read fully: a torn file raises here)."""
    from safetensors.torch import load_file

    files = sorted(Path(directory).glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"checkpoint {str(directory)!r} has no .safetensors file")
    weights: dict[str, torch.Tensor] = {}
    for f in files:
        weights.update(load_file(f))
    return weights


def load_model_weights(
    model: torch.nn.Module,
    directory: str | Path,
    weights: dict[str, torch.Tensor] | None = None,
) -> None:
    """Load the safetensors files of a checkpoint (or `weights` already read from it) into
    `model` in place (bit-exact)."""
    if weights is None:
        weights = read_model_weights(directory)
    missing, unexpected = model.load_state_dict(weights, strict=False)
    tied = set(getattr(model, "_tied_weights_keys", None) or []) | {"lm_head.weight"}
    missing = [k for k in missing if k not in tied]
    if missing or unexpected:
        raise ValueError(
            f"checkpoint {str(directory)!r} does not match the model: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    if hasattr(model, "tie_weights"):
        model.tie_weights()


def load_checkpoint(
    path: str | Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    modules: dict[str, torch.nn.Module] | None = None,
) -> dict[str, Any]:
    """Restore everything `save_checkpoint` wrote; returns {"step": ..., **state}."""
    path = Path(path)
    if not (path / STATE_FILE).is_file():
        raise FileNotFoundError(f"{str(path)!r} is not a complete checkpoint (no {STATE_FILE})")
    # read every file before touching the model: a corrupt checkpoint raises with nothing loaded
    payload = torch.load(path / STATE_FILE, map_location="cpu", weights_only=True)
    weights = read_model_weights(path)
    load_model_weights(model, path, weights)
    optimizer.load_state_dict(payload["optimizer"])
    scheduler.load_state_dict(payload["scheduler"])
    for name, module in (modules or {}).items():
        module.load_state_dict(payload["modules"][name])
    set_rng_state(payload["rng"])
    return {"step": payload["step"], **payload["state"]}


def load_latest_intact(
    output_dir: str | Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    modules: dict[str, torch.nn.Module] | None = None,
) -> dict[str, Any] | None:
    """Restore the newest checkpoint of `output_dir` that loads; None when there is none.

    A checkpoint that does not load (torn or corrupt files, e.g. a disk that lost the last write)
    is renamed to `corrupt_step_*` (kept for inspection, never resumed from or counted by
    keep_last) with a warning, and the next older one is tried.
    """
    for path in reversed(list_checkpoints(output_dir)):
        try:
            return load_checkpoint(
                path, model=model, optimizer=optimizer, scheduler=scheduler, modules=modules
            )
        except Exception as e:  # torch.load, safetensors and state_dict errors have no common base
            aside = path.with_name(f"corrupt_{path.name}")
            shutil.rmtree(aside, ignore_errors=True)
            os.replace(path, aside)
            warnings.warn(
                f"checkpoint {path} does not load ({type(e).__name__}: {str(e)[:200]}); moved it "
                f"to {aside.name} and fell back to the previous checkpoint",
                stacklevel=2,
            )
    return None
