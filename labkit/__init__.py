"""labkit: the objective core of LAD (learning advantage distributions).

Pure torch, device-agnostic, shape-generic. Importing labkit fills the registries:
POLICY_LOSSES (lad, grpo, reinforce, clip_cov, kl_cov, flowrl), DIVERGENCES (docs/method.md section 6)
and ESTIMATORS (grpo, dr_grpo, rloo, raw).
"""

from labkit import baselines as _baselines  # noqa: F401  (registers the baseline losses)
from labkit.advantages import ESTIMATORS, compute_advantages, group_stats
from labkit.config import AGG_MODES, RATIO_LEVELS, AdvantageConfig, LossConfig
from labkit.divergences import DIVERGENCES, Divergence, get_divergence
from labkit.lad import (
    advantage_distribution,
    lad_loss,
    policy_distribution,
    theoretical_lad_loss,
    trust_region_target,
)
from labkit.losses import (
    POLICY_LOSSES,
    agg_loss,
    compute_loss,
    get_policy_loss,
    kl_penalty,
    log_ratio,
    masked_mean,
    register_policy_loss,
)
from labkit.registry import Registry

__all__ = [
    "AGG_MODES",
    "DIVERGENCES",
    "ESTIMATORS",
    "POLICY_LOSSES",
    "RATIO_LEVELS",
    "AdvantageConfig",
    "Divergence",
    "LossConfig",
    "Registry",
    "advantage_distribution",
    "agg_loss",
    "compute_advantages",
    "compute_loss",
    "get_divergence",
    "get_policy_loss",
    "group_stats",
    "kl_penalty",
    "lad_loss",
    "log_ratio",
    "masked_mean",
    "policy_distribution",
    "register_policy_loss",
    "theoretical_lad_loss",
    "trust_region_target",
]
