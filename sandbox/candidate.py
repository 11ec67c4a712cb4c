"""The candidate side of function-call tests, plus the value codec shared with the harness and the host.

Run inside the sandbox as ``python3 -I -S -B -c <this source> SOLUTION_PATH``: it loads the candidate's
program as module ``solution`` and then serves calls over two pipes (fd 3: requests in, fd 4: replies
out), one JSON line each. This process holds nothing secret: the harness that asks the questions and
judges the answers is another process, and expected values never reach this one.

Values cross process boundaries as "tagged JSON" built only from exact builtin types. An object with a
custom ``__eq__`` (or a subclass of ``int``/``list``...) cannot be encoded, so it can never be compared
by anyone; the receiver rebuilds fresh builtin objects. Decoding is ``json.loads`` plus tag rebuilding:
no code runs on either side. This file must only use the standard library (it runs in the sandbox).
"""

from __future__ import annotations

import base64
import json
import math

_MAX_DEPTH = 200


class EncodeError(TypeError):
    """A value that is not plain data (its type is named in the message)."""


def _enc(x, depth: int, seen: set):
    t = type(x)
    if x is None or t is bool or t is str:
        return x
    if t is int:
        return x
    if t is float:
        if math.isfinite(x):
            return x
        return {"__x": repr(x)}  # 'inf', '-inf', 'nan': JSON has no spelling for these
    if depth > _MAX_DEPTH:
        raise EncodeError("value nested too deeply")
    if t in (list, tuple, set, frozenset, dict):
        if id(x) in seen:
            raise EncodeError("value contains a reference cycle")
        seen.add(id(x))
        try:
            if t is list:
                return [_enc(v, depth + 1, seen) for v in x]
            if t is tuple:
                return {"__t": [_enc(v, depth + 1, seen) for v in x]}
            if t is set:
                return {"__s": [_enc(v, depth + 1, seen) for v in x]}
            if t is frozenset:
                return {"__f": [_enc(v, depth + 1, seen) for v in x]}
            return {"__d": [[_enc(k, depth + 1, seen), _enc(v, depth + 1, seen)] for k, v in x.items()]}
        finally:
            seen.discard(id(x))
    if t is bytes:
        return {"__b": base64.b64encode(x).decode()}
    if t is complex:
        return {"__c": [_enc(x.real, depth, seen), _enc(x.imag, depth, seen)]}
    raise EncodeError(f"cannot serialize a value of type {t.__module__}.{t.__qualname__}")


def encode_value(x) -> object:
    """``x`` as JSON-ready tagged data, or :class:`EncodeError` if it is not plain builtin data."""
    return _enc(x, 0, set())


def decode_value(v):
    """Rebuild builtin objects from tagged data (only lists, dicts of one tag, and JSON scalars)."""
    t = type(v)
    if v is None or t in (bool, int, float, str):
        return v
    if t is list:
        return [decode_value(e) for e in v]
    if t is dict and len(v) == 1:
        ((tag, body),) = v.items()
        if tag == "__t":
            return tuple(decode_value(e) for e in body)
        if tag == "__s":
            return {decode_value(e) for e in body}
        if tag == "__f":
            return frozenset(decode_value(e) for e in body)
        if tag == "__d":
            return {decode_value(k): decode_value(val) for k, val in body}
        if tag == "__b":
            return base64.b64decode(body)
        if tag == "__x":
            if body not in ("inf", "-inf", "nan"):
                raise ValueError(f"bad float tag {body!r}")
            return float(body)
        if tag == "__c":
            return complex(decode_value(body[0]), decode_value(body[1]))
    raise ValueError(f"malformed tagged value: {str(v)[:80]}")


def json_to_tagged(v):
    """Plain JSON data (as parsed from a request) to tagged form, so dicts and floats survive the trip."""
    t = type(v)
    if t is dict:
        return {"__d": [[k, json_to_tagged(e)] for k, e in v.items()]}
    if t is list:
        return [json_to_tagged(e) for e in v]
    if t is float and not math.isfinite(v):
        return {"__x": repr(v)}
    return v


# --------------------------------------------------------------------------------------------------
# Candidate-side call server (only when run as a script inside the sandbox).


def _serve(solution_path: str) -> None:  # pragma: no cover - runs inside the container
    import os
    import sys
    import traceback
    import types

    if hasattr(sys, "set_int_max_str_digits"):
        sys.set_int_max_str_digits(0)
    rfd, wfd = 3, 4
    buf = bytearray()

    def send(obj) -> None:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except Exception:
            pass
        data = (json.dumps(obj, allow_nan=False) + "\n").encode()
        while data:
            n = os.write(wfd, data)
            data = data[n:]

    def recv():
        while True:
            i = buf.find(b"\n")
            if i >= 0:
                line = bytes(buf[:i])
                del buf[: i + 1]
                return json.loads(line)
            chunk = os.read(rfd, 1 << 16)
            if not chunk:
                os._exit(0)
            buf.extend(chunk)

    def describe(exc: BaseException) -> str:
        return "".join(traceback.format_exception_only(type(exc), exc)).strip()[-2000:]

    mod = types.ModuleType("solution")
    mod.__file__ = solution_path
    sys.modules["solution"] = mod
    try:
        with open(solution_path, "rb") as f:
            source = f.read()
        exec(compile(source, "solution.py", "exec"), mod.__dict__)
    except BaseException as exc:  # SystemExit at import time is a failure too
        traceback.print_exc()
        send({"op": "loaded", "ok": False, "error": describe(exc)})
        os._exit(1)
    send({"op": "loaded", "ok": True})

    def lookup(name: str):
        if name in mod.__dict__:
            return mod.__dict__[name]
        cls = mod.__dict__.get("Solution")  # LeetCode/LiveCodeBench style `class Solution`
        if isinstance(cls, type) and hasattr(cls, name):
            return getattr(cls(), name)
        raise NameError(f"name {name!r} is not defined by the program")

    while True:
        req = recv()
        op = req.get("op")
        try:
            if op == "names":
                found = {}
                for name in req["names"]:
                    if name not in mod.__dict__:
                        continue
                    obj = mod.__dict__[name]
                    if callable(obj):
                        found[name] = {"callable": True}
                    else:
                        try:
                            found[name] = {"value": encode_value(obj)}
                        except EncodeError:
                            pass
                send({"op": "names", "found": found})
                continue
            fn = lookup(req["name"])
            args = decode_value(req["args"])
            kwargs = decode_value(req.get("kwargs", {"__d": []}))
            result = fn(*args, **kwargs)
        except BaseException as exc:
            traceback.print_exc()
            send({"op": "raised", "error": describe(exc)})
            continue
        try:
            send({"op": "returned", "value": encode_value(result)})
        except (EncodeError, ValueError, RecursionError) as exc:
            send({"op": "bad_value", "error": str(exc)[:500]})


if __name__ == "__main__":  # pragma: no cover - runs inside the container
    import sys as _sys

    _serve(_sys.argv[1])
