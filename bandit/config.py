"""The bandit's typed config, and the grid of runs it expands to.

One `BanditConfig` describes a whole sweep: the shared settings (landscape, steps, G, optimiser,
pi_old refresh, ...) and the grid axes (objectives x divergences x eta x lr x seeds). `expand_runs`
flattens the grid into runs ordered so that runs sharing a code path (objective x divergence) are
contiguous; the trainer loops in Python over those few groups, never over runs.

Objectives: every registered policy loss that needs nothing but log-probs and advantages
(`lad`, `reinforce` = unclipped surrogate, `grpo` = PPO-clipped, `kl_cov`), plus `lad_theory`, the
theoretical LAD loss on the exact distributions. `divergence` applies to `lad` and `lad_theory`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from labkit.config_loading import check_cpp_compiler, check_device, finite_positive, to_dict

# This module imports no torch (the registries are consulted inside validation), so that the CLI
# can build its help text from these fields without the torch start-up cost.
OBJECTIVES = ("lad", "lad_theory", "reinforce", "grpo", "kl_cov")
DIVERGENCE_OBJECTIVES = ("lad", "lad_theory")
NOISES = ("none", "gaussian", "bernoulli")
MAX_SEED = 2**32 - 1


def _h(text: str, *flags: str) -> dict[str, Any]:
    """Field metadata: help text, and the command-line flags when they differ from --field-name."""
    return {"help": text, "flags": flags} if flags else {"help": text}


@dataclass
class BanditConfig:
    """A sweep of bandit runs. Tuple fields are grid axes; the rest is shared by every run."""

    # landscape
    landscape: str = field(
        default="trimodal",
        metadata=_h(
            "built-in landscape: trimodal, trimodal_wide, bimodal, unimodal, plateau",
            "--landscape",
            "-l",
        ),
    )
    rewards_file: str | None = field(
        default=None,
        metadata=_h(
            "reward vector from a .json, .csv or .npy file (overrides landscape)", "--rewards"
        ),
    )
    n_arms: int = field(
        default=50, metadata=_h("number of arms K of a built-in landscape", "--arms", "-K")
    )
    # grid axes
    objectives: tuple[str, ...] = field(
        default=("lad",),
        metadata=_h(f"objectives: {', '.join(OBJECTIVES)}", "--objectives", "--objective"),
    )
    divergences: tuple[str, ...] = field(
        default=("js",),
        metadata=_h(
            "f-divergences of lad and lad_theory: kl, rkl, jeffreys, tv, hellinger, js, pearson, neyman",
            "--divergences",
            "--divergence",
            "-d",
        ),
    )
    etas: tuple[float, ...] | None = field(
        default=None,
        metadata=_h(
            "LAD temperatures eta > 0 (a = A/eta); give etas or kappas; neither means eta = 1",
            "--etas",
            "--eta",
        ),
    )
    kappas: tuple[float, ...] | None = field(
        default=None,
        metadata=_h(
            "inverse temperatures kappa = 1/eta (the paper's code uses kappa)",
            "--kappas",
            "--kappa",
        ),
    )
    lrs: tuple[float, ...] = field(default=(5e-3,), metadata=_h("learning rates", "--lrs", "--lr"))
    seed: int = field(default=0, metadata=_h("first seed; runs use seed, seed + 1, ..."))
    n_seeds: int = field(default=1, metadata=_h("number of seeds per grid point", "--seeds"))
    # training
    steps: int = field(default=4000, metadata=_h("optimiser steps"))
    num_generations: int = field(
        default=64,
        metadata=_h(
            "samples per step from pi_old (G; TRL num_generations)", "--num-generations", "-G"
        ),
    )
    optimizer: str = field(
        default="adam", metadata=_h("adam or sgd (vectorised over runs, per-run learning rate)")
    )
    adam_betas: tuple[float, float] = field(
        default=(0.9, 0.999), metadata=_h("Adam (beta1, beta2)")
    )
    adam_eps: float = field(default=1e-8, metadata=_h("Adam epsilon"))
    refresh_every: int = field(
        default=0,
        metadata=_h(
            "copy the policy into pi_old every k steps; 0 keeps pi_old fixed at the initial policy"
        ),
    )
    refresh_periods: tuple[int, ...] | None = field(
        default=None,
        metadata=_h(
            "grid axis of pi_old refresh periods (updates per rollout; 0 = fixed), one vectorised call; unset means (refresh_every,)"
        ),
    )
    init: str = field(
        default="uniform",
        metadata=_h(
            "initial logits: uniform (all 0), random (normal * init_scale), or given (init_logits)"
        ),
    )
    init_scale: float = field(default=1.0, metadata=_h("std of random initial logits"))
    init_logits: tuple[float, ...] | None = field(
        default=None, metadata=_h("initial logits (K values) for init=given")
    )
    sampling: str = field(
        default="sample",
        metadata=_h(
            "sample: G arms from pi_old per step; exact: every arm weighted by pi_old (the expectation)"
        ),
    )
    advantage: str = field(
        default="exact",
        metadata=_h(
            "advantage: exact (reward - E_pi_old[reward]) or a labkit estimator over the sampled group: grpo, dr_grpo, rloo, raw"
        ),
    )
    reward_noise: str = field(
        default="none",
        metadata=_h(
            "noise on sampled rewards: none, gaussian (std noise_std), bernoulli (reward = probability, needs rewards in [0, 1])"
        ),
    )
    noise_std: float = field(default=0.1, metadata=_h("std of gaussian reward noise"))
    # loss options passed to labkit.LossConfig
    loss_agg_mode: str = field(
        default="token-mean", metadata=_h("verl aggregation of the (G, 1) loss matrix")
    )
    epsilon: float = field(default=0.2, metadata=_h("clip range of grpo (clipped surrogate)"))
    epsilon_highs: tuple[float, ...] | None = field(
        default=None,
        metadata=_h(
            "grid axis of grpo's upper clip range (TRL epsilon_high; DAPO clip-higher uses 0.28); unset means epsilon"
        ),
    )
    standardized: bool = field(default=False, metadata=_h("LAD with f(x) - f'(1)(x - 1)"))
    # logging
    log_every: int = field(
        default=50, metadata=_h("log exact metrics every N steps (and at the first and last step)")
    )
    policy_steps: tuple[int, ...] | None = field(
        default=None,
        metadata=_h("steps at which the full policy is saved; unset means the first and last"),
    )
    mode_min_mass: float = field(
        default=0.01,
        metadata=_h(
            "a landscape mode counts as a target mode when P_A puts at least this mass on it"
        ),
    )
    dtype: str = field(default="float32", metadata=_h("float32 or float64"))
    gradient: str = field(
        default="closed",
        metadata=_h(
            "closed: the loss gradient w.r.t. the logits in closed form (fast); compiled: the same, with each step compiled by torch.compile into fused loops (fastest for thousands of runs; compiling costs seconds to a minute, cached on disk); autograd: through the labkit loss (the reference)"
        ),
    )
    device: str = field(
        default="cpu",
        metadata=_h(
            "torch device: cpu, cuda or cuda:N (a GPU pays from thousands of runs; draws are the same on every device)"
        ),
    )

    EXCLUSIVE: ClassVar = (("etas", "kappas"),)  # one knob: a layer that sets one drops the other

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # lists from Python code become the tuples of the type
            if isinstance(getattr(self, f.name), list):
                setattr(self, f.name, tuple(getattr(self, f.name)))
        self._validate()

    def _validate(self) -> None:
        from bandit.landscapes import LANDSCAPES
        from labkit.advantages import ESTIMATORS
        from labkit.config import AGG_MODES
        from labkit.divergences import DIVERGENCES
        from labkit.losses import POLICY_LOSSES

        advantages = ("exact", *ESTIMATORS.names())

        def need(ok: bool, name: str, expected: str) -> None:
            if not ok:
                raise ValueError(
                    f"{name}={getattr(self, name)!r} is not valid; expected {expected}"
                )

        if self.rewards_file is None:
            LANDSCAPES.get(self.landscape)
            need(isinstance(self.n_arms, int) and self.n_arms >= 2, "n_arms", "an integer >= 2")
        need(len(self.objectives) > 0, "objectives", "at least one objective")
        for obj in self.objectives:
            if obj not in OBJECTIVES:
                hint = " (needs inputs the bandit does not make)" if obj in POLICY_LOSSES else ""
                raise ValueError(
                    f"objective={obj!r} is not a bandit objective{hint}; expected one of {list(OBJECTIVES)}"
                )
        need(len(self.divergences) > 0, "divergences", "at least one divergence")
        for d in self.divergences:
            DIVERGENCES.get(d)
        if self.etas is not None and self.kappas is not None:
            raise ValueError(
                f"give etas or kappas, not both (got etas={self.etas}, kappas={self.kappas})"
            )
        for name in ("etas", "kappas", "lrs"):
            vals = getattr(self, name)
            if vals is not None:
                need(len(vals) > 0, name, "at least one value")
                for v in vals:
                    if not finite_positive(v):
                        raise ValueError(
                            f"{name[:-1]}={v!r} is not valid; expected a finite number > 0"
                        )
        need(
            isinstance(self.seed, int) and self.seed >= 0, "seed", f"an integer in [0, {MAX_SEED}]"
        )
        need(
            isinstance(self.n_seeds, int)
            and self.n_seeds >= 1
            and self.seed + self.n_seeds - 1 <= MAX_SEED,
            "n_seeds",
            f"an integer >= 1 with seed + n_seeds - 1 <= {MAX_SEED}",
        )
        need(isinstance(self.steps, int) and self.steps >= 1, "steps", "an integer >= 1")
        need(
            isinstance(self.num_generations, int) and self.num_generations >= 1,
            "num_generations",
            "an integer >= 1",
        )
        need(self.optimizer in ("adam", "sgd"), "optimizer", "adam or sgd")
        need(
            len(self.adam_betas) == 2 and all(0 <= b < 1 for b in self.adam_betas),
            "adam_betas",
            "two numbers in [0, 1)",
        )
        need(self.adam_eps > 0, "adam_eps", "> 0")
        need(
            isinstance(self.refresh_every, int) and self.refresh_every >= 0,
            "refresh_every",
            "an integer >= 0 (0 = fixed pi_old)",
        )
        if self.refresh_periods is not None:
            need(
                len(self.refresh_periods) > 0
                and all(isinstance(p, int) and p >= 0 for p in self.refresh_periods)
                and self.refresh_every == 0,
                "refresh_periods",
                "integers >= 0 (0 = fixed pi_old), at least one, with refresh_every left at 0",
            )
        if self.epsilon_highs is not None:
            need(
                len(self.epsilon_highs) > 0
                and all(finite_positive(e) or e == 0 for e in self.epsilon_highs),
                "epsilon_highs",
                "numbers >= 0, at least one",
            )
        need(self.init in ("uniform", "random", "given"), "init", "uniform, random or given")
        need(self.init_scale >= 0, "init_scale", ">= 0")
        need(
            (self.init == "given") == (self.init_logits is not None),
            "init_logits",
            "K numbers exactly when init='given'",
        )
        need(self.sampling in ("sample", "exact"), "sampling", "sample or exact")
        need(self.advantage in advantages, "advantage", f"one of {list(advantages)}")
        need(self.reward_noise in NOISES, "reward_noise", f"one of {list(NOISES)}")
        need(self.noise_std >= 0, "noise_std", ">= 0")
        if self.advantage not in ("exact", "raw"):
            need(
                self.num_generations >= 2,
                "num_generations",
                f"an integer >= 2 with group-normalised advantages (advantage={self.advantage!r})",
            )
        if self.sampling == "exact":
            need(
                self.advantage == "exact" and self.reward_noise == "none",
                "sampling",
                "'sample' unless advantage='exact' and reward_noise='none' (the expectation needs exact advantages)",
            )
        need(self.loss_agg_mode in AGG_MODES, "loss_agg_mode", f"one of {list(AGG_MODES)}")
        need(0 <= self.epsilon < 1, "epsilon", "a number in [0, 1)")
        need(
            isinstance(self.log_every, int) and self.log_every >= 1, "log_every", "an integer >= 1"
        )
        if self.policy_steps is not None:
            need(
                all(isinstance(s, int) and 0 <= s <= self.steps for s in self.policy_steps),
                "policy_steps",
                f"integers in [0, steps={self.steps}]",
            )
        need(0 <= self.mode_min_mass < 1, "mode_min_mass", "a number in [0, 1)")
        need(self.dtype in ("float32", "float64"), "dtype", "float32 or float64")
        need(
            self.gradient in ("closed", "compiled", "autograd"),
            "gradient",
            "closed, compiled or autograd",
        )

    def check_machine(self) -> None:
        """Checks of this machine, made when a run starts (never when a config is built, so
        results saved with device=cuda load on a CPU machine)."""
        check_device("device", self.device)
        if self.gradient == "compiled" and self.device == "cpu":
            check_cpp_compiler("gradient", self.gradient, "gradient=closed")

    @property
    def temperatures(self) -> tuple[float, ...]:
        """The eta axis (kappas converted to eta = 1/kappa)."""
        if self.kappas is not None:
            return tuple(1.0 / k for k in self.kappas)
        return self.etas if self.etas is not None else (1.0,)

    @property
    def refresh_axis(self) -> tuple[int, ...]:
        """The pi_old refresh periods of the grid (0 = fixed)."""
        return self.refresh_periods if self.refresh_periods is not None else (self.refresh_every,)

    @property
    def clip_axis(self) -> tuple[float, ...]:
        """grpo's upper clip ranges (epsilon when no axis is given)."""
        return self.epsilon_highs if self.epsilon_highs is not None else (self.epsilon,)

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(range(self.seed, self.seed + self.n_seeds))

    @property
    def snapshot_steps(self) -> tuple[int, ...]:
        return (
            tuple(sorted(set(self.policy_steps)))
            if self.policy_steps is not None
            else (0, self.steps)
        )

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    def replace(self, **changes: Any) -> BanditConfig:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: its code path (objective, divergence, grpo's upper clip) and its
    hyperparameters (eta, lr, pi_old refresh period, seed)."""

    objective: str
    divergence: str  # "" for objectives without one
    eta: float
    lr: float
    seed: int
    refresh: int = 0  # pi_old refresh period in steps, 0 = fixed
    epsilon_high: float | None = None  # grpo only

    @property
    def group(self) -> tuple[str, str, float | None]:
        return (self.objective, self.divergence, self.epsilon_high)


def expand_runs(config: BanditConfig) -> list[RunSpec]:
    """The grid as a flat list: (objective, divergence, grpo clip) outermost, then refresh
    period, eta, lr, seed."""
    runs = []
    for obj in config.objectives:
        divs = config.divergences if obj in DIVERGENCE_OBJECTIVES else ("",)
        clips = config.clip_axis if obj == "grpo" else (None,)
        for div in divs:
            for clip in clips:
                for refresh in config.refresh_axis:
                    for eta in config.temperatures:
                        for lr in config.lrs:
                            runs.extend(
                                RunSpec(
                                    obj,
                                    div,
                                    float(eta),
                                    float(lr),
                                    s,
                                    int(refresh),
                                    None if clip is None else float(clip),
                                )
                                for s in config.seeds
                            )
    return runs


def reference_markdown() -> str:
    """The field reference of BanditConfig (`lad report` writes it into docs/configs.md)."""
    from labkit.config_loading import reference

    return reference(BanditConfig)
