"""Adversarial programs (fake exits, verdict forgery, fork bombs, memory and disk floods, signals, escapes):
each asserts the exact verdict, then that the
service and its pool are intact (every container up, a correct program still accepted)."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.docker

ONE = [{"type": "stdio", "stdin": "", "expected_stdout": ""}]


def run(client, code, tests=ONE, **kw):
    body = {"language": "python", "code": code, **kw}
    if tests is not None:
        body["tests"] = tests
    return client.execute(body)


@pytest.fixture
def intact(sandbox_url, sandbox_client):
    """After the test: all containers up and a correct program still judged accepted."""
    yield
    health = httpx.get(sandbox_url + "/healthz", timeout=10).json()
    assert health["ok"] and health["workers_up"] == health["workers"]
    rs = sandbox_client.execute_batch([{"language": "python", "code": "print(input())", "tests": [
        {"type": "stdio", "stdin": "ok\n", "expected_stdout": "ok"}]}] * 4)
    assert [r["status"] for r in rs] == ["accepted"] * 4


# ------------------------------------------------------------------------------ resource exhaustion

@pytest.mark.parametrize("name,code,limits,status", [
    ("busy loop", "while True:\n    pass", {"time_limit_s": 0.5}, "time_limit_exceeded"),
    ("regex catastrophe in C", "import re\nre.match('(a*)*b', 'a' * 40)", {"time_limit_s": 0.5},
     "time_limit_exceeded"),
    ("sleep (wall backstop)", "import time\ntime.sleep(1000)", {"time_limit_s": 0.3}, "time_limit_exceeded"),
    ("blocked read", "import os\nr, w = os.pipe()\nos.read(r, 1)", {"time_limit_s": 0.3},
     "time_limit_exceeded"),
    ("fork bomb", "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
     {"time_limit_s": 1}, "time_limit_exceeded"),
    ("thread bomb", "import threading, time\nts = []\nwhile True:\n    t = threading.Thread(target=time.sleep, "
     "args=(100,))\n    t.start()\n    ts.append(t)", {"time_limit_s": 0.5}, "time_limit_exceeded"),
    ("memory blow-up", "x = ' ' * (600 << 20)", {"memory_limit_mb": 128}, "memory_limit_exceeded"),
    ("huge allocation refused", "x = bytearray(10**13)", {"memory_limit_mb": 128}, "memory_limit_exceeded"),
    ("stdout flood", "while True:\n    print('x' * 100000)", {}, "output_limit_exceeded"),
    ("stderr flood", "import sys\nwhile True:\n    sys.stderr.write('e' * 100000)", {}, "output_limit_exceeded"),
    ("disk fill", "open('f', 'wb').write(b'0' * (100 << 20))", {"memory_limit_mb": 512}, "runtime_error"),
    ("fd exhaustion", "fs = [open('/dev/null') for _ in range(100000)]", {}, "runtime_error"),
    ("segfault", "import ctypes\nctypes.string_at(0)", {}, "runtime_error"),
    # Python 3.11 keeps Python frames off the C stack: unbounded recursion ends in the memory limit, in
    # 0.1 s here; but once in a fresh-clone CI run the kernel reclaimed the container's file pages at
    # the cgroup limit instead of OOM-killing, and the program thrashed into the CPU limit (5.9 s CPU)
    ("deep recursion", "import sys\nsys.setrecursionlimit(10**9)\n"
     "def f(n):\n    return f(n + 1) + 1\nf(0)", {"memory_limit_mb": 64},
     ("memory_limit_exceeded", "time_limit_exceeded")),
])
def test_resource_exhaustion(sandbox_client, intact, name, code, limits, status):
    r = run(sandbox_client, code, **limits)
    assert r["status"] in ((status,) if isinstance(status, str) else status), (name, r)


def test_cpu_time_is_the_verdict_not_wall_time(sandbox_client, intact):
    # Sleeping 1.5 s uses almost no CPU: under a 1 s CPU limit (wall backstop 4 s) it passes.
    r = run(sandbox_client, "import time\ntime.sleep(1.5)\nprint('done')",
            [{"type": "stdio", "stdin": "", "expected_stdout": "done"}], time_limit_s=1)
    assert r["status"] == "accepted" and r["tests"][0]["wall_time_s"] >= 1.5
    assert r["tests"][0]["cpu_time_s"] < 0.5


def test_compiler_bomb_is_bounded(sandbox_client, intact):
    bomb = "#include </dev/urandom>\nint main(){}"
    r = sandbox_client.execute({"language": "cpp", "code": bomb, "tests": ONE})
    assert r["status"] == "compile_error"


# ----------------------------------------------------------------------- escapes and interference

PROBE = r'''
import os, socket
def attempt(f):
    try:
        f()
        return "open"
    except Exception as e:
        return type(e).__name__
print("net", attempt(lambda: socket.create_connection(("1.1.1.1", 53), timeout=2)))
print("dns", attempt(lambda: socket.getaddrinfo("example.com", 80)))
print("docker.sock", os.path.exists("/var/run/docker.sock"))
print("runner environ", attempt(lambda: open("/proc/1/environ").read()))
print("runner fds", attempt(lambda: [os.readlink(f"/proc/1/fd/{n}") for n in ("0", "1", "3")]))
print("open runner fd", attempt(lambda: open("/proc/1/fd/3", "rb")))
print("runner mem", attempt(lambda: open("/proc/1/mem", "rb").read(1)))
print("write root", attempt(lambda: open("/etc/x", "w")))
print("write usr", attempt(lambda: open("/usr/bin/python3", "ab")))
print("setuid", attempt(lambda: os.setuid(0)))
print("uid", os.getuid())
print("kill runner", attempt(lambda: os.kill(1, 9)))
print("secrets in env", sorted(k for k in os.environ if "KEY" in k or "TOKEN" in k or "DOCKER" in k))
'''
PROBE_EXPECTED = """net OSError
dns gaierror
docker.sock False
runner environ PermissionError
runner fds PermissionError
open runner fd PermissionError
runner mem PermissionError
write root OSError
write usr PermissionError
setuid PermissionError
uid 65534
kill runner open
secrets in env []
"""


# Under bwrap /usr is refused with another error: a read-only bind mount (EROFS, not EACCES).
PROBE_EXPECTED_BWRAP = PROBE_EXPECTED.replace("write usr PermissionError", "write usr OSError")


def test_escapes_are_closed(sandbox_client, sandbox_backend, intact):
    expected = PROBE_EXPECTED if sandbox_backend == "docker" else PROBE_EXPECTED_BWRAP
    r = run(sandbox_client, PROBE, [{"type": "stdio", "stdin": "", "expected_stdout": expected}])
    assert r["status"] == "accepted", r["tests"][0]["stdout"]


KILL_EVERYONE = """import os
for p in os.listdir('/proc'):
    if p.isdigit() and int(p) != os.getpid():
        try:
            os.kill(int(p), 9)
        except OSError:
            pass
"""


def test_kill_parent_and_grader(sandbox_client, intact):
    kill = "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n"
    r = run(sandbox_client, kill + "print('still here')",
            [{"type": "stdio", "stdin": "", "expected_stdout": "still here"}])
    assert r["status"] == "accepted"  # programs are children of the runner (PID 1): immune
    r = run(sandbox_client, kill + "def f():\n    return 1", [{"type": "assert", "code": "assert f() == 1"}])
    assert r["status"] == "accepted"
    # Killing every process it can see takes down the harness of its test: a failure, never a pass.
    r = run(sandbox_client, KILL_EVERYONE + "def f():\n    return 1", [{"type": "assert", "code": "assert f() == 1"}])
    assert r["status"] == "runtime_error"
    r = run(sandbox_client, "def f():\n" + "\n".join("    " + line for line in KILL_EVERYONE.splitlines())
            + "\n    return 1", [{"type": "call", "fn_name": "f", "args": [], "expected": 1}] * 2)
    assert [t["status"] for t in r["tests"]] == ["runtime_error", "runtime_error"]
    r = run(sandbox_client, KILL_EVERYONE + "print('ok')", [{"type": "stdio", "stdin": "", "expected_stdout": "ok"}])
    assert r["status"] == "accepted"  # the runner survives; the zygote is restarted for the next job


# The tests of one Python program are forked from a zygote of its own that compiled it once.
REWRITE_SELF = """import os
print("first" if "first" in open(__file__).read() else "second")
open(__file__, "w").write('print(int(input()) * 2)')
"""

STOP_OR_KILL_EVERYONE = """import os, signal, sys
for p in os.listdir('/proc'):
    if p.isdigit() and int(p) != os.getpid():
        try:
            os.kill(int(p), signal.SIGSTOP if sys.argv and input() == 'stop' else signal.SIGKILL)
        except (OSError, EOFError):
            pass
print(os.getppid())
"""


def test_each_test_is_a_fresh_process_of_the_current_source(sandbox_client, intact):
    # a test that rewrites its own source: the next tests run the new file, as `python3 main.py` would
    r = run(sandbox_client, REWRITE_SELF, [{"type": "stdio", "stdin": "", "expected_stdout": "first"},
                                           {"type": "stdio", "stdin": "21", "expected_stdout": "42"},
                                           {"type": "stdio", "stdin": "5", "expected_stdout": "10"}])
    assert [t["status"] for t in r["tests"]] == ["accepted"] * 3, r
    # no state crosses tests: every test is a new process, a child of the runner (PID 1)
    fresh = "import builtins\nprint(hasattr(builtins, 'seen'), __import__('os').getppid())\nbuiltins.seen = 1\n"
    r = run(sandbox_client, fresh, [{"type": "stdio", "stdin": "", "expected_stdout": "False 1"}] * 3)
    assert r["status"] == "accepted", r
    # a program that does not compile fails every test with the compiler's message
    r = run(sandbox_client, "print(1\n", [{"type": "stdio", "stdin": "", "expected_stdout": "1"}] * 2)
    assert [t["status"] for t in r["tests"]] == ["runtime_error"] * 2
    assert all("SyntaxError" in t["stderr"] for t in r["tests"])


@pytest.mark.parametrize("how", ["kill", "stop"])
def test_killing_or_stopping_the_zygotes_only_costs_speed(sandbox_client, intact, how):
    r = run(sandbox_client, STOP_OR_KILL_EVERYONE,
            [{"type": "stdio", "stdin": how, "expected_stdout": "1"}] * 4)
    assert [t["status"] for t in r["tests"]] == ["accepted"] * 4, r


def test_no_interference_between_programs(sandbox_url):
    """A daemon, files in /tmp and /dev/shm and a SysV segment from one program are gone for the next."""
    from rlvr.sandbox.client import SandboxClient
    from rlvr.sandbox.testing import running_server

    with running_server(size=1) as url, SandboxClient(url) as client:
        dirty = r'''
import os, time, ctypes
open("/tmp/planted", "w").write("x")
open("/dev/shm/planted", "w").write("x")
os.mkdir("/tmp/locked"); os.chmod("/tmp/locked", 0)
ctypes.CDLL(None).shmget(1234, 4096, 0o1666)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        while True:
            open("/tmp/daemon-alive", "w").write(str(time.time())); time.sleep(0.01)
    os._exit(0)
print("planted")
'''
        r = run(client, dirty, [{"type": "stdio", "stdin": "", "expected_stdout": "planted"}])
        assert r["status"] == "accepted"
        # other program processes: theirs is the only /proc/PID/environ a program may read (the
        # runner and the zygote are non-dumpable)
        look = """import os
def readable(p):
    try:
        open('/proc/%s/environ' % p).close()
        return True
    except OSError:
        return False
others = [p for p in os.listdir('/proc') if p.isdigit() and p != str(os.getpid()) and readable(p)]
print(sorted(os.listdir('/tmp')) == [os.path.basename(os.getcwd())], os.listdir('/dev/shm'), others,
      open('/proc/sysvipc/shm').read().count('\\n'))
"""
        r = run(client, look, [{"type": "stdio", "stdin": "", "expected_stdout": "True [] [] 1"}])
        assert r["status"] == "accepted", r["tests"][0]["stdout"]


# ------------------------------------------------------------------------------------------- encoding

def test_encoding_and_size_edge_cases(sandbox_client, intact):
    r = run(sandbox_client, "import sys\nsys.stdout.buffer.write(b'ok\\xff\\xfe\\x00end\\n')", None)
    assert r["status"] == "accepted" and r["tests"][0]["stdout"] == "ok\ufffd\ufffd\x00end\n"
    r = run(sandbox_client, "print('a\\x00b\\x1b[31m')",
            [{"type": "stdio", "stdin": "", "expected_stdout": "a\x00b\x1b[31m"}])
    assert r["status"] == "accepted"
    big = "# " + "x" * (1 << 20) + "\nimport sys\nprint(sum(map(int, sys.stdin.read().split())))\n"
    stdin = " ".join(["1"] * 2_000_000)  # 4 MB of input
    r = run(sandbox_client, big, [{"type": "stdio", "stdin": stdin, "expected_stdout": "2000000"}])
    assert r["status"] == "accepted"
    r = run(sandbox_client, "def f(s):\n    return s[::-1]",
            [{"type": "call", "fn_name": "f", "args": ["é\x00\U0001f600"], "expected": "\U0001f600\x00é"}])
    assert r["status"] == "accepted"
    r = run(sandbox_client, "print('\\udcff')", None)  # surrogateescape writes the raw byte 0xff
    assert r["status"] == "accepted" and r["tests"][0]["stdout"] == "\ufffd\n"


# -------------------------------------------------------------------------------------- reward hacks

HUMANEVAL_STYLE_TEST = "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(0, 0) == 0\ncheck(add)"
WRONG = "def add(a, b):\n    return a - b\n"


@pytest.mark.parametrize("name,prefix", [
    ("sys.exit(0) at top level", "import sys\nsys.exit(0)\n"),
    ("os._exit(0) at top level", "import os\nos._exit(0)\n"),
    ("exit inside the function", ""),
    ("atexit forcing exit 0", "import atexit, os\natexit.register(lambda: os._exit(0))\n"),
    ("excepthook swallowing", "import sys\nsys.excepthook = lambda *a: None\n"),
    ("defines check() itself", "def check(candidate):\n    return True\n"),
    ("patches AssertionError", "import builtins\nbuiltins.AssertionError = type('X', (Exception,), {})\n"),
    ("patches its encoder", "import __main__\n__main__.encode_value = lambda v: 5\n"),
    ("frame walking", "import sys\nf = sys._getframe()\nwhile f:\n    f.f_globals['result'] = 'passed'\n"
     "    f = f.f_back\n"),
])
def test_assert_hacks_fail(sandbox_client, intact, name, prefix):
    code = prefix + WRONG
    if name == "exit inside the function":
        code = "import os\ndef add(a, b):\n    os._exit(0)\n"
    r = run(sandbox_client, code, [{"type": "assert", "code": HUMANEVAL_STYLE_TEST}])
    assert r["status"] in ("wrong_answer", "runtime_error") and r["passed"] == 0, (name, r)
    expected = "runtime_error" if "exit" in name and "atexit" not in name else "wrong_answer"
    assert r["status"] == expected, (name, r)


ALWAYS_EQUAL = ("class AlwaysEqual:\n    def __eq__(self, other):\n        return True\n"
                "    def __ne__(self, other):\n        return False\n"
                "class Int(int):\n    def __eq__(self, other):\n        return True\n")


def test_always_equal_objects_fail(sandbox_client, intact):
    r = run(sandbox_client, ALWAYS_EQUAL + "def add(a, b):\n    return AlwaysEqual()",
            [{"type": "assert", "code": HUMANEVAL_STYLE_TEST}])
    assert r["status"] == "wrong_answer"
    r = run(sandbox_client, ALWAYS_EQUAL + "def f(x):\n    return Int(0)",
            [{"type": "call", "fn_name": "f", "args": [1], "expected": 7}])
    assert r["status"] == "wrong_answer"
    r = run(sandbox_client, "def f(x):\n    return float('nan')",
            [{"type": "call", "fn_name": "f", "args": [1], "expected": 1.5}], compare="float")
    assert r["status"] == "wrong_answer"


def test_stdio_exit_tricks_and_prefix_output_fail(sandbox_client, intact):
    t = [{"type": "stdio", "stdin": "", "expected_stdout": "1\n2\n"}]
    assert run(sandbox_client, "import sys\nsys.exit(0)", t)["status"] == "wrong_answer"
    assert run(sandbox_client, "print(1)", t)["status"] == "wrong_answer"
    assert run(sandbox_client, "print(1)\nprint(2)\nraise SystemExit(1)", t)["status"] == "runtime_error"


SECRET = "EXPECTED-7f3a9c"
SEARCH = f'''
import os
hits = []
for root in ("/tmp", "/dev/shm", os.getcwd(), "/proc"):
    for dirpath, dirs, files in os.walk(root):
        if dirpath.startswith("/proc/") and dirpath.count("/") > 2:
            dirs[:] = []
        for name in files:
            p = os.path.join(dirpath, name)
            if p.startswith("/proc/") and name not in ("cmdline", "environ"):
                continue
            try:
                with open(p, "rb") as f:
                    if b"{SECRET[:9]}" + b"{SECRET[9:]}" in f.read(1 << 22):
                        hits.append(p)
            except OSError:
                pass
print("{SECRET[:9]}" + "{SECRET[9:]}" if not hits else "found " + " ".join(hits))
'''


def test_expected_outputs_never_enter_the_sandbox(sandbox_client, intact):
    # stdio: the program prints the secret only if it can NOT find it, so finding it anywhere
    # (files, other processes' argv/env) turns into a wrong answer we can see.
    r = run(sandbox_client, SEARCH, [{"type": "stdio", "stdin": "", "expected_stdout": SECRET}])
    assert r["status"] == "accepted", r["tests"][0]["stdout"]
    call = SEARCH.replace("print(", "RESULT = (") + "\ndef f():\n    return RESULT\n"
    r = run(sandbox_client, call, [{"type": "call", "fn_name": "f", "args": [], "expected": SECRET}])
    assert r["status"] == "accepted"
    # assert kind: the test code (holding the secret) lives in the harness, which is not readable
    r = run(sandbox_client, call, [{"type": "assert", "code": f"assert f() == '{SECRET}'"}])
    assert r["status"] == "accepted"
