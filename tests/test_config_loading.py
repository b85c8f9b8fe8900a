"""The one typed-config mechanism: layers, type checks, one-line errors, run-start checks."""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from typing import ClassVar

import pytest
import torch

from bandit import results
from bandit.config import BanditConfig
from bandit.trainer import train
from labkit.config_cli import cli_fields
from labkit.config_loading import (
    check_device,
    coerce,
    describe,
    from_dict,
    load,
    parse_override,
)
from llm.config import TrainConfig
from llm.demo_config import DemoConfig


@dataclass
class Inner:
    steps: int = field(default=3, metadata={"help": "steps"})
    lr: float = field(default=0.1, metadata={"help": "learning rate"})


@dataclass
class Outer:
    EXCLUSIVE: ClassVar = (("eta", "kappa"),)

    eta: float | None = field(default=None, metadata={"help": "temperature"})
    kappa: float | None = field(default=None, metadata={"help": "inverse temperature"})
    pair: tuple[float, float] = field(default=(0.9, 0.99), metadata={"help": "two numbers"})
    grid: tuple[float, ...] = field(default=(1.0,), metadata={"help": "a grid axis"})
    either: float | list[float] = field(default=1.0, metadata={"help": "one or many"})
    names: dict[str, list[str]] = field(default_factory=dict, metadata={"help": "a mapping"})
    inner: Inner = field(default_factory=lambda: Inner(steps=600), metadata={"help": "section"})


def test_types_are_checked_and_converted():
    assert coerce("x", 2, float) == 2.0 and isinstance(coerce("x", 2, float), float)
    assert coerce("x", "1e-6", float) == 1e-6  # YAML 1.1 reads 1e-6 as a string
    assert coerce("x", [1, 2], tuple[float, ...]) == (1.0, 2.0)
    assert coerce("x", 3, tuple[float, ...]) == (3.0,)  # a scalar where a list goes
    assert coerce("x", "0.5,2", tuple[float, ...], raw="0.5,2") == (0.5, 2.0)  # CLI text
    assert coerce("x", [1, 2], float | list[float]) == [1.0, 2.0]
    assert coerce("x", None, int | None) is None
    for value, tp, expected in [
        (True, int, "expected int"),
        (1.5, int, "expected int"),
        ([1, 2, 3], tuple[float, float], r"expected 2 values \(float, float\)"),
        ("x", float | list[float], "expected float or a list of float"),
        (3, bool, "expected bool"),
    ]:
        with pytest.raises(
            ValueError, match=rf"^x={re.escape(repr(value))} is not valid; {expected}$"
        ):
            coerce("x", value, tp)


def test_layers_merge_sections_and_keep_section_defaults(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("kappa: 4\ninner:\n  lr: 0.5\n")
    cfg = load(Outer, path, ["inner.steps=7"])
    assert (cfg.kappa, cfg.inner) == (4.0, Inner(steps=7, lr=0.5))
    # a section given in part keeps the field's own default (600), not Inner's (3)
    assert load(Outer, path).inner == Inner(steps=600, lr=0.5)
    assert from_dict(Outer, {"inner": {"lr": 1}}).inner.steps == 600


def test_exclusive_fields_a_later_layer_drops_the_other(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("kappa: 4\n")
    cfg = load(Outer, path, ["eta=2"])
    assert (cfg.eta, cfg.kappa) == (2.0, None)
    cfg = load(Outer, path, ["eta=2", "kappa=3"])  # both in one layer: both kept
    assert (cfg.eta, cfg.kappa) == (2.0, 3.0)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("pair: [1, 2\n", r"is not valid YAML \(line 2, column 1\)"),
        ("pair: [1, 2, 3]\n", r"pair=\[1, 2, 3\] is not valid; expected 2 values"),
        ("pairs: [1, 2]\n", r"unknown config key pairs in config file .*; expected one of"),
        ("inner:\n  step: 1\n", r"unknown config key inner\.step in config file"),
        ("inner: 3\n", r"inner=3 is not valid; expected a Inner mapping"),
        ("[1, 2]\n", "must hold a mapping of config keys, got list"),
    ],
)
def test_bad_files_are_one_line(tmp_path, text, match):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=match) as err:
        load(Outer, path)
    assert "\n" not in str(err.value)


def test_overrides():
    assert parse_override("a.b=[1, 2]")[0] == ["a", "b"]
    assert parse_override("a.b=[1, 2]")[1].value == [1, 2]
    with pytest.raises(ValueError, match=r"expected key=value or section\.key=value"):
        parse_override("a.b")
    with pytest.raises(ValueError, match="eta in the overrides is not a section"):
        load(Outer, None, ["eta.x=1"])
    cfg = load(Outer, None, ["names.grpo=[a, b]", "grid=1,2"])
    assert cfg.names == {"grpo": ["a", "b"]} and cfg.grid == (1.0, 2.0)


def test_describe_and_cli_fields_cover_every_field():
    for cls in (BanditConfig, TrainConfig, DemoConfig):
        text = describe(cls)
        for f in dataclasses.fields(cls):
            assert f"{f.name}:" in text, (cls.__name__, f.name)
    flags = {name: fl for name, _, _, _, fl in cli_fields(BanditConfig)}
    assert flags["n_arms"] == ("--arms", "-K") and flags["steps"] == ("--steps",)


def test_device_checks_name_the_key():
    assert check_device("device", "cpu") == torch.device("cpu")
    assert check_device("trainer.device", "auto", allow_auto=True).type in ("cpu", "cuda")
    with pytest.raises(ValueError, match=r"^device='tpu' is not valid; expected cpu, cuda"):
        check_device("device", "tpu")
    with pytest.raises(ValueError, match=r"device='cuda:99' is not available"):
        check_device("device", "cuda:99")


def test_results_saved_on_a_gpu_load_on_any_machine(tmp_path):
    # a config names a device; only a run checks that this machine has it
    out = results.save(train(BanditConfig(steps=2, log_every=1)), tmp_path / "run")
    meta = json.loads((out / "config.json").read_text())
    meta["config"]["device"] = "cuda:99"
    (out / "config.json").write_text(json.dumps(meta))
    back = results.load(out)
    assert back.config.device == "cuda:99" and back.metrics.shape[:2] == (3, 1)
    with pytest.raises(ValueError, match="device='cuda:99' is not available"):
        train(back.config)
