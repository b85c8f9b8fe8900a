"""LAD in TRL: `LADConfig(GRPOConfig)` and `LADTrainer(GRPOTrainer)` (TRL 1.16.x).

The pattern of `trl.experimental.gmpo`: only `_compute_loss` changes. Generation (transformers,
vLLM colocate or server), reward functions, group advantages, weight sync, logging, checkpoints and
`accelerate launch` multi-GPU (DDP, DeepSpeed ZeRO, FSDP) are GRPOTrainer's own.

The loss is `labkit.lad.lad_loss` (the same object labkit's trainer calls). TRL's `loss_type`
keeps its meaning for the normalisation, restricted to the four that are pure normalisations:

| loss_type | labkit / verl mode      | divisor (TRL 1.16, per micro-batch)                            |
| --------- | ----------------------- | -------------------------------------------------------------- |
| dapo      | token-mean              | tokens of the generation batch / processes x accum / steps_per_generation |
| bnpo      | token-mean              | local tokens x gradient accumulation steps                     |
| grpo      | seq-mean-token-mean     | local rows (empty rows included) x accumulation steps          |
| dr_grpo   | seq-mean-token-sum-norm | local rows x max_completion_length x accumulation steps        |

Per-token multipliers TRL applies to its policy term are applied to LAD's the same way (as
`rollout_is_weights`): vLLM's importance-sampling correction, the off-policy sequence mask and
the high-entropy token mask. `beta > 0` adds TRL's k3 KL term with the same normalisation.
Rejected with a ValueError: other loss types, `importance_sampling_level="sequence"` (use
`ratio_level`), the entropy bonus (LAD has none), and `use_liger_kernel`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from trl import GRPOConfig, GRPOTrainer

from labkit.config import AGG_MODE_OF_TRL_LOSS_TYPE, LossConfig
from labkit.config_loading import help_of
from labkit.lad import lad_loss
from labkit.losses import agg_loss, kl_penalty
from llm.integrations import labkit_divisor, zero_loss

Tensor = torch.Tensor

_DEFAULTS = LossConfig()
# lad_loss's token-mean metrics, logged as global token means
LAD_METRICS = ("lad/log_ratio_mean", "lad/log_x_mean", "lad/frac_past_target", "lad/weight_mean")


def _help(name: str) -> dict[str, str]:
    return {"help": help_of(LossConfig, name)}


@dataclass
class LADConfig(GRPOConfig):
    """GRPOConfig plus LAD's hyperparameters; `loss_type` selects only the normalisation.

    `epsilon`, `epsilon_high` and `delta` (PPO clipping) are unused: LAD does not clip.
    """

    divergence: str = field(default=_DEFAULTS.divergence, metadata=_help("divergence"))
    eta: float | None = field(default=None, metadata=_help("eta"))
    kappa: float | None = field(default=None, metadata=_help("kappa"))
    ratio_level: str = field(default=_DEFAULTS.ratio_level, metadata=_help("ratio_level"))
    standardized: bool = field(default=_DEFAULTS.standardized, metadata=_help("standardized"))

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.loss_type not in AGG_MODE_OF_TRL_LOSS_TYPE:
            raise ValueError(
                f"loss_type={self.loss_type!r} is not valid for LAD; expected one of {list(AGG_MODE_OF_TRL_LOSS_TYPE)} "
                "(for LAD it chooses only how the per-token loss is normalised)"
            )
        if self.use_liger_kernel:
            raise ValueError(
                "use_liger_kernel=True is not supported by LADTrainer: TRL's Liger path (before 1.14 a fused "
                "GRPO loss that bypasses _compute_loss; deprecated in 1.16) is not covered by LAD's tests"
            )
        if self.importance_sampling_level != "token":
            raise ValueError(
                f"importance_sampling_level={self.importance_sampling_level!r} is not valid for LAD; expected "
                "'token' (set ratio_level='sequence-mean' or 'sequence-sum' for sequence-level ratios)"
            )
        if self.entropy_coef != 0.0 or self.use_adaptive_entropy:
            raise ValueError(
                f"entropy_coef={self.entropy_coef!r}, use_adaptive_entropy={self.use_adaptive_entropy!r}: "
                "LAD has no entropy bonus; expected entropy_coef=0 and use_adaptive_entropy=False"
            )
        self.loss_config()  # validates divergence, eta/kappa, ratio_level

    def loss_config(self) -> LossConfig:
        """The labkit config `lad_loss` reads."""
        return LossConfig(
            loss_mode="lad",
            loss_agg_mode=AGG_MODE_OF_TRL_LOSS_TYPE[self.loss_type],
            divergence=self.divergence,
            eta=self.eta,
            kappa=self.kappa,
            ratio_level=self.ratio_level,
            standardized=self.standardized,
        )


class LADTrainer(GRPOTrainer):
    """GRPOTrainer whose policy loss is LAD's (`labkit.lad.lad_loss`); everything else inherited.

    LAD metrics are logged under `lad/` (token means over all processes): `lad/log_ratio_mean`,
    `lad/log_x_mean`, `lad/frac_past_target`, `lad/weight_mean`; plus TRL's `entropy` and `kl`.
    """

    _tag_names: ClassVar[list[str]] = ["trl", "lad"]

    def __init__(
        self, model: Any, reward_funcs: Any, args: LADConfig | None = None, **kwargs: Any
    ) -> None:
        if args is None:
            name = model if isinstance(model, str) else model.config._name_or_path
            args = LADConfig(f"{str(name).split('/')[-1]}-LAD")
        if not isinstance(args, LADConfig):
            raise ValueError(f"args must be a LADConfig, got {type(args).__name__}")
        super().__init__(model, reward_funcs, args=args, **kwargs)
        self.lad_config = args.loss_config()

    def _trl_divisor(self, mask: Tensor, inputs: dict[str, Any], mode: str) -> Tensor | float:
        """The constant GRPOTrainer._compute_loss divides the numerator by, per loss_type."""
        accum = self.current_gradient_accumulation_steps if mode == "train" else 1.0
        rows = mask.shape[0]
        if self.loss_type == "grpo":
            return rows * accum
        if self.loss_type == "bnpo":
            return mask.sum().clamp(min=1.0) * accum
        if self.loss_type == "dr_grpo":
            return rows * self.max_completion_length * accum
        # dapo: num_items_in_batch spans the generation batch; rescale to one accumulation window
        normalizer = inputs["num_items_in_batch"].clamp(min=1.0) / self.accelerator.num_processes
        if mode == "train":
            normalizer = (
                normalizer
                * self.current_gradient_accumulation_steps
                / self.args.steps_per_generation
            )
        return normalizer

    def _global_mean(self, local_mean: Tensor, count: Tensor) -> float:
        """A token mean over all processes from each one's (mean, count)."""
        totals = self.accelerator.reduce(torch.stack([local_mean * count, count]), reduction="sum")
        return (totals[0] / totals[1].clamp(min=1.0)).item()

    def _compute_loss(self, model: Any, inputs: dict[str, Any]) -> Tensor:
        prompt_ids, prompt_mask = inputs["prompt_ids"], inputs["prompt_mask"]
        completion_ids, completion_mask = inputs["completion_ids"], inputs["completion_mask"]
        input_ids = torch.cat([prompt_ids, completion_ids], dim=1)
        attention_mask = torch.cat([prompt_mask, completion_mask], dim=1)
        logits_to_keep = completion_ids.size(1)
        mask = (
            completion_mask if "tool_mask" not in inputs else completion_mask * inputs["tool_mask"]
        )
        per_token_logps, entropies, aux_loss = self._get_per_token_logps_and_entropies(
            model,
            input_ids,
            attention_mask,
            logits_to_keep,
            compute_entropy=True,
            compute_aux_loss=self.aux_loss_enabled,
            pixel_values=inputs.get("pixel_values"),
            image_grid_thw=inputs.get("image_grid_thw"),
            num_images=inputs.get("num_images"),
            pixel_attention_mask=inputs.get("pixel_attention_mask"),
            spatial_shapes=inputs.get("spatial_shapes"),
            num_tiles=inputs.get("num_tiles"),
            image_sizes=inputs.get("image_sizes"),
            token_type_ids=inputs.get("token_type_ids"),
            mm_token_type_ids=inputs.get("mm_token_type_ids"),
            image_position_ids=inputs.get("image_position_ids"),
        )
        advantages = inputs["advantages"]
        old_per_token_logps = inputs.get("old_per_token_logps")
        if old_per_token_logps is None:  # fully on-policy: TRL skips computing them
            old_per_token_logps = per_token_logps.detach()

        # the per-token multipliers GRPOTrainer applies to its policy term, in the same cases
        weights = torch.ones_like(per_token_logps)
        if self.off_policy_mask_threshold is not None:
            adv_col = advantages.unsqueeze(1) if advantages.dim() == 1 else advantages
            weights = weights * self.get_off_policy_mask(
                advantages=adv_col,
                per_token_logps=per_token_logps,
                sampling_per_token_logps=inputs.get(
                    "sampling_per_token_logps", old_per_token_logps
                ),
                mask=mask,
                off_policy_threshold=self.off_policy_mask_threshold,
            )
        if self.top_entropy_quantile < 1.0:
            weights = weights * self.get_high_entropy_mask(
                entropies, mask, 1 - self.top_entropy_quantile
            )
        if self.use_vllm and self.vllm_importance_sampling_correction:
            weights = weights * inputs["importance_sampling_ratio"]

        mode = "train" if self.model.training else "eval"
        agg = self.lad_config.loss_agg_mode
        fmask = mask.to(per_token_logps.dtype)
        per_token_kl = None
        if self.beta != 0.0:
            per_token_kl = kl_penalty(per_token_logps, inputs["ref_per_token_logps"], "k3")
            if self.args.use_bias_correction_kl:
                per_token_kl = per_token_kl * torch.exp(per_token_logps - old_per_token_logps)
        if bool(fmask.any()):
            loss, lad_metrics = lad_loss(
                old_per_token_logps,
                per_token_logps,
                advantages,
                fmask,
                agg,
                self.lad_config,
                rollout_is_weights=weights,
            )
            if per_token_kl is not None:
                loss = loss + self.beta * agg_loss(per_token_kl, fmask, agg)
            # same numerator as TRL's branch for this loss_type; swap labkit's divisor for TRL's
            loss = loss * labkit_divisor(fmask, agg) / self._trl_divisor(fmask, inputs, mode)
        else:  # e.g. every completion truncated with mask_truncated_completions: TRL's loss is 0 too
            loss = zero_loss(per_token_logps)
            lad_metrics = {key: per_token_logps.new_zeros(()) for key in LAD_METRICS}

        if self.aux_loss_enabled:  # MoE router loss, scaled for accumulation as in GRPOTrainer
            accum = self.current_gradient_accumulation_steps if mode == "train" else 1.0
            loss = loss + self.router_aux_loss_coef * aux_loss / accum
            self._metrics[mode]["aux_loss"].append(
                self.accelerator.gather_for_metrics(aux_loss).mean().item()
            )

        count = fmask.sum()
        ent = (entropies * fmask).sum() / count.clamp(min=1.0)
        self._metrics[mode]["entropy"].append(self._global_mean(ent.detach(), count))
        if per_token_kl is not None:
            kl = (per_token_kl * fmask).sum() / count.clamp(min=1.0)
            self._metrics[mode]["kl"].append(self._global_mean(kl.detach(), count))
        # every rank reduces the same keys in the same order (a rank with no token sends count 0)
        for key in LAD_METRICS:
            self._metrics[mode][key].append(
                self._global_mean(lad_metrics[key].detach().float(), count)
            )
        return loss
