"""Typed configs for the objective core, with help text and validation in one place.

Field names follow TRL/verl where the concept exists there (`epsilon`, `epsilon_high`,
`clip_ratio_c`, `beta`, `entropy_coef`, `loss_agg_mode`, `clip_cov_ratio`, ...).
`eta` and `kappa` may be floats or, in the vectorised bandit, tensors with one value per run
that broadcast against the loss inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from labkit.config_loading import check_choice, to_dict

AGG_MODES = ("token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm")
# TRL's loss_type names the normalisation; for a labkit objective it selects only loss_agg_mode
AGG_MODE_OF_TRL_LOSS_TYPE = {
    "grpo": "seq-mean-token-mean",
    "bnpo": "token-mean",
    "dapo": "token-mean",
    "dr_grpo": "seq-mean-token-sum-norm",
}
RATIO_LEVELS = ("token", "sequence-sum", "sequence-mean")
KL_ESTIMATORS = ("k1", "k2", "k3")
DEFAULT_ETA = 1.0

Scalar = float | torch.Tensor


def _positive(name: str, value: Scalar | None) -> None:
    if value is None:
        return
    if isinstance(value, torch.Tensor):
        if not bool((value > 0).all()) or not bool(torch.isfinite(value).all()):
            raise ValueError(
                f"{name} must be finite and > 0 for every run, got {value.flatten()[:8]}"
            )
    elif not (isinstance(value, int | float) and value > 0 and value != float("inf")):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


@dataclass
class LossConfig:
    """Everything a policy loss reads. One config serves every registered objective."""

    EXCLUSIVE: ClassVar = (("eta", "kappa"),)  # one knob: a layer that sets one drops the other

    loss_mode: str = field(
        default="lad",
        metadata={
            "help": "objective from the policy-loss registry: lad, grpo, reinforce, clip_cov, kl_cov, flowrl"
        },
    )
    loss_agg_mode: str = field(
        default="token-mean",
        metadata={
            "help": f"how the (B, T) loss matrix becomes a scalar (verl names): {', '.join(AGG_MODES)}"
        },
    )
    divergence: str = field(
        default="js",
        metadata={
            "help": "f-divergence for LAD: kl, rkl, jeffreys, tv, hellinger, js, pearson, neyman"
        },
    )
    eta: Scalar | None = field(
        default=None,
        metadata={
            "help": "LAD temperature eta > 0 (a = A/eta); give eta or kappa, not both; both unset means eta = 1"
        },
    )
    kappa: Scalar | None = field(
        default=None,
        metadata={"help": "inverse temperature kappa = 1/eta (the paper's code uses kappa)"},
    )
    ratio_level: str = field(
        default="token",
        metadata={
            "help": "likelihood ratio per token, or per sequence (sum or mean of token log-ratios): token, sequence-sum, sequence-mean"
        },
    )
    standardized: bool = field(
        default=False,
        metadata={"help": "use f(x) - f'(1)(x - 1): same minimiser, f'(1) = 0 (changes kl, rkl)"},
    )
    epsilon: float = field(
        default=0.2, metadata={"help": "lower clip range of the PPO ratio (verl clip_ratio_low)"}
    )
    epsilon_high: float | None = field(
        default=None,
        metadata={"help": "upper clip range (clip-higher, DAPO uses 0.28); unset means epsilon"},
    )
    clip_ratio_c: float | None = field(
        default=None,
        metadata={
            "help": "dual-clip constant c > 1 for negative advantages; unset turns dual clip off"
        },
    )
    beta: float = field(
        default=0.0, metadata={"help": "coefficient of the KL penalty to the reference policy"}
    )
    kl_estimator: str = field(
        default="k3", metadata={"help": "KL estimator for the penalty: k1, k2, k3"}
    )
    entropy_coef: float = field(
        default=0.0, metadata={"help": "entropy bonus coefficient (loss -= coef * entropy)"}
    )
    clip_cov_ratio: float = field(
        default=2e-4, metadata={"help": "Clip-Cov: fraction of tokens whose gradient is cut"}
    )
    clip_cov_lb: float = field(
        default=1.0, metadata={"help": "Clip-Cov: lower covariance bound of candidates"}
    )
    clip_cov_ub: float = field(
        default=5.0, metadata={"help": "Clip-Cov: upper covariance bound of candidates"}
    )
    kl_cov_ratio: float = field(
        default=2e-3, metadata={"help": "KL-Cov: fraction of highest-covariance tokens penalised"}
    )
    ppo_kl_coef: float = field(
        default=1.0, metadata={"help": "KL-Cov: coefficient of |log r| on the selected tokens"}
    )

    def __post_init__(self) -> None:
        if self.eta is not None and self.kappa is not None:
            raise ValueError(
                f"give eta or kappa, not both (got eta={self.eta!r}, kappa={self.kappa!r})"
            )
        _positive("eta", self.eta)
        _positive("kappa", self.kappa)
        check_choice("loss_agg_mode", self.loss_agg_mode, AGG_MODES)
        check_choice("ratio_level", self.ratio_level, RATIO_LEVELS)
        check_choice("kl_estimator", self.kl_estimator, KL_ESTIMATORS)
        # divergence and loss_mode are checked against their registries (imported lazily: no cycle)
        from labkit.divergences import DIVERGENCES

        DIVERGENCES.get(self.divergence)
        if not 0 <= self.epsilon < 1:
            raise ValueError(f"epsilon must be in [0, 1), got {self.epsilon!r}")
        if self.epsilon_high is not None and self.epsilon_high < 0:
            raise ValueError(f"epsilon_high must be >= 0, got {self.epsilon_high!r}")
        if self.clip_ratio_c is not None and self.clip_ratio_c <= 1:
            raise ValueError(f"clip_ratio_c must be > 1 (dual clip), got {self.clip_ratio_c!r}")
        for name in ("beta", "entropy_coef", "clip_cov_ratio", "kl_cov_ratio", "ppo_kl_coef"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")

    @property
    def inverse_temperature(self) -> Scalar:
        """kappa = 1/eta; the advantage scale a = kappa * A."""
        if self.kappa is not None:
            return self.kappa
        return 1.0 / (self.eta if self.eta is not None else DEFAULT_ETA)

    @property
    def clip_high(self) -> float:
        return self.epsilon if self.epsilon_high is None else self.epsilon_high

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)


@dataclass
class AdvantageConfig:
    """Options of the advantage estimators (labkit.advantages)."""

    estimator: str = field(
        default="grpo", metadata={"help": "advantage estimator: grpo, dr_grpo, rloo, raw"}
    )
    scale_rewards: str = field(
        default="group",
        metadata={"help": "grpo only: divide by the std of the group, the batch, or none"},
    )
    epsilon: float = field(default=1e-6, metadata={"help": "added to the std before dividing"})

    def __post_init__(self) -> None:
        check_choice("scale_rewards", self.scale_rewards, ("group", "batch", "none"))
        from labkit.advantages import ESTIMATORS

        ESTIMATORS.get(self.estimator)
        if not self.epsilon >= 0:
            raise ValueError(f"epsilon must be >= 0, got {self.epsilon!r}")
