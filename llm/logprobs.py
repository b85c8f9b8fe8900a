"""Per-token log-probs of completions under a model, and the rollout-correction weights between
the trainer's log-probs and the sampling engine's.

Both are pure functions of tensors (and a model forward): the trainer, the GPU check and the
tests call them the same way.
"""

from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint

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
    chunk_size: int | None = None,
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """Log-probs of the last `n_completion` tokens of each row under `model` at `temperature`.

    Args:
        input_ids, attention_mask: (N, P + C) left-padded prompt + right-padded completion.
        entropy: "none", "detached" (for the metric) or "grad" (for an entropy bonus).
        last_prompt_hidden: also return the final hidden state at the last prompt token (N, H).
        chunk_size: None computes the (N, C, V) logits at once. An int runs the decoder, then
            the LM head and log-softmax over chunks of `chunk_size` tokens, each under activation
            checkpointing: the logits never exist beyond one chunk (chunk_size x V floats, in the
            backward pass too, which recomputes them), at the cost of a second head matmul.
    Returns:
        log_probs (N, C) float32, entropy (N, C) float32 or None, hidden (N, H) or None.
    Position ids come from the mask, as in generate, so left padding does not shift positions.
    Only the C + 1 last positions' logits are computed (`logits_to_keep`).
    """
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    targets = input_ids[:, -n_completion:]
    if chunk_size is None:
        out = model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            logits_to_keep=n_completion + 1,
            use_cache=False,
            output_hidden_states=last_prompt_hidden,
        )
        logits = out.logits[:, :-1].float() / temperature  # (N, C, V): position t predicts t + 1
        log_probs, ent = _token_log_probs(logits, targets, entropy)
        last = out.hidden_states[-1] if last_prompt_hidden else None
    else:
        head = _lm_head(model, chunk_size)
        last = model.get_decoder()(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=False,
        ).last_hidden_state  # (N, P + C, H), after the final norm
        log_probs, ent = _chunked_log_probs(
            head, last[:, -n_completion - 1 : -1], targets, temperature, entropy, chunk_size
        )
    hidden = last[:, -n_completion - 1] if last_prompt_hidden else None
    return log_probs, ent, hidden


def _token_log_probs(logits: Tensor, targets: Tensor, entropy: str) -> tuple[Tensor, Tensor | None]:
    """log-softmax at the targets and (optionally) the entropy, over the last axis V."""
    log_z = torch.logsumexp(logits, dim=-1)
    log_probs = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - log_z
    ent = None
    if entropy != "none":
        with torch.set_grad_enabled(entropy == "grad" and torch.is_grad_enabled()):
            ent = log_z - (torch.softmax(logits, dim=-1) * logits).sum(-1)
    return log_probs, ent


# config attributes of architectures whose forward changes the logits after the LM head
_LOGIT_POSTPROCESSING = ("final_logit_softcapping", "logit_scale", "logits_scaling")


def _lm_head(model: torch.nn.Module, chunk_size: int) -> torch.nn.Module:
    """The output layer, once the model is known to use its logits as they are."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1 or None, got {chunk_size}")
    for name in _LOGIT_POSTPROCESSING:
        if getattr(model.config, name, None) not in (None, 1, 1.0):
            raise ValueError(
                f"chunked log-probs call the LM head directly, but this model post-processes its "
                f"logits ({name}={getattr(model.config, name)}); set the chunk size to null"
            )
    return model.get_output_embeddings()


def _chunked_log_probs(
    head: torch.nn.Module,
    hidden: Tensor,
    targets: Tensor,
    temperature: float,
    entropy: str,
    chunk_size: int,
) -> tuple[Tensor, Tensor | None]:
    """`_token_log_probs` of head(hidden) (N, C, H) over chunks of chunk_size tokens, each under
    activation checkpointing, so one chunk's logits are the only ones alive at a time."""
    n, c = targets.shape
    h, t = hidden.reshape(n * c, -1), targets.reshape(n * c)

    def chunk(h_part: Tensor, t_part: Tensor) -> tuple[Tensor, Tensor | None]:
        return _token_log_probs(head(h_part).float() / temperature, t_part, entropy)

    parts = [
        checkpoint(chunk, h[i : i + chunk_size], t[i : i + chunk_size], use_reentrant=False)
        for i in range(0, n * c, chunk_size)
    ]
    log_probs = torch.cat([lp for lp, _ in parts]).view(n, c)
    ent = None if entropy == "none" else torch.cat([e for _, e in parts]).view(n, c)
    return log_probs, ent


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
