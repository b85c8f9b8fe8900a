"""The docs are part of the product: short README, links that resolve, nothing cited from outside
the repository, every number generated from committed results, snippets that run."""

import functools
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from figures import report

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").glob("*.md"))
DOCS = [README, *PAGES]

# Pages and figures that other branches add; the link test accepts them only while absent, and the
# entry must go once they are merged (test_pending_links_are_still_pending fails as a reminder).
PENDING: set[str] = set()

# paths of the machines labkit was written on (spelled in two pieces so this file passes itself)
OUTSIDE = ("../" + "shared", "/" + "work/")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _prose(path: Path) -> str:
    """The page without its fenced code blocks (a fence is a line that starts with ```)."""
    out, fenced = [], False
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced:
            out.append(line)
    return "\n".join(out)


def _links(path: Path) -> list[str]:
    text = _prose(path)  # code is not a link
    return [m for m in LINK.findall(text) if not re.match(r"[a-z]+:", m) and not m.startswith("#")]


def _tracked() -> list[str]:
    out = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files"], capture_output=True, text=True, check=False
    )
    if out.returncode != 0 or not out.stdout:
        pytest.skip("not a git checkout: the tracked files are unknown")
    return out.stdout.splitlines()


def test_readme_is_short():
    n = len(README.read_text().splitlines())
    assert n <= 300, f"README.md has {n} lines; move detail into docs/"


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    heads = re.findall(r"^#+ (.+)$", _prose(path), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in heads}


@pytest.mark.parametrize("page", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(page):
    broken = []
    for link in _links(page):
        file, _, anchor = link.partition("#")
        target = (page.parent / file).resolve()
        rel = target.relative_to(ROOT).as_posix() if target.is_relative_to(ROOT) else str(target)
        if not target.exists():
            if rel not in PENDING:
                broken.append(link)
        elif anchor and target.suffix == ".md" and anchor not in _anchors(target):
            broken.append(link)
    assert not broken, f"{page.relative_to(ROOT)}: links that do not resolve: {broken}"


def test_pending_links_are_still_pending():
    merged = sorted(p for p in PENDING if (ROOT / p).exists())
    assert not merged, f"{merged} exist now: remove them from PENDING in {Path(__file__).name}"


def test_nothing_cites_a_file_outside_the_repository():
    bad = []
    for name in _tracked():
        path = ROOT / name
        if path.suffix not in {".py", ".md", ".toml", ".yaml", ".yml", ".sh", ".txt", ".cfg"} and (
            path.name != "Makefile"
        ):
            continue
        for i, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if any(x in line for x in OUTSIDE):
                bad.append(f"{name}:{i}")
            # docs/*.md name their sibling page; everything else spells out docs/method.md
            if name.startswith("docs/"):
                continue
            for m in re.finditer(r"method\.md", line):
                if not line[: m.start()].endswith("docs/"):
                    bad.append(f"{name}:{i}")
    assert not bad, f"cite docs/method.md (or link it from docs/), not a file outside: {bad}"


def test_generated_blocks_match_committed_results():
    from cli import app

    result = CliRunner().invoke(app, ["report", "--check"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("0 of "), result.output


def test_a_number_edited_by_hand_is_stale(tmp_path):
    (tmp_path / "docs").mkdir()
    for page in DOCS:
        shutil.copy(page, tmp_path / page.relative_to(ROOT))
    page = tmp_path / "docs" / "benchmarks.md"
    text = page.read_text()
    block = re.search(r"<!-- report:bench-loss-cost -->\n(.*?)<!-- /report", text, re.S)[1]
    number = re.search(r"\d+\.\d\d ms", block)[0]
    page.write_text(text.replace(number, "1.00 ms", 1))

    outcome = report.update(root=tmp_path, check=True)
    assert ("docs/benchmarks.md", "bench-loss-cost") in outcome.stale
    assert page.read_text() != text  # --check wrote nothing
    report.update(root=tmp_path)  # the rewrite restores the committed number
    assert page.read_text() == text


def test_readme_layout_lists_the_top_level_folders():
    section = re.search(r"<!-- section:layout -->.*?```\n(.*?)```", README.read_text(), re.S).group(
        1
    )
    listed = {line.split()[0].rstrip("/") for line in section.splitlines() if line.strip()}
    listed_dirs = {x for x in listed if (ROOT / x).is_dir()}
    tracked = {n.split("/")[0] for n in _tracked() if "/" in n and not n.startswith(".")}
    assert listed - {"cli.py"} == listed_dirs, f"listed but missing: {listed - listed_dirs}"
    assert listed_dirs == tracked, (
        f"in the tree, not in the README: {tracked - listed_dirs}; "
        f"in the README, not in the tree: {listed_dirs - tracked}"
    )


def test_code_map_names_files_that_exist():
    text = (ROOT / "docs" / "development.md").read_text()
    tree = re.search(r"## Code map.*?```\n(.*?)```", text, re.S).group(1)
    missing, folder = [], ""
    for line in tree.splitlines():
        if not line.strip():
            continue
        name = line.split()[0]
        if not line.startswith(" "):
            folder = name if name.endswith("/") else ""
            path = name
        elif name.endswith(".py") and "*" not in name:
            path = folder + name.rstrip(",")
        else:
            continue
        if not (ROOT / path).exists():
            missing.append(path)
    assert not missing, f"docs/development.md names files that do not exist: {missing}"


SLOW_SNIPPETS = {"docs/llm.md"}  # trains a tiny model for two steps


@pytest.mark.parametrize(
    "page",
    [
        pytest.param(p, marks=pytest.mark.slow)
        if p.relative_to(ROOT).as_posix() in SLOW_SNIPPETS
        else p
        for p in DOCS
    ],
    ids=lambda p: p.relative_to(ROOT).as_posix(),
)
def test_python_snippets_run(page, monkeypatch):
    monkeypatch.chdir(ROOT)  # snippets use paths relative to the checkout
    for code in re.findall(r"```python\n(.*?)```", page.read_text(), re.S):
        if "# not run in tests:" not in code:  # e.g. a snippet that needs a GPU or an engine
            exec(compile(code, str(page.relative_to(ROOT)), "exec"), {})


def test_quick_start_commands_are_make_targets():
    makefile = (ROOT / "Makefile").read_text()
    text = README.read_text() + (ROOT / "docs" / "results.md").read_text()
    for target in ("figures", "test", "results"):
        assert f"make {target}" in text
        assert re.search(rf"^{target}:", makefile, re.M)


# --- the engine ---------------------------------------------------------------------------


def _doc(tmp_path: Path, body: str) -> Path:
    (tmp_path / "docs").mkdir(exist_ok=True)
    page = tmp_path / "docs" / "page.md"
    page.write_text(body)
    return page


def test_update_rewrites_bodies_and_is_idempotent(tmp_path):
    page = _doc(tmp_path, "a\n<!-- report:x -->\nold\n<!-- /report:x -->\nb\n")
    blocks = {"x": lambda: "new 1.23\n\n"}
    out = report.update(root=tmp_path, blocks=blocks, missing=[])
    assert out.stale == [("docs/page.md", "x")]
    assert page.read_text() == "a\n<!-- report:x -->\nnew 1.23\n<!-- /report:x -->\nb\n"
    again = report.update(root=tmp_path, check=True, blocks=blocks, missing=[])
    assert again.stale == [] and again.blocks == 1


def test_unknown_block_is_an_error_and_writes_nothing(tmp_path):
    text = (
        "<!-- report:x -->\nold\n<!-- /report:x -->\n<!-- report:nope -->\n<!-- /report:nope -->\n"
    )
    page = _doc(tmp_path, text)
    with pytest.raises(ValueError, match=r"docs/page.md: unknown report block 'nope'"):
        report.update(root=tmp_path, blocks={"x": lambda: "new"}, missing=[])
    assert page.read_text() == text


def test_unknown_block_is_pending_while_a_source_is_missing(tmp_path):
    _doc(tmp_path, "<!-- report:later -->\n<!-- /report:later -->\n")
    out = report.update(root=tmp_path, check=True, blocks={}, missing=["figures.later"])
    assert out.pending == [("docs/page.md", "later")] and out.stale == []


def test_a_renderer_that_fails_names_its_block(tmp_path):
    _doc(tmp_path, "<!-- report:x -->\n<!-- /report:x -->\n")

    def broken() -> str:
        return report.load_json("docs/results/no_such_file.json")

    with pytest.raises(ValueError, match=r"report block 'x': FileNotFoundError"):
        report.update(root=tmp_path, blocks={"x": broken}, missing=[])


def test_unclosed_marker_is_an_error(tmp_path):
    _doc(tmp_path, "<!-- report:x -->\nno end\n")
    with pytest.raises(ValueError, match="no closing"):
        report.update(root=tmp_path, blocks={"x": lambda: "y"}, missing=[])


def test_indented_marker_is_an_example_not_a_block(tmp_path):
    _doc(tmp_path, "    <!-- report:x -->\n    ...\n    <!-- /report:x -->\n")
    assert report.update(root=tmp_path, check=True, blocks={}, missing=[]).blocks == 0


def test_collect_skips_missing_modules_and_refuses_duplicates():
    blocks, missing = report.collect(
        ("bench.report", "figures.no_such_module"), {"x": "figures.no_such_module:render"}
    )
    assert "bench-loss-cost" in blocks
    assert missing == ["figures.no_such_module", "figures.no_such_module:render"]
    with pytest.raises(ValueError, match="defined twice"):
        report.collect(("bench.report",), {"bench-loss-cost": "bench.report:loss_cost"})


def test_report_check_exits_1_on_stale(tmp_path, monkeypatch):
    from cli import app

    _doc(tmp_path, "<!-- report:bench-loss-cost -->\nstale\n<!-- /report:bench-loss-cost -->\n")
    monkeypatch.setattr(report, "update", functools.partial(report.update, root=tmp_path))
    result = CliRunner().invoke(app, ["report", "--check"])
    assert result.exit_code == 1, result.output
    assert "stale: docs/page.md <!-- report:bench-loss-cost -->" in result.output
