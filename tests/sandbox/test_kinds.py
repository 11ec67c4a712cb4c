"""Each test kind, language and status through the real HTTP service (real Docker)."""

from __future__ import annotations

import httpx
import pytest
from rlvr.sandbox.client import SandboxRequestError

pytestmark = pytest.mark.docker

ADD_CPP = "#include <iostream>\nint main(){long a,b;std::cin>>a>>b;std::cout<<a+b<<\"\\n\";}\n"


def statuses(resp):
    return [t["status"] for t in resp["tests"]]


def test_python_stdio_each_verdict(sandbox_client):
    code = "a, b = map(int, input().split())\nprint(a + b)\n"
    r = sandbox_client.execute({"language": "python", "code": code, "tests": [
        {"type": "stdio", "stdin": "1 2\n", "expected_stdout": "3\n"},
        {"type": "stdio", "stdin": "5 5\n", "expected_stdout": "11\n"},
        {"type": "stdio", "stdin": "x y\n", "expected_stdout": "0\n"},
    ]})
    assert statuses(r) == ["accepted", "wrong_answer", "runtime_error"]
    assert (r["status"], r["passed"], r["total"]) == ("wrong_answer", 1, 3)
    assert r["tests"][0]["stdout"] == "3\n" and "ValueError" in r["tests"][2]["stderr"]
    assert 0 < r["tests"][0]["cpu_time_s"] < 1 and r["tests"][0]["wall_time_s"] > 0


def test_compare_modes(sandbox_client):
    base = {"language": "python", "code": "print('1.0000001   2\\n')"}
    exp = "1.0 2"
    got = {m: sandbox_client.execute(dict(base, compare=m, tests=[
        {"type": "stdio", "stdin": "", "expected_stdout": exp}]))["status"] for m in ("exact", "tokens", "float")}
    assert got == {"exact": "wrong_answer", "tokens": "wrong_answer", "float": "accepted"}


def test_call_kind(sandbox_client):
    code = ("def f(x):\n    return {'sq': x * x, 'pair': (x, -x)}\n"
            "class Solution:\n    def twice(self, s):\n        return s * 2\n")
    r = sandbox_client.execute({"language": "python", "code": code, "tests": [
        {"type": "call", "fn_name": "f", "args": [3], "expected": {"sq": 9, "pair": [3, -3]}},
        {"type": "call", "fn_name": "f", "args": [2], "expected": {"sq": 5, "pair": [2, -2]}},
        {"type": "call", "fn_name": "twice", "args": ["ab"], "expected": "abab"},
        {"type": "call", "fn_name": "missing", "args": [], "expected": None},
    ]})
    assert statuses(r) == ["accepted", "wrong_answer", "accepted", "runtime_error"]


def test_assert_kind_uses_module_helpers(sandbox_client):
    code = "def helper(x):\n    return x + 1\n\ndef g(x):\n    return helper(x) * 2\n"
    r = sandbox_client.execute({"language": "python", "code": code, "tests": [
        {"type": "assert", "code": "assert g(1) == 4\nassert helper(g(0)) == 3"},
        {"type": "assert", "code": "def check(candidate):\n    assert candidate(2) == 7\ncheck(g)"},
        {"type": "assert", "code": "assert g('x') == 1"},
    ]})
    assert statuses(r) == ["accepted", "wrong_answer", "runtime_error"]
    assert "TypeError" in r["tests"][2]["message"]


def test_cpp_stdio_and_compile_error(sandbox_client):
    r = sandbox_client.execute({"language": "cpp", "code": ADD_CPP, "tests": [
        {"type": "stdio", "stdin": "2 40", "expected_stdout": "42"},
        {"type": "stdio", "stdin": "1 1", "expected_stdout": "3"}]})
    assert statuses(r) == ["accepted", "wrong_answer"] and r["compile"]["status"] == "ok"
    bad = sandbox_client.execute({"language": "cpp", "code": "int main() { return undefined_name; }",
                                  "tests": [{"type": "stdio", "stdin": "", "expected_stdout": ""}]})
    assert (bad["status"], bad["passed"], bad["total"], bad["tests"]) == ("compile_error", 0, 1, [])
    assert "undefined_name" in bad["compile"]["stderr"]


def test_cpp_runtime_statuses(sandbox_client):
    segv = "int main(){ int *p = nullptr; *p = 1; return 0; }"
    loop = "int main(){ volatile unsigned long x = 0; for(;;) x++; }"
    mem = ("#include <vector>\n#include <cstdio>\nint main(){ std::vector<char> v(600u<<20, 1);"
           " std::printf(\"%d\", (int)v[12345]); }")
    t = [{"type": "stdio", "stdin": "", "expected_stdout": ""}]
    rs = sandbox_client.execute_batch([
        {"language": "cpp", "code": segv, "tests": t},
        {"language": "cpp", "code": loop, "tests": t, "time_limit_s": 0.5},
        {"language": "cpp", "code": mem, "tests": t, "memory_limit_mb": 128},
    ])
    assert [r["status"] for r in rs] == ["runtime_error", "time_limit_exceeded", "memory_limit_exceeded"]


def test_run_without_tests_returns_output(sandbox_client):
    r = sandbox_client.execute({"language": "python", "code": "import sys\nprint(sys.stdin.read().upper())",
                                "stdin": "hello"})
    assert (r["status"], r["passed"], r["total"]) == ("accepted", 1, 1)
    assert r["tests"][0]["stdout"] == "HELLO\n"
    r = sandbox_client.execute({"language": "python", "code": "raise SystemExit(3)"})
    assert r["status"] == "runtime_error"


def test_fail_fast_and_first_k(sandbox_client):
    tests = [{"type": "stdio", "stdin": str(i), "expected_stdout": "ok" if i != 1 else "no"} for i in range(4)]
    code = "input()\nprint('ok')"
    full = sandbox_client.execute({"language": "python", "code": code, "tests": tests})
    assert statuses(full) == ["accepted", "wrong_answer", "accepted", "accepted"]
    ff = sandbox_client.execute({"language": "python", "code": code, "tests": tests, "fail_fast": True})
    assert statuses(ff) == ["accepted", "wrong_answer"] and (ff["passed"], ff["total"]) == (1, 4)
    k = sandbox_client.execute({"language": "python", "code": code, "tests": tests, "first_k": 1})
    assert statuses(k) == ["accepted"] and (k["status"], k["total"]) == ("accepted", 1)
    ffc = sandbox_client.execute({"language": "python", "code": "def f(x):\n    return x", "fail_fast": True,
                                  "tests": [{"type": "call", "fn_name": "f", "args": [i], "expected": min(i, 1)}
                                            for i in range(3)]})
    assert statuses(ffc) == ["accepted", "accepted", "wrong_answer"]


def test_output_is_truncated_in_the_response(sandbox_client):
    r = sandbox_client.execute({"language": "python", "code": "print('y' * 300000)", "tests": [
        {"type": "stdio", "stdin": "", "expected_stdout": "y" * 300000}]})
    assert r["status"] == "accepted"  # compared in full on the host ...
    assert len(r["tests"][0]["stdout"]) == 64 << 10  # ... returned clipped


def test_malformed_requests_get_422_naming_the_field(sandbox_url, sandbox_client):
    cases = [
        ({"code": "print(1)"}, "language"),
        ({"language": "python"}, "code"),
        ({"language": "cobol", "code": "x"}, "language"),
        ({"language": "python", "code": "x", "tests": [{"type": "stdio", "stdin": ""}]}, "expected_stdout"),
        ({"language": "python", "code": "x", "tests": [{"type": "nope"}]}, "tests.0"),
        ({"language": "cpp", "code": "x", "tests": [{"type": "assert", "code": "assert 1"}]}, "tests[0].type"),
        ({"language": "python", "code": "x", "time_limit_s": 0}, "time_limit_s"),
        ({"language": "python", "code": "x", "memory_limit_mb": "lots"}, "memory_limit_mb"),
        ({"language": "python", "code": "x", "compare": "fuzzy"}, "compare"),
        ({"language": "python", "code": "x", "tmie_limit_s": 1}, "tmie_limit_s"),
        ({"language": "python", "code": "x", "memory_limit_mb": 10000}, "memory_limit_mb"),
    ]
    for body, field in cases:
        with pytest.raises(SandboxRequestError) as info:
            sandbox_client.execute(body)
        assert info.value.status_code == 422 and field in info.value.detail, (body, info.value.detail)
    r = httpx.post(sandbox_url + "/v1/execute/batch", json={"requests": [
        {"language": "python", "code": "x"}, {"language": "python"}]})
    assert r.status_code == 422 and "requests.1.code" in r.json()["detail"]
    r = httpx.post(sandbox_url + "/v1/execute/batch", json={"requests": [
        {"language": "python", "code": "x"}, {"language": "python", "code": "x", "memory_limit_mb": 9000}]})
    assert r.status_code == 422 and r.json()["detail"].startswith("requests.1.memory_limit_mb")
    r = httpx.post(sandbox_url + "/v1/execute", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert httpx.get(sandbox_url + "/healthz").json()["ok"] is True


def test_batch_keeps_order_and_metrics(sandbox_url, sandbox_client):
    reqs = [{"language": "python", "code": f"print({i})", "tests": [
        {"type": "stdio", "stdin": "", "expected_stdout": str(i)}]} for i in range(12)]
    rs = sandbox_client.execute_batch(reqs)
    assert [r["tests"][0]["stdout"] for r in rs] == [f"{i}\n" for i in range(12)]
    text = httpx.get(sandbox_url + "/metrics").text
    for name in ("sandbox_executions_total", "sandbox_tests_total", "sandbox_queue_depth",
                 "sandbox_execution_seconds_bucket"):
        assert name in text
    assert 'sandbox_tests_total{status="accepted"}' in text
