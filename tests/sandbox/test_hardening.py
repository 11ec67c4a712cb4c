"""Issue 15's classes of weakness, each against the real Docker engine: verdicts that could be gamed,
programs that could break the host side, values that must cross the harness boundary faithfully, and
the limits of one HTTP request. Every test asserts exact verdicts, then that the pool is intact."""

from __future__ import annotations

import json
import socket
import subprocess
import time

import httpx
import pytest

pytestmark = pytest.mark.docker


def py(code, tests, **kw):
    return {"language": "python", "code": code, "tests": tests, **kw}


def stdio(out, stdin=""):
    return {"type": "stdio", "stdin": stdin, "expected_stdout": out}


def asserts(code):
    return [{"type": "assert", "code": code}]


@pytest.fixture
def intact(sandbox_url, sandbox_client):
    yield
    health = httpx.get(sandbox_url + "/healthz", timeout=10).json()
    assert health["ok"] and health["workers_up"] == health["workers"]
    rs = sandbox_client.execute_batch([py("print(input())", [stdio("ok", "ok\n")])] * 2)
    assert [r["status"] for r in rs] == ["accepted"] * 2


def statuses(r):
    return [t["status"] for t in r["tests"]]


# ------------------------------------------------------------------- CPU of the whole process tree

BUSY = "import time\nt = time.process_time()\nwhile time.process_time() - t < {s}:\n    pass\n"


def test_cpu_of_a_forked_child_counts(sandbox_client, intact):
    # the parent blocks in read (no CPU) while its child computes for 2.5 s: the test used 2.5 s of CPU
    code = ("import os\nr, w = os.pipe()\nif os.fork() == 0:\n" + "\n".join("    " + x for x in
            BUSY.format(s=2.5).splitlines()) + "\n    os.write(w, b'ok')\n    os._exit(0)\nprint(os.read(r, 2).decode())")
    r = sandbox_client.execute(py(code, [stdio("ok")], time_limit_s=1))
    assert r["status"] == "time_limit_exceeded" and r["tests"][0]["message"] == "cpu limit", r
    # the same work in a child under a limit it fits: accepted, and its CPU is reported
    r = sandbox_client.execute(py(code.replace("2.5", "0.3"), [stdio("ok")], time_limit_s=2))
    assert r["status"] == "accepted" and r["tests"][0]["cpu_time_s"] >= 0.25, r  # /proc counts 10 ms ticks


def test_cpu_of_a_cpp_fork_counts(sandbox_client, intact):
    code = ("#include <unistd.h>\n#include <cstdio>\n#include <ctime>\nint main(){int p[2]; pipe(p);\n"
            "if(fork()==0){clock_t t=clock(); volatile long x=0; while(clock()-t < 2.5*CLOCKS_PER_SEC) x++;"
            " write(p[1], \"ok\", 2); _exit(0);}\nchar b[3]={0}; read(p[0], b, 2); printf(\"%s\\n\", b);}")
    r = sandbox_client.execute({"language": "cpp", "code": code, "tests": [stdio("ok")], "time_limit_s": 1})
    assert r["status"] == "time_limit_exceeded" and r["tests"][0]["message"] == "cpu limit", r


def test_cpu_of_a_helper_in_a_call_test_counts_and_it_does_not_outlive_the_test(sandbox_client, intact):
    code = ("import os\nH = []\ndef start(s):\n    pid = os.fork()\n    if pid == 0:\n        while True:\n"
            "            pass\n    H.append(pid)\n    import time\n    time.sleep(s)\n    return 1\n"
            "def alive():\n    try:\n        state = open(f'/proc/{H[0]}/stat').read().rsplit(')', 1)[1].split()[0]\n"
            "    except OSError:\n        return False\n    return state not in ('Z', 'X')\n")
    # the helper spins while the call sleeps: 2 s of its CPU against a 1 s limit
    r = sandbox_client.execute(py(code, [{"type": "call", "fn_name": "start", "args": [2], "expected": 1}],
                                  time_limit_s=1))
    assert r["status"] == "time_limit_exceeded" and r["tests"][0]["message"] == "cpu limit", r
    r = sandbox_client.execute(py(code, [{"type": "call", "fn_name": "start", "args": [0], "expected": 1},
                                         {"type": "call", "fn_name": "alive", "args": [], "expected": False}]))
    assert statuses(r) == ["accepted", "accepted"], r  # killed once its test ended


# --------------------------------------------------------------------------------------- memory

@pytest.mark.parametrize("mb,status", [(100, "memory_limit_exceeded"), (30, "accepted")])
def test_memory_limit_is_the_programs(sandbox_client, intact, mb, status):
    code = f"x = bytearray({mb} << 20)\nfor i in range(0, len(x), 4096):\n    x[i] = 1\nprint('ok')"
    r = sandbox_client.execute(py(code, [stdio("ok")], memory_limit_mb=64))
    assert r["status"] == status, r
    call = f"def f():\n    x = bytearray({mb} << 20)\n    for i in range(0, len(x), 4096):\n        x[i] = 1\n    return 1\n"
    r = sandbox_client.execute(py(call, [{"type": "call", "fn_name": "f", "args": [], "expected": 1}],
                                  memory_limit_mb=64))
    assert r["status"] == status, r


def test_memory_limit_holds_for_cpp_and_for_a_forked_child(sandbox_client, sandbox_backend, intact):
    cpp = ("#include <vector>\n#include <cstdio>\nint main(){std::vector<char> v(100<<20, 1); long s=0;"
           " for(size_t i=0;i<v.size();i+=4096) s+=v[i]; printf(\"%ld\\n\", s > 0 ? 1L : 0L);}")
    r = sandbox_client.execute({"language": "cpp", "code": cpp, "tests": [stdio("1")], "memory_limit_mb": 64})
    assert r["status"] == "memory_limit_exceeded", r
    # a child that holds 100 MB while its parent answers
    fork = ("import os, time\nr, w = os.pipe()\nif os.fork() == 0:\n    try:\n        x = bytearray(100 << 20)\n"
            "        for i in range(0, len(x), 4096):\n            x[i] = 1\n        os.write(w, b'held')\n"
            "    except MemoryError:\n        os.write(w, b'refused')\n    time.sleep(5)\n    os._exit(0)\n"
            "print(os.read(r, 10).decode())\ntime.sleep(1)")
    r = sandbox_client.execute(py(fork, [stdio("ok")], memory_limit_mb=64))
    if sandbox_backend == "docker":  # the tree's memory: the child's 100 MB count, the test is over its limit
        assert r["status"] == "memory_limit_exceeded", r
    else:  # bwrap holds each process to the limit (RLIMIT_DATA): the child's allocation is refused
        assert r["status"] == "wrong_answer" and r["tests"][0]["stdout"] == "refused\n", r


def test_lowering_the_oom_score_does_not_get_the_runner_killed(sandbox_client, intact):
    code = ("open('/proc/self/oom_score_adj', 'w').write('0')\nx = []\nwhile True:\n"
            "    x.append(bytearray(1 << 20))")
    r = sandbox_client.execute(py(code, [stdio("")], memory_limit_mb=64))
    assert r["status"] == "memory_limit_exceeded", r


# ---------------------------------------------------------------- assert tests: faithful semantics

@pytest.mark.parametrize("code,test,status", [
    # the function under test named like a builtin is the program's, as in plain Python
    ("def max(a, b):\n    return a\n", "assert max(3, 5) == 5", "wrong_answer"),
    ("def sum(a, b, c):\n    return a + b + c\n", "assert sum(1, 2, 3) == 6", "accepted"),
    # ... but a builtin the test uses around the call stays the builtin: the program cannot redefine it
    ("def abs(x):\n    return 0\ndef f(x):\n    return 2 * x\n", "assert abs(f(1) - 5) < 1e-9", "wrong_answer"),
    ("def len(x):\n    return 3\ndef f():\n    return [1]\n", "assert len(f()) == 3", "wrong_answer"),
    # in-place changes to arguments are seen by the test
    ("def add(xs):\n    xs.append(1)\n", "x = []\nadd(x)\nassert x == [1]", "accepted"),
    ("def put(d):\n    d['k'] = [1]\n", "d = {'a': 0}\nput(d)\nassert d == {'a': 0, 'k': [1]}", "accepted"),
    ("def add(xs):\n    return None\n", "x = []\nadd(x)\nassert x == [1]", "wrong_answer"),
    # a set iterates as the program's set did
    ("def f():\n    s = set(range(20))\n    for x in range(3, 20):\n        s.discard(x)\n    s.add(33)\n"
     "    s.add(9)\n    return s\n", "assert tuple(f()) == (0, 1, 2, 9, 33)", "accepted"),
    ("def f():\n    return {'b', 'a', 'c', 'd'}\n", "assert tuple(f()) == tuple({'b', 'a', 'c', 'd'})", "accepted"),
    # values of the standard library, builtin types, big integers
    ("from collections import Counter\ndef f(s):\n    return Counter(s)\n",
     "assert f('aab') == {'a': 2, 'b': 1}\nassert f('aab').most_common(1) == [('a', 2)]", "accepted"),
    ("from collections import defaultdict\ndef f():\n    d = defaultdict(list)\n    d[1].append(2)\n    return d\n",
     "assert f()[1] == [2]\nassert f()[5] == []", "accepted"),
    ("def f():\n    return int\n", "assert f() is int", "accepted"),
    ("def f():\n    return 10 ** 5000\n", "assert f() == 10 ** 5000", "accepted"),
    # test code that prints cannot disturb the runner's replies
    ("def f():\n    return 1\n", "print('{\"op\": \"test\"}' * 1000)\nassert f() == 2", "wrong_answer"),
    ("def f():\n    return 1\n", "print('hello')\nassert f() == 1", "accepted"),
])
def test_assert_semantics(sandbox_client, intact, code, test, status):
    r = sandbox_client.execute(py(code, asserts(test)))
    assert r["status"] == status, r


CLS = ("class P:\n    def __init__(s, x):\n        s.x = x\n    def __eq__(s, o):\n        return isinstance(o, P) and"
       " s.x == o.x\n    def __repr__(s):\n        return f'P({s.x})'\n    def double(s):\n        return P(2 * s.x)\n"
       "    def __len__(s):\n        return s.x\ndef f(x):\n    return P(x)\nclass Liar:\n    def __eq__(s, o):\n"
       "        return True\ndef g():\n    return Liar()\np0 = P(9)\n")


@pytest.mark.parametrize("test,status", [
    ("assert f(3).x == 3\nassert f(3) == P(3)\nassert f(3) != P(4)\nassert f(3).double() == P(6)\n"
     "assert repr(f(3)) == 'P(3)'\nassert len(f(5)) == 5\np = f(1)\np.x = 7\nassert p.x == 7", "accepted"),
    ("assert p0.x == 9 and p0 == f(9)", "accepted"),
    # an object of the program never equals plain data, whatever its __eq__ says
    ("assert g() == 5", "wrong_answer"),
    ("assert [1, 2] == g()", "wrong_answer"),
    ("assert f(3) == 3", "wrong_answer"),
])
def test_the_programs_own_objects(sandbox_client, intact, test, status):
    r = sandbox_client.execute(py(CLS, asserts(test)))
    assert r["status"] == status, r


@pytest.mark.parametrize("code,stdout", [("print('ok')\nexit()", "ok"), ("print('ok')\nquit(0)", "ok"),
                                         ("print(10 ** 5000)", "1" + "0" * 5000)])
def test_what_plain_python_allows(sandbox_client, intact, code, stdout):
    assert sandbox_client.execute(py(code, [stdio(stdout)]))["status"] == "accepted"


def test_big_integers_in_call_tests(sandbox_client, intact):
    import sys

    old = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)  # this client's own json needs it to write the request
    try:
        r = sandbox_client.execute(py("def f(x):\n    return x * 10\n",
                                      [{"type": "call", "fn_name": "f", "args": [10 ** 4999], "expected": 10 ** 5000}]))
    finally:
        sys.set_int_max_str_digits(old)
    assert r["status"] == "accepted", r


# ------------------------------------------------------------------------- the host side survives

def test_lone_surrogates_do_not_break_a_batch(sandbox_url, intact):
    bad = py("def f():\n    raise ValueError(chr(0xd800))\n", [{"type": "call", "fn_name": "f", "args": [],
                                                                  "expected": 1}])
    bad_assert = py("def f():\n    return chr(0xdfff)\n", asserts("assert f() == 'x', f()"))
    good = py("print(1)", [stdio("1")])
    r = httpx.post(sandbox_url + "/v1/execute/batch", json={"requests": [bad, bad_assert, good]}, timeout=60)
    assert r.status_code == 200
    results = r.json()["results"]
    assert [x["status"] for x in results] == ["runtime_error", "wrong_answer", "accepted"]
    assert results[0]["tests"][0]["message"] == "ValueError: \ufffd"
    assert results[1]["tests"][0]["message"] == "AssertionError: \ufffd"


def test_huge_values_are_the_programs_verdict(sandbox_client, intact):
    r = sandbox_client.execute(py("def f():\n    return 10 ** 400\n",
                                  [{"type": "call", "fn_name": "f", "args": [], "expected": 1.5}], compare="float"))
    assert r["status"] == "wrong_answer", r


def test_a_deep_directory_tree_is_cleaned_up(sandbox_client, intact):
    code = "import os\nfor i in range(3000):\n    os.mkdir('d')\n    os.chdir('d')\nprint('ok')"
    r = sandbox_client.execute(py(code, [stdio("ok")]))
    assert r["status"] == "accepted", r


@pytest.mark.parametrize("body,field", [
    (py("print(1)", [stdio("2")], compare="float", float_tol=float("inf")), "float_tol"),
    (py("print(1)", [stdio("2")], compare="float", float_tol=float("nan")), "float_tol"),
    (py("print(1)", [stdio("2")], compare="float", float_tol=2), "float_tol"),
    (py("def f():\n    pass\n", [{"type": "call", "fn_name": "f", "args": []}]), "tests.0.call.expected"),
    (py("print(1)", [stdio("1")] * 1001), "tests: 1001 tests are more than"),
])
def test_requests_that_would_accept_anything_or_too_much_get_422(sandbox_url, intact, body, field):
    r = httpx.post(sandbox_url + "/v1/execute", content=json.dumps(body), timeout=30,
                   headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"].startswith(field), r.text


def test_a_call_test_expecting_none_says_so(sandbox_client, intact):
    r = sandbox_client.execute(py("def f():\n    pass\n", [{"type": "call", "fn_name": "f", "args": [],
                                                              "expected": None}]))
    assert r["status"] == "accepted"


def test_containers_keep_no_log_on_the_host(docker_sandbox_url):
    ids = subprocess.run(["docker", "ps", "-q", "--filter", f"label=rlvr.sandbox.pool={docker_sandbox_url.pool_id}"],
                         capture_output=True, text=True, check=True).stdout.split()
    assert ids
    kinds = subprocess.run(["docker", "inspect", "-f", "{{.HostConfig.LogConfig.Type}}", *ids],
                           capture_output=True, text=True, check=True).stdout.split()
    assert kinds == ["none"] * len(ids)


# --------------------------------------------------------------------------- limits of one request

@pytest.fixture(scope="module")
def small_limits():
    from rlvr.sandbox.testing import running_server

    with running_server(size=1, max_body_bytes=1 << 20, body_timeout_s=2, max_batch=3,
                        max_response_bytes=256 << 10) as url:
        yield url


def test_oversized_body_gets_413_and_the_service_lives(small_limits):
    big = py("print(1)", [stdio("1", "x" * (2 << 20))])
    r = httpx.post(small_limits + "/v1/execute", json=big, timeout=30)
    assert r.status_code == 413 and "max_body_bytes" in r.json()["detail"]

    def chunks():  # no Content-Length: counted as it arrives
        yield b'{"language": "python", "code": "'
        for _ in range(20):
            yield b"x" * (100 << 10)
        yield b'"}'

    r = httpx.post(small_limits + "/v1/execute", content=chunks(), timeout=30,
                   headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert httpx.post(small_limits + "/v1/execute", json=py("print(1)", [stdio("1")]), timeout=30).json()[
        "status"] == "accepted"


def test_a_slow_body_gets_408(small_limits):
    host, port = small_limits.split("//")[1].split(":")
    with socket.create_connection((host, int(port))) as s:
        s.sendall(b"POST /v1/execute HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 100\r\n\r\n{")
        s.settimeout(30)
        t0 = time.monotonic()
        head = s.recv(100)
    assert head.startswith(b"HTTP/1.1 408") and 1.5 < time.monotonic() - t0 < 20
    assert httpx.get(small_limits + "/healthz", timeout=10).json()["ok"]


def test_a_batch_over_the_limit_gets_422(small_limits):
    r = httpx.post(small_limits + "/v1/execute/batch", json={"requests": [py("print(1)", [stdio("1")])] * 4},
                   timeout=30)
    assert r.status_code == 422 and r.json()["detail"].startswith("requests: 4 requests")


def test_responses_stay_within_their_size_limit(small_limits):
    # NUL bytes escape to 6 bytes each: 8 MB of them would be 48 MB of JSON per test
    flood = py("import sys\nsys.stdout.write(chr(0) * (7 << 20))", [stdio("x")] * 6)
    r = httpx.post(small_limits + "/v1/execute", json=flood, timeout=120)
    assert r.status_code == 200 and r.json()["status"] == "wrong_answer"
    assert len(r.content) <= 256 << 10
    r = httpx.post(small_limits + "/v1/execute/batch", json={"requests": [flood] * 3}, timeout=300)
    assert r.status_code == 200 and len(r.content) <= 256 << 10
    assert [x["status"] for x in r.json()["results"]] == ["wrong_answer"] * 3


# ------------------------------------------------------------------------ a slow or stalled daemon

def _containers(pool_id, *flags):
    return subprocess.run(["docker", "ps", *flags, "-q", "--filter", f"label=rlvr.sandbox.pool={pool_id}"],
                          capture_output=True, text=True, check=True).stdout.split()


def _metric(url, name):
    for line in httpx.get(url + "/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no metric {name}")


def test_a_container_paused_by_the_host_is_not_the_programs_timeout(small_limits):
    import threading

    (cid,) = _containers(small_limits.pool_id)
    body = py("import time\ntime.sleep(1)\nprint('ok')", [stdio("ok")], time_limit_s=0.5)  # wall backstop 2.5 s
    out = {}
    t = threading.Thread(target=lambda: out.update(r=httpx.post(small_limits + "/v1/execute", json=body,
                                                                  timeout=120).json()))
    t.start()
    for _ in range(200):  # pause once the program runs (runner + zygote + program, + program zygote)
        top = subprocess.run(["docker", "top", cid], capture_output=True, text=True).stdout
        if "main.py" in top or len(top.splitlines()) > 3:
            break
        time.sleep(0.02)
    subprocess.run(["docker", "pause", cid], check=True)
    time.sleep(4)
    subprocess.run(["docker", "unpause", cid], check=True)
    t.join(60)
    r = out["r"]
    assert r["status"] == "accepted" and r["tests"][0]["wall_time_s"] > 3.5, r
    # a program that sleeps past the backstop by itself is still the program's timeout
    r = httpx.post(small_limits + "/v1/execute", json=py("import time\ntime.sleep(30)", [stdio("")], time_limit_s=0.5),
                   timeout=60).json()
    assert r["status"] == "time_limit_exceeded" and r["tests"][0]["message"] == "wall limit", r


def test_a_container_that_died_idle_is_replaced_before_use(small_limits):
    (cid,) = _containers(small_limits.pool_id)
    losses = _metric(small_limits, "sandbox_container_losses_total")
    subprocess.run(["docker", "kill", cid], check=True, capture_output=True)
    for _ in range(200):  # gone, removed too (auto-remove): its attach stream has ended by then
        if cid not in _containers(small_limits.pool_id, "-a"):
            break
        time.sleep(0.05)
    r = httpx.post(small_limits + "/v1/execute", json=py("print(1)", [stdio("1")]), timeout=60).json()
    assert r["status"] == "accepted"
    assert _metric(small_limits, "sandbox_container_losses_total") == losses  # it never ran a request
    assert len(_containers(small_limits.pool_id)) == 1 and cid not in _containers(small_limits.pool_id)


class _StallingDockerProxy:
    """A Unix socket in front of the Docker engine that holds every connection silent until ``release``
    (a stalled API), then forwards bytes both ways."""

    def __init__(self, path):
        import threading

        self.path, self.open = path, threading.Event()
        self.server = socket.socket(socket.AF_UNIX)
        self.server.bind(path)
        self.server.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        import threading

        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        import threading

        self.open.wait()
        up = socket.socket(socket.AF_UNIX)
        up.connect("/var/run/docker.sock")

        def pipe(a, b):
            try:
                while chunk := a.recv(1 << 16):
                    b.sendall(chunk)
            except OSError:
                pass
            finally:
                for s in (a, b):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        threading.Thread(target=pipe, args=(up, conn), daemon=True).start()
        pipe(conn, up)

    def close(self):
        self.server.close()


def test_the_service_waits_out_a_stalled_docker_api_at_start(tmp_path):
    import os
    import sys

    from rlvr.sandbox.image import docker_client
    from rlvr.sandbox.pool import reap_containers
    from rlvr.sandbox.testing import free_port

    proxy = _StallingDockerProxy(str(tmp_path / "docker.sock"))
    port, pool_id = free_port(), "stall" + os.urandom(3).hex()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ, DOCKER_HOST=f"unix://{tmp_path / 'docker.sock'}")
    server = subprocess.Popen([sys.executable, "-m", "rlvr.sandbox.cli", "serve", "--port", str(port), "--pool-json",
                               json.dumps({"size": 1, "pool_id": pool_id, "docker_timeout_s": 2}),
                               "--log-level", "warning"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        health = None
        for _ in range(300):  # the HTTP side answers while the engine does not: 503, not ready, and why
            try:
                health = httpx.get(url + "/healthz", timeout=5)
            except httpx.TransportError:
                time.sleep(0.1)
                continue
            if health.status_code == 503 and "ReadTimeout" in health.json().get("detail", ""):
                break
            time.sleep(0.1)
        assert health is not None and health.status_code == 503, health and health.text
        assert health.json()["ready"] is False and health.json()["detail"].startswith("starting: ")
        r = httpx.post(url + "/v1/execute", json=py("print(1)", [stdio("1")]), timeout=30)
        assert r.status_code == 503 and "not ready" in r.json()["detail"]
        assert server.poll() is None  # still up
        proxy.open.set()  # the engine answers again
        for _ in range(600):
            if httpx.get(url + "/healthz", timeout=5).status_code == 200:
                break
            time.sleep(0.1)
        r = httpx.post(url + "/v1/execute", json=py("print(1)", [stdio("1")]), timeout=60).json()
        assert r["status"] == "accepted"
    finally:
        server.terminate()
        server.wait(30)
        proxy.close()
        reap_containers(docker_client(), pool_id)


# ------------------------------------------------------------------------------ the seccomp allow-list

SYSCALL_PROBE = r'''import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def call(nr, *args):
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    return "ok" if r >= 0 else os.strerror(ctypes.get_errno())
buf = ctypes.create_string_buffer(256)
print("io_uring_setup", call(425, 8, ctypes.addressof(buf)))
print("userfaultfd", call(323, 0))
print("bpf", call(321, 0, 0, 0))
print("perf_event_open", call(298, 0, 0, -1, -1, 0))
print("keyctl", call(250, 0, 0))
print("ptrace", call(101, 0, 0, 0, 0))
print("process_vm_readv", call(310, 1, 0, 0, 0, 0, 0))
print("unshare user", call(272, 0x10000000))
print("clone newuser", call(56, 0x10000000 | 17, 0, 0, 0, 0))
print("clone3", call(435, 0, 0))
print("getpid", call(39))
'''
DENIED = "Operation not permitted"
SYSCALL_EXPECTED = "".join(f"{name} {DENIED}\n" for name in (
    "io_uring_setup", "userfaultfd", "bpf", "perf_event_open", "keyctl", "ptrace", "process_vm_readv", "unshare user",
    "clone newuser")) + "clone3 Function not implemented\ngetpid ok\n"


def test_rarely_needed_often_exploited_calls_are_refused(sandbox_client, intact):
    import platform

    if platform.machine() != "x86_64":
        pytest.skip("the probe uses x86_64 system call numbers")
    r = sandbox_client.execute(py(SYSCALL_PROBE, [stdio(SYSCALL_EXPECTED)]))
    assert r["status"] == "accepted", r["tests"][0]["stdout"]


def test_seccomp_profile_is_the_allow_list():
    from rlvr.sandbox.seccomp import (
        ALLOWED,
        CLONE_NEW_MASK,
        DENIED_EXAMPLES,
        TRACED,
        bpf_program,
        docker_profile,
    )

    assert not ALLOWED & set(DENIED_EXAMPLES) and TRACED <= ALLOWED
    prof = docker_profile()
    assert prof["defaultAction"] == "SCMP_ACT_ERRNO" and prof["defaultErrnoRet"] == 1
    allow, clone, clone3 = prof["syscalls"]
    assert set(allow["names"]) == ALLOWED - {"clone"} and "io_uring_setup" not in allow["names"]
    assert clone["args"] == [{"index": 0, "value": CLONE_NEW_MASK, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]
    assert clone3 == {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}
    prog = bpf_program()
    assert len(prog) % 8 == 0 and len(prog) > 8 * len(TRACED)  # struct sock_filter: 8 bytes per instruction
