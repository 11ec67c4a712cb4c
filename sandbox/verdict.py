"""Statuses and the pure functions that turn runner facts into verdicts (host side only).

The runner inside the container reports what happened (exit status, CPU time, output bytes, the
value a function returned, whether the harness's assert code completed). Everything that needs an
expected output happens here, outside the sandbox.
"""

from __future__ import annotations

import base64
import math
import re
from enum import StrEnum
from fractions import Fraction

from rlvr.sandbox.candidate import decode_value


class Status(StrEnum):
    ACCEPTED = "accepted"
    WRONG_ANSWER = "wrong_answer"
    TIME_LIMIT_EXCEEDED = "time_limit_exceeded"
    MEMORY_LIMIT_EXCEEDED = "memory_limit_exceeded"
    OUTPUT_LIMIT_EXCEEDED = "output_limit_exceeded"
    RUNTIME_ERROR = "runtime_error"
    COMPILE_ERROR = "compile_error"
    SANDBOX_ERROR = "sandbox_error"


COMPARE_MODES = ("exact", "tokens", "float")


# ---------------------------------------------------------------------------------------- comparators


# The comparison grammar (documented in sandbox/README.md). Whitespace is ASCII only: space, tab, LF,
# CR, VT, FF; Unicode spaces (U+00A0, U+2003...) and control characters (U+001C-U+001F, U+0085) are
# output like any other character. A number is ASCII digits with an optional sign, point and exponent;
# what Python's float() also takes (1_000, non-ASCII digits, surrounding spaces, inf, nan) is a token
# that must match exactly.
WHITESPACE = " \t\n\r\v\f"
_SPACES = re.compile(r"[ \t\n\r\v\f]+")
NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def tokens(text: str) -> list[str]:
    """Tokens separated by ASCII whitespace."""
    return [t for t in _SPACES.split(text) if t]


def _exact_lines(text: str) -> list[str]:
    lines = [line.rstrip(WHITESPACE) for line in text.replace("\r\n", "\n").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _float_token_equal(a: str, b: str, tol: float) -> bool:
    if a == b:
        return True
    if not (NUMBER.fullmatch(a) and NUMBER.fullmatch(b)):
        return False
    try:  # exact rationals: no overflow for 1e999 or 400-digit numbers, no rounding at the tolerance's edge
        x, y = Fraction(a), Fraction(b)
    except (ValueError, ZeroDivisionError):
        return False
    return abs(x - y) <= Fraction(tol) * max(1, abs(y))


def outputs_match(got: str, expected: str, mode: str = "exact", float_tol: float = 1e-6) -> bool:
    """Compare program output with the expected output (whitespace means ASCII whitespace).

    - ``exact``: line by line, ignoring trailing whitespace on each line, trailing blank lines and
      CRLF vs LF (everything else, including case and inner spaces, must match);
    - ``tokens``: the same whitespace-separated tokens;
    - ``float``: the same tokens, where tokens that are both numbers (:data:`NUMBER`: ASCII digits,
      optional sign, point and exponent) may differ by ``float_tol`` (relative to the expected value
      when it is above 1, absolute below).
    """
    if mode == "exact":
        return _exact_lines(got) == _exact_lines(expected)
    if mode == "tokens":
        return tokens(got) == tokens(expected)
    if mode == "float":
        a, b = tokens(got), tokens(expected)
        return len(a) == len(b) and all(_float_token_equal(x, y, float_tol) for x, y in zip(a, b))
    raise ValueError(f"unknown compare mode {mode!r}; choose one of {COMPARE_MODES}")


def values_equal(got, expected, float_tol: float | None = None) -> bool:
    """Structural equality of a returned value with a JSON expected value, with strict types.

    ``bool`` only equals ``bool``; tuples compare as lists (JSON has no tuples); dict keys compare as
    strings (JSON keys are strings); numbers compare numerically, floats within ``float_tol`` when
    given; NaN never equals anything. Both sides are plain builtin data (decoded, never candidate
    objects), so no user ``__eq__`` runs here.
    """
    if isinstance(expected, bool) or expected is None:
        return type(got) is type(expected) and got == expected
    if type(expected) in (int, float):
        if type(got) not in (int, float):
            return False
        if isinstance(got, float) and not math.isfinite(got):
            return False
        if float_tol is not None and (isinstance(got, float) or isinstance(expected, float)):
            # exact rational arithmetic: an int beyond float range (10**400) must not overflow the check
            g, e = Fraction(got), Fraction(expected)
            return abs(g - e) <= Fraction(float_tol) * max(1, abs(e))
        return got == expected
    if isinstance(expected, str):
        return type(got) is str and got == expected
    if isinstance(expected, list):
        return (type(got) in (list, tuple) and len(got) == len(expected)
                and all(values_equal(g, e, float_tol) for g, e in zip(got, expected)))
    if isinstance(expected, dict):  # Counter, OrderedDict and defaultdict equal dicts, as in Python
        if not isinstance(got, dict) or len(got) != len(expected):
            return False
        keyed = {k if isinstance(k, str) else str(k): v for k, v in got.items()}
        return keyed.keys() == expected.keys() and all(
            values_equal(keyed[k], expected[k], float_tol) for k in expected)
    return False


# ----------------------------------------------------------------------------------------- classifying


def decode_output(b64: str) -> str:
    """Program output bytes as text: invalid UTF-8 becomes U+FFFD, NUL bytes stay (JSON escapes them)."""
    return base64.b64decode(b64 or "").decode("utf-8", errors="replace")


def _failure_status(raw: dict, stderr: str, mle_markers: tuple[str, ...]) -> Status:
    if raw.get("oom"):
        return Status.MEMORY_LIMIT_EXCEEDED
    text = stderr + "\n" + (raw.get("message") or "")
    if any(m in text for m in mle_markers):
        return Status.MEMORY_LIMIT_EXCEEDED
    return Status.RUNTIME_ERROR


def classify(raw: dict, test: dict | None, *, compare: str = "exact", float_tol: float = 1e-6,
             mle_markers: tuple[str, ...] = ()) -> tuple[Status, str]:
    """Status (and a short reason) of one test from the runner's facts and the test's expectation.

    ``test`` is the request's test dict (holding ``expected_stdout`` / ``expected``), or ``None`` for
    a plain run with no tests, where any clean exit is accepted.
    """
    outcome = raw.get("outcome")
    stderr = decode_output(raw.get("stderr_b64", ""))
    if outcome == "timeout":
        return Status.TIME_LIMIT_EXCEEDED, f"{raw.get('timeout_kind') or 'time'} limit"
    if outcome == "output_limit":
        return Status.OUTPUT_LIMIT_EXCEEDED, "output limit"
    if outcome == "memory_limit":
        return Status.MEMORY_LIMIT_EXCEEDED, "memory limit"
    if outcome in ("harness_error", None):
        return Status.SANDBOX_ERROR, raw.get("message") or "malformed runner result"
    if outcome == "load_failed":
        cause = raw.get("cause")
        if cause == "timeout":
            return Status.TIME_LIMIT_EXCEEDED, "time limit while loading the program"
        if cause == "output_limit":
            return Status.OUTPUT_LIMIT_EXCEEDED, "output limit while loading the program"
        if cause == "memory_limit":
            return Status.MEMORY_LIMIT_EXCEEDED, "memory limit while loading the program"
        return _failure_status(raw, stderr, mle_markers), raw.get("message") or "program failed to load"
    if outcome in ("died", "harness_killed"):
        return _failure_status(raw, stderr, mle_markers), raw.get("message") or _death(raw)
    if outcome == "raised":
        return _failure_status(raw, "", mle_markers), raw.get("message", "")
    if outcome == "bad_value":
        return Status.WRONG_ANSWER, raw.get("message", "returned a value that is not plain data")
    if outcome == "assert_failed":
        return Status.WRONG_ANSWER, raw.get("message", "")
    if outcome == "passed":
        return Status.ACCEPTED, ""
    if outcome == "returned":
        try:
            got = decode_value(raw.get("value"))
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            return Status.WRONG_ANSWER, f"undecodable return value: {exc}"
        tol = float_tol if compare == "float" else None
        if test is not None and values_equal(got, test.get("expected"), tol):
            return Status.ACCEPTED, ""
        return Status.WRONG_ANSWER, f"returned {_short(repr(got))}"
    if outcome == "exited":
        if raw.get("exit") != 0:
            return _failure_status(raw, stderr, mle_markers), _death(raw)
        if test is None:
            return Status.ACCEPTED, ""
        if outputs_match(decode_output(raw.get("stdout_b64", "")), test.get("expected_stdout", ""),
                         compare, float_tol):
            return Status.ACCEPTED, ""
        return Status.WRONG_ANSWER, "output differs"
    return Status.SANDBOX_ERROR, f"unknown outcome {outcome!r}"


def _death(raw: dict) -> str:
    if raw.get("signal"):
        return f"killed by signal {raw['signal']}"
    return f"exit code {raw.get('exit')}"


def _short(text: str, n: int = 200) -> str:
    return text if len(text) <= n else text[:n] + "..."


def overall_status(statuses: list[Status]) -> Status:
    """The request's status: the first test that did not pass, else accepted."""
    for s in statuses:
        if s != Status.ACCEPTED:
            return s
    return Status.ACCEPTED
