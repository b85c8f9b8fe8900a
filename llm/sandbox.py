"""Run model-written Python against test cases in a child process, for the `code` reward.

What protects the caller (the trainer) — these hold against any code:
- a separate process in its own session, in a fresh temporary directory that is deleted after;
  the whole process group is SIGKILLed after the run (stragglers included);
- wall-clock limit (`timeout_s`) enforced by the parent, plus RLIMIT_CPU, RLIMIT_AS (memory),
  RLIMIT_FSIZE (stdout/stderr and any file: huge output kills the child), RLIMIT_CORE = 0;
- RLIMIT_NPROC = 0 (no fork, no threads) — enforced by the kernel only for non-root users: a root
  process ignores it, so under root only the Python-level block below stops a fork bomb;
- a minimal environment (no proxy settings, tokens or PYTHON* variables) and `python -I`.

What only deters accidental or learned misbehaviour — a Python audit hook (PEP 578) installed
before the code runs. It refuses sockets (no network), fork/exec/subprocess/os.system, signals
to other processes, ctypes symbol lookups and calls (importing ctypes works: numpy needs it),
gc.get_objects-style heap walks, reading files outside the temporary directory and the Python
installation, and writing or deleting outside the temporary directory. Audit hooks are not a
security boundary (PEP 578 says so): a C extension, or code that defeats the interpreter, gets
around them. For untrusted code at scale, run the trainer in a container with no network, or
use a real sandbox service (verl's sandbox_fusion, nsjail, firejail).

Verdicts: assert-style tests run in one process after the solution's module body, each under its
own timer; the harness reports passes on a line tagged with a random nonce, so a program that
exits early (sys.exit(0), os._exit) or prints "PASS" gets no credit. stdin/stdout tests run one
process each, and pass when the program exits with 0 and its stdout equals the expected output
(trailing whitespace ignored); the expected output never enters the child.

Known ways to cheat that this does not stop: walking interpreter frames (sys._getframe) to read
the nonce, and returning an object whose __eq__ is always True to an `assert f(x) == y` test.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field

# The harness runs in the child before the solution. It reads its payload, deletes it, applies
# the limits, installs the audit hook, and only then executes model code.
_HARNESS = r"""
import builtins, json, os, resource, signal, sys, sysconfig
_path = sys.argv[1]
with open(_path) as _f:
    _p = json.load(_f)
os.unlink(_path)
del _f
_lim = _p["limits"]
for _name, _val in (("RLIMIT_CPU", _lim["cpu_s"]), ("RLIMIT_AS", _lim["memory_bytes"]),
                    ("RLIMIT_FSIZE", _lim["max_output_bytes"]), ("RLIMIT_CORE", 0),
                    ("RLIMIT_NPROC", 0)):
    try:
        _soft = _val
        _hard = _val + 1 if _name == "RLIMIT_CPU" else _val
        resource.setrlimit(getattr(resource, _name), (_soft, _hard))
    except (ValueError, OSError):
        pass
_tmp = os.path.realpath(os.getcwd())
_read_roots = [_tmp] + sorted({os.path.realpath(p) for k, p in sysconfig.get_paths().items()
                               if k in ("stdlib", "platstdlib", "purelib", "platlib")})
_read_ok = ("/dev/null", "/dev/urandom", "/dev/zero", "/etc/localtime")
_blocked = ("socket.", "subprocess.", "os.fork", "os.forkpty", "os.system", "os.exec",
            "os.posix_spawn", "os.spawn", "os.kill", "os.killpg", "signal.pthread_kill",
            "ctypes.dlsym", "ctypes.call_function", "gc.get_", "sys._current_frames", "os.setuid", "os.chroot",
            "resource.setrlimit", "resource.prlimit")
_write_events = ("os.remove", "os.rmdir", "os.rename", "os.mkdir", "os.symlink", "os.link",
                 "os.truncate", "os.chmod", "os.chown", "os.utime", "shutil.rmtree")
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

def _inside(path, roots):
    if isinstance(path, int):
        return True
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    real = os.path.realpath(os.path.join(_tmp, str(path)))
    return any(real == r or real.startswith(r + os.sep) for r in roots)

def _hook(event, args):
    if event.startswith(_blocked) or event == "import" and args[0] == "_posixsubprocess":
        raise PermissionError(f"sandbox: {event} is not allowed")
    if event == "open":
        path, mode, flags = args
        if path is None or isinstance(path, int):
            return
        writing = any(c in mode for c in "wax+") if isinstance(mode, str) else bool(flags & _WRITE_FLAGS)
        if writing and not _inside(path, [_tmp]):
            raise PermissionError(f"sandbox: writing {path!r} is not allowed")
        if not writing and not _inside(path, _read_roots) and os.fsdecode(path) not in _read_ok:
            raise PermissionError(f"sandbox: reading {path!r} is not allowed")
    elif event in _write_events:
        for a in args[:2]:
            if isinstance(a, str | bytes) and not _inside(a, [_tmp]):
                raise PermissionError(f"sandbox: {event} on {a!r} is not allowed")

class _TestTimeout(BaseException):
    pass

def _alarm(signum, frame):
    raise _TestTimeout()

def _main(p):
    # secrets live in this frame's locals only, not in __main__'s globals (`import __main__`)
    out = os.fdopen(os.dup(1), "w")
    nonce, mode, code, tests, test_timeout = p["nonce"], p["mode"], p["code"], p["tests"], p["limits"]["test_timeout_s"]
    p.clear()
    sys.addaudithook(_hook)
    if mode == "io":
        sys.argv = ["solution.py"]
        exec(compile(code, "solution.py", "exec"), {"__name__": "__main__", "__builtins__": builtins})
        sys.stdout.flush()
        return
    ns = {"__name__": "solution", "__builtins__": builtins}
    signal.signal(signal.SIGALRM, _alarm)
    passed = []
    # the module body and then each test, each under its own timer
    for i, (src, name) in enumerate([(code, "solution.py")] + [(t, "test.py") for t in tests]):
        signal.setitimer(signal.ITIMER_REAL, test_timeout)
        try:
            exec(compile(src, name, "exec"), ns)
            ok = True
        except BaseException:
            ok = False
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        if i == 0 and not ok:
            # a module body that raises or exits (sys.exit(0) included) passes no test
            break
        if i > 0:
            passed.append(ok)
    try:
        sys.stdout.flush()
    except BaseException:
        pass
    out.write("\n" + nonce + " " + json.dumps(passed) + "\n")
    out.flush()

_main(_p)
"""


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits of one child process (units in the names)."""

    timeout_s: float = field(
        default=10.0,
        metadata={
            "help": "wall-clock limit per process (seconds); all assert tests of a completion share one process"
        },
    )
    cpu_s: int = field(default=5, metadata={"help": "RLIMIT_CPU per process (CPU seconds)"})
    memory_mb: int = field(
        default=1024, metadata={"help": "RLIMIT_AS per process (MiB of address space)"}
    )
    max_output_mb: float = field(
        default=4.0, metadata={"help": "RLIMIT_FSIZE: largest stdout/file (MiB)"}
    )
    test_timeout_s: float = field(
        default=3.0,
        metadata={"help": "timer for the module body and for each assert-style test (seconds)"},
    )

    def __post_init__(self) -> None:
        for name in ("timeout_s", "cpu_s", "memory_mb", "max_output_mb", "test_timeout_s"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"SandboxLimits.{name} must be > 0, got {value!r}")


@dataclass(frozen=True)
class TestCases:
    """Normalised tests: `asserts` (Python snippets run after the solution) or `io` pairs."""

    __test__ = False  # not a pytest class

    asserts: tuple[str, ...] = ()
    io: tuple[tuple[str, str], ...] = ()

    def __len__(self) -> int:
        return len(self.asserts) + len(self.io)


def parse_tests(value: object) -> TestCases:
    """Test cases from a dataset cell.

    Accepted: a list of assert snippets (MBPP/HumanEval style: "assert f(1) == 2"); a list of
    {"input", "output"} dicts (stdin/stdout); an APPS-style {"inputs": [...], "outputs": [...]};
    any of these as a JSON string; or one string of test code (a single test). An empty value
    gives no tests. Anything else raises ValueError.
    """
    if value is None:
        return TestCases()
    if isinstance(value, str):
        stripped = value.strip()
        if stripped[:1] in ("[", "{"):
            try:
                return parse_tests(json.loads(stripped))
            except json.JSONDecodeError:
                pass
        return TestCases(asserts=(value,)) if stripped else TestCases()
    if isinstance(value, dict):
        if "inputs" in value and "outputs" in value:
            ins, outs = list(value["inputs"]), list(value["outputs"])
            if len(ins) != len(outs):
                raise ValueError(f"tests: {len(ins)} inputs but {len(outs)} outputs")
            return TestCases(io=tuple((_text(i), _text(o)) for i, o in zip(ins, outs, strict=True)))
        if "input" in value and "output" in value:
            return TestCases(io=((_text(value["input"]), _text(value["output"])),))
        raise ValueError(
            f"tests: a dict needs 'inputs'/'outputs' or 'input'/'output', got keys {sorted(value)}"
        )
    if isinstance(value, list | tuple):
        items = list(value)
        if all(isinstance(t, str) for t in items):
            return TestCases(asserts=tuple(items))
        if all(isinstance(t, dict) and "input" in t and "output" in t for t in items):
            return TestCases(io=tuple((_text(t["input"]), _text(t["output"])) for t in items))
    raise ValueError(
        "tests must be a list of assert strings, a list of {'input', 'output'} dicts, "
        f"an {{'inputs', 'outputs'}} dict or a JSON string of one, got {type(value).__name__}"
    )


def _text(x: object) -> str:
    return x if isinstance(x, str) else "\n".join(map(str, x)) if isinstance(x, list) else str(x)


def _same_output(got: str, expected: str) -> bool:
    def lines(s: str) -> list[str]:
        return [line.rstrip() for line in s.strip().splitlines()]

    return lines(got) == lines(expected)


def _child_env(tmp: str) -> dict[str, str]:
    # only what an interpreter needs: no proxies, tokens, PYTHONPATH or CUDA settings leak in
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": tmp,
        "TMPDIR": tmp,
        "LANG": "C.UTF-8",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }


def _run_child(
    tmp: str, payload: dict, stdin_text: str | None, limits: SandboxLimits
) -> tuple[int | None, bytes]:
    """Run the harness once; returns (exit code or None when killed for time, stdout bytes)."""
    max_bytes = int(limits.max_output_mb * 2**20)
    payload = {
        **payload,
        "limits": {
            "cpu_s": int(limits.cpu_s),
            "memory_bytes": int(limits.memory_mb * 2**20),
            "max_output_bytes": max_bytes,
            "test_timeout_s": float(limits.test_timeout_s),
        },
    }
    name = f"payload-{secrets.token_hex(8)}.json"
    with open(os.path.join(tmp, name), "w") as f:
        json.dump(payload, f)
    out_path = os.path.join(tmp, f"stdout-{secrets.token_hex(8)}")
    stdin_path = os.path.join(tmp, "stdin.txt")
    with open(stdin_path, "w") as f:
        f.write(stdin_text or "")
    with open(out_path, "wb") as out, open(stdin_path, "rb") as inp:
        proc = subprocess.Popen(
            [sys.executable, "-I", "-B", "-c", _HARNESS, name],
            cwd=tmp,
            env=_child_env(tmp),
            stdin=inp,
            stdout=out,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
        )
        try:
            rc: int | None = proc.wait(timeout=limits.timeout_s)
        except subprocess.TimeoutExpired:
            rc = None
        finally:
            # the session's whole process group: a child that escaped our rlimits dies here too
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    with open(out_path, "rb") as f:
        data = f.read(max_bytes + 1)
    return rc, data


def run_tests(code: str, tests: TestCases, limits: SandboxLimits | None = None) -> list[bool]:
    """Run `code` against `tests` in the sandbox; one bool per test (all False on any failure).

    Never raises for anything the code does (hang, crash, fork, memory or output bomb); only
    when a process cannot be started at all (an OSError of this machine).
    """
    limits = limits or SandboxLimits()
    if len(tests) == 0:
        return []
    tmp = tempfile.mkdtemp(prefix="labkit-sandbox-")
    try:
        if tests.asserts:
            nonce = secrets.token_hex(16)
            payload = {
                "nonce": nonce,
                "mode": "asserts",
                "code": code,
                "tests": list(tests.asserts),
            }
            rc, out = _run_child(tmp, payload, None, limits)
            verdict = [False] * len(tests.asserts)
            tag = nonce.encode() + b" "
            lines = [line for line in out.splitlines() if line.startswith(tag)]
            if rc == 0 and len(lines) == 1:
                try:
                    got = json.loads(lines[0][len(tag) :])
                except ValueError:
                    got = None
                if isinstance(got, list) and len(got) == len(verdict):
                    verdict = [x is True for x in got]
            return verdict
        results = []
        for stdin_text, expected in tests.io:
            payload = {"nonce": "", "mode": "io", "code": code, "tests": []}
            rc, out = _run_child(tmp, payload, stdin_text, limits)
            ok = rc == 0 and len(out) <= limits.max_output_mb * 2**20
            results.append(ok and _same_output(out.decode("utf-8", errors="replace"), expected))
        return results
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
