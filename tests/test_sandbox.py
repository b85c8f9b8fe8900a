"""The code sandbox against a hostile completion: every escape scores 0, leaves the host unchanged
and leaves nothing running, and the scorer keeps working; correct programs score 1.

Most attacks first switch off the in-process audit hook (`import __main__` and overwrite its
settings, one of the escapes of issue #11), so they test the OS boundary (bubblewrap), not the
hook. Each attack program defines `add` correctly only when its attack worked, so a sandbox that
let it through would score it 1. `test_unsafe_mode_lets_the_read_escapes_through` runs the
harmless ones without isolation and checks that they do score 1 there: the attacks are real.

Without bwrap these tests skip (locally) with the install command; with CI=true they fail.
"""

from __future__ import annotations

import logging
import os
import site
import socket
import sys
import sysconfig
import time
from pathlib import Path

import pytest

from llm.config import DataConfig
from llm.rewards import code_reward, with_code_sandbox
from llm.sandbox import (
    SANDBOX_UID,
    SandboxLimits,
    SandboxUnavailable,
    TestCases,
    bwrap_problem,
    run_tests,
)

ROOT = Path(__file__).resolve().parent.parent
# tight limits where every attack must fail; roomy ones where correct programs must pass on a
# loaded CI machine (slow interpreter start, slow numpy import)
FAST = SandboxLimits(timeout_s=4.0, cpu_s=2, memory_mb=512, max_output_mb=1.0, test_timeout_s=1.0)
ROOMY = SandboxLimits(
    timeout_s=60.0, cpu_s=30, memory_mb=1024, max_output_mb=1.0, test_timeout_s=30.0
)
ADD = "def add(a, b):\n    return a + b\n"
ADD_TESTS = ["assert add(1, 2) == 3", "assert add(-1, 1) == 0"]
# the issue's first escape: the hook reads its settings from __main__'s globals at every event
HOOK_OFF = (
    "import __main__ as _m\n"
    "_m._blocked = ('no.such.event',)\n"
    "_m._write_events = ()\n"
    "_m._inside = lambda path, roots: True\n"
)


def require_bwrap() -> None:
    """Skip the calling test when bwrap cannot run here; fail instead under CI=true."""
    problem = bwrap_problem()
    if problem is None:
        return
    message = f"the code sandbox tests need bubblewrap: {problem}"
    if "apt-get install bubblewrap" not in message:
        message += " (apt-get install bubblewrap)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}: CI must run the sandbox suite, never skip it")
    pytest.skip(message)


@pytest.fixture
def bwrap() -> None:
    require_bwrap()


def fenced(code: str) -> str:
    return f"Here is my solution:\n```python\n{code}\n```\n"


def if_escaped(condition: str, setup: str = "") -> str:
    """A program that passes ADD_TESTS only when `condition` (Python, after `setup`) is true."""
    return (
        HOOK_OFF
        + setup
        + "\ntry:\n    _ok = bool("
        + condition
        + ")\nexcept BaseException:\n    _ok = False\n"
        + "def add(a, b):\n    return a + b if _ok else None\n"
    )


def _uid_processes(uid: int) -> list[int]:
    """Live processes whose real uid is `uid` (zombies included)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                status = Path(f"/proc/{entry}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("Uid:") and int(line.split()[1]) == uid:
                    found.append(int(entry))
    return found


def _wait_no_sandbox_processes(timeout: float = 5.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := _uid_processes(SANDBOX_UID)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def _site_dirs() -> list[Path]:
    dirs = {sysconfig.get_paths()["purelib"], *site.getsitepackages()}
    dirs.add(
        sysconfig.get_paths(vars={"base": sys.base_prefix, "platbase": sys.base_prefix})["purelib"]
    )
    return sorted(Path(d) for d in dirs if Path(d).is_dir())


def _snapshot(paths: list[Path]) -> dict[str, object]:
    return {str(p): sorted(os.listdir(p)) if p.is_dir() else p.read_bytes() for p in paths}


def _trainer_env_entry() -> str:
    """One KEY=VALUE of this process's environment as /proc shows it, never given to a sandbox
    (os.environ changes made after start do not show in /proc/<pid>/environ)."""
    entries = Path("/proc/self/environ").read_bytes().decode(errors="replace").split("\0")
    given = {"PATH", "HOME", "TMPDIR", "LANG", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"}
    return next(
        e for e in entries if "=" in e and e.split("=")[0] not in given | {"MKL_NUM_THREADS"}
    )


def _attacks(tmp: Path, port: int) -> dict[str, str]:
    """name -> program; each would pass ADD_TESTS if its attack succeeded."""
    marker = tmp / "marker.txt"
    secret = tmp / "secret.txt"
    project = ROOT / "llm" / "sandbox.py"
    data = ROOT / "tests" / "data" / "prompts.jsonl"
    home = Path.home()
    # what the sandbox must not see in home: anything but the way to the base Python
    home_files = [str(p) for p in home.iterdir() if not sys.base_prefix.startswith(str(p))]
    sites = [str(d) for d in _site_dirs()]
    me = os.getpid()
    secret_env = _trainer_env_entry()
    write_marker = f"open({str(marker)!r}, 'w').write('x')"
    late = FAST.timeout_s + 2
    return {
        # the hook is not the boundary: with it off, every attack below meets the OS
        "hook off, then read the project": if_escaped(f"open({str(project)!r}).read()"),
        "hook off, then read the data": if_escaped(f"open({str(data)!r}).read()"),
        "hook off, then look into home": if_escaped(
            f"any(os.path.lexists(p) for p in {home_files!r})", "import os"
        ),
        "hook off, then read a secret file": if_escaped(
            f"open({str(secret)!r}).read() == 's3cret'"
        ),
        "hook off, read /etc/passwd": if_escaped("'root' in open('/etc/passwd').read()"),
        "replace builtins.any, then write site-packages": if_escaped(
            f"open({sites[0] + '/labkit_evil.pth'!r}, 'w').write('import os')",
            "import builtins\nbuiltins.any = lambda it: False",
        ),
        ".pth file in every site-packages": if_escaped(
            "all(open(d + '/labkit_evil.pth', 'w').write('import os') for d in " + repr(sites) + ")"
        ),
        "os.open with dir_fd into site-packages": if_escaped(
            "os.write(os.open('labkit_evil2.pth', os.O_CREAT | os.O_WRONLY, 0o644, "
            f"dir_fd=os.open({sites[0]!r}, os.O_RDONLY | os.O_DIRECTORY)), b'import os')",
            "import os",
        ),
        "write the base Python": if_escaped(
            f"open({os.path.join(sys.base_prefix, 'labkit_evil.py')!r}, 'w').write('x')"
        ),
        "write through /proc/self/fd": if_escaped(
            "any(_try(f) for f in os.listdir('/proc/self/fd'))",
            # its own stdin, stdout (and the harness's copy of it) and /dev/null do not count
            "import os\ndef _try(f):\n    p = '/proc/self/fd/' + f\n"
            "    if int(f) < 3 or os.readlink(p) == os.readlink('/proc/self/fd/1'):\n"
            "        return False\n    try:\n"
            "        with open(p, 'r+') as h:\n            h.write('PWNED')\n        return True\n"
            "    except OSError:\n        return False",
        ),
        "write through /proc/1/root": if_escaped(
            f"open('/proc/1/root' + {str(marker)!r}, 'w').write('x')"
        ),
        "trainer environment via /proc/*/environ": if_escaped(
            f"any({secret_env!r}.encode() in _env(p) for p in os.listdir('/proc') if p.isdigit())"
            f" or {secret_env!r}.encode() in _env({str(me)!r})",
            "import os\ndef _env(p):\n    try:\n        return open(f'/proc/{p}/environ', 'rb').read()\n"
            "    except OSError:\n        return b''",
        ),
        "os.system": if_escaped("os.system('exit 0') == 0", "import os"),
        "posix_spawn writes a host file": if_escaped(
            "os.waitpid(os.posix_spawn(sys.executable, [sys.executable, '-c', "
            f"{write_marker!r}], {{}}), 0)[1] == 0",
            "import os, sys",
        ),
        "socket to the test's 127.0.0.1 server": if_escaped(
            f"socket.create_connection(('127.0.0.1', {port}), timeout=1)", "import socket"
        ),
        "socket to the internet": if_escaped(
            "socket.create_connection(('1.1.1.1', 53), timeout=1)", "import socket"
        ),
        "unix socket of the host": if_escaped(
            "any(_conn(p) for p in ('/run/docker.sock', '/var/run/docker.sock', '/tmp/.X11-unix/X0'))",
            "import socket\ndef _conn(p):\n    s = socket.socket(socket.AF_UNIX)\n    try:\n"
            "        s.connect(p)\n        return True\n    except OSError:\n        return False",
        ),
        "kill the scorer": if_escaped(f"os.kill({me}, 9) is None", "import os"),
        "kill everything it can see": if_escaped(
            f"os.kill(-1, 9) is None and os.kill({me}, 0) is None", "import os"
        ),
        "signal its parent": if_escaped(
            "os.kill(os.getppid(), 15) is None and os.getppid() > 1", "import os"
        ),
        "ptrace the scorer or pid 1": if_escaped(
            f"_lib.ptrace(16, {me}, 0, 0) == 0 or _lib.ptrace(16, 1, 0, 0) == 0",
            "import ctypes\n_lib = ctypes.CDLL(None, use_errno=True)\n"
            "_lib.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]",
        ),
        "nested user namespace": if_escaped(
            "_lib.unshare(0x10000000) == 0", "import ctypes\n_lib = ctypes.CDLL(None)"
        ),
        "runs as root or holds capabilities": if_escaped(
            "os.getuid() == 0 or any(l.startswith('CapEff') and int(l.split()[1], 16) "
            "for l in open('/proc/self/status'))",
            "import os",
        ),
        "raise its rlimits": if_escaped(
            "resource.setrlimit(resource.RLIMIT_NPROC, (10**6, 10**6)) is None", "import resource"
        ),
        # judged on the host: no process of the sandbox uid left, no marker written
        "setsid child outlives the limit": if_escaped(
            "False",
            f"import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep({late})\n"
            f"    open({str(marker)!r}, 'w').write('x')\n    os._exit(0)",
        ),
        "double fork outlives the limit": if_escaped(
            "False",
            f"import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
            f"        time.sleep({late})\n        open({str(marker)!r}, 'w').write('x')\n"
            "    os._exit(0)\nos.wait()",
        ),
        "fork bomb (RLIMIT_NPROC must bind)": if_escaped(
            "_bomb() >= 50",
            "import os, time\ndef _bomb():\n    n = 0\n    for _ in range(200):\n        try:\n"
            "            if os.fork() == 0:\n                time.sleep(60)\n                os._exit(0)\n"
            "            n += 1\n        except OSError:\n            break\n    return n",
        ),
        "memory bomb": if_escaped("len(bytearray(4 * 2**30)) > 0"),
        "huge output": HOOK_OFF
        + "import sys\nwhile True:\n    sys.stdout.write('x' * 2**20)\n"
        + ADD,
        "fill the root and /dev (tmpfs without a size)": if_escaped(
            "sum(_fill(d) for d in ('/', '/dev', '/dev/shm', '/proc')) > 2**23",
            "def _fill(d):\n    n = 0\n    for i in range(32):\n        try:\n"
            "            n += open(f'{d}/f{i}', 'wb').write(b'x' * 2**19)\n        except OSError:\n"
            "            break\n    return n",
        ),
        "fill the working directory": if_escaped(
            "all(open(f'f{i}', 'wb').write(b'x' * 2**19) for i in range(64))"
        ),
        "symlink in the working directory to the project": if_escaped(
            f"os.symlink({str(project)!r}, 'p') is None and open('p').read()", "import os"
        ),
        "symlink in the working directory to home": if_escaped(
            f"os.symlink({str(home)!r}, 'h') is None and "
            f"any(os.path.lexists('h/' + os.path.basename(p)) for p in {home_files!r})",
            "import os",
        ),
        "symlink to the host root through /proc": if_escaped(
            f"os.symlink('/proc/1/root', 'r') is None and open('r' + {str(secret)!r}).read()",
            "import os",
        ),
        # the old suite, with the hook on
        "infinite loop": "while True:\n    pass\n" + ADD,
        "sleep": "import time\ntime.sleep(1000)\n" + ADD,
        "fork bomb, hook on": "import os\nwhile True:\n    os.fork()\n" + ADD,
        "subprocess": "import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', 'pass'])\n"
        + ADD,
        "os.system, hook on": "import os\nos.system('echo hi')\n" + ADD,
        "growing memory": "x = []\nwhile True:\n    x.append(' ' * 2**20)\n",
        "huge print": "while True:\n    print('x' * 10000)\n",
        "syntax error": "def add(a, b) return a + b",
        "sys.exit(0) before tests": "import sys\nsys.exit(0)\n" + ADD,
        "os._exit(0) before tests": "import os\nos._exit(0)\n" + ADD,
        "prints PASS": "print('PASS')\nprint('2 passed')\n",
        "ctypes fork": "import ctypes\nctypes.CDLL(None).fork()\n" + ADD,
        "raises": "raise RuntimeError('boom')\n" + ADD,
    }


def test_every_escape_scores_zero_changes_nothing_and_leaves_nothing(tmp_path, bwrap):
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cret")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.1)
    attacks = _attacks(tmp_path, server.getsockname()[1])
    watched = [secret, tmp_path, *_site_dirs(), Path(sys.base_prefix), ROOT / "llm"]
    before = _snapshot(watched)
    reward = code_reward(limits=FAST, max_workers=4)
    start = time.monotonic()
    scores = reward(
        ["q"] * len(attacks),
        [fenced(c) for c in attacks.values()],
        tests=[ADD_TESTS] * len(attacks),
    )
    elapsed = time.monotonic() - start
    assert dict(zip(attacks, scores, strict=True)) == dict.fromkeys(attacks, 0.0)
    assert elapsed < 90, f"the attack batch took {elapsed:.1f}s"  # hangs would never return
    # outlive the children's sleep: a survivor would write the marker now
    time.sleep(max(0.0, FAST.timeout_s + 3 - elapsed))
    assert _wait_no_sandbox_processes() == []
    assert _snapshot(watched) == before
    assert not (tmp_path / "marker.txt").exists()
    with pytest.raises(TimeoutError):
        server.accept()  # nothing ever connected
    server.close()
    # the scorer is alive (this test runs in it) and still scores a correct program 1
    assert code_reward(limits=ROOMY)(["q"], [fenced(ADD)], tests=[ADD_TESTS]) == [1.0]


def test_unsafe_mode_lets_the_read_escapes_through(tmp_path):
    """Without isolation the same programs do escape: the attacks above are real ones."""
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cret")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    attacks = _attacks(tmp_path, server.getsockname()[1])
    harmless = [
        "hook off, then read the project",
        "hook off, then read the data",
        "hook off, then read a secret file",
        "trainer environment via /proc/*/environ",
        "socket to the test's 127.0.0.1 server",
        "symlink in the working directory to the project",
        "os.system",
        "posix_spawn writes a host file",
    ]
    if os.geteuid() == 0:
        harmless.append("fork bomb (RLIMIT_NPROC must bind)")  # root ignores RLIMIT_NPROC
    for name, program in attacks.items():  # an attack that cannot even compile proves nothing
        if name != "syntax error":
            compile(program, name, "exec")
    reward = code_reward(limits=ROOMY, max_workers=2, sandbox="unsafe-subprocess")
    scores = reward(
        ["q"] * len(harmless),
        [fenced(attacks[k]) for k in harmless],
        tests=[ADD_TESTS] * len(harmless),
    )
    server.close()
    assert dict(zip(harmless, scores, strict=True)) == dict.fromkeys(harmless, 1.0)


# --- correct programs ---------------------------------------------------------------------------

# HumanEval-style problems (written for this test): a function, then assert tests on it
PROBLEMS = {
    "close elements": (
        "def has_close_elements(numbers, threshold):\n"
        "    s = sorted(numbers)\n"
        "    return any(b - a < threshold for a, b in zip(s, s[1:]))\n",
        [
            "assert has_close_elements([1.0, 2.0, 3.9, 4.0], 0.3)",
            "assert not has_close_elements([1.0, 2.0, 3.0], 0.5)",
        ],
    ),
    "palindrome prefix": (
        "def make_palindrome(s):\n"
        "    for i in range(len(s) + 1):\n"
        "        tail = s[i:]\n"
        "        if tail == tail[::-1]:\n"
        "            return s + s[:i][::-1]\n",
        ["assert make_palindrome('') == ''", "assert make_palindrome('cat') == 'catac'"],
    ),
    "numpy and a file in the working directory": (
        "import numpy as np\n"
        "open('scratch.txt', 'w').write('3')\n"
        "def mean_plus_file(xs):\n"
        "    return float(np.mean(xs)) + int(open('scratch.txt').read())\n",
        ["assert mean_plus_file([1, 3]) == 5.0"],
    ),
    "recursion and big integers": (
        "import functools\n"
        "@functools.lru_cache(None)\n"
        "def fib(n):\n"
        "    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",
        ["assert fib(200) == 280571172992510140037611932413038677189525", "assert fib(10) == 55"],
    ),
}


def test_correct_programs_score_one_in_parallel(bwrap):
    reward = code_reward(limits=ROOMY, max_workers=4)
    names = list(PROBLEMS)
    scores = reward(
        ["q"] * len(names),
        [fenced(PROBLEMS[n][0]) for n in names],
        tests=[PROBLEMS[n][1] for n in names],
    )
    assert dict(zip(names, scores, strict=True)) == dict.fromkeys(names, 1.0)


def test_stdin_stdout_program_under_bwrap(bwrap):
    program = "import sys\nprint(sum(int(x) for x in sys.stdin.read().split()))"
    tests = TestCases(io=(("1 2 3\n", "6\n"), ("10 -4", "6")))
    assert run_tests(program, tests, ROOMY) == [True, True]


# --- without bwrap ------------------------------------------------------------------------------


@pytest.fixture
def no_bwrap(monkeypatch):
    import shutil

    real_which = shutil.which
    monkeypatch.setattr(
        shutil,
        "which",
        lambda name, *a, **k: None if name == "bwrap" else real_which(name, *a, **k),
    )
    bwrap_problem.cache_clear()
    yield
    bwrap_problem.cache_clear()


def test_without_bwrap_code_rewards_refuse_unless_opted_out(no_bwrap, caplog):
    with pytest.raises(SandboxUnavailable, match=r"apt-get install bubblewrap.*unsafe-subprocess"):
        code_reward()
    with pytest.raises(SandboxUnavailable, match="apt-get install bubblewrap"):
        with_code_sandbox(["math_accuracy", "code"], "bwrap")
    with pytest.raises(SandboxUnavailable):
        run_tests(ADD, TestCases(asserts=tuple(ADD_TESTS)), ROOMY)
    from llm import sandbox

    sandbox._warn_unsafe.cache_clear()
    with caplog.at_level(logging.WARNING, logger="llm.sandbox"):
        specs = with_code_sandbox(["math_accuracy", "code", "code_all"], "unsafe-subprocess")
        reward = specs[1]
        assert specs[0] == "math_accuracy" and callable(reward) and reward.__name__ == "code"
        assert reward(["q"], [fenced(ADD)], tests=[ADD_TESTS]) == [1.0]
    warnings = [r for r in caplog.records if "WITHOUT OS isolation" in r.getMessage()]
    assert len(warnings) == 1  # once, however many rewards and calls
    assert "read every file" in warnings[0].getMessage()


def test_sandbox_mode_and_limits_validate():
    with pytest.raises(ValueError, match=r"data.code_sandbox='none' is not valid"):
        DataConfig(code_sandbox="none")
    with pytest.raises(ValueError, match="sandbox='off'"):
        code_reward(sandbox="off")
    with pytest.raises(ValueError, match="max_processes"):
        SandboxLimits(max_processes=0)


def test_docs_quote_the_committed_overhead_measurement():
    """docs/sandbox.md's generated block is exactly what report_markdown renders from the JSON."""
    from bench.sandbox_overhead import DEFAULT_OUT, report_markdown

    docs = (ROOT / "docs" / "sandbox.md").read_text()
    start, end = "<!-- report:sandbox-overhead -->\n", "\n<!-- /report:sandbox-overhead -->"
    block = docs[docs.index(start) + len(start) : docs.index(end)]
    rendered = report_markdown(ROOT / DEFAULT_OUT)
    assert block == rendered
    assert "| add |" in rendered and "| 8 |" in rendered
