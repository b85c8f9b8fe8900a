"""Reading a TrainConfig: dataclass defaults < YAML file < dotted `section.field=value` overrides
(TRL's TrlParser order), and the field reference (`describe`).

Override values are parsed as YAML scalars/lists (`3`, `1e-6`, `true`, `null`, `[1, 2]`); a
string field takes the text as written. An unknown section or key, or a value of the wrong type, is
a ValueError naming the key. `algorithm.eta` and `algorithm.kappa` are one knob: the later layer
that sets one drops the other.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from llm.config import TrainConfig


def _sections() -> dict[str, type]:
    return {f.name: f.default_factory for f in dataclasses.fields(TrainConfig)}  # type: ignore[misc]


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(key: str, value: Any, tp: Any, raw: str | None) -> Any:
    """Check `value` against the annotation `tp`; return it converted (int -> float, ...).

    raw: the override text as typed (a str field takes it verbatim).
    """
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [
            a
            for a in typing.get_args(tp)
            if a is not type(None) and getattr(a, "__name__", "") != "Tensor"
        ]
        if value is None and type(None) in typing.get_args(tp):
            return None
        errors = []
        for a in args:
            try:
                return _coerce(key, value, a, raw)
            except ValueError as e:
                errors.append(str(e))
        raise ValueError(errors[0] if errors else f"{key}: invalid value {value!r}")
    if origin is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ValueError(
                f"{key}={value!r} has the wrong type; expected a list of {item.__name__}"
            )
        return [_coerce(f"{key}[{i}]", v, item, None) for i, v in enumerate(value)]
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 1e-6 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value
        if raw is not None:
            return raw
    raise ValueError(f"{key}={value!r} has the wrong type; expected {getattr(tp, '__name__', tp)}")


def parse_override(text: str) -> tuple[str, str, tuple[Any, str]]:
    """ "section.field=value" -> (section, field, (YAML-parsed value, raw text))."""
    if "=" not in text:
        raise ValueError(
            f"override {text!r} is not valid; expected section.field=value (e.g. algorithm.divergence=js)"
        )
    key, _, raw = text.partition("=")
    parts = key.strip().split(".")
    if len(parts) != 2 or not all(parts):
        raise ValueError(
            f"override key {key!r} is not valid; expected section.field (e.g. trainer.seed)"
        )
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return parts[0], parts[1], (value, raw)


def load_config(
    path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()
) -> TrainConfig:
    """Build a validated TrainConfig from an optional YAML file and dotted overrides (CLI wins)."""
    sections = _sections()
    layers: dict[str, dict[str, tuple[Any, str | None]]] = {name: {} for name in sections}

    def apply(section: str, key: str, value: tuple[Any, str | None], layer: set[str]) -> None:
        layers[section][key] = value
        layer.add(f"{section}.{key}")

    def exclusive(layer: set[str]) -> None:
        # eta and kappa are two spellings of one knob: a later layer that sets one drops the other
        for mine, other in (("eta", "kappa"), ("kappa", "eta")):
            if f"algorithm.{mine}" in layer and f"algorithm.{other}" not in layer:
                layers["algorithm"][other] = (None, None)

    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file {str(path)!r} does not exist")
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(
                f"config file {str(path)!r} must hold a mapping of sections, got {type(data).__name__}"
            )
        file_layer: set[str] = set()
        for section, values in data.items():
            if section not in sections:
                raise ValueError(
                    f"unknown config section {section!r} in {path}; expected one of {list(sections)}"
                )
            if not isinstance(values, dict):
                raise ValueError(
                    f"config section {section!r} in {path} must be a mapping, got {values!r}"
                )
            for key, value in values.items():
                apply(section, key, (value, None), file_layer)
        exclusive(file_layer)
    cli_layer: set[str] = set()
    for text in overrides:
        section, key, value = parse_override(text)
        if section not in sections:
            raise ValueError(
                f"unknown config section {section!r} in override {text!r}; expected one of {list(sections)}"
            )
        apply(section, key, value, cli_layer)
    exclusive(cli_layer)
    built = {}
    for section, cls in sections.items():
        types_ = _field_types(cls)
        kwargs = {}
        for key, (value, raw) in layers[section].items():
            if key not in types_:
                raise ValueError(
                    f"unknown config key {section}.{key}; expected one of {sorted(types_)}"
                )
            kwargs[key] = _coerce(f"{section}.{key}", value, types_[key], raw)
        built[section] = cls(**kwargs)
    return TrainConfig(**built)


def describe() -> str:
    """Every field with its default and help text, as a YAML-like reference (docs/llm.md, --help)."""
    lines = []
    defaults = TrainConfig()
    for section, cls in _sections().items():
        lines.append(f"{section}:")
        obj = getattr(defaults, section)
        for f in dataclasses.fields(cls):
            value = getattr(obj, f.name)
            lines.append(
                f"  {f.name}: {yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()}"
                f"  # {f.metadata.get('help', '')}"
            )
    return "\n".join(lines)
