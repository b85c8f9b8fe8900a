"""Generated blocks in the docs: numbers come from committed results files, never from typing.

A block in README.md or docs/*.md is (each marker on a line of its own)

    <!-- report:NAME -->
    ...markdown written by REPORT_BLOCKS[NAME]()...
    <!-- /report:NAME -->

`lad report` rewrites every block's body; `lad report --check` rewrites nothing and lists the
blocks whose body differs from what the committed results give (a stale table, or a number edited
by hand). A renderer is a function of no arguments that reads committed results (docs/results/**,
bench/results/**) and returns markdown; it shows the command that wrote each file it reads
(`command_line`).

Renderers are collected from the module-level `REPORT_BLOCKS: dict[str, Callable[[], str]]` of the
modules in SOURCES, plus the single functions in FUNCTIONS. A module that is not in this checkout is
skipped; a block name that no source provides is an error, unless a source is missing (then the
block is left as it is and reported as pending, so a branch can name a block another branch adds).
"""

from __future__ import annotations

import importlib
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labkit.io import ROOT, atomic_write

# modules holding a REPORT_BLOCKS dict (bench/ is not an installed package: see _import)
SOURCES = (
    "figures.report",  # results-index, below
    "bench.report",
    "figures.bandit_summary",
    "figures.regime",
    "figures.llm_logs",
    "figures.llm_demo",
)
# single renderers: block name -> "module:function"
FUNCTIONS = {
    "sandbox-overhead": "bench.sandbox_overhead:report_markdown",
    "explorer-build": "bench.explorer_build:report_markdown",
    "config-bandit": "bandit.config:reference_markdown",
    "config-llm": "llm.config:reference_markdown",
    "config-demo": "llm.demo_config:reference_markdown",
}
DOCUMENTS = ("README.md", "docs/*.md")

# a marker is a whole line: an indented example in a page (like the one above) is not a block
OPEN = re.compile(r"^<!-- report:(?P<name>[A-Za-z0-9_.-]+) -->$", re.M)
BLOCK = re.compile(
    r"^(?P<open><!-- report:(?P<name>[A-Za-z0-9_.-]+) -->\n)(?P<body>.*?)"
    r"^(?P<close><!-- /report:(?P=name) -->)$",
    re.S | re.M,
)

Renderer = Callable[[], str]


def _import(name: str) -> Any | None:
    """The module, or None when this checkout does not have it (another branch adds it)."""
    # bench/ is a folder of scripts, not an installed package; `lad report` works on a checkout
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name is not None and (name == e.name or name.startswith(e.name + ".")):
            return None
        raise  # the module exists but one of its own imports is missing: a real error


def collect(
    sources: tuple[str, ...] = SOURCES, functions: dict[str, str] | None = None
) -> tuple[dict[str, Renderer], list[str]]:
    """Every renderer the sources provide, and the sources missing from this checkout.

    Returns (name -> renderer, missing "module" or "module:function" strings). Two sources that
    provide the same name are an error.
    """
    functions = FUNCTIONS if functions is None else functions
    blocks: dict[str, Renderer] = {}
    owner: dict[str, str] = {}
    missing: list[str] = []

    def add(name: str, fn: Renderer, where: str) -> None:
        if name in blocks:
            raise ValueError(f"report block {name!r} is defined twice: {owner[name]} and {where}")
        blocks[name], owner[name] = fn, where

    for mod_name in sources:
        module = _import(mod_name)
        if module is None:
            missing.append(mod_name)
            continue
        for name, fn in getattr(module, "REPORT_BLOCKS", {}).items():
            add(name, fn, mod_name)
    for name, target in functions.items():
        mod_name, _, attr = target.partition(":")
        module = _import(mod_name)
        fn = getattr(module, attr, None) if module is not None else None
        if fn is None:
            missing.append(target)
        else:
            add(name, fn, target)
    return blocks, missing


def documents(root: Path = ROOT) -> list[Path]:
    """README.md and docs/*.md, sorted."""
    found: set[Path] = set()
    for pattern in DOCUMENTS:
        found.update(p for p in root.glob(pattern) if p.is_file())
    return sorted(found)


def block_names(text: str) -> list[str]:
    """Names of the blocks in a document, in order; an opening marker without its closing one
    is an error."""
    names = [m["name"] for m in BLOCK.finditer(text)]
    opened = [m["name"] for m in OPEN.finditer(text)]
    if sorted(opened) != sorted(names):
        unclosed = sorted(set(opened) - set(names)) or opened
        raise ValueError(f"report block(s) {unclosed} have no closing <!-- /report:NAME --> marker")
    return names


def _body(markdown: str) -> str:
    return markdown.strip("\n") + "\n"


@dataclass
class Outcome:
    """What `update` found: (document, block) pairs that changed or would change, those left as
    they are because their source is missing, and the missing sources."""

    stale: list[tuple[str, str]] = field(default_factory=list)
    pending: list[tuple[str, str]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    blocks: int = 0


def rewrite(text: str, blocks: dict[str, Renderer], rendered: dict[str, str]) -> str:
    """`text` with every known block's body replaced (unknown blocks are kept as they are)."""

    def sub(m: re.Match[str]) -> str:
        name = m["name"]
        if name not in blocks:
            return m[0]
        if name not in rendered:
            try:
                rendered[name] = _body(blocks[name]())
            except (OSError, KeyError, ValueError, TypeError) as e:
                # a missing or reshaped results file: one line naming the block, for the CLI
                raise ValueError(f"report block {name!r}: {type(e).__name__}: {e}") from e
        return m["open"] + rendered[name] + m["close"]

    return BLOCK.sub(sub, text)


def update(
    root: Path = ROOT,
    check: bool = False,
    blocks: dict[str, Renderer] | None = None,
    missing: list[str] | None = None,
) -> Outcome:
    """Rewrite (or with check=True, only compare) every block of every document under `root`.

    An unknown block name raises ValueError naming the document, unless some source is missing.
    Nothing is written when any document has an error.
    """
    if blocks is None:
        blocks, missing = collect()
    missing = missing or []
    out = Outcome(missing=missing)
    rendered: dict[str, str] = {}
    new_texts: dict[Path, str] = {}
    for path in documents(root):
        text = path.read_text()
        rel = path.relative_to(root).as_posix()
        for name in block_names(text):
            out.blocks += 1
            if name in blocks:
                continue
            if not missing:
                raise ValueError(
                    f"{rel}: unknown report block {name!r}; known blocks: {sorted(blocks)}"
                )
            out.pending.append((rel, name))
        new = rewrite(text, blocks, rendered)
        if new != text:
            old_bodies = {m["name"]: m["body"] for m in BLOCK.finditer(text)}
            new_bodies = {m["name"]: m["body"] for m in BLOCK.finditer(new)}
            out.stale += [(rel, n) for n in new_bodies if new_bodies[n] != old_bodies.get(n)]
            new_texts[path] = new
    if not check:
        for path, new in new_texts.items():
            atomic_write(path, new)
    return out


# --- helpers for renderers ------------------------------------------------------------------


def load_json(path: str | Path) -> dict[str, Any]:
    """A committed results file (path relative to the repository root)."""
    return json.loads((ROOT / path).read_text())


def command_line(data: dict[str, Any], path: str | Path) -> str:
    """'command: `...` (file)' for a results file, from its provenance (or its own 'command')."""
    prov = data.get("provenance") or {}
    command = prov.get("command") or data.get("command")
    where = f"`{Path(path).as_posix()}`"
    if not command:
        return f"command: not recorded in {where}"
    extra = []
    if prov.get("commit"):
        commit = str(prov["commit"])
        extra.append(f"commit {commit[:12]}{'-dirty' if commit.endswith('-dirty') else ''}")
    machine = prov.get("machine") or {}
    if machine.get("cpu"):
        extra.append(f"{machine['cpu']}, {machine.get('cores')} cores")
    tail = f" ({'; '.join(extra)})" if extra else ""
    return f"command: `{command.strip()}` → {where}{tail}"


def fmt(x: float, digits: int = 2) -> str:
    """A number with `digits` decimals and thousands separators."""
    return f"{x:,.{digits}f}"


def describe(outcome: Outcome, check: bool) -> str:
    """What `lad report` prints: stale (or rewritten) blocks, and pending ones."""
    verb = "stale" if check else "rewritten"
    lines = [f"{len(outcome.stale)} of {outcome.blocks} report blocks {verb}"]
    lines += [f"  {verb}: {doc} <!-- report:{name} -->" for doc, name in outcome.stale]
    if outcome.pending:
        lines.append(
            f"{len(outcome.pending)} blocks left as they are: no source provides them in this "
            f"checkout (missing: {', '.join(outcome.missing)})"
        )
        lines += [f"  pending: {doc} <!-- report:{name} -->" for doc, name in outcome.pending]
    return "\n".join(lines)


RESULTS = ("docs/results/*.json", "docs/results/*/*.json", "bench/results/**/*.json")


def results_index() -> str:
    """Every committed summary and benchmark file with the command that wrote it (run artifacts
    deeper under docs/results/ are left out)."""
    paths = sorted({p for pattern in RESULTS for p in ROOT.glob(pattern) if p.is_file()})
    lines = ["| file | written by |", "|---|---|"]
    for path in paths:
        rel = path.relative_to(ROOT).as_posix()
        data = json.loads(path.read_text())
        line = command_line(data, rel) if isinstance(data, dict) else ""
        command = re.match(r"command: `(.*?)` →", line)
        lines.append(f"| `{rel}` | {f'`{command[1]}`' if command else 'not recorded'} |")
    return "\n".join(lines)


def figures_index() -> str:
    """Every committed figure (docs/figures/*.png) with the command stored in its metadata."""
    from PIL import Image  # matplotlib's own dependency

    lines = ["| figure | drawn by |", "|---|---|"]
    for path in sorted((ROOT / "docs" / "figures").glob("*.png")):
        with Image.open(path) as im:
            command = im.text.get("Description")
        rel = path.relative_to(ROOT).as_posix()
        lines.append(f"| `{rel}` | {f'`{command}`' if command else 'not recorded'} |")
    return "\n".join(lines)


REPORT_BLOCKS = {"results-index": results_index, "figures-index": figures_index}
