"""Whether another installed distribution owns one of labkit's top-level package names.

The repository's layout is its import layout: installing labkit puts `labkit`, `bandit`, `llm`,
`figures` and `cli` at the top of site-packages. PyPI's `bandit` (a security linter) and `llm` (a
command line for language models) use two of those names. Two distributions that own the same
top-level package cannot share an environment: the one installed last overwrites the other's
files, and both break in confusing ways. This module finds such clashes from the installed
distributions' metadata (nothing is imported), so `lad info` can name them.
"""

from __future__ import annotations

import re
from importlib.metadata import packages_distributions

DISTRIBUTION = "labkit"
TOP_LEVEL = ("labkit", "bandit", "llm", "figures", "cli")


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def clashes() -> dict[str, list[str]]:
    """{top-level name: sorted other distributions that also install it}, for labkit's names;
    empty when labkit owns its names alone."""
    owners = packages_distributions()
    out = {}
    for name in TOP_LEVEL:
        others = sorted({d for d in owners.get(name, ()) if _normalize(d) != DISTRIBUTION})
        if others:
            out[name] = others
    return out


def clash_message(found: dict[str, list[str]]) -> str:
    """One line naming each clash and what to do about it ('' when there is none)."""
    if not found:
        return ""
    names = "; ".join(f"'{n}' is also installed by {', '.join(d)}" for n, d in found.items())
    return (
        f"package-name clash: {names}. labkit owns these top-level names, so both cannot work in "
        "one environment: install labkit in its own virtual environment (docs/install.md)"
    )


def info() -> tuple[str, str]:
    """`lad info`: (a table of versions, compute device and backends, the clash message or '')."""
    from labkit.io import environment

    clash = clash_message(clashes())
    rows = {**environment(), "packages": "CLASH (below)" if clash else "labkit owns its names"}
    return "\n".join(f"{k:<13}  {v}" for k, v in rows.items()), clash
