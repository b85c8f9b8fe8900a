"""The LLM trainer: GRPO-style RL with any labkit objective (LAD by default).

One training step, top to bottom in `Trainer.train_step`:
1. take the next B prompts (data order is a seeded permutation per epoch);
2. sample G completions per prompt with the rollout backend (HF generate or vLLM), with the
   per-token log-probs of the sampling policy;
3. score them with the reward functions and turn the rewards into group advantages
   (labkit.advantages: grpo, dr_grpo, rloo, raw);
4. pi_old log-probs: recomputed by the trainer in a no-grad pass when the policy moves before the
   last minibatch is used (num_iterations > 1 or several minibatches); otherwise the first
   forward pass happens at pi_old's weights and its detached log-probs *are* pi_old (TRL does
   the same); reference log-probs only when beta > 0 (the reference is only loaded then);
5. mu = num_iterations epochs over shuffled minibatches, each one optimizer step of AdamW with
   gradient accumulation over micro-batches, any objective of the policy-loss registry through
   `labkit.losses.compute_loss`, global-norm clipping, warm-up and a LR schedule;
6. sync the rollout engine's weights and log.

Exactness: micro-batch losses are weighted by their share of the minibatch's tokens (token-mean)
or sequences (seq-mean-*), so gradient accumulation gives the gradient of the whole minibatch's
loss. Sampling, data order and shuffles are seeded from (seed, step) (`derive_seed`), so a run
resumed from a checkpoint repeats exactly what an uninterrupted run does (on CPU).

Departures: the FlowRL baseline gets its learned log Z from a linear head on the last prompt
token's final hidden state (FlowRL's ProjZ is an MLP over several layers).
A non-finite loss or gradient norm stops the run with `NonFiniteError` before the optimizer step;
checkpoints already written are left as they are.
A step where no sample got a reward makes no update at all (reward functions run under a time
limit and their errors score None: llm/rewards.py); trainer.max_skipped_steps of them in a row
stop the run with `RewardError`. One process per output_dir (labkit.io.DirLock); resume=auto
refuses a changed config unless trainer.allow_config_change, and skips corrupt checkpoints
(docs/robustness.md).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from labkit.advantages import compute_advantages, group_stats
from labkit.errors import NonFiniteError
from labkit.io import (
    DirLock,
    append_jsonl,
    atomic_write,
    check_output_dir,
    provenance,
    write_json,
)
from labkit.losses import compute_loss, masked_mean
from llm import checkpoint as ckpt
from llm.config import TrainConfig
from llm.data import format_prompt, load_datasets, record_columns
from llm.evaluate import evaluate_model, write_eval
from llm.logging import METRICS_FILE, MetricsLogger
from llm.logprobs import completion_log_probs, rollout_is_weights
from llm.models import load_model, load_tokenizer
from llm.rewards import RewardError, RewardSet, with_code_sandbox
from llm.rollout import RolloutBatch, derive_seed
from llm.rollout_hf import HFGenerator
from llm.rollout_vllm import logprob_mismatch  # no vllm import at module level

logger = logging.getLogger(__name__)
Tensor = torch.Tensor
# derive_seed purposes: each stream of randomness gets its own key
DATA, SAMPLE, SHUFFLE = 1, 2, 3


@dataclasses.dataclass
class UpdateBatch:
    """The tensors of one step's update, on the training device. N = B x G rows."""

    input_ids: Tensor  # (N, P + C)
    attention_mask: Tensor  # (N, P + C)
    loss_mask: Tensor  # (N, C) float: completion tokens that enter the loss
    advantages: Tensor  # (N,)
    sampling_log_probs: Tensor  # (N, C)
    old_log_probs: Tensor  # (N, C): pi_old, filled by the trainer
    ref_log_probs: Tensor | None  # (N, C) when beta > 0
    n_prompt: int

    def rows(self, idx: Tensor) -> tuple[Tensor, Tensor, int]:
        """input_ids, attention_mask of `idx` trimmed to their real extent; and C of the trim."""
        ids, am = self.input_ids[idx], self.attention_mask[idx]
        comp = am[:, self.n_prompt :]
        c = int(comp.sum(-1).max()) if comp.numel() else 0
        c = max(c, 1)
        first = int((am[:, : self.n_prompt].sum(0) > 0).nonzero()[0])  # drop all-pad prompt columns
        end = self.n_prompt + c
        return ids[:, first:end], am[:, first:end], c


# keys that do not change what a run computes: a resume may change them freely
RESUME_FREE_KEYS = frozenset(
    {
        "trainer.resume",
        "trainer.allow_config_change",
        "trainer.progress_bar",
        "trainer.logging_steps",
    }
)


def _flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"trainer": {"seed": 0}} -> {"trainer.seed": 0}."""
    out: dict[str, Any] = {}
    for k, v in config.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _pad_to(x: Tensor | None, width: int) -> Tensor | None:
    if x is None or x.shape[-1] == width:
        return x
    return F.pad(x, (0, width - x.shape[-1]))


def _versions() -> dict[str, str]:
    import transformers

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }


class Trainer:
    """Trains `config.model.path` with `config.algorithm` on `config.data`.

    model, tokenizer, train_records, eval_records: pass objects to skip loading them (tests,
    notebooks); otherwise they come from the config.
    on_step: called as on_step(trainer, step) after every training step is logged (and before
    its checkpoint), e.g. to evaluate along the way; it sees the weights of that step.
    """

    def __init__(
        self,
        config: TrainConfig,
        *,
        model: torch.nn.Module | None = None,
        tokenizer: Any = None,
        train_records: list[dict] | None = None,
        eval_records: list[dict] | None = None,
        on_step: Callable[[Trainer, int], None] | None = None,
    ) -> None:
        self.config = cfg = config
        self.on_step = on_step
        self.device = cfg.check_machine(data_files=train_records is None)
        use_bf16 = cfg.trainer.bf16 and self.device.type == "cuda"
        self.autocast_dtype = torch.bfloat16 if use_bf16 else None
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(cfg.model.path)
        if model is None:
            model = load_model(cfg.model.path, cfg.model.dtype, self.device, seed=cfg.trainer.seed)
        self.model = model.to(self.device)
        if cfg.model.gradient_checkpointing:
            self.model.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs={"use_reentrant": False}
            )
        self.model.train()
        self.ref_model = None
        if cfg.algorithm.beta > 0:  # as in TRL: no reference model at all when beta == 0
            ref_spec = cfg.model.ref_path or cfg.model.path
            self.ref_model = load_model(
                ref_spec, cfg.model.dtype, self.device, seed=cfg.trainer.seed
            ).eval()
            self.ref_model.requires_grad_(False)
        if train_records is None:
            train_records, loaded_eval = load_datasets(cfg.data)
            eval_records = loaded_eval if eval_records is None else eval_records
        if not train_records:
            raise ValueError(f"data.dataset={cfg.data.dataset!r} holds no training records")
        self.train_records, self.eval_records = train_records, eval_records or []
        self.rewards = RewardSet(
            with_code_sandbox(cfg.data.reward_funcs, cfg.data.code_sandbox),
            cfg.data.reward_weights,
            timeout=cfg.data.reward_timeout_s,
            max_stuck=cfg.data.reward_max_stuck,
        )
        self.adv_config = cfg.algorithm.advantage_config()
        # extra trainable modules (FlowRL's log-partition head), saved with the checkpoint
        self.modules: dict[str, torch.nn.Module] = {}
        if cfg.algorithm.loss_mode == "flowrl":
            hidden = self.model.config.get_text_config().hidden_size
            self.modules["log_z"] = torch.nn.Linear(hidden, 1).to(self.device)
        params = [p for p in self.model.parameters() if p.requires_grad]
        params += [p for m in self.modules.values() for p in m.parameters()]
        self.params = params
        t = cfg.trainer
        self.optimizer = torch.optim.AdamW(
            params,
            lr=t.learning_rate,
            betas=(t.adam_beta1, t.adam_beta2),
            eps=t.adam_epsilon,
            weight_decay=t.weight_decay,
        )
        n_minibatches = t.train_batch_size // t.prompts_per_update
        self.total_updates = t.max_steps * cfg.algorithm.num_iterations * n_minibatches
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.generator = self._make_generator()
        self.step = 0
        self.skipped_in_a_row = 0  # steps whose rewards were all skipped (no update made)
        self._last_samples: tuple[list[dict], list[str], Tensor, Tensor] | None = None

    # --- setup helpers ----------------------------------------------------------------------

    def _lr_factor(self, update: int) -> float:
        """Multiplier of the peak LR after `update` optimizer steps: linear warm-up, then the schedule."""
        t = self.config.trainer
        if update < t.warmup_steps:
            return (update + 1) / (t.warmup_steps + 1)
        progress = (update - t.warmup_steps) / max(1, self.total_updates - t.warmup_steps)
        if t.lr_scheduler_type == "linear":
            return max(0.0, 1.0 - progress)
        if t.lr_scheduler_type == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
        return 1.0

    def _make_generator(self):
        r = self.config.rollout
        if r.backend == "hf":
            return HFGenerator(
                self.model,
                self.tokenizer,
                generation_batch_size=r.generation_batch_size,
                autocast_dtype=self.autocast_dtype,
            )
        from llm.rollout_vllm import VLLMGenerator  # optional extra, imported only when asked for

        return VLLMGenerator(
            self.model,
            self.tokenizer,
            dtype=r.vllm_dtype,
            max_model_len=r.vllm_max_model_len,
            gpu_memory_utilization=r.vllm_gpu_memory_utilization,
            seed=self.config.trainer.seed,
        )

    def _now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def _autocast(self):
        if self.autocast_dtype is None:
            return torch.autocast(self.device.type, enabled=False)
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    # --- data order -------------------------------------------------------------------------

    def step_records(self, step: int) -> list[dict]:
        """The B records of `step` (1-based): prompts (step-1)*B ... step*B - 1 of the stream of
        per-epoch seeded permutations of the training set."""
        n, B = len(self.train_records), self.config.trainer.train_batch_size
        out, perms = [], {}
        for i in range((step - 1) * B, step * B):
            epoch, j = divmod(i, n)
            if epoch not in perms:
                g = torch.Generator().manual_seed(
                    derive_seed(self.config.trainer.seed, DATA, epoch)
                )
                perms[epoch] = torch.randperm(n, generator=g).tolist()
            out.append(self.train_records[perms[epoch][j]])
        return out

    def format(self, record: dict) -> str:
        d = self.config.data
        return format_prompt(record, self.tokenizer, d.system_prompt, d.instruction)

    # --- one training step --------------------------------------------------------------------

    def train_step(self, step: int) -> dict[str, Tensor | float]:
        """Rollout, rewards, advantages and the policy update of step `step`; returns its metrics."""
        cfg = self.config
        G = cfg.rollout.num_generations
        t_start = self._now()

        # 1. the prompts of this step
        records = self.step_records(step)
        prompts = [self.format(r) for r in records]

        # 2. rollout: B x G completions with the sampling policy's log-probs
        sampling = cfg.rollout.sampling(seed=derive_seed(cfg.trainer.seed, SAMPLE, step))
        rollout = self.generator.generate(prompts, sampling)
        t_rollout = self._now()

        # 3. rewards -> group advantages (NaN reward = skipped sample, advantage 0), in float64:
        # in float32 a reward of 1e30 squares to inf in the std and every advantage became 0
        group_records = [r for r in records for _ in range(G)]
        rewards, per_fn = self.rewards(
            [r["prompt"] for r in group_records], rollout.completions, record_columns(group_records)
        )
        advantages = compute_advantages(rewards, rollout.group_ids, self.adv_config)
        t_reward = self._now()

        # 4.-5. pi_old / reference log-probs, then mu epochs of minibatch updates; a step with no
        # scored sample makes none (AdamW would still apply weight decay and momentum)
        if bool(torch.isnan(rewards).all()):
            update_metrics = self._skip_update(step)
        else:
            self.skipped_in_a_row = 0
            batch = self._update_batch(rollout, advantages.float())
            update_metrics = {**self._update(batch, step), "skipped_step": 0.0}
            self.generator.sync_weights(self.model)
        t_end = self._now()

        # 6. metrics (tensors; the logger syncs once)
        comp_mask = rollout.completion_mask.float()
        n_tokens = comp_mask.sum()
        metrics: dict[str, Tensor | float] = {}
        metrics.update(self._reward_metrics(rewards, per_fn, rollout.group_ids))
        lengths = comp_mask.sum(-1)
        metrics["completions/mean_length"] = lengths.mean()
        metrics["completions/min_length"] = lengths.min()
        metrics["completions/max_length"] = lengths.max()
        metrics["completions/clipped_ratio"] = rollout.truncated.float().mean()
        metrics["advantages/mean"] = advantages.mean()
        metrics["advantages/abs_mean"] = advantages.abs().mean()
        metrics.update(update_metrics)
        metrics["tokens/completion"] = n_tokens
        metrics["tokens/s"] = n_tokens / (t_end - t_start)
        metrics["timing/step_s"] = t_end - t_start
        metrics["timing/rollout_s"] = t_rollout - t_start
        metrics["timing/reward_s"] = t_reward - t_rollout
        metrics["timing/update_s"] = t_end - t_reward
        metrics["timing/rollout_per_token"] = (t_rollout - t_start) / n_tokens.clamp(min=1)
        metrics["timing/update_per_token"] = (t_end - t_reward) / n_tokens.clamp(min=1)
        self._last_samples = (group_records, rollout.completions, rewards, advantages)
        return metrics

    def _skip_update(self, step: int) -> dict[str, Tensor | float]:
        """Count a step whose rewards were all skipped; stop after trainer.max_skipped_steps."""
        self.skipped_in_a_row += 1
        limit = self.config.trainer.max_skipped_steps
        why = "; ".join(f"{k}: {v}" for k, v in self.rewards.failures.items()) or "all None/NaN"
        if self.skipped_in_a_row >= limit:
            raise RewardError(
                f"step {step}: no sample got a reward in {self.skipped_in_a_row} consecutive steps "
                f"(trainer.max_skipped_steps={limit}; last: {why}); stopping. Check the reward "
                f"functions data.reward_funcs={self.rewards.names}"
            )
        logger.warning(
            "step %d: every sample's reward was skipped (%s); no optimizer step (%d in a row, "
            "training stops at trainer.max_skipped_steps=%d)",
            step,
            why,
            self.skipped_in_a_row,
            limit,
        )
        return {
            "actor/lr": self.scheduler.get_last_lr()[0],
            "actor/num_updates": 0.0,
            "skipped_step": 1.0,
        }

    def _reward_metrics(
        self, rewards: Tensor, per_fn: dict[str, Tensor], group_ids: Tensor
    ) -> dict[str, Tensor]:
        """TRL's reward keys: reward, reward_std, rewards/<fn>/{mean,std}, frac_reward_zero_std."""
        valid = ~torch.isnan(rewards)
        r = rewards[valid]
        out = {
            "reward": r.mean() if r.numel() else torch.tensor(float("nan")),
            "reward_std": r.std() if r.numel() > 1 else torch.tensor(0.0),
            "frac_reward_skipped": (~valid).float().mean(),
        }
        for name, v in per_fn.items():
            out[f"rewards/{name}/failed"] = torch.tensor(float(name in self.rewards.failures))
            vv = v[~torch.isnan(v)]
            out[f"rewards/{name}/mean"] = vv.mean() if vv.numel() else torch.tensor(float("nan"))
            out[f"rewards/{name}/std"] = vv.std() if vv.numel() > 1 else torch.tensor(0.0)
        _, _, std = group_stats(rewards, group_ids)
        first = torch.ones_like(group_ids, dtype=torch.bool)
        first[1:] = group_ids[1:] != group_ids[:-1]  # one row per group (rows are grouped)
        out["frac_reward_zero_std"] = (std[first] == 0).float().mean()
        return out

    def _update_batch(self, rollout: RolloutBatch, advantages: Tensor) -> UpdateBatch:
        dev = self.device
        loss_mask = rollout.completion_mask.float()
        if self.config.algorithm.mask_truncated_completions:
            loss_mask = loss_mask * (~rollout.truncated).float().unsqueeze(-1)
        return UpdateBatch(
            input_ids=torch.cat([rollout.prompt_ids, rollout.completion_ids], dim=1).to(dev),
            attention_mask=torch.cat([rollout.prompt_mask, rollout.completion_mask], dim=1).to(dev),
            loss_mask=loss_mask.to(dev),
            advantages=advantages.to(dev),
            sampling_log_probs=rollout.sampling_log_probs.to(dev),
            old_log_probs=torch.zeros_like(rollout.sampling_log_probs, device=dev),
            ref_log_probs=None,
            n_prompt=rollout.prompt_ids.shape[1],
        )

    @torch.no_grad()
    def _log_probs_no_grad(
        self, model: torch.nn.Module, batch: UpdateBatch, micro_rows: int
    ) -> Tensor:
        out = torch.zeros_like(batch.old_log_probs)
        for start in range(0, batch.input_ids.shape[0], micro_rows):
            idx = torch.arange(
                start, min(start + micro_rows, batch.input_ids.shape[0]), device=self.device
            )
            ids, am, c = batch.rows(idx)
            with self._autocast():
                lp, _, _ = completion_log_probs(
                    model,
                    ids,
                    am,
                    c,
                    self.config.rollout.temperature,
                    chunk_size=self.config.model.logprob_chunk_size,
                )
            out[idx, :c] = lp
        return out

    def _update(self, batch: UpdateBatch, step: int) -> dict[str, Tensor]:
        """mu epochs x minibatches of optimizer steps; returns the mean of the loss metrics."""
        cfg, algo = self.config, self.config.algorithm
        G = cfg.rollout.num_generations
        N = batch.input_ids.shape[0]
        mb_rows = cfg.trainer.prompts_per_update * G
        micro_rows = mb_rows // cfg.trainer.gradient_accumulation_steps
        n_minibatches = N // mb_rows
        # the first forward runs at pi_old's weights unless an optimizer step comes before it
        recompute = algo.num_iterations > 1 or n_minibatches > 1
        was_training = self.model.training
        if recompute:
            self.model.eval()  # no dropout in the pi_old pass
            batch.old_log_probs = self._log_probs_no_grad(self.model, batch, micro_rows)
            self.model.train(was_training)
        if self.ref_model is not None:
            batch.ref_log_probs = self._log_probs_no_grad(self.ref_model, batch, micro_rows)
        sums: dict[str, Tensor] = {}
        n_updates = 0
        for epoch in range(algo.num_iterations):
            if n_minibatches > 1:
                g = torch.Generator().manual_seed(
                    derive_seed(cfg.trainer.seed, SHUFFLE, step, epoch)
                )
                order = torch.randperm(N, generator=g).to(self.device)
            else:
                order = torch.arange(N, device=self.device)
            for mb in range(n_minibatches):
                rows = order[mb * mb_rows : (mb + 1) * mb_rows]
                metrics = self._optimizer_step(batch, rows, micro_rows, epoch == 0, recompute, step)
                if metrics is None:
                    continue
                for k, v in metrics.items():
                    sums[k] = sums.get(k, 0.0) + v
                n_updates += 1
        out = {k: v / max(n_updates, 1) for k, v in sums.items()}
        out["actor/lr"] = self.scheduler.get_last_lr()[0]
        out["actor/num_updates"] = float(n_updates)
        # sampler vs trainer log-probs of the sampled tokens (pi_old): ~1e-6 for HF, larger for vLLM
        if bool(batch.loss_mask.any()):
            out.update(
                logprob_mismatch(
                    batch.sampling_log_probs,
                    batch.old_log_probs,
                    batch.loss_mask,
                    cap=algo.rollout_is_cap,
                )
            )
        return out

    def _optimizer_step(
        self,
        batch: UpdateBatch,
        rows: Tensor,
        micro_rows: int,
        first_epoch: bool,
        recomputed: bool,
        step: int,
    ) -> dict[str, Tensor] | None:
        """Gradient accumulation over the micro-batches of `rows`, clipping, one AdamW step.

        first_epoch: log the token entropy; recomputed: pi_old was computed beforehand (else
        this pass is at pi_old's weights and stores its log-probs as pi_old).
        """
        cfg, algo = self.config, self.config.algorithm
        agg = algo.loss_agg_mode
        mask = batch.loss_mask[rows]
        if not bool(mask.any()):
            return None  # e.g. every completion truncated with mask_truncated_completions
        # each micro-batch's share of the minibatch loss (see the module docstring)
        if agg == "token-mean":
            unit = mask.sum(-1)
        elif agg == "seq-mean-token-sum-norm":
            unit = torch.ones_like(mask[:, 0])
        else:
            unit = (mask.sum(-1) > 0).float()
        total_unit = unit.sum()
        self.optimizer.zero_grad(set_to_none=True)
        loss_sum = torch.zeros((), device=self.device)
        metric_sums: dict[str, Tensor] = {}
        first_pass = first_epoch and not recomputed
        want_entropy = "grad" if algo.entropy_coef > 0 else ("detached" if first_epoch else "none")
        for start in range(0, rows.numel(), micro_rows):
            idx = rows[start : start + micro_rows]
            share = unit[start : start + micro_rows].sum() / total_unit
            m = batch.loss_mask[idx]
            if not bool(m.any()):
                continue
            ids, am, c = batch.rows(idx)
            with self._autocast():
                log_probs, entropy, hidden = completion_log_probs(
                    self.model,
                    ids,
                    am,
                    c,
                    cfg.rollout.temperature,
                    entropy=want_entropy,
                    last_prompt_hidden="log_z" in self.modules,
                    chunk_size=cfg.model.logprob_chunk_size,
                )
            m = m[:, :c]
            if first_pass:  # weights unchanged since the rollout: these are pi_old's log-probs
                batch.old_log_probs[idx, :c] = log_probs.detach()
            old = batch.old_log_probs[idx, :c]
            ref = batch.ref_log_probs[idx, :c] if batch.ref_log_probs is not None else None
            is_w = rollout_is_weights(
                old, batch.sampling_log_probs[idx, :c], m, algo.rollout_is, algo.rollout_is_cap
            )
            extras: dict[str, Any] = {}
            if hidden is not None:
                extras["log_z"] = self.modules["log_z"](hidden.float()).squeeze(-1)
            if (
                agg == "seq-mean-token-sum-norm"
            ):  # its divisor is max_completion_length, not this trim
                width = cfg.rollout.max_completion_length
                log_probs, old, m, ref, is_w = (
                    _pad_to(x, width) for x in (log_probs, old, m, ref, is_w)
                )
                entropy = _pad_to(entropy, width)
            loss, metrics = compute_loss(
                old,
                log_probs,
                batch.advantages[idx],
                m,
                algo,
                ref_log_prob=ref,
                entropy=entropy if algo.entropy_coef > 0 else None,
                rollout_is_weights=is_w,
                **extras,
            )
            (loss * share).backward()
            loss_sum = loss_sum + loss.detach() * share
            for k, v in metrics.items():
                metric_sums[k] = metric_sums.get(k, 0.0) + v.detach().float() * share
            if entropy is not None and first_epoch:
                metric_sums["entropy"] = (
                    metric_sums.get("entropy", 0.0) + masked_mean(entropy.detach(), m) * share
                )
        max_norm = cfg.trainer.max_grad_norm if cfg.trainer.max_grad_norm > 0 else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, max_norm)
        if not bool(torch.isfinite(loss_sum) & torch.isfinite(grad_norm)):
            raise NonFiniteError(
                f"step {step}: non-finite {'loss' if not torch.isfinite(loss_sum) else 'gradient norm'} "
                f"(loss={float(loss_sum)}, grad_norm={float(grad_norm)}); stopped before the update. "
                f"Lower trainer.learning_rate or check the rewards; the last checkpoint is "
                f"{ckpt.latest_checkpoint(cfg.trainer.output_dir) or 'none'}"
            )
        self.optimizer.step()
        self.scheduler.step()
        metric_sums["actor/loss"] = loss_sum
        metric_sums["actor/grad_norm"] = grad_norm.detach().float()
        return metric_sums

    # --- the run ------------------------------------------------------------------------------

    def _prepare_output_dir(self) -> int:
        """Resume (returns the step to continue after) or start fresh in an empty output_dir."""
        t = self.config.trainer
        out = Path(t.output_dir)
        if t.resume == "none":
            if (out / METRICS_FILE).exists() or ckpt.list_checkpoints(out):
                raise ValueError(
                    f"trainer.output_dir={t.output_dir!r} already holds a run; pass --resume auto "
                    "(trainer.resume=auto) to continue it, or choose another output_dir"
                )
            return 0
        changes = self._config_changes(out) if t.resume == "auto" else {}
        modules = {"model": self.model, "optimizer": self.optimizer, "scheduler": self.scheduler}
        if t.resume == "auto":
            state = ckpt.load_latest_intact(out, **modules, modules=self.modules)
        else:
            state = ckpt.load_checkpoint(t.resume, **modules, modules=self.modules)
        start = 0 if state is None else int(state["step"])
        if changes:
            append_jsonl(out / "config_changes.jsonl", {"step": start, "changes": changes})
        if state is not None:
            self.skipped_in_a_row = int(state.get("skipped_in_a_row", 0))  # older checkpoints: 0
            self.generator.sync_weights(self.model)
        return start

    def _config_changes(self, out: Path) -> dict[str, list[Any]]:
        """Keys whose values differ from the run's saved config.json, as {key: [saved, new]};
        raises ValueError listing them unless trainer.allow_config_change."""
        saved_file = out / "config.json"
        if not saved_file.is_file():
            return {}
        saved = _flatten(json.loads(saved_file.read_text())["config"])
        new = _flatten(json.loads(json.dumps(self.config.to_dict())))  # tuples -> lists, as saved
        changes = {
            k: [saved.get(k), new.get(k)]
            for k in sorted(saved.keys() | new.keys())
            if k not in RESUME_FREE_KEYS and saved.get(k) != new.get(k)
        }
        if not changes:
            return {}
        listed = ", ".join(f"{k} ({a!r} -> {b!r})" for k, (a, b) in changes.items())
        if not self.config.trainer.allow_config_change:
            raise ValueError(
                f"trainer.resume=auto: the config differs from the one saved in {saved_file} in "
                f"{listed}; pass --allow-config-change (trainer.allow_config_change=true) to "
                "resume with the new values, or choose another trainer.output_dir"
            )
        logger.warning("resuming %s with a changed config: %s", out, listed)
        return changes

    def _write_config(self) -> None:
        out = Path(self.config.trainer.output_dir)
        write_json(
            out / "config.json",
            {"config": self.config.to_dict(), "versions": _versions(), "provenance": provenance()},
        )
        atomic_write(out / "config.yaml", self.config.to_yaml())

    def save(self, step: int) -> Path:
        t = self.config.trainer
        return ckpt.save_checkpoint(
            t.output_dir,
            step,
            model=self.model,
            tokenizer=self.tokenizer,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            state={
                "prompts_consumed": step * t.train_batch_size,
                "config": self.config.to_dict(),
                # a resume inside a run of skipped steps must stop where the whole run would
                "skipped_in_a_row": self.skipped_in_a_row,
            },
            modules=self.modules,
            keep_last=t.keep_last,
        )

    def evaluate(self, label: str) -> dict[str, Any]:
        """Sample eval.n completions per held-out prompt with the rollout backend (HF or vLLM);
        write eval_<label>.json (figures/llm_eval.py draws it)."""
        if not self.eval_records:
            raise ValueError("no eval records: set data.eval_fraction > 0 or data.eval_dataset")
        result = evaluate_model(
            self.model,
            self.tokenizer,
            self.eval_records,
            self.config,
            autocast_dtype=self.autocast_dtype,
            generator=self.generator,  # the rollout backend holds the current weights
        )
        out = Path(self.config.trainer.output_dir)
        write_eval(
            out / f"eval_{label}.json",
            result,
            label=label,
            model=self.config.model.path,
            step=self.step,
        )
        return result

    def train(self, until: int | None = None) -> dict[str, float]:
        """Run (or resume) the training loop to trainer.max_steps, or only to step `until`
        (without the final checkpoint and eval: as if the run were stopped there).

        Returns the last step's metrics as floats.
        """
        t = self.config.trainer
        # one process per run directory: a second one would interleave metrics.jsonl
        lock = DirLock(check_output_dir(t.output_dir, "trainer.output_dir")).acquire()
        try:
            return self._train(until)
        finally:
            lock.release()

    def _train(self, until: int | None) -> dict[str, float]:
        t = self.config.trainer
        start = self._prepare_output_dir()
        self.step = start
        self._write_config()
        stop = t.max_steps if until is None else min(until, t.max_steps)
        metrics_log = MetricsLogger(
            t.output_dir, t.max_steps, start, t.report_to, t.progress_bar, t.logging_steps
        )
        last: dict[str, float] = {}
        try:
            if start == 0 and self.config.eval.before_train:
                self.evaluate("before")
            for step in range(start + 1, stop + 1):
                metrics = self.train_step(step)
                self.step = step
                last = metrics_log.log(step, metrics)
                if t.log_completions_steps and step % t.log_completions_steps == 0:
                    recs, comps, rewards, adv = self._last_samples
                    k = min(t.num_completions_to_log, len(comps))
                    metrics_log.log_completions(
                        step, [self.format(r) for r in recs[:k]], comps[:k], rewards[:k], adv[:k]
                    )
                if self.on_step is not None:
                    self.on_step(self, step)
                if t.save_steps and step % t.save_steps == 0:
                    self.save(step)
            if self.step == t.max_steps and (until is None or until >= t.max_steps):
                latest = ckpt.latest_checkpoint(t.output_dir)
                if latest is None or latest.name != f"{ckpt.PREFIX}{t.max_steps:08d}":
                    self.save(t.max_steps)
                if self.config.eval.after_train:
                    self.evaluate("after")
        finally:
            metrics_log.close()
        return last

    def close(self) -> None:
        """Release the rollout engine (vLLM holds GPU memory and worker processes)."""
        close = getattr(self.generator, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> Trainer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def done_line(config: Any, last: dict[str, float]) -> str:
    """What `lad llm train` prints at the end: steps, output directory and the last metrics."""
    keys = ("reward", "entropy", "completions/mean_length", "tokens/s")
    summary = "  ".join(f"{k} {last[k]:.4g}" for k in keys if k in last)
    return f"done: {config.trainer.max_steps} steps in {config.trainer.output_dir}  {summary}"
