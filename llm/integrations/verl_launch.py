"""The `python -m verl.trainer.main_ppo ...` command line for a LAD run (`lad llm verl`).

verl is configured by Hydra overrides (`key.path=value`). This module writes them: a preset (the
paper's Qwen2.5-7B / DAPO-Math setting on 8 GPUs, or a one-GPU run), then the LAD block built from
one labkit `LossConfig`, then the user's own overrides, later ones replacing earlier ones with the
same key. It imports nothing from verl, so it works in the main env; the verl env's test composes
verl's real config with these overrides (tests/test_verl_integration.py).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any

from labkit.config import LossConfig

PLUGIN_MODULE = "llm.integrations.verl"
CONFIG_TARGET = "llm.integrations.verl.LADPolicyLossConfig"
_ACTOR = "actor_rollout_ref.actor"
_POLICY_LOSS = f"{_ACTOR}.policy_loss"
# keys that verl's YAML lacks: Hydra adds them only with a leading '+'
_NEW_KEYS = {
    f"{_POLICY_LOSS}.{k}" for k in ("divergence", "eta", "kappa", "ratio_level", "standardized")
}
LAD_KEYS = ("divergence", "eta", "kappa", "ratio_level", "standardized", "loss_agg_mode")


@dataclass
class LaunchConfig:
    """The shorthands of `lad llm verl`; every other verl setting is a Hydra override."""

    preset: str = field(
        default="single-gpu",
        metadata={"help": "qwen2.5-7b-dapo-8gpu (the paper's setting, 8 GPUs) or single-gpu"},
    )
    model: str | None = field(
        default=None, metadata={"help": "actor_rollout_ref.model.path (HF id or dir)"}
    )
    train_files: str | None = field(
        default=None, metadata={"help": "data.train_files (verl parquet)"}
    )
    val_files: str | None = field(default=None, metadata={"help": "data.val_files (verl parquet)"})
    n_gpus_per_node: int | None = field(
        default=None, metadata={"help": "trainer.n_gpus_per_node", "flags": ("--n-gpus",)}
    )
    nnodes: int | None = field(default=None, metadata={"help": "trainer.nnodes"})
    python: str = field(
        default="python3", metadata={"help": "interpreter of the env with verl, vLLM, labkit"}
    )

    def shorthands(self) -> dict[str, Any]:
        """The keyword arguments of `main_ppo_command` these options set."""
        keys = ("model", "train_files", "val_files", "n_gpus_per_node", "nnodes")
        return {k: getattr(self, k) for k in keys}


@dataclass(frozen=True)
class Preset:
    """A ready verl setting: Hydra overrides (key -> value) and LAD's hyperparameters."""

    description: str
    overrides: dict[str, str]
    lad: dict[str, Any] = field(default_factory=dict)


def _path(path: str) -> str:
    """A path as a quoted Hydra string: Hydra's override grammar rejects a bare '~'."""
    return f"'{path}'"


def _quote(arg: str) -> str:
    """Shell quoting that keeps Hydra's single-quoted values readable."""
    if "'" in arg and not any(c in arg for c in '"$`\\!'):
        return f'"{arg}"'
    return shlex.quote(arg)


def _common(prompt_len: int, response_len: int) -> dict[str, str]:
    # GRPO-style group advantages, no critic, no KL term (LAD's divergence is its regulariser)
    return {
        "algorithm.adv_estimator": "grpo",
        "algorithm.use_kl_in_reward": "False",
        f"{_ACTOR}.use_kl_loss": "False",
        f"{_ACTOR}.entropy_coeff": "0",
        "data.max_prompt_length": str(prompt_len),
        "data.max_response_length": str(response_len),
        "data.filter_overlong_prompts": "True",
        "data.truncation": "left",
        "actor_rollout_ref.model.use_remove_padding": "True",
        "actor_rollout_ref.model.enable_gradient_checkpointing": "True",
        "actor_rollout_ref.rollout.name": "vllm",
        "trainer.logger": "[console]",
        "trainer.val_before_train": "True",
    }


PRESETS: dict[str, Preset] = {
    "qwen2.5-7b-dapo-8gpu": Preset(
        description=(
            "The paper's math setting: Qwen2.5-7B on DAPO-Math-17k, one node of 8 80 GB GPUs, "
            "FSDP + vLLM (TP 2), 128 prompts x 8 responses per step, 4 updates per rollout, kappa = 4"
        ),
        overrides={
            **_common(prompt_len=1024, response_len=4096),
            "actor_rollout_ref.model.path": "Qwen/Qwen2.5-7B",
            "data.train_files": _path("~/data/dapo-math-17k.parquet"),
            "data.val_files": _path("~/data/aime-2024.parquet"),
            "data.train_batch_size": "128",
            "actor_rollout_ref.rollout.n": "8",
            f"{_ACTOR}.ppo_mini_batch_size": "32",
            f"{_ACTOR}.use_dynamic_bsz": "True",
            f"{_ACTOR}.ppo_max_token_len_per_gpu": "10240",
            f"{_ACTOR}.optim.lr": "1e-6",
            "actor_rollout_ref.rollout.tensor_model_parallel_size": "2",
            "actor_rollout_ref.rollout.gpu_memory_utilization": "0.6",
            "trainer.n_gpus_per_node": "8",
            "trainer.nnodes": "1",
            "trainer.project_name": "lad",
            "trainer.experiment_name": "qwen2.5-7b-dapo-lad-js",
            "trainer.test_freq": "10",
            "trainer.save_freq": "50",
            "trainer.total_epochs": "1",
        },
        lad={"divergence": "js", "kappa": 4.0},
    ),
    "single-gpu": Preset(
        description=(
            "One GPU (24 GB or more): Qwen2.5-0.5B-Instruct on DAPO-Math-17k, FSDP + vLLM (TP 1), "
            "64 prompts x 8 responses per step, 4 updates per rollout"
        ),
        overrides={
            **_common(prompt_len=512, response_len=1024),
            "actor_rollout_ref.model.path": "Qwen/Qwen2.5-0.5B-Instruct",
            "data.train_files": _path("~/data/dapo-math-17k.parquet"),
            "data.val_files": _path("~/data/aime-2024.parquet"),
            "data.train_batch_size": "64",
            "actor_rollout_ref.rollout.n": "8",
            f"{_ACTOR}.ppo_mini_batch_size": "16",
            f"{_ACTOR}.ppo_micro_batch_size_per_gpu": "8",
            "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu": "16",
            f"{_ACTOR}.optim.lr": "1e-6",
            "actor_rollout_ref.rollout.tensor_model_parallel_size": "1",
            "actor_rollout_ref.rollout.gpu_memory_utilization": "0.4",
            "trainer.n_gpus_per_node": "1",
            "trainer.nnodes": "1",
            "trainer.project_name": "lad",
            "trainer.experiment_name": "qwen2.5-0.5b-dapo-lad-js",
            "trainer.test_freq": "10",
            "trainer.save_freq": "-1",
            "trainer.total_epochs": "1",
        },
        lad={"divergence": "js"},
    ),
}


def lad_overrides(loss: LossConfig) -> dict[str, str]:
    """The overrides that make verl train with labkit's LAD loss and these hyperparameters."""
    if loss.loss_mode != "lad":
        raise ValueError(f"loss_mode={loss.loss_mode!r}: the verl plug-in registers only 'lad'")
    out = {
        "actor_rollout_ref.model.external_lib": PLUGIN_MODULE,
        f"{_POLICY_LOSS}.loss_mode": "lad",
        f"{_POLICY_LOSS}._target_": CONFIG_TARGET,
        f"{_POLICY_LOSS}.divergence": loss.divergence,
        f"{_POLICY_LOSS}.ratio_level": loss.ratio_level,
        f"{_POLICY_LOSS}.standardized": str(loss.standardized),
        f"{_ACTOR}.loss_agg_mode": loss.loss_agg_mode,
    }
    for name in ("eta", "kappa"):  # only the one that is set; verl's default for both is null
        value = getattr(loss, name)
        if value is not None:
            out[f"{_POLICY_LOSS}.{name}"] = repr(float(value))
    return out


def _parse_override(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    key = key.lstrip("+")
    if not sep or not key:
        raise ValueError(
            f"override={text!r} is not valid; expected key.path=value (a Hydra override)"
        )
    return key, value


def main_ppo_command(
    preset: str,
    lad: dict[str, Any] | None = None,
    overrides: list[str] | None = None,
    python: str = "python3",
    *,
    model: str | None = None,
    train_files: str | None = None,
    val_files: str | None = None,
    n_gpus_per_node: int | None = None,
    nnodes: int | None = None,
) -> list[str]:
    """argv of `python -m verl.trainer.main_ppo` for a LAD run.

    Args:
        preset: a key of PRESETS.
        lad: LAD options given explicitly (keys of LAD_KEYS); they replace the preset's, and
            eta replaces a preset's kappa (or the reverse).
        overrides: Hydra overrides `key=value` applied last (a leading '+' is optional).
        python: the interpreter of the env where verl and labkit are installed.
        model, train_files, val_files, n_gpus_per_node, nnodes: shorthands for the overrides
            actor_rollout_ref.model.path, data.train_files, data.val_files, trainer.*.
    """
    if preset not in PRESETS:
        raise ValueError(f"preset={preset!r} is not valid; expected one of {sorted(PRESETS)}")
    chosen = PRESETS[preset]
    lad = {k: v for k, v in (lad or {}).items() if v is not None}
    unknown = sorted(set(lad) - set(LAD_KEYS))
    if unknown:
        raise ValueError(f"lad options {unknown} are not valid; expected some of {list(LAD_KEYS)}")
    merged = dict(chosen.lad)
    if "eta" in lad or "kappa" in lad:
        merged.pop("eta", None)
        merged.pop("kappa", None)
    merged.update(lad)
    loss = LossConfig(loss_mode="lad", **merged)
    values = {**chosen.overrides, **lad_overrides(loss)}
    named = {
        "actor_rollout_ref.model.path": None if model is None else _path(model),
        "data.train_files": None if train_files is None else _path(train_files),
        "data.val_files": None if val_files is None else _path(val_files),
        "trainer.n_gpus_per_node": n_gpus_per_node,
        "trainer.nnodes": nnodes,
    }
    for key, value in named.items():
        if isinstance(value, int) and value < 1:
            raise ValueError(f"{key.split('.')[-1]}={value} is not valid; expected an integer >= 1")
        if value is not None:
            values[key] = str(value)
    for text in overrides or []:
        key, value = _parse_override(text)
        values[key] = value
    if values.get("algorithm.rollout_correction.bypass_mode", "").lower() == "true":
        # verl then rewrites policy_loss.loss_mode to its own bypass loss: LAD would silently vanish
        raise ValueError(
            "algorithm.rollout_correction.bypass_mode=True replaces loss_mode=lad with verl's bypass "
            "loss; expected bypass_mode=False (rollout IS weights still reach LAD)"
        )
    args = [f"{'+' if k in _NEW_KEYS else ''}{k}={v}" for k, v in values.items()]
    return [python, "-m", "verl.trainer.main_ppo", *args]


def run_command(argv: list[str], python: str) -> int:
    """`lad llm verl --run`: run argv (main_ppo_command) once `python` imports verl and labkit's
    plug-in; returns its exit code."""
    import subprocess

    probe = subprocess.run([python, "-c", "import llm.integrations.verl"], capture_output=True)
    if probe.returncode != 0:
        raise ValueError(
            f"{python} cannot import verl and labkit's plug-in (scripts/setup_verl_env.sh)"
        )
    return subprocess.run(argv, check=False).returncode


def render_script(argv: list[str], preset: str) -> str:
    """A bash script that runs argv, one override per line (what `lad llm verl` prints)."""
    head = [
        "#!/usr/bin/env bash",
        f"# {PRESETS[preset].description}.",
        f"# Generated by: lad llm verl --preset {preset}",
        "# Needs verl (with vLLM) and labkit installed in the same env; data: verl parquet files.",
        "set -euo pipefail",
    ]
    lines = [shlex.join(argv[:3])] + ["    " + _quote(a) for a in argv[3:]]
    return "\n".join(head) + "\n" + " \\\n".join(lines) + "\n"
