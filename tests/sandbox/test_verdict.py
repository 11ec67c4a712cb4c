"""Pure verdict logic and the value codec (no Docker)."""

from __future__ import annotations

import base64
import json
import math
from collections import Counter, OrderedDict, defaultdict, deque

import pytest
from rlvr.sandbox.candidate import (
    HOOKS,
    EncodeError,
    OrderedSet,
    decode_value,
    encode_value,
    json_to_tagged,
    to_json,
    update_in_place,
)
from rlvr.sandbox.pool import clip_json
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
    # the grammar: ASCII whitespace only, numbers of ASCII digits only (sandbox/README.md)
    ("1_000", "1000", "float", False),
    ("\u0661", "1", "float", False),       # ARABIC-INDIC DIGIT ONE
    ("\uff11", "1", "float", False),       # FULLWIDTH DIGIT ONE
    ("inf", "1e999", "float", False),
    ("1e999", "1e999", "float", True),      # the same token
    ("1E+2", "100", "float", True),
    (".5", "0.5", "float", True),
    ("5.", "5", "float", True),
    ("+7", "7", "float", True),
    ("1" * 400, "1" * 399 + "2", "float", True),  # relative 1e-6 of a 400-digit number: no overflow
    ("1" * 400, "2" + "1" * 399, "float", False),
    ("a\u00a0b", "a b", "tokens", False),  # NO-BREAK SPACE is not whitespace
    ("a\u2003b", "a b", "tokens", False),  # EM SPACE
    ("a\x1cb", "a b", "tokens", False),    # FILE SEPARATOR: str.split() would split here
    ("a\x85b", "a b", "tokens", False),    # NEXT LINE
    ("a\tb\x0bc\x0cd\re", "a b c d e", "tokens", True),
    ("a b\u00a0", "a b", "exact", False),  # trailing NO-BREAK SPACE is output
    ("a b\t\x0b\x0c", "a b", "exact", True),
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
    (10 ** 400, 1.5, 1e-6, False),          # beyond float range: exact rationals, no OverflowError
    (10 ** 400, 10 ** 400, 1e-6, True),
    (10 ** 400 + 1, 1e300, 1e-6, False),
    (Counter("aab"), {"a": 2, "b": 1}, None, True),   # dict subclasses equal dicts, as in Python
    (OrderedDict(a=1), {"a": 1}, None, True),
])
def test_values_equal(got, exp, tol, ok):
    assert values_equal(got, exp, tol) is ok


def test_codec_round_trip_keeps_types():
    v = [1, 2.5, "s", None, True, (1, (2,)), {3: [b"\x00\xff"]}, {1, 2}, frozenset({3}), complex(1, 2),
         float("inf"), -float("inf")]
    back = decode_value(encode_value(v))
    assert back == v and type(back[5]) is tuple and type(back[7]) is OrderedSet and type(back[8]) is frozenset
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


def test_codec_standard_containers_and_big_ints():
    dd = defaultdict(list, {1: [2]})
    made = defaultdict(lambda: [0], {"a": [1]})  # a constant factory crosses as the value it makes
    v = [Counter("aab"), dd, made, OrderedDict(b=1, a=2), deque([1, 2], 5), int, Counter, 10 ** 5000, -(2 ** 70),
         bytearray(b"ab")]
    back = decode_value(json.loads(to_json(encode_value(v))))
    assert [type(x) for x in back] == [Counter, defaultdict, defaultdict, OrderedDict, deque, type, type, int, int,
                                       bytearray]
    assert back[:2] == v[:2] and dict(back[2]) == {"a": [1]} and back[3:] == v[3:]
    assert list(back[3]) == ["b", "a"] and back[4].maxlen == 5 and back[5] is int and back[6] is Counter
    back[1]["new"].append(1)
    back[2]["x"].append(1)
    back[2]["y"].append(2)  # fresh lists each time
    assert back[1]["new"] == [1] and back[2]["x"] == [0, 1] and back[2]["y"] == [0, 2]
    assert encode_value(10 ** 5000) == {"__i": format(10 ** 5000, "x")}  # no decimal conversion limit
    assert json_to_tagged(2 ** 61) == {"__i": format(2 ** 61, "x")} and json_to_tagged(2 ** 60 - 1) == 2 ** 60 - 1


def test_ordered_set_keeps_the_senders_iteration_order():
    s = set(range(20))
    for x in range(3, 20):
        s.discard(x)
    s.add(33)
    s.add(9)
    assert list(s) == [0, 1, 2, 9, 33] and list(set(list(s))) == [0, 1, 2, 33, 9]  # a rebuilt set reorders
    back = decode_value(encode_value(s))
    assert list(back) == [0, 1, 2, 9, 33] and tuple(back) == (0, 1, 2, 9, 33) and back == s
    assert repr(back) == "{0, 1, 2, 9, 33}" and isinstance(back, set)
    back.add(5)  # a change drops the recorded order: it iterates as a plain set again
    assert list(back) == list(set.__iter__(back)) and back == s | {5}


def test_update_in_place():
    lst, d, st, ba, dq = [1], {"a": 1}, {1}, bytearray(b"x"), deque([1])
    for target, new in [(lst, [1, 2]), (d, {"b": 2}), (st, {3}), (ba, bytearray(b"yz")), (dq, deque([4, 5]))]:
        ident = id(target)
        update_in_place(target, new)
        assert id(target) == ident and target == new
    c = Counter(a=1)
    update_in_place(c, Counter(a=5))
    assert c == Counter(a=5)  # replaced, not added (Counter.update would give a=6)


def test_handles_only_where_hooks_are_set():
    class Obj:
        pass

    with pytest.raises(EncodeError, match="Obj"):
        encode_value(Obj())
    with pytest.raises(ValueError, match="malformed"):
        decode_value({"__h": [1, "x.Obj"]})  # the host never accepts a handle
    table = {}
    HOOKS.update(encode=lambda x: table.setdefault(id(x), [len(table) + 1, "Obj"]), decode=lambda b: ("handle", b))
    try:
        o = Obj()
        assert encode_value([o]) == [{"__h": [1, "Obj"]}]
        assert decode_value({"__h": [1, "Obj"]}) == ("handle", [1, "Obj"])
    finally:
        HOOKS.update(encode=None, decode=None)


@pytest.mark.parametrize("text,limit,want", [
    ("a" * 100, 50, "a" * 50),
    ("\x00" * 100, 60, "\x00" * 10),        # each NUL escapes to 6 bytes (\u0000)
    ("\ud800x", 10, "\ufffdx"),             # a lone surrogate cannot be UTF-8: replaced
    ("\u00e9" * 100, 50, "\u00e9" * 25),    # 2 bytes each
    ("ok", 100, "ok"),
])
def test_clip_json(text, limit, want):
    got = clip_json(text, limit)
    assert got == want and len(json.dumps(got, ensure_ascii=False).encode()) - 2 <= limit
