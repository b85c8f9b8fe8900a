"""LAD as a verl policy loss: a plug-in, no fork (verl 0.9.1; anchors.md section 2.5, level 2).

Importing this module registers `lad` in verl's policy-loss registry. verl looks the loss up in
its worker processes, so they must import it: pass
`actor_rollout_ref.model.external_lib=llm.integrations.verl` (verl's `HFModelConfig` imports it)
and select it with `actor_rollout_ref.actor.policy_loss.loss_mode=lad`.

LAD's hyperparameters live in the actor's policy-loss config. verl 0.9.1 instantiates
`actor_rollout_ref.actor` with Hydra, recursively, so the `policy_loss` node may name its own
dataclass: `actor_rollout_ref.actor.policy_loss._target_=llm.integrations.verl.LADPolicyLossConfig`
plus `+actor_rollout_ref.actor.policy_loss.divergence=js` and so on (`+`: new keys in verl's YAML).
`lad llm verl` writes these overrides.

The registered function is a thin adapter around `labkit.lad.lad_loss` (the same object labkit's
own trainer calls): it translates verl's config, then rescales the micro-batch loss from labkit's
local normalisation to verl's global one (`config.global_batch_info`: dp_size, batch_num_tokens,
global_batch_size, loss_scale_factor), so the data-parallel gradient is what verl's own `agg_loss`
would give. verl's extra mode `token-sum` is supported the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import torch
from verl.trainer.ppo.core_algos import agg_loss as verl_agg_loss
from verl.trainer.ppo.core_algos import register_policy_loss
from verl.workers.config import PolicyLossConfig

from labkit.config import LossConfig
from labkit.config_loading import help_of
from labkit.lad import lad_loss
from labkit.losses import agg_loss as labkit_agg_loss
from llm.integrations import zero_loss

Tensor = torch.Tensor

_DEFAULTS = LossConfig()
LOSS_MODE = "lad"
CONFIG_TARGET = "llm.integrations.verl.LADPolicyLossConfig"
# verl's aggregation names -> the labkit mode whose numerator is the same (verl's token-sum is
# token-mean's numerator with no division)
_LABKIT_MODE = {
    "token-mean": "token-mean",
    "token-sum": "token-mean",
    "seq-mean-token-sum": "seq-mean-token-sum",
    "seq-mean-token-mean": "seq-mean-token-mean",
    "seq-mean-token-sum-norm": "seq-mean-token-sum-norm",
}


def _help(name: str) -> dict[str, str]:
    return {"help": help_of(LossConfig, name)}


@dataclass
class LADPolicyLossConfig(PolicyLossConfig):
    """verl's `PolicyLossConfig` plus LAD's hyperparameters (defaults: labkit's `LossConfig`).

    `Optional[...]`, not `X | None`: OmegaConf's structured configs read these annotations.
    """

    divergence: str = field(default=_DEFAULTS.divergence, metadata=_help("divergence"))
    eta: Optional[float] = field(default=None, metadata=_help("eta"))  # noqa: UP045
    kappa: Optional[float] = field(default=None, metadata=_help("kappa"))  # noqa: UP045
    ratio_level: str = field(default=_DEFAULTS.ratio_level, metadata=_help("ratio_level"))
    standardized: bool = field(default=_DEFAULTS.standardized, metadata=_help("standardized"))

    def __post_init__(self) -> None:
        self.to_loss_config(
            "token-mean"
        )  # validates: a bad value fails when verl builds the config

    def to_loss_config(self, loss_agg_mode: str) -> LossConfig:
        """The labkit config `lad_loss` reads; `loss_agg_mode` is a labkit mode name."""
        return LossConfig(
            loss_mode=LOSS_MODE,
            loss_agg_mode=loss_agg_mode,
            divergence=self.divergence,
            eta=self.eta,
            kappa=self.kappa,
            ratio_level=self.ratio_level,
            standardized=self.standardized,
        )


@register_policy_loss(LOSS_MODE)
def compute_policy_loss_lad(
    old_log_prob: Tensor,
    log_prob: Tensor,
    advantages: Tensor,
    response_mask: Tensor,
    loss_agg_mode: str = "token-mean",
    config: Any = None,
    rollout_is_weights: Tensor | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """verl's policy-loss signature around `labkit.lad.lad_loss`.

    Args:
        old_log_prob, log_prob, advantages, response_mask: (bs, response_length), as verl passes
            them (advantages already broadcast per token; the mask may be bool).
        loss_agg_mode: one of verl's modes (token-mean, token-sum, seq-mean-token-sum,
            seq-mean-token-mean, seq-mean-token-sum-norm).
        config: verl's `ActorConfig`; `config.policy_loss` must be a `LADPolicyLossConfig` and
            `config.global_batch_info` (filled by verl's `ppo_loss`) sets the global divisors.
        rollout_is_weights: optional (bs, response_length) rollout-correction weights.
    Returns:
        the scalar loss, equal to verl's `agg_loss(L, mask, mode, **global_batch_info)` for LAD's
        per-token loss matrix L; metrics `actor/pg_loss`, `actor/ppo_kl` and `lad/...`.
    """
    policy_loss = getattr(config, "policy_loss", None)
    if not isinstance(policy_loss, LADPolicyLossConfig):
        raise ValueError(
            f"loss_mode={LOSS_MODE!r} needs actor_rollout_ref.actor.policy_loss._target_={CONFIG_TARGET} "
            f"(got policy_loss of type {type(policy_loss).__name__})"
        )
    if loss_agg_mode not in _LABKIT_MODE:
        raise ValueError(
            f"loss_agg_mode={loss_agg_mode!r} is not valid; expected one of {list(_LABKIT_MODE)}"
        )
    mode = _LABKIT_MODE[loss_agg_mode]
    mask = response_mask.to(log_prob.dtype)
    if not bool(mask.any()):
        return zero_loss(log_prob), {}  # verl's agg_loss gives 0 for such a micro-batch too
    loss, metrics = lad_loss(
        old_log_prob,
        log_prob,
        advantages,
        mask,
        mode,
        policy_loss.to_loss_config(mode),
        rollout_is_weights=rollout_is_weights,
    )
    # Same numerator, different constant divisor: the ratio of the two aggregations of an
    # all-ones loss matrix converts labkit's local divisor into verl's global one.
    batch_info = dict(getattr(config, "global_batch_info", None) or {})
    ones = torch.ones_like(mask)
    with torch.no_grad():
        scale = verl_agg_loss(ones, mask, loss_agg_mode, **batch_info) / labkit_agg_loss(
            ones, mask, mode
        )
    loss = loss * scale
    metrics["actor/pg_loss"] = loss.detach()
    return loss, metrics
