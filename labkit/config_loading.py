"""Typed configs from dataclasses: defaults < YAML/TOML file < dotted overrides, one-line errors.

Every config in labkit, bandit/ and llm/ is a dataclass whose fields carry help text
(`metadata={"help": ...}`) and whose `__post_init__` checks values. This module is the one place
that turns text into such a config:
- `load(cls, path, overrides)` merges the layers (TRL's TrlParser order: the command line wins),
  checks every key and every value against the field's type annotation and builds the dataclass
  (so `__post_init__` runs once, on the final values). Nested dataclass fields are sections:
  `trainer.seed=3`, or `trainer: {seed: 3}` in a file.
- An unknown key, a value of the wrong type and malformed YAML each raise one `ValueError` line
  that names the key (or file), the value and what was expected; the CLI prints it and exits 2.
- Override values are YAML scalars or lists (`3`, `1e-6`, `true`, `null`, `[1, 2]`); a list or
  tuple field also takes `a,b,c`, and a str field takes the text as written.
- `ClassVar EXCLUSIVE` on a config names fields that are two spellings of one knob (eta / kappa):
  a layer that sets one of them drops the others set by earlier layers.
- `describe(cls)` is the field reference (`lad config NAME`, docs/configs.md);
  labkit/config_cli.py turns the same fields into command-line options.
- Machine and file checks (`check_device`, `check_file`) are separate functions that runs call
  when they start, never `__post_init__`: a config saved on a GPU machine loads on any machine.

Why not OmegaConf structured configs (verl's choice; omegaconf 2.3.0 evaluated): it rejects
unions of containers or tensors (`float | list[float]`, labkit's `eta: float | Tensor`), turns
tuples into lists without checking their length (`tuple[float, float]` took 3 values), reports
errors over four lines with internal object types, and pins `antlr4-python3-runtime==4.9.*`, which
conflicts with the `math-verify[antlr4_13_2]` the llm extra needs. What labkit needs of it (typed
merge of YAML and dotted overrides) is the ~200 lines below; users write the same YAML and the
same `section.key=value` overrides they know from verl and Hydra.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml


def help_of(cls: type, name: str) -> str:
    """The help text of a dataclass field (written once, shown by the CLI and the docs)."""
    return next(f.metadata.get("help", "") for f in dataclasses.fields(cls) if f.name == name)


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_config(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def type_name(tp: Any) -> str:
    """A short, user-facing name of a field type: `float`, `list of int`, `float or null`, ..."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        names = [type_name(a) for a in args if a is not type(None) and a.__name__ != "Tensor"]
        return " or ".join(names + (["null"] if type(None) in args else []))
    if origin in (list, tuple):
        if origin is tuple and args and args[-1] is not Ellipsis:
            return f"{len(args)} values ({', '.join(type_name(a) for a in args)})"
        return f"a list of {type_name(args[0])}" if args else "a list"
    if origin is dict:
        return f"a mapping of {type_name(args[0])} to {type_name(args[1])}"
    if _is_config(tp):
        return f"a {tp.__name__} mapping"
    return getattr(tp, "__name__", str(tp))


def _bad(key: str, value: Any, tp: Any) -> ValueError:
    return ValueError(f"{key}={value!r} is not valid; expected {type_name(tp)}")


def coerce(key: str, value: Any, tp: Any, raw: str | None = None) -> Any:
    """`value` checked against the annotation `tp` and converted (int -> float, list -> tuple).

    key: dotted name for messages. raw: the text as typed on the command line, if any (a str
    field takes it verbatim; a list field splits it at commas).
    """
    if isinstance(value, _Text):
        value, raw = value.value, value.raw
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        if any(getattr(a, "__name__", "") == "Tensor" and isinstance(value, a) for a in args):
            return value  # per-run tensors (vectorised bandit) come from code, never from text
        for a in args:
            if a is type(None) or getattr(a, "__name__", "") == "Tensor":
                continue
            try:
                return coerce(key, value, a, raw)
            except ValueError:
                pass
        raise _bad(key, value, tp)
    if origin in (list, tuple):
        if isinstance(value, str) and raw is not None:
            value = [_scalar_text(v) for v in value.split(",") if v.strip()]
        elif not isinstance(value, list | tuple):
            value = [value]  # a scalar where a list is expected: a list of one
        fixed = origin is tuple and args and args[-1] is not Ellipsis
        if fixed and len(value) != len(args):
            raise _bad(key, value, tp)
        items = args if fixed else [args[0] if args else Any] * len(value)
        try:
            out = [coerce(key, v, t) for v, t in zip(value, items, strict=True)]
        except ValueError:
            raise _bad(key, raw if raw is not None else value, tp) from None
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, Mapping):
            raise _bad(key, value, tp)
        return {coerce(key, k, args[0]): coerce(f"{key}.{k}", v, args[1]) for k, v in value.items()}
    if _is_config(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise _bad(key, value, tp)
        return from_dict(tp, value, prefix=f"{key}.")
    if tp is Any:
        return value
    if tp is bool and isinstance(value, bool):
        return value
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 1e-6 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    if tp is str:
        if isinstance(value, str):
            return value
        if raw is not None:
            return raw
    raise _bad(key, value, tp)


def _scalar_text(text: str) -> Any:
    try:
        return yaml.safe_load(text.strip())
    except yaml.YAMLError:
        return text.strip()


def from_dict(cls: type, data: Mapping[str, Any], prefix: str = "") -> Any:
    """Build `cls` from a mapping of field values (sections as nested mappings).

    Unknown keys and mistyped values raise one line naming the dotted key; `__post_init__`
    then validates the values.
    """
    if not isinstance(data, Mapping):
        raise ValueError(
            f"{prefix.rstrip('.') or cls.__name__} must be a mapping of {cls.__name__} fields, "
            f"got {type(data).__name__}"
        )
    hints = _hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            raise ValueError(f"unknown config key {prefix}{key}; expected one of {sorted(fields)}")
        if _is_config(hints[key]) and isinstance(value, Mapping):
            # a section given in part keeps the field's own default for the rest
            value = {**to_dict(field_default(fields[key])), **value}
        kwargs[key] = coerce(f"{prefix}{key}", value, hints[key])
    return cls(**kwargs)


def field_default(f: dataclasses.Field) -> Any:
    """A field's default value (its default_factory called), None when it has none."""
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


@dataclasses.dataclass(frozen=True)
class _Text:
    """An override value: the YAML-parsed value and the text as typed."""

    value: Any
    raw: str


def parse_override(text: str) -> tuple[list[str], _Text]:
    """`"section.field=value"` -> (["section", "field"], the value)."""
    key, eq, raw = text.partition("=")
    path = key.strip().split(".")
    if not eq or not all(path):
        raise ValueError(
            f"override {text!r} is not valid; expected key=value or section.key=value "
            "(e.g. algorithm.divergence=js)"
        )
    return path, _Text(_scalar_text(raw) if raw.strip() else "", raw)


def read_file(path: str | Path) -> dict[str, Any]:
    """The mapping in a .yaml/.yml/.toml config file (an empty file is {}); one-line errors."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {str(path)!r} does not exist")
    text = path.read_text()
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            data = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        else:
            raise ValueError(
                f"config file {str(path)!r} is not valid; expected a .yaml, .yml or .toml file"
            )
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ValueError(f"config file {str(path)!r} is not valid YAML{where}: {problem}") from None
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"config file {str(path)!r} is not valid TOML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(
            f"config file {str(path)!r} must hold a mapping of config keys, got {type(data).__name__}"
        )
    return data


def load(
    cls: type,
    path: str | Path | None = None,
    overrides: Sequence[str] = (),
    base: Any = None,
) -> Any:
    """A validated `cls` from layers: `base` (or the defaults) < the file at `path` < overrides."""
    merged: dict[str, Any] = to_dict(base) if base is not None else {}
    if path is not None:
        _merge(cls, merged, read_file(path), "", f"config file {str(path)!r}")
    layer: dict[str, Any] = {}
    for text in overrides:
        keys, value = parse_override(text)
        node = layer
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {text!r}: {'.'.join(keys[:-1])} is not a section")
        node[keys[-1]] = value
    _merge(cls, merged, layer, "", "the overrides")
    return from_dict(cls, merged)


def _merge(
    cls: type, into: dict[str, Any], layer: Mapping[str, Any], prefix: str, source: str
) -> None:
    """Merge one layer into the accumulated values (sections key by key); unknown keys raise."""
    if not isinstance(layer, Mapping):
        raise ValueError(f"{prefix.rstrip('.')} in {source} must be a mapping, got {layer!r}")
    hints = _hints(cls)
    names = sorted(f.name for f in dataclasses.fields(cls) if f.init)
    for key, value in layer.items():
        if key not in names:
            raise ValueError(
                f"unknown config key {prefix}{key} in {source}; expected one of {names}"
            )
        tp = hints[key]
        if _is_config(tp) and isinstance(value, Mapping):
            node = into.get(key)
            node = dict(node) if isinstance(node, Mapping) else {}
            _merge(tp, node, value, f"{prefix}{key}.", source)
            into[key] = node
        elif isinstance(value, Mapping) and typing.get_origin(tp) is not dict:
            raise ValueError(
                f"{prefix}{key} in {source} is not a section; expected {type_name(tp)}"
            )
        else:
            into[key] = value
    for group in getattr(cls, "EXCLUSIVE", ()):
        given = [k for k in group if k in layer]
        if given:
            for other in group:
                if other not in given:
                    into[other] = None


def to_dict(obj: Any) -> Any:
    """A config as plain YAML/JSON data (tuples -> lists, tensors -> lists, sections -> dicts)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, list | tuple):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return obj


def describe(cls: type, obj: Any = None, indent: str = "") -> str:
    """Every field, its value (default unless `obj` is given), type and help, as commented YAML."""
    obj = cls() if obj is None else obj
    lines = []
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        value = getattr(obj, f.name)
        if _is_config(hints[f.name]):
            lines.append(f"{indent}{f.name}:")
            lines.append(describe(hints[f.name], value, indent + "  "))
            continue
        text = yaml.safe_dump(to_dict(value), default_flow_style=True, width=10**6)
        text = text.strip().removesuffix("...").strip()
        lines.append(
            f"{indent}{f.name}: {text}  # ({type_name(hints[f.name])}) {f.metadata.get('help', '')}"
        )
    return "\n".join(lines)


def reference(cls: type) -> str:
    """`describe(cls)` as a markdown YAML block (the generated reference in docs/configs.md)."""
    return f"```yaml\n{describe(cls)}\n```\n"


# --- checks that belong to the start of a run, not to building a config --------------------


def check_device(key: str, device: str, allow_auto: bool = False) -> Any:
    """The torch.device of `device` on this machine; one line naming `key` when it is unusable.

    allow_auto: also accept "auto" (cuda when available, else cpu).
    """
    import torch

    if allow_auto and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    expected = ("auto, " if allow_auto else "") + "cpu, cuda or cuda:N"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):
        raise ValueError(f"{key}={device!r} is not valid; expected {expected}")
    count = torch.cuda.device_count() if dev.type == "cuda" else 0
    if dev.type == "cuda" and (dev.index or 0) >= count:
        raise ValueError(
            f"{key}={device!r} is not available: this machine has {count} CUDA device(s)"
        )
    return dev


def check_cpp_compiler(key: str, value: str, instead: str) -> None:
    """One line naming `key` when torch.compile on CPU cannot run: inductor builds its kernels
    with the C++ compiler it finds (g++ by default). instead: what to use without one."""
    from torch._inductor import exc
    from torch._inductor.cpp_builder import get_cpp_compiler

    try:
        get_cpp_compiler()
    except exc.InvalidCxxCompiler:
        raise ValueError(
            f"{key}={value!r} needs a C++ compiler for torch.compile on CPU and none was found"
            f" (install g++, e.g. apt-get install g++); or use {instead}"
        ) from None


def check_path(key: str, path: str | Path, what: str = "an existing file or directory") -> Path:
    """`path` as a Path; one line naming `key` when it does not exist."""
    p = Path(path)
    if not p.exists():
        raise ValueError(f"{key}={str(path)!r} is not valid; expected {what}")
    return p


def check_choice(key: str, value: Any, choices: Sequence[Any]) -> None:
    """Raise one line naming `key` when `value` is not one of `choices`."""
    if value not in choices:
        raise ValueError(f"{key}={value!r} is not valid; expected one of {list(choices)}")


def check_at_least(key: str, value: float, low: float) -> None:
    """Raise one line naming `key` when `value` < `low`."""
    if not value >= low:
        raise ValueError(f"{key}={value!r} is not valid; expected a value >= {low}")


def finite_positive(value: Any) -> bool:
    """True for a finite int or float > 0 (bools excluded)."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


__all__ = [
    "check_at_least",
    "check_choice",
    "check_device",
    "check_path",
    "coerce",
    "describe",
    "field_default",
    "finite_positive",
    "from_dict",
    "help_of",
    "load",
    "parse_override",
    "read_file",
    "reference",
    "to_dict",
    "type_name",
]
