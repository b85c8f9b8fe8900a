"""Rollouts with Hugging Face transformers `generate` (CPU and GPU), the default backend.

Sampling runs inside a logits processor with an explicit `torch.Generator` seeded from
`sampling.seed`, and `generate` itself decodes greedily over the processor's output (a one-hot
choice). So a rollout is a function of (weights, prompts, sampling.seed) and never touches the
global RNG, and the processor records the log-prob of each sampled token as it goes: no (N, C, V)
score tensors are kept.

Log-probs are those of the distribution actually sampled from: log_softmax(logits / T),
renormalised over the top-p nucleus when top_p < 1 (TRL's and vLLM's `processed_logprobs`). With
top_p = 1 they equal the trainer's recomputed log-probs up to kernel differences (KV cache vs one
full forward pass).

The model's own generation_config (top_k, repetition penalty, ...) is ignored on purpose: the
trainer's log-probs assume plain temperature / top-p sampling.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import torch

from llm.rollout import RolloutBatch, SamplingConfig, eos_token_ids

Tensor = torch.Tensor


def top_p_filter(logits: Tensor, top_p: float) -> Tensor:
    """Set to -inf the logits outside the smallest set of tokens whose probability reaches top_p.

    logits: (N, V) float. The most likely token is always kept.
    """
    if top_p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    probs = sorted_logits.softmax(-1)
    # drop a token when the mass strictly before it already reaches top_p
    drop_sorted = (probs.cumsum(-1) - probs) >= top_p
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


class _Sampler:
    """Logits processor that samples the next token itself and forces `generate` to take it.

    Records per step the (N,) log-prob of the chosen token under the processed distribution.
    """

    def __init__(self, temperature: float, top_p: float, generator: torch.Generator) -> None:
        self.temperature = temperature
        self.top_p = top_p
        self.generator = generator
        self.log_probs: list[Tensor] = []

    def __call__(self, input_ids: Tensor, scores: Tensor) -> Tensor:
        logits = top_p_filter(scores.float() / self.temperature, self.top_p)
        logp = torch.log_softmax(logits, dim=-1)
        # exponential race: argmax p_i / E_i with E_i ~ Exp(1) is a draw from p (as in vLLM);
        # cheaper than multinomial, and NaN logits flow on to the loss check instead of raising
        # (E = -log U: four times faster on CPU than Tensor.exponential_ or torch.multinomial)
        race = -torch.rand(logp.shape, generator=self.generator, device=logp.device).log()
        token = (logp.exp() / race).argmax(-1, keepdim=True)  # (N, 1)
        self.log_probs.append(logp.gather(1, token).squeeze(1))
        return torch.full_like(scores, float("-inf")).scatter_(1, token, 0.0)


class HFGenerator:
    """`Generator` over a transformers causal LM that the trainer also updates (shared weights).

    Args:
        model: the policy (a `PreTrainedModel`); generation runs in eval mode, the previous mode
            is restored afterwards.
        tokenizer: its tokenizer; prompts are left-padded with its pad token.
        generation_batch_size: rows (prompts x G) per `generate` call; None = all at once.
            Lower it to bound the KV-cache memory of long completions.
        autocast_dtype: e.g. torch.bfloat16 to generate under autocast on CUDA; None = off.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        *,
        generation_batch_size: int | None = None,
        autocast_dtype: torch.dtype | None = None,
    ) -> None:
        if generation_batch_size is not None and generation_batch_size < 1:
            raise ValueError(
                f"generation_batch_size must be >= 1 or None, got {generation_batch_size}"
            )
        if tokenizer.pad_token_id is None:
            raise ValueError("tokenizer.pad_token_id is None: set a pad token (e.g. the EOS token)")
        self.model = model
        self.tokenizer = tokenizer
        self.generation_batch_size = generation_batch_size
        self.autocast_dtype = autocast_dtype
        self.eos_token_ids = eos_token_ids(tokenizer, getattr(model, "generation_config", None))

    def sync_weights(self, model: torch.nn.Module) -> None:
        """The generator samples from the trainer's module itself: only follow a new object."""
        self.model = model

    @torch.no_grad()
    def generate(self, prompts: list[str], sampling: SamplingConfig) -> RolloutBatch:
        """Sample sampling.num_generations completions per prompt (see `RolloutBatch`).

        Rows [i*G, (i+1)*G) belong to prompt i. Completions stop at the first EOS (kept, and
        masked in) or after max_completion_length tokens (truncated).
        """
        from transformers import GenerationConfig, LogitsProcessorList

        if not prompts:
            raise ValueError("prompts must be a non-empty list of strings, got []")
        G = sampling.num_generations
        device = next(self.model.parameters()).device
        # left padding whatever the tokenizer's default: completions start at the same column
        enc = self.tokenizer(
            prompts,
            add_special_tokens=False,
            padding=True,
            padding_side="left",
            return_tensors="pt",
        )
        if int(enc["attention_mask"].sum(-1).min()) == 0:
            raise ValueError("prompts: an empty prompt tokenizes to no tokens")
        prompt_ids = enc["input_ids"].repeat_interleave(G, dim=0).to(device)
        prompt_mask = enc["attention_mask"].repeat_interleave(G, dim=0).to(device)
        N, P = prompt_ids.shape
        pad = self.tokenizer.pad_token_id
        gen_config = GenerationConfig(
            do_sample=False,  # the _Sampler draws; generate takes its one-hot choice
            max_new_tokens=sampling.max_completion_length,
            eos_token_id=self.eos_token_ids,
            pad_token_id=pad,
            use_cache=True,
        )
        generator = torch.Generator(device=device).manual_seed(sampling.seed)
        rows = self.generation_batch_size or N
        chunks_ids, chunks_lp = [], []
        was_training = self.model.training
        # None fields of gen_config would be filled from the model's own generation_config
        # (repetition penalty, top_k, ...): hide it for the duration of the call
        model_gen_config = self.model.generation_config
        self.model.generation_config = GenerationConfig(
            eos_token_id=self.eos_token_ids, pad_token_id=pad
        )
        self.model.eval()
        amp = (
            torch.autocast(device.type, dtype=self.autocast_dtype)
            if self.autocast_dtype is not None
            else nullcontext()
        )
        try:
            for start in range(0, N, rows):
                sampler = _Sampler(sampling.temperature, sampling.top_p, generator)
                with amp:
                    out = self.model.generate(
                        input_ids=prompt_ids[start : start + rows],
                        attention_mask=prompt_mask[start : start + rows],
                        generation_config=gen_config,
                        logits_processor=LogitsProcessorList([sampler]),
                    )
                completion = out[:, P:]
                # generate may run (and then undo) extra steps past the stop: keep the first C'
                chunks_ids.append(completion)
                chunks_lp.append(torch.stack(sampler.log_probs[: completion.shape[1]], dim=1))
        finally:
            self.model.train(was_training)
            self.model.generation_config = model_gen_config
        C = max(c.shape[1] for c in chunks_ids)
        completion_ids = torch.cat([_pad_right(c, C, pad) for c in chunks_ids])
        log_probs = torch.cat([_pad_right(c, C, 0.0) for c in chunks_lp])
        is_eos = torch.isin(completion_ids, torch.tensor(self.eos_token_ids, device=device))
        has_eos = is_eos.any(-1)
        length = torch.where(
            has_eos, is_eos.int().argmax(-1) + 1, torch.full_like(has_eos, C, dtype=torch.long)
        )
        completion_mask = (torch.arange(C, device=device) < length.unsqueeze(-1)).long()
        completion_ids = completion_ids.masked_fill(completion_mask == 0, pad)
        texts = self.tokenizer.batch_decode(
            [ids[:n] for ids, n in zip(completion_ids.tolist(), length.tolist(), strict=True)],
            skip_special_tokens=True,
        )
        return RolloutBatch(
            prompt_ids=prompt_ids.cpu(),
            prompt_mask=prompt_mask.cpu(),
            completion_ids=completion_ids.cpu(),
            completion_mask=completion_mask.cpu(),
            sampling_log_probs=(log_probs * completion_mask).float().cpu(),
            completions=texts,
            truncated=(~has_eos).cpu(),
            group_ids=torch.arange(len(prompts)).repeat_interleave(G),
        )


def _pad_right(x: Tensor, width: int, value: float | int) -> Tensor:
    if x.shape[1] == width:
        return x
    return torch.nn.functional.pad(x, (0, width - x.shape[1]), value=value)
