"""The tree is the architecture: labkit <- bandit, llm; figures read results; cli.py only calls."""

import ast
from pathlib import Path

import pytest
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {
    "labkit": {"bandit", "llm", "figures", "cli"},
    "bandit": {"llm", "figures", "cli"},
    "llm": {"bandit", "figures", "cli"},
    "figures": {"cli"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_flow_one_way(package):
    for path in (ROOT / package).rglob("*.py"):
        bad = _imports(path) & FORBIDDEN[package]
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_lad_info_reports_versions_and_device():
    from cli import app

    result = CliRunner().invoke(app, ["info"])
    assert result.exit_code == 0, result.output
    for key in ("python", "torch", "transformers", "device", "vllm"):
        assert key in result.output
