"""labkit.install: clashes of top-level package names, found from real distribution metadata (a
dist-info directory put on sys.path, as pip would write it)."""

from __future__ import annotations

import pytest

from labkit.install import TOP_LEVEL, clash_message, clashes


def _install_metadata(site, name: str, top_level: str) -> None:
    """What pip leaves for an installed distribution `name` that owns package `top_level`."""
    info = site / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "RECORD").write_text(f"{top_level}/__init__.py,,\n{info.name}/METADATA,,\n")
    (info / "top_level.txt").write_text(f"{top_level}\n")


def test_no_clash_in_this_environment():
    assert clashes() == {} and clash_message({}) == ""


@pytest.mark.parametrize("name", ["bandit", "llm"])
def test_a_distribution_owning_one_of_our_names_is_a_clash(tmp_path, monkeypatch, name):
    _install_metadata(tmp_path, name, name)
    _install_metadata(tmp_path, "unrelated_tool", "unrelated_tool")
    monkeypatch.syspath_prepend(str(tmp_path))
    found = clashes()
    assert found == {name: [name]}
    message = clash_message(found)
    assert f"'{name}' is also installed by {name}" in message
    assert "own virtual environment" in message and "\n" not in message


def test_labkit_under_another_spelling_is_not_a_clash(tmp_path, monkeypatch):
    _install_metadata(tmp_path, "LabKit", "figures")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert clashes() == {}
    assert set(TOP_LEVEL) == {"labkit", "bandit", "llm", "figures", "cli"}
