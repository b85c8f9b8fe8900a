"""LAD inside the frameworks users scale with: verl and TRL.

labkit builds no distributed engine. These modules make labkit's `lad_loss` (the same function
object, no copy of the math) a first-class loss of two existing trainers:

- `llm.integrations.verl`: registers `lad` in verl's policy-loss registry (load it in verl's
  workers with `actor_rollout_ref.model.external_lib=llm.integrations.verl`); needs verl installed.
- `llm.integrations.verl_launch`: builds the `python -m verl.trainer.main_ppo ...` command line
  (`lad llm verl`); imports nothing from verl.
- `llm.integrations.trl`: `LADConfig` / `LADTrainer`, subclasses of TRL's `GRPOConfig` /
  `GRPOTrainer` that replace only the loss; needs trl installed.

Both adapters call `lad_loss` on the micro-batch and then convert labkit's micro-batch
normalisation into the framework's (global token counts, gradient accumulation, data parallel
size) with one detached scalar: every aggregation is a numerator (a sum over tokens, or over
per-response means) divided by a constant, and the numerators of labkit and of the framework are
the same, so loss_framework = loss_labkit * divisor_labkit / divisor_framework exactly, gradients
included. Importing this package imports neither verl nor trl.
"""

from __future__ import annotations

import torch

from labkit.config import AGG_MODES

Tensor = torch.Tensor


def labkit_divisor(response_mask: Tensor, loss_agg_mode: str) -> Tensor:
    """The constant `labkit.losses.agg_loss` divides a (B, T) micro-batch's numerator by.

    token-mean: valid tokens (at least 1); seq-mean-token-sum and seq-mean-token-mean: responses
    with at least one valid token (at least 1); seq-mean-token-sum-norm: B * T (labkit's default
    loss_scale_factor is T, the padded length). Returns a detached scalar tensor (float).
    """
    mask = response_mask.detach().to(torch.float32)
    if loss_agg_mode == "token-mean":
        return mask.sum().clamp(min=1.0)
    if loss_agg_mode in ("seq-mean-token-sum", "seq-mean-token-mean"):
        return (mask.sum(-1) > 0).sum().to(torch.float32).clamp(min=1.0)
    if loss_agg_mode == "seq-mean-token-sum-norm":
        return torch.tensor(float(mask.shape[-2] * mask.shape[-1]), device=mask.device)
    raise ValueError(
        f"loss_agg_mode={loss_agg_mode!r} is not valid; expected one of {list(AGG_MODES)}"
    )


def zero_loss(log_prob: Tensor) -> Tensor:
    """A zero loss still connected to the graph: a micro-batch with no valid token must still run
    backward through every parameter, or DDP/FSDP ranks wait on each other forever."""
    return (log_prob * 0.0).sum()
