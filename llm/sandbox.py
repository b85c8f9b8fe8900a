"""Run model-written Python against test cases, isolated by the OS, for the `code` reward.

Each program runs under bubblewrap (`bwrap`), as an unprivileged user (uid/gid 65534) in new user,
pid, network, ipc, uts and cgroup namespaces:
- it sees a read-only view of the base Python installation (`sys.base_prefix`, not the venv) and
  the system libraries it links, a fresh /proc and /dev, and a private writable tmpfs as its working
  directory: not the project, not the data, not /home or /root, not the host's /proc or /etc;
- it has no network at all (only the loopback of its own empty network namespace);
- rlimits bound CPU time, address space, file size (so stdout too), open files and processes;
  RLIMIT_NPROC counts the processes of the sandbox's own user namespace, and the sandbox's host
  uid is never root (root ignores RLIMIT_NPROC): when the scorer runs as root, bwrap sets up the
  namespaces as root, `setpriv` drops to uid 65534 and a second, unprivileged bwrap makes the user
  namespace;
- a wall-clock limit kills the bwrap process; its pid 1 dies with it (`--die-with-parent`) and the
  kernel then kills every process of the pid namespace (setsid and double-forked children too);
- `--new-session` (no terminal injection), `--clearenv` plus a minimal environment, `--disable-userns`
  (no nested user namespaces), no capabilities and no_new_privs.

Inside, a Python audit hook (PEP 578) refuses sockets, subprocesses, signals, ctypes and writes
outside the working directory. It is defence in depth only: code can switch it off (`import
__main__`), and the tests do exactly that before every escape attempt.

Without bwrap the code reward refuses to run unless the caller opts in with
`sandbox="unsafe-subprocess"` (config `data.code_sandbox`): the program then runs in a plain child
process with the same rlimits and the audit hook, which it can switch off; it can then read every
file the trainer can read, use the network, and signal the trainer's processes (docs/sandbox.md).

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
import functools
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

SANDBOX_MODES = ("bwrap", "unsafe-subprocess")
SANDBOX_UID = 65534  # "nobody": owns no file on the host
INSTALL_HINT = "install bubblewrap (`apt-get install bubblewrap`)"

# The harness runs in the child before the solution. It reads its payload from the file descriptor in argv[1], closes it,
# applies the rlimits, installs the audit hook, and only then executes model code.
_HARNESS = r"""
import builtins, json, os, resource, signal, sys, sysconfig
with os.fdopen(int(sys.argv[1])) as _f:
    _p = json.load(_f)
del _f
_lim = _p["limits"]
for _name, _val in (("RLIMIT_CPU", _lim["cpu_s"]), ("RLIMIT_AS", _lim["memory_bytes"]),
                    ("RLIMIT_FSIZE", _lim["max_output_bytes"]), ("RLIMIT_CORE", 0),
                    ("RLIMIT_NOFILE", _lim["max_open_files"]),
                    ("RLIMIT_NPROC", _lim["max_processes"])):
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
    """Resource limits of one sandboxed program (units in the names)."""

    timeout_s: float = field(
        default=10.0,
        metadata={
            "help": "wall-clock limit per program (seconds); all assert tests of a completion share one program"
        },
    )
    cpu_s: int = field(default=5, metadata={"help": "RLIMIT_CPU per process (CPU seconds)"})
    memory_mb: int = field(
        default=1024, metadata={"help": "RLIMIT_AS per process (MiB of address space)"}
    )
    max_output_mb: float = field(
        default=4.0,
        metadata={"help": "RLIMIT_FSIZE: largest stdout or file (MiB); also the tmpfs size"},
    )
    test_timeout_s: float = field(
        default=3.0,
        metadata={"help": "timer for the module body and for each assert-style test (seconds)"},
    )
    max_processes: int = field(
        default=8,
        metadata={
            "help": "RLIMIT_NPROC: processes and threads of one sandbox (its user namespace)"
        },
    )
    max_open_files: int = field(default=64, metadata={"help": "RLIMIT_NOFILE per process"})

    def __post_init__(self) -> None:
        for name in (
            "timeout_s",
            "cpu_s",
            "memory_mb",
            "max_output_mb",
            "test_timeout_s",
            "max_processes",
            "max_open_files",
        ):
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


# --- isolation --------------------------------------------------------------------------------------


class SandboxUnavailable(ValueError):
    """bwrap is missing or cannot create namespaces here, and no unsafe opt-in was given (a
    ValueError: the fix is in the setup or the config, and the CLI reports it as one line)."""


def check_mode(sandbox: str) -> str:
    """Validate a sandbox mode name; returns it."""
    if sandbox not in SANDBOX_MODES:
        raise ValueError(f"sandbox={sandbox!r} is not valid; expected one of {list(SANDBOX_MODES)}")
    return sandbox


def _interpreter() -> str:
    # the base interpreter, not the venv's symlink: the venv is not mounted in the sandbox
    exe = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    return exe if os.path.exists(exe) else os.path.realpath(sys.executable)


def _ancestors(path: str) -> list[str]:
    parts = path.strip("/").split("/")[:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def _mounts(work_mb: int) -> list[str]:
    """bwrap arguments for the filesystem: the base Python, system libraries, helper binaries."""
    base = os.path.realpath(sys.base_prefix)
    wanted = [base, os.path.dirname(_interpreter())]
    wanted += [d for d in ("/usr/lib", "/usr/lib64", "/usr/lib32") if os.path.isdir(d)]
    wanted += [shutil.which(b) or "" for b in ("bwrap", "setpriv")]
    args: list[str] = []
    for link in ("/lib", "/lib64", "/lib32", "/bin", "/sbin"):
        if os.path.islink(link):
            args += ["--symlink", os.readlink(link), link]
        elif os.path.isdir(link) and link.startswith("/lib"):
            wanted.append(link)
    bound: list[str] = []
    for path in sorted({os.path.realpath(p) for p in wanted if p}):
        if any(path == b or path.startswith(b + "/") for b in bound):
            continue
        bound.append(path)
    made: set[str] = set()
    for path in bound:
        for parent in _ancestors(path):
            # bwrap would copy the host's modes (/root is 0700): make every parent traversable
            if parent not in made and not any(parent.startswith(b + "/") for b in bound):
                made.add(parent)
                args += ["--perms", "0755", "--dir", parent]
        args += ["--ro-bind", path, path]
    args += ["--proc", "/proc", "--dev", "/dev"]
    size = str(work_mb * 2**20)
    args += ["--perms", "01777", "--size", size, "--tmpfs", "/tmp", "--chdir", "/tmp"]
    # the root and /dev are tmpfs without a size limit, owned by the sandbox user when bwrap runs
    # unprivileged: read-only, so the size-limited /tmp is the only place a program can write
    args += ["--remount-ro", "/dev", "--remount-ro", "/"]
    return args


def _env_args() -> list[str]:
    args = ["--clearenv"]
    for key, value in _child_env("/tmp").items():
        args += ["--setenv", key, value]
    return args


def bwrap_command(limits: SandboxLimits) -> list[str]:
    """The argv prefix that runs a program under bwrap (the program's argv follows).

    As root, the outer bwrap builds the namespaces and mounts, `setpriv` drops to uid 65534 with no
    capabilities, and an inner unprivileged bwrap makes the user namespace: the program's host uid
    is 65534, never 0 (RLIMIT_NPROC binds). As another user, one bwrap does everything and maps
    uid 65534 in the sandbox to the caller's uid.
    """
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SandboxUnavailable(f"bwrap not found: {INSTALL_HINT}")
    common = ["--die-with-parent", "--new-session"]
    work_mb = max(1, int(limits.max_output_mb) + 1)
    spaces = ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts"]
    spaces += ["--unshare-cgroup-try", "--hostname", "sandbox"]
    user = ["--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID)]
    user += ["--disable-userns"]
    if os.geteuid() != 0:
        return [bwrap, *spaces, *user, *common, *_mounts(work_mb), *_env_args(), "--"]
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise SandboxUnavailable("setpriv (util-linux) not found: needed to drop root in bwrap")
    drop = [setpriv, f"--reuid={SANDBOX_UID}", f"--regid={SANDBOX_UID}", "--clear-groups"]
    drop += ["--inh-caps=-all", "--"]
    inner = [bwrap, *user, *common, "--bind", "/", "/", "--chdir", "/tmp", "--"]
    caps = ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    outer = [bwrap, *spaces, *common, *caps, *_mounts(work_mb), *_env_args(), "--"]
    return [*outer, *drop, *inner]


@functools.cache
def bwrap_problem() -> str | None:
    """None when bwrap can run a sandbox here, else why not (probed once per process)."""
    try:
        argv = [*bwrap_command(SandboxLimits()), _interpreter(), "-I", "-c", "print('ok')"]
        run = subprocess.run(argv, capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    except SandboxUnavailable as e:
        return str(e)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"bwrap could not start: {e}"
    if run.returncode != 0 or run.stdout.strip() != b"ok":
        err = run.stderr.decode(errors="replace").strip().splitlines()
        return f"bwrap cannot create a sandbox here: {err[-1] if err else f'exit {run.returncode}'}"
    return None


@functools.cache
def _warn_unsafe() -> None:
    logger.warning(
        "code reward: sandbox='unsafe-subprocess' runs model code WITHOUT OS isolation: the "
        "program can read every file this process can read (project, data, answers, home), use "
        "the network, signal this user's processes and leave processes behind; the rlimits "
        "and the audit hook it can switch off are all that stand in its way. %s for real isolation.",
        INSTALL_HINT.capitalize(),
    )


def require_sandbox(sandbox: str) -> None:
    """Raise SandboxUnavailable when `sandbox` cannot run here; warn once for the unsafe mode."""
    check_mode(sandbox)
    if sandbox == "unsafe-subprocess":
        _warn_unsafe()
        return
    problem = bwrap_problem()
    if problem is not None:
        raise SandboxUnavailable(
            f"the code reward runs programs under bubblewrap, but {problem}. Either {INSTALL_HINT}"
            " (and allow user namespaces), or opt out of isolation explicitly with "
            "data.code_sandbox=unsafe-subprocess (see docs/sandbox.md)."
        )


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
    tmp: str, payload: dict, stdin_text: str | None, limits: SandboxLimits, sandbox: str
) -> tuple[int | None, bytes]:
    """Run the harness once; returns (exit code or None when killed for time, stdout bytes).

    `tmp` is a host directory for the payload, stdin and stdout files; the sandboxed program never
    sees it (it gets the three as open file descriptors).
    """
    max_bytes = int(limits.max_output_mb * 2**20)
    payload = {
        **payload,
        "limits": {
            "cpu_s": int(limits.cpu_s),
            "memory_bytes": int(limits.memory_mb * 2**20),
            "max_output_bytes": max_bytes,
            "max_open_files": int(limits.max_open_files),
            "max_processes": int(limits.max_processes),
            "test_timeout_s": float(limits.test_timeout_s),
        },
    }
    token = secrets.token_hex(8)
    paths = {k: os.path.join(tmp, f"{k}-{token}") for k in ("payload", "stdin", "stdout")}
    with open(paths["payload"], "w") as f:
        json.dump(payload, f)
    with open(paths["stdin"], "w") as f:
        f.write(stdin_text or "")
    if sandbox == "bwrap":
        prefix, cwd = [*bwrap_command(limits), _interpreter()], "/"
    else:
        prefix, cwd = [sys.executable], tmp
    with (
        open(paths["stdout"], "wb") as out,
        open(paths["stdin"], "rb") as inp,
        open(paths["payload"], "rb") as pay,
    ):
        proc = subprocess.Popen(
            [*prefix, "-I", "-B", "-c", _HARNESS, str(pay.fileno())],
            cwd=cwd,
            env=_child_env(tmp),
            stdin=inp,
            stdout=out,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            pass_fds=(pay.fileno(),),
        )
        try:
            rc: int | None = proc.wait(timeout=limits.timeout_s)
        except subprocess.TimeoutExpired:
            rc = None
        finally:
            # under bwrap: the sandbox's pid 1 dies with this process and takes the whole pid
            # namespace with it; unsafe mode: the session's process group is all we can reach
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    with open(paths["stdout"], "rb") as f:
        data = f.read(max_bytes + 1)
    return rc, data


def run_tests(
    code: str, tests: TestCases, limits: SandboxLimits | None = None, sandbox: str = "bwrap"
) -> list[bool]:
    """Run `code` against `tests` in the sandbox; one bool per test (all False on any failure).

    Args:
        sandbox: "bwrap" (OS isolation, the default) or "unsafe-subprocess" (an explicit opt-in
            to a plain child process; see the module docstring for what it does not protect).
    Never raises for anything the code does (hang, crash, fork, memory or output bomb, escape
    attempts); raises SandboxUnavailable when bwrap cannot run here, OSError when a process
    cannot be started at all.
    """
    limits = limits or SandboxLimits()
    require_sandbox(sandbox)
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
            rc, out = _run_child(tmp, payload, None, limits, sandbox)
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
            rc, out = _run_child(tmp, payload, stdin_text, limits, sandbox)
            ok = rc == 0 and len(out) <= limits.max_output_mb * 2**20
            results.append(ok and _same_output(out.decode("utf-8", errors="replace"), expected))
        return results
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
