"""Pure verdict logic and the value codec (no Docker)."""

from __future__ import annotations

import base64
import math

import pytest
from rlvr.sandbox.candidate import EncodeError, decode_value, encode_value, json_to_tagged
from rlvr.sandbox.verdict import Status, classify, outputs_match, overall_status, values_equal


def b64(s: bytes) -> str:
    return base64.b64encode(s).decode()


@pytest.mark.parametrize("got,exp,mode,ok", [
    ("1 2\n", "1 2", "exact", True),
    ("1 2  \r\n\n\n", "1 2\n", "exact", True),
    ("1  2\n", "1 2\n", "exact", False),
    ("YES\n", "yes\n", "exact", False),
    ("1\n", "1\n2\n", "exact", False),  # a prefix of the answer is not the answer
    ("1  2\n\n3", "1 2 3", "tokens", True),
    ("1 2", "1 2 3", "tokens", False),
    ("0.3333333", "0.333333333", "float", True),
    ("0.34", "0.333333333", "float", False),
    ("1000000.5", "1000000.0", "float", True),  # relative above 1: 5e-7
    ("nan", "1.0", "float", False),
    ("abc 1.0", "abc 1.0000000001", "float", True),
    ("abc 1.0", "abd 1.0", "float", False),
])
def test_outputs_match(got, exp, mode, ok):
    assert outputs_match(got, exp, mode, 1e-6) is ok


@pytest.mark.parametrize("got,exp,tol,ok", [
    (3, 3, None, True),
    (3.0, 3, None, True),
    (True, 1, None, False),
    (1, True, None, False),
    (None, None, None, True),
    (0, None, None, False),
    ((1, 2), [1, 2], None, True),
    ([1, 2], [1, 2, 3], None, False),
    ({1: "a"}, {"1": "a"}, None, True),
    ({"a": [1.0]}, {"a": [1.0000001]}, 1e-6, True),
    ({"a": [1.0]}, {"a": [1.0000001]}, None, False),
    (float("nan"), 1.0, 1e-6, False),
    (float("inf"), 1.0, None, False),
    ("1", 1, None, False),
    ({1, 2}, [1, 2], None, False),
])
def test_values_equal(got, exp, tol, ok):
    assert values_equal(got, exp, tol) is ok


def test_codec_round_trip_keeps_types():
    v = [1, 2.5, "s", None, True, (1, (2,)), {3: [b"\x00\xff"]}, {1, 2}, frozenset({3}), complex(1, 2),
         float("inf"), -float("inf")]
    back = decode_value(encode_value(v))
    assert back == v and type(back[5]) is tuple and type(back[7]) is set and type(back[8]) is frozenset
    assert math.isnan(decode_value(encode_value(float("nan"))))
    assert decode_value(json_to_tagged({"a": [1, {"b": 2}]})) == {"a": [1, {"b": 2}]}


def test_codec_refuses_objects_that_are_not_plain_data():
    class AlwaysEqual:
        def __eq__(self, other):
            return True

    class MyInt(int):
        def __eq__(self, other):
            return True

    for bad in (AlwaysEqual(), MyInt(3), [1, MyInt(2)], {"k": AlwaysEqual()}, print, iter([1])):
        with pytest.raises(EncodeError):
            encode_value(bad)
    cyc: list = []
    cyc.append(cyc)
    with pytest.raises(EncodeError):
        encode_value(cyc)
    for malformed in ({"__t": [1], "__s": [2]}, {"evil": 1}, {"__x": "1e999"}):
        with pytest.raises(ValueError):
            decode_value(malformed)


def raw(outcome, **kw):
    return dict({"outcome": outcome, "exit": None, "signal": None, "oom": False, "stdout_b64": "",
                 "stderr_b64": ""}, **kw)


@pytest.mark.parametrize("fact,test,status", [
    (raw("exited", exit=0, stdout_b64=b64(b"7\n")), {"expected_stdout": "7"}, Status.ACCEPTED),
    (raw("exited", exit=0, stdout_b64=b64(b"8\n")), {"expected_stdout": "7"}, Status.WRONG_ANSWER),
    (raw("exited", exit=1, stdout_b64=b64(b"7\n")), {"expected_stdout": "7"}, Status.RUNTIME_ERROR),
    (raw("exited", exit=1, stderr_b64=b64(b"MemoryError\n")), {"expected_stdout": ""},
     Status.MEMORY_LIMIT_EXCEEDED),
    (raw("exited", signal=9, oom=True), {"expected_stdout": ""}, Status.MEMORY_LIMIT_EXCEEDED),
    (raw("exited", signal=11), {"expected_stdout": ""}, Status.RUNTIME_ERROR),
    (raw("timeout", timeout_kind="cpu"), {"expected_stdout": ""}, Status.TIME_LIMIT_EXCEEDED),
    (raw("output_limit"), {"expected_stdout": ""}, Status.OUTPUT_LIMIT_EXCEEDED),
    (raw("exited", exit=0), None, Status.ACCEPTED),
    (raw("returned", value=encode_value((1, 2))), {"expected": [1, 2]}, Status.ACCEPTED),
    (raw("returned", value=encode_value(True)), {"expected": 1}, Status.WRONG_ANSWER),
    (raw("bad_value", message="cannot serialize"), {"expected": 1}, Status.WRONG_ANSWER),
    (raw("raised", message="ZeroDivisionError: x"), {"expected": 1}, Status.RUNTIME_ERROR),
    (raw("passed"), {}, Status.ACCEPTED),
    (raw("assert_failed", message="AssertionError"), {}, Status.WRONG_ANSWER),
    (raw("load_failed", cause="timeout"), {}, Status.TIME_LIMIT_EXCEEDED),
    (raw("load_failed", cause="raised", message="SystemExit: 0"), {}, Status.RUNTIME_ERROR),
    (raw("died", signal=9), {}, Status.RUNTIME_ERROR),
    (raw("harness_killed", signal=9), {}, Status.RUNTIME_ERROR),
    (raw("harness_error"), {}, Status.SANDBOX_ERROR),
    ({"nothing": 1}, {}, Status.SANDBOX_ERROR),
])
def test_classify(fact, test, status):
    got, _ = classify(fact, test, compare="exact", mle_markers=("MemoryError",))
    assert got == status


def test_overall_status_is_first_failure():
    A, W, T = Status.ACCEPTED, Status.WRONG_ANSWER, Status.TIME_LIMIT_EXCEEDED
    assert overall_status([A, A]) == A
    assert overall_status([A, T, W]) == T
    assert overall_status([]) == A
