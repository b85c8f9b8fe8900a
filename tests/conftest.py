"""Test-session hooks shared by every tier and environment (main, .venv-vllm, .venv-verl)."""

from __future__ import annotations


def pytest_terminal_summary(terminalreporter) -> None:
    """Name every skipped test with its reason. pytest's -rs groups skips by source line ("[8]
    tests/test_cuda.py:50"), which hides which tests did not run."""
    skipped = terminalreporter.stats.get("skipped", [])
    if not skipped:
        return
    terminalreporter.section(f"{len(skipped)} skipped")
    for report in skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        terminalreporter.line(f"SKIPPED {report.nodeid}: {str(reason).removeprefix('Skipped: ')}")
