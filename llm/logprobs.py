"""Per-token log-probs of completions under a model, and the rollout-correction weights between
the trainer's log-probs and the sampling engine's.

Both are pure functions of tensors (and a model forward): the trainer, the GPU check and the
tests call them the same way.
"""

from __future__ import annotations

import torch

Tensor = torch.Tensor


def completion_log_probs(
    model: torch.nn.Module,
    input_ids: Tensor,
    attention_mask: Tensor,
    n_completion: int,
    temperature: float,
    *,
    entropy: str = "none",
    last_prompt_hidden: bool = False,
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """Log-probs of the last `n_completion` tokens of each row under `model` at `temperature`.

    Args:
        input_ids, attention_mask: (N, P + C) left-padded prompt + right-padded completion.
        entropy: "none", "detached" (for the metric) or "grad" (for an entropy bonus).
        last_prompt_hidden: also return the final hidden state at the last prompt token (N, H).
    Returns:
        log_probs (N, C) float32, entropy (N, C) float32 or None, hidden (N, H) or None.
    Position ids come from the mask, as in generate, so left padding does not shift positions.
    Only the C + 1 last positions' logits are computed (`logits_to_keep`).
    """
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    out = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        logits_to_keep=n_completion + 1,
        use_cache=False,
        output_hidden_states=last_prompt_hidden,
    )
    logits = out.logits[:, :-1].float() / temperature  # (N, C, V): position t predicts token t + 1
    targets = input_ids[:, -n_completion:]
    log_z = torch.logsumexp(logits, dim=-1)
    log_probs = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - log_z
    ent = None
    if entropy != "none":
        with torch.set_grad_enabled(entropy == "grad" and torch.is_grad_enabled()):
            ent = log_z - (torch.softmax(logits, dim=-1) * logits).sum(-1)
    hidden = out.hidden_states[-1][:, -n_completion - 1] if last_prompt_hidden else None
    return log_probs, ent, hidden


def rollout_is_weights(
    trainer_lp: Tensor, sampling_lp: Tensor, mask: Tensor, mode: str, cap: float
) -> Tensor | None:
    """TRL's rollout-correction weights pi_trainer / pi_sampler, (N, C), detached; None for 'none'."""
    if mode == "none":
        return None
    log_ratio = (trainer_lp - sampling_lp).detach() * mask
    if mode == "token_truncate":
        return log_ratio.exp().clamp(max=cap)
    seq = log_ratio.sum(-1, keepdim=True).exp().expand_as(log_ratio)
    if mode == "sequence_truncate":
        return seq.clamp(max=cap)
    return (seq <= cap).to(seq.dtype)  # sequence_mask
