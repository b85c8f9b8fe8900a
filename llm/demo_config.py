"""The configuration of `lad llm demo`: which methods, seeds and budget, the warm-up and the
evaluation; and the sweeps (eta, divergence, mu) that feed the LLM figures and tables.

A method is a list of `llm.config` overrides (section.field=value) applied on top of the shared
`train` overrides, so every method gets the same budget and the runs are ordinary trainer runs
(`lad llm train --config runs/<method>/seed_<s>/config.yaml` repeats one).
configs/llm/demo/demo.yaml spells out the defaults (a test checks they are equal); it is read
like every config, by labkit.config_loading (`lad llm demo -c FILE key=value ...`).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labkit.config_loading import check_at_least, to_dict
from llm.tasks.warmup import WarmupConfig

REWARD_SPEC = "llm.tasks.multi_answer:multi_answer_reward"
DEFAULT_METHODS = {
    "grpo": ["algorithm.loss_mode=grpo", "algorithm.epsilon=0.2", "algorithm.epsilon_high=0.28"],
    "lad_js": ["algorithm.loss_mode=lad", "algorithm.divergence=js", "algorithm.kappa=4"],
}
# paper grid {0.5, ..., 16}; whether it is eta or kappa is open (docs/method.md section 2): here kappa
KAPPA_GRID = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
DIVERGENCE_GRID = ("kl", "rkl", "jeffreys", "tv", "hellinger", "js")
# updates per rollout (the pi_old refresh period) -> (mini_batch_size, num_iterations) at B = 16:
# minibatches first (1, 2, 4 per epoch), then epochs over 4 minibatches; mu 8 is the default
MU_GRID = {1: (16, 1), 2: (8, 1), 4: (4, 1), 8: (4, 2), 16: (4, 4)}
MU_METHODS = ("grpo", "lad_js")
SWEEPS = ("main", "eta", "divergence", "mu")
DEFAULT_TRAIN = [
    "trainer.max_steps=60",
    "trainer.train_batch_size=16",
    "trainer.mini_batch_size=4",
    "trainer.learning_rate=0.0003",
    "trainer.warmup_steps=5",
    "trainer.max_grad_norm=1.0",
    "rollout.num_generations=8",
    "rollout.max_completion_length=4",
    "rollout.temperature=1.0",
    "algorithm.num_iterations=2",
]


@dataclass
class DemoConfig:
    """Everything `lad llm demo` runs; configs/llm/demo/demo.yaml spells out these defaults."""

    seeds: list[int] = field(
        default_factory=lambda: list(range(10)),
        metadata={"help": "RL seeds, one run per method and seed (10: CIs that separate ~5%)"},
    )
    methods: dict[str, list[str]] = field(
        default_factory=lambda: copy.deepcopy(DEFAULT_METHODS),
        metadata={"help": "method name -> trainer overrides (section.field=value) for that method"},
    )
    train: list[str] = field(
        default_factory=lambda: list(DEFAULT_TRAIN),
        metadata={"help": "trainer overrides shared by every method (same budget for all)"},
    )
    warmup: WarmupConfig = field(
        default_factory=lambda: WarmupConfig(steps=600), metadata={"help": "supervised warm-up"}
    )
    warmup_correct_frac: float = field(
        default=0.5,
        metadata={
            "help": "share of warm-up samples that are correct (the rest: random well-formed)"
        },
    )
    model_seed: int = field(
        default=0, metadata={"help": "seed of the model init and the warm-up data"}
    )
    eval_n: int = field(
        default=32,
        metadata={
            "help": "samples per prompt of every evaluation (warm-up, during training, final)"
        },
    )
    eval_every: int = field(
        default=10, metadata={"help": "evaluate during training every N steps (0 = final only)"}
    )
    workers: int = field(
        default=2,
        metadata={
            "help": "runs in parallel (processes, one torch thread each)",
            "flags": ("--workers", "-j"),
        },
    )

    def __post_init__(self) -> None:
        if not self.seeds:
            raise ValueError("seeds=[] is not valid; expected at least one seed")
        if not self.methods:
            raise ValueError("methods={} is not valid; expected at least one method")
        if not 0 <= self.warmup_correct_frac <= 1:
            raise ValueError(
                f"warmup_correct_frac={self.warmup_correct_frac} is not valid; expected a value in [0, 1]"
            )
        for name in ("eval_n", "workers"):
            check_at_least(name, getattr(self, name), 1)
        check_at_least("eval_every", self.eval_every, 0)
        for method in self.methods:  # every run's trainer config must be valid up front
            self.trainer_config(
                method, 0, Path("runs/check"), Path("warmup"), Path("prompts.jsonl")
            )

    def trainer_config(self, method: str, seed: int, out: Path, warmup_dir: Path, prompts: Path):
        """The validated llm.config.TrainConfig of one run (demo settings win over the method's)."""
        from llm.config import load_config

        if method not in self.methods:
            raise ValueError(
                f"method={method!r} is not valid; expected one of {sorted(self.methods)}"
            )
        pinned = [
            f"model.path={warmup_dir}",
            f"data.dataset={prompts}",
            f"data.eval_dataset={prompts}",
            f"data.reward_funcs=[{REWARD_SPEC}]",
            f"trainer.seed={seed}",
            f"trainer.output_dir={out}",
            "trainer.save_steps=0",  # the final checkpoint only
            "trainer.progress_bar=false",
            "trainer.device=cpu",
            "eval.max_prompts=null",
        ]
        return load_config(None, [*self.train, *self.methods[method], *pinned])

    def select(self, names: list[str]) -> DemoConfig:
        """Only the named methods (in the given order)."""
        unknown = [n for n in names if n not in self.methods]
        if unknown or not names:
            raise ValueError(
                f"methods {unknown or names} are not valid; expected some of {sorted(self.methods)}"
            )
        return dataclasses.replace(self, methods={n: self.methods[n] for n in names})

    def quick(self) -> DemoConfig:
        """The CI variant: two seeds (the fewest a paired CI needs), a few steps, small evaluations."""
        return dataclasses.replace(
            self,
            seeds=self.seeds[:2],
            train=[*self.train, "trainer.max_steps=4", "trainer.mini_batch_size=16"],
            warmup=dataclasses.replace(self.warmup, steps=40),
            eval_n=8,
            eval_every=2,
            workers=1,
        )

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)


@dataclass
class DemoRun:
    """How `lad llm demo` runs a DemoConfig: which sweep, where to, and what to skip."""

    quick: bool = field(
        default=False, metadata={"help": "CI size: two seeds, 4 steps, small evaluations"}
    )
    out: str = field(
        default="results/llm_demo",
        metadata={"help": "output directory", "flags": ("--out", "-o")},
    )
    sweep: str = field(
        default="main", metadata={"help": "main (GRPO, LAD-JS), eta, divergence or mu"}
    )
    methods: str | None = field(
        default=None, metadata={"help": "only these methods, e.g. grpo,lad_js"}
    )
    summarize: bool = field(
        default=False, metadata={"help": "train nothing: rewrite OUT/summary*.json"}
    )
    figures: bool = field(default=True, metadata={"help": "draw OUT/figures"})

    def resolve(self, config: DemoConfig, given: list[str], train: list[str]) -> DemoConfig:
        """The config this run trains: the sweep's methods, the --quick preset (options `given`
        on the command line still win), extra trainer overrides, and only --methods."""
        config = sweep_config(config, self.sweep)
        if self.quick:
            config = dataclasses.replace(config.quick(), **{k: getattr(config, k) for k in given})
        if train:
            config = dataclasses.replace(config, train=[*config.train, *train])
        if self.methods is not None:
            config = config.select(self.methods.replace(",", " ").split())
        return config


def sweep_config(config: DemoConfig, sweep: str) -> DemoConfig:
    """The config of a sweep: main (config.methods), eta (LAD-JS at every kappa of KAPPA_GRID) or
    divergence (GRPO and LAD with every divergence of DIVERGENCE_GRID at kappa 4) or mu (GRPO and
    LAD-JS at every updates-per-rollout of MU_GRID, through minibatches and epochs). Method names
    are run directory names, so sweeps can share an output directory with the main comparison."""
    if sweep == "main":
        return config
    lad = ["algorithm.loss_mode=lad"]
    if sweep == "eta":
        methods = {
            f"lad_js_kappa{k:g}": [*lad, "algorithm.divergence=js", f"algorithm.kappa={k}"]
            for k in KAPPA_GRID
        }
    elif sweep == "divergence":
        methods = {"grpo": list(DEFAULT_METHODS["grpo"])}
        methods |= {
            f"lad_{d}": [*lad, f"algorithm.divergence={d}", "algorithm.kappa=4"]
            for d in DIVERGENCE_GRID
        }
    elif sweep == "mu":
        methods = {
            f"{name}_mu{mu}": [
                *DEFAULT_METHODS[name],
                f"trainer.mini_batch_size={mini}",
                f"algorithm.num_iterations={epochs}",
            ]
            for mu, (mini, epochs) in MU_GRID.items()
            for name in MU_METHODS
        }
    else:
        raise ValueError(f"sweep={sweep!r} is not valid; expected one of {list(SWEEPS)}")
    return dataclasses.replace(config, methods=methods)


def results_file(sweep: str) -> str:
    """results.json for the main comparison, results_<sweep>.json for a sweep."""
    return "results.json" if sweep == "main" else f"results_{sweep}.json"


def reference_markdown() -> str:
    """The field reference of DemoConfig (`lad report` writes it into docs/configs.md)."""
    from labkit.config_loading import reference

    return reference(DemoConfig)
