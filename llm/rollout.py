"""Rollouts behind one interface: a `Generator` turns prompts into sampled completions with the
per-token log-probs of the sampled tokens under the sampling policy.

Backends: `llm.rollout_hf.HFGenerator` (transformers `generate`, CPU and GPU) and
`llm.rollout_vllm.VLLMGenerator` (vLLM, optional extra, imported lazily).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

Tensor = torch.Tensor


@dataclass
class SamplingConfig:
    """Sampling options, TRL names."""

    num_generations: int = field(default=8, metadata={"help": "completions per prompt (G)"})
    max_completion_length: int = field(
        default=256, metadata={"help": "max new tokens per completion"}
    )
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature (> 0)"})
    top_p: float = field(default=1.0, metadata={"help": "nucleus sampling mass in (0, 1]"})
    seed: int = field(default=0, metadata={"help": "sampling seed"})

    def __post_init__(self) -> None:
        if self.num_generations < 1:
            raise ValueError(f"num_generations must be >= 1, got {self.num_generations}")
        if self.max_completion_length < 1:
            raise ValueError(
                f"max_completion_length must be >= 1, got {self.max_completion_length}"
            )
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")


@dataclass
class RolloutBatch:
    """N = len(prompts) * G completions, grouped: rows [i*G, (i+1)*G) belong to prompt i.

    Attributes:
        prompt_ids: (N, P) left-padded prompt token ids; prompt_mask (N, P) 1 on real tokens.
        completion_ids: (N, C) right-padded completion ids; completion_mask (N, C) 1 up to and
            including EOS (or all C tokens when truncated).
        sampling_log_probs: (N, C) log-prob of each sampled token under the sampling policy
            (at the sampling temperature), 0 on padding.
        completions: N decoded completion texts (special tokens skipped).
        truncated: (N,) bool, True when no EOS was produced within max_completion_length.
        group_ids: (N,) long, the prompt index of each row.
    """

    prompt_ids: Tensor
    prompt_mask: Tensor
    completion_ids: Tensor
    completion_mask: Tensor
    sampling_log_probs: Tensor
    completions: list[str]
    truncated: Tensor
    group_ids: Tensor


class Generator(Protocol):
    def generate(self, prompts: list[str], sampling: SamplingConfig) -> RolloutBatch:
        """Sample sampling.num_generations completions for each prompt (already chat-formatted)."""
        ...

    def sync_weights(self, model: torch.nn.Module) -> None:
        """Make the generator sample from `model`'s current weights (no-op when it shares them)."""
        ...


def derive_seed(seed: int, *keys: int) -> int:
    """A 63-bit seed that is a function of (seed, *keys), e.g. (run seed, purpose, step).

    Counter-based seeding: the sampling noise of step t does not depend on what ran before it,
    so a resumed run draws exactly what an uninterrupted one would.
    """
    import numpy as np

    state = np.random.SeedSequence([seed, *keys]).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


def eos_token_ids(tokenizer: Any, generation_config: Any = None) -> list[int]:
    """EOS ids: the tokenizer's plus the model's generation_config ones (instruct models often
    list two). Raises ValueError when there is none."""
    ids = {int(tokenizer.eos_token_id)} if tokenizer.eos_token_id is not None else set()
    extra = getattr(generation_config, "eos_token_id", None) if generation_config else None
    if extra is not None:
        ids.update([int(extra)] if isinstance(extra, int) else [int(i) for i in extra])
    if not ids:
        raise ValueError(
            "tokenizer has no eos_token_id and the model no generation_config.eos_token_id"
        )
    return sorted(ids)
