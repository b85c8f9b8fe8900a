"""labkit.io: the one I/O layer (atomic writes, tolerant JSONL, locks, provenance)."""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from labkit import io


def test_atomic_write_mode_content_and_no_temp_left(tmp_path):
    p = io.write_json(tmp_path / "sub" / "a.json", {"x": 1})
    assert json.loads(p.read_text()) == {"x": 1}
    assert stat.S_IMODE(p.stat().st_mode) == io.FILE_MODE
    io.atomic_write(p, b"new")
    assert p.read_bytes() == b"new"
    assert sorted(x.name for x in p.parent.iterdir()) == ["a.json"]


def test_atomic_write_failure_keeps_old_file(tmp_path, monkeypatch):
    p = io.atomic_write(tmp_path / "a.txt", "old")

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(io.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        io.atomic_write(p, "new")
    assert p.read_text() == "old"
    assert [x.name for x in tmp_path.iterdir()] == ["a.txt"]


def test_read_jsonl_drops_torn_last_line_with_warning(tmp_path):
    p = tmp_path / "m.jsonl"
    io.append_jsonl(p, {"step": 1})
    io.append_jsonl(p, {"step": 2})
    with open(p, "a") as fh:
        fh.write('{"step": 3, "lo')
    with pytest.warns(UserWarning, match=r"m\.jsonl: dropped a torn last line"):
        rows = io.read_jsonl(p)
    assert [r["step"] for r in rows] == [1, 2]


def test_read_jsonl_corruption_in_the_middle_names_file_and_line(tmp_path):
    p = tmp_path / "m.jsonl"
    p.write_text('{"step": 1}\nnot json\n{"step": 3}\n')
    with pytest.raises(ValueError, match=r"m\.jsonl:2: not valid JSON"):
        io.read_jsonl(p)
    assert io.read_jsonl(tmp_path / "missing.jsonl") == []


def test_dir_lock_excludes_a_second_process(tmp_path):
    code = (
        # labkit/io.py loaded alone: the package would import torch (seconds per process)
        "import importlib.util as u, sys\n"
        f"spec = u.spec_from_file_location('lio', {str(Path(io.__file__))!r})\n"
        "m = u.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "DirLock, LockedError = m.DirLock, m.LockedError\n"
        "try:\n    DirLock(sys.argv[1]).acquire()\nexcept LockedError as e:\n"
        "    print(e); sys.exit(3)\n"
    )
    with io.DirLock(tmp_path):
        r = subprocess.run(
            [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True
        )
        assert r.returncode == 3, r.stderr
        assert "in use by another process" in r.stdout
    # released: the other process gets it now
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_provenance_records_command_commit_machine_versions():
    p = io.provenance(["lad", "x"])
    assert p["command"] == "lad x"
    assert p["commit"] == "unknown" or len(p["commit"].split("-")[0]) == 40
    assert p["machine"]["cores"] == os.cpu_count()
    assert "torch" in p["versions"] and "python" in p["versions"]
    assert io.relative(io.ROOT / "bench" / "x.json") == "bench/x.json"
