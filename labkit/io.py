"""The one I/O layer: atomic, durable writes; tolerant JSONL; directory locks; run provenance.

Every file labkit writes (bandit results, LLM run logs and checkpoints, figures, bench JSON, docs
results) goes through these functions, so there is one file mode, one temp-name scheme and one
fsync policy:
- `atomic_write` writes to a unique temp file in the target directory, fsyncs it, renames it over
  the target and fsyncs the directory: a reader sees the old file or the new one, never a torn one,
  and a power cut after return keeps the new one.
- `append_jsonl` appends one line and fsyncs; `read_jsonl` drops a torn last line (a crash in the
  middle of an append) with a warning naming the file, and fails on corruption anywhere else.
- `DirLock` is an exclusive, non-blocking `flock` on `<dir>/.lock`: a second process that opens the
  same run directory gets `LockedError` at once instead of interleaving its writes.
- `provenance` is what every results file records: command, commit, machine, library versions.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

FILE_MODE = 0o644  # results are meant to be shared; mkstemp alone would give 0600
ROOT = Path(__file__).resolve().parent.parent


def fsync_dir(path: str | Path) -> None:
    """fsync a directory so that a rename or a new file inside it survives a power cut."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | Path, data: str | bytes, *, durable: bool = True) -> Path:
    """Replace `path` with `data` atomically (unique temp file, fsync, rename, fsync of the dir).

    durable=False skips both fsyncs (still atomic): for files that are cheap to regenerate.
    Creates missing parent directories. Returns the path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)
    return path


def fsync_tree(directory: str | Path) -> None:
    """fsync every file under `directory`, then every directory in it (deepest first)."""
    directory = Path(directory)
    for root, _dirs, files in os.walk(directory, topdown=False):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(root)


@contextmanager
def atomic_dir(final: str | Path, *, replace: bool = True) -> Iterator[Path]:
    """Build a directory atomically: yields a unique temp directory next to `final`; when the
    block returns, its files are fsynced and it is renamed to `final` (a crash leaves the old
    `final` or the new one, plus at most a `.<name>.*.tmp` directory, never a half-written one).

    replace=False keeps an existing `final` (another process finished first) and drops the new
    copy. On an exception the temp directory is removed.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; run directories are meant to be shared
    try:
        yield tmp
        fsync_tree(tmp)
        if final.exists():
            if not replace:
                shutil.rmtree(tmp)
                return
            # rename the old copy away first: os.replace cannot replace a non-empty directory
            trash = Path(
                tempfile.mkdtemp(prefix=f".{final.name}.old.", suffix=".tmp", dir=final.parent)
            )
            os.replace(final, trash / final.name)
            os.replace(tmp, final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, final)
        fsync_dir(final.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def check_output_dir(path: str | Path, name: str) -> Path:
    """Raise ValueError (one line naming `name`) unless `path` is a directory or can be created
    as one: an existing file, or a file among its parents, is refused before anything is written."""
    path = Path(path)
    for p in (path, *path.parents):
        if p.exists():
            if not p.is_dir():
                what = "is a file" if p == path else f"has a parent that is a file ({p})"
                raise ValueError(f"{name}={str(path)!r} {what}; expected a directory")
            if not os.access(p, os.W_OK | os.X_OK):
                raise ValueError(f"{name}={str(path)!r}: {p} is not writable")
            break
    return path


def write_json(path: str | Path, obj: Any, *, durable: bool = True) -> Path:
    """`atomic_write` of `obj` as indented JSON with a trailing newline."""
    return atomic_write(path, json.dumps(obj, indent=2) + "\n", durable=durable)


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]], *, durable: bool = True) -> Path:
    """Replace a JSONL file with `rows`, atomically (e.g. dropping the steps a resume redoes)."""
    return atomic_write(path, "".join(json.dumps(r) + "\n" for r in rows), durable=durable)


def append_jsonl(
    path: str | Path, row: dict[str, Any] | list[dict[str, Any]], *, durable: bool = True
) -> None:
    """Append one JSON line (or one per row of a list, with one fsync); fsync unless
    durable=False. A crash leaves at most a torn last line."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = row if isinstance(row, list) else [row]
    with open(path, "a") as fh:
        fh.write("".join(json.dumps(r) + "\n" for r in rows))
        if durable:
            fh.flush()
            os.fsync(fh.fileno())


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a JSONL file ([] when it does not exist).

    A last line that does not parse (a torn append) is dropped with a warning naming the file; a bad
    line anywhere else is corruption and raises ValueError with file:line.
    """
    path = Path(path)
    if not path.is_file():
        return []
    lines = path.read_text().splitlines()
    rows = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            if i == len(lines) - 1:
                warnings.warn(
                    f"{path}: dropped a torn last line ({len(line)} characters): {e.msg}",
                    stacklevel=2,
                )
                break
            raise ValueError(f"{path}:{i + 1}: not valid JSON ({e.msg})") from None
    return rows


def read_table(
    path: str | Path, keep_str: Iterable[str] = (), columns: Iterable[str] | None = None
) -> dict[str, Any]:
    """A tidy CSV with a header row as columns: name -> numpy array (float where every value
    parses as a number, empty cells as NaN; str otherwise and for the names in keep_str).

    columns: read only these, all numeric: numpy's C parser then reads them (a bandit grid's
    policies.csv has millions of rows; the csv module is several times slower there).
    """
    import csv

    import numpy as np

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"results file {str(path)!r} does not exist")
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"results file {str(path)!r} is empty")
        if columns is not None:
            names = list(columns)
            missing = [n for n in names if n not in header]
            if missing:
                raise ValueError(f"results file {str(path)!r} has no column {missing[0]!r}")
            idx = [header.index(n) for n in names]
            table = np.loadtxt(path, delimiter=",", skiprows=1, usecols=idx, ndmin=2)
            return dict(zip(names, table.T, strict=True))
        cells: list[list[str]] = [[] for _ in header]
        for row in reader:
            for column, value in zip(cells, row, strict=True):
                column.append(value)
    keep = set(keep_str)

    def column(name: str, values: list[str]) -> Any:
        if name not in keep:
            try:
                return np.asarray([float(v) if v != "" else np.nan for v in values], dtype=float)
            except ValueError:
                pass
        return np.asarray(values, dtype=str)

    return {h: column(h, c) for h, c in zip(header, cells, strict=True)}


class LockedError(RuntimeError):
    """Another process holds the lock on a run directory."""


class DirLock:
    """An exclusive, non-blocking lock on a directory (flock on `<dir>/.lock`), held until
    `release()` or process exit (the kernel drops flocks of dead processes: no stale locks).

    Usable as a context manager. Raises LockedError naming the directory when it is taken.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self._fd: int | None = None

    def acquire(self) -> DirLock:
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory / ".lock", os.O_RDWR | os.O_CREAT, FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LockedError(
                f"{self.directory} is in use by another process (lock file {self.directory}/.lock)"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> DirLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def git_commit(root: str | Path = ROOT) -> str:
    """The checkout's HEAD commit, with '-dirty' when tracked files differ; 'unknown' outside git."""
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


VERSIONED = ("labkit", "torch", "numpy", "transformers", "trl", "vllm", "scipy", "plotly")


def versions() -> dict[str, str]:
    """Python and the installed versions of the libraries a result can depend on."""
    out = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def machine() -> dict[str, Any]:
    """The machine a result was measured on (CPU model, cores, torch threads, GPU if any)."""
    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
    }
    import torch  # a core dependency; imported here so that labkit.io alone stays light

    info["torch_threads"] = torch.get_num_threads()
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def provenance(command: list[str] | str | None = None) -> dict[str, Any]:
    """What every results file records next to its numbers: command, commit, machine, versions."""
    if command is None:
        command = [Path(sys.argv[0]).name, *sys.argv[1:]]
    return {
        "command": command if isinstance(command, str) else " ".join(command),
        "commit": git_commit(),
        "machine": machine(),
        "versions": versions(),
    }


def relative(path: str | Path, root: str | Path = ROOT) -> str:
    """`path` relative to the repository root when inside it (results store no machine paths)."""
    p = Path(path).resolve()
    try:
        return str(p.relative_to(Path(root).resolve()))
    except ValueError:
        return str(p)


BACKENDS = ("transformers", "trl", "verl", "vllm", "math_verify", "reasoning_gym", "tensorboard")


def environment() -> dict[str, str]:
    """`lad info`: Python, torch, each optional backend (version, or why it does not import) and
    the compute device."""
    import importlib

    import torch

    out = {"python": platform.python_version(), "torch": torch.__version__}
    for name in BACKENDS:
        try:
            out[name] = getattr(importlib.import_module(name), "__version__", "installed")
        except Exception as e:  # an optional backend may fail in many ways; report, never crash
            out[name] = f"not available ({type(e).__name__})"
    gpu = torch.cuda.is_available()
    out["device"] = f"cuda ({torch.cuda.get_device_name(0)})" if gpu else "cpu"
    return out
