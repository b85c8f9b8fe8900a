"""A short supervised warm-up: next-token cross-entropy on (prompt, completion + EOS) pairs, with
the loss on the completion tokens only.

Batches are left-padded with position ids from the attention mask, the layout `HFGenerator`
samples with, so the warm-up policy is trained on exactly the inputs it later sees. The run is a
function of (model init, pairs, seed): batches are drawn with a `torch.Generator`, never the
global RNG.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

Tensor = torch.Tensor


@dataclass
class WarmupConfig:
    """Supervised warm-up options."""

    steps: int = field(default=300, metadata={"help": "optimizer steps of the warm-up"})
    batch_size: int = field(default=64, metadata={"help": "(prompt, completion) pairs per step"})
    learning_rate: float = field(
        default=3e-3, metadata={"help": "AdamW learning rate (constant after warm-up)"}
    )
    warmup_steps: int = field(default=20, metadata={"help": "linear learning-rate warm-up steps"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"warmup.{name} must be >= 1, got {getattr(self, name)}")
        if not self.learning_rate > 0:
            raise ValueError(f"warmup.learning_rate must be > 0, got {self.learning_rate}")
        if self.warmup_steps < 0 or self.weight_decay < 0:
            raise ValueError("warmup.warmup_steps and warmup.weight_decay must be >= 0")


def encode_pairs(tokenizer: Any, pairs: Sequence[tuple[str, str]]) -> tuple[Tensor, Tensor, Tensor]:
    """Left-padded (B, L) input ids, attention mask and labels (-100 off the completion + EOS)."""
    rows, labels = [], []
    for prompt, completion in pairs:
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        c = [*tokenizer(completion, add_special_tokens=False)["input_ids"], tokenizer.eos_token_id]
        rows.append(p + c)
        labels.append([-100] * len(p) + c)
    L = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id
    ids = torch.tensor([[pad] * (L - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (L - len(r)) + [1] * len(r) for r in rows])
    lab = torch.tensor([[-100] * (L - len(r)) + r for r in labels])
    return ids, mask, lab


def sft_loss(model: torch.nn.Module, ids: Tensor, mask: Tensor, labels: Tensor) -> Tensor:
    """Mean cross-entropy of the labelled tokens (labels are the targets of position t, not t+1)."""
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    logits = model(input_ids=ids, attention_mask=mask, position_ids=position_ids).logits
    return torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
        labels[:, 1:].reshape(-1),
        ignore_index=-100,
    )


def supervised_warmup(
    model: torch.nn.Module,
    tokenizer: Any,
    pairs: Sequence[tuple[str, str]],
    config: WarmupConfig,
    seed: int = 0,
) -> list[float]:
    """Train `model` in place on `pairs`; return the loss of each step.

    Each step draws batch_size pairs uniformly with replacement (generator seeded with `seed`).
    """
    if not pairs:
        raise ValueError("pairs must hold at least one (prompt, completion) pair")
    gen = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    ids, mask, labels = (t.to(device) for t in encode_pairs(tokenizer, pairs))
    opt = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / max(1, config.warmup_steps))
    )
    model.train()
    losses = []
    for _ in range(config.steps):
        idx = torch.randint(len(pairs), (config.batch_size,), generator=gen).to(device)
        # drop the columns that are padding in every row of this batch
        keep = mask[idx].any(0)
        loss = sft_loss(model, ids[idx][:, keep], mask[idx][:, keep], labels[idx][:, keep])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    model.eval()
    return losses
