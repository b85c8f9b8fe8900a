"""Command-line options from config dataclasses: one typer option per field, built configs out.

`config_options(cls)` decorates a typer command: every field of `cls` becomes an option whose
help, type (as metavar), default and flags come from the field (`metadata={"help": ...,
"flags": ("--arms", "-K")}`), plus `--config FILE` and `KEY=VALUE` arguments when asked. The
options given become dotted overrides, so a value typed on the command line is parsed and checked
exactly like one in a file (labkit.config_loading), and the command receives the built config.
Sections and mappings are left to files and `KEY=VALUE` arguments. typer is imported only when a
command is built.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from collections.abc import Callable, Sequence
from functools import wraps
from typing import Any

from labkit.config_loading import field_default, load


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def cli_fields(cls: type) -> list[tuple[str, Any, Any, str, tuple[str, ...]]]:
    """(name, type, default, help, flags) of each top-level field, for generated command-line
    options; flags default to (--field-name,) unless the field's metadata names them."""
    hints = _hints(cls)
    return [
        (
            f.name,
            hints[f.name],
            field_default(f),
            f.metadata.get("help", ""),
            tuple(f.metadata.get("flags", ())) or (f"--{f.name.replace('_', '-')}",),
        )
        for f in dataclasses.fields(cls)
    ]


def config_options(
    cls: type,
    only: Sequence[str] = (),
    into: str = "config",
    file: str | None = None,
    args: str | None = None,
    defaults: Sequence[str] = (),
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A decorator for a typer command: one option per field of `cls` (or of `only`), help and flags from the
    field, plus `--config FILE` when `file` is its help text and `KEY=VALUE` arguments when
    `args` is theirs. The command's parameter `into` gets the config built by
    labkit.config_loading: defaults < FILE < `defaults` < arguments < options; a parameter
    `{into}_given` gets the names of the options given, `{into}_overrides` the override strings."""

    import typer  # the command line's library; imported only when commands are built

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        sig = inspect.signature(fn)
        own = (into, f"{into}_given", f"{into}_overrides")
        params = [p for p in sig.parameters.values() if p.name not in own]
        extra = {}
        if args is not None:
            extra["ARGS"] = (typer.Argument(None, help=args, show_default=False), list[str] | None)
        if file is not None:
            extra["FILE"] = (typer.Option(None, "--config", "-c", help=file), str | None)
        for name, tp, default, text, flags in cli_fields(cls):
            if (only and name not in only) or dataclasses.is_dataclass(tp) or _is_dict(tp):
                continue
            if tp is bool:
                flags = (f"{flags[0]}/--no-{flags[0][2:]}",)
            if isinstance(default, list | tuple):
                default = ",".join(map(str, default))
            text += "" if default is None else f" (default: {default})"
            metavar = _metavar(tp)
            option = typer.Option(None, *flags, help=text, metavar=metavar, show_default=False)
            extra[name] = (option, bool | None if tp is bool else str | None)
        kind = inspect.Parameter.KEYWORD_ONLY
        for name, (default, annotation) in extra.items():
            params.append(inspect.Parameter(f"{into}__{name}", kind, default=default))
            params[-1] = params[-1].replace(annotation=annotation)

        @wraps(fn)
        def command(**kwargs: Any) -> Any:
            mine = {
                k.split("__", 1)[1]: kwargs.pop(k)
                for k in list(kwargs)
                if k.startswith(f"{into}__")
            }
            path, positional = mine.pop("FILE", None), mine.pop("ARGS", None) or []
            given = {k: v for k, v in mine.items() if v is not None}
            options = [
                f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in given.items()
            ]
            overrides = [*defaults, *positional, *options]
            built = load(cls, path, overrides)  # checked even when the command takes only text
            if into in sig.parameters:
                kwargs[into] = built
            if f"{into}_given" in sig.parameters:
                kwargs[f"{into}_given"] = list(given)
            if f"{into}_overrides" in sig.parameters:
                kwargs[f"{into}_overrides"] = overrides
            return fn(**kwargs)

        command.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
        return command

    return wrap


def _is_dict(tp: Any) -> bool:
    return typing.get_origin(tp) is dict


def _metavar(tp: Any) -> str:
    """INT, FLOAT, STR or, for lists, FLOAT,... (null is spelled null on the command line)."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return _metavar(args[0])
    if typing.get_origin(tp) in (list, tuple):
        return f"{_metavar(args[0])},..."
    return getattr(tp, "__name__", "value").upper()
