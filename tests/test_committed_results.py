"""Committed results files (bench/results, docs/results) name no path of the machine that wrote
them: paths are relative to the repository, so a reader's checkout resolves them."""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FILES = sorted(
    p.relative_to(ROOT)
    for d in ("bench/results", "docs/results")
    for p in (ROOT / d).rglob("*.json")
)
# an absolute POSIX path with at least two parts (/home/me/x, /root/out/x, /tmp/y/z), or a home
MACHINE_PATH = re.compile(r"(?<![\w.:/])(/[\w.-]+){2,}|~/")


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def test_there_are_results_to_check():
    assert any(str(p).startswith("bench/results") for p in FILES)


@pytest.mark.parametrize("path", FILES, ids=str)
def test_results_store_no_machine_paths(path):
    found = [s for s in _strings(json.loads((ROOT / path).read_text())) if MACHINE_PATH.search(s)]
    assert not found, f"{path} stores machine paths: {found}"


@pytest.mark.parametrize(
    ("text", "machine"),
    [
        ("/home/me/labkit/bench/results/trainer_speed.json", True),
        ("python bench/x.py --out /root/out/x.json", True),
        ("bench/results/h200/gpu_check.json", False),
        ("torch 2.11.0+cu130 on linux/x86_64", False),
        ("https://example.org/a/b", False),
        ("1/2", False),
    ],
)
def test_the_pattern_tells_machine_paths_from_relative_ones(text, machine):
    assert bool(MACHINE_PATH.search(text)) is machine
