"""CI proves the README: its Python snippets run, and its quick-start commands exist."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_python_snippets_run(monkeypatch):
    monkeypatch.chdir(ROOT)  # snippets use paths relative to the checkout
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    assert len(blocks) >= 2
    for code in blocks:
        exec(compile(code, "README.md", "exec"), {})


def test_quick_start_commands_are_make_targets():
    makefile = (Path(__file__).resolve().parent.parent / "Makefile").read_text()
    for target in ("figures", "test"):
        assert f"make {target}" in README
        assert re.search(rf"^{target}:", makefile, re.M)
