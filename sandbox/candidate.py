"""Where candidate programs start (the zygote), the candidate side of function-call tests, and the
value codec shared with the harness and the host.

Inside the sandbox the runner starts this file once as ``python3 -I -S -B -c <source> --zygote``: a
clean interpreter that pre-imports common standard modules and then only forks. Every program gets
a *fresh process* forked from it, which skips the ~10 ms interpreter start per program without
sharing anything between programs: the zygote never runs candidate code and holds no test data.
Forked children are children of the runner (PID 1), not of the zygote: one ``clone`` with
``CLONE_PARENT`` (see :func:`_sibling_fork`), or a double fork where that is unavailable. The runner
thus waits for them itself (rusage: the CPU-time verdict) and a program's ``getppid()`` is PID 1,
which ignores its signals. The stdio tests of one Python program are forked from a zygote of that
program's own (see :func:`_program_zygote`), which compiled it once. A forked child either runs a Python
program as ``__main__`` (stdio tests), execs a binary (C++, the compiler), or loads the program as
module ``solution`` and serves function calls over two pipes (fd 3: requests in, fd 4: replies out).
A call server holds nothing secret: the harness that asks the questions and judges the answers is
another process, and expected values never reach it.

Values cross process boundaries as "tagged JSON" built only from exact builtin types and the standard
containers programs return (``collections.Counter``, ``defaultdict``, ``OrderedDict``, ``deque``) and
builtin type objects. An object with a custom ``__eq__`` (or a subclass of ``int``/``list``...) cannot be
encoded, so it can never be compared by anyone; the receiver rebuilds fresh objects of the same types.
Integers of any size cross (large ones in hexadecimal: no decimal-conversion limit applies); a set's
iteration order is kept (:class:`OrderedSet` on the receiving side), as plain Python would see it.
The harness sends requests as length-prefixed ``marshal`` frames (trusted data, fast to read here); the candidate answers with JSON lines written by
:func:`to_json` (the harness parses them with ``json``, which is safe on untrusted input). This file
uses only the standard library, and cheap modules at import time: it runs in the sandbox.
"""

import binascii
import marshal
import math
from _json import encode_basestring_ascii as _json_str  # the C string escaper: no `json` import
from collections import Counter, OrderedDict, defaultdict, deque

_MAX_DEPTH = 200
# Where objects that are not data (instances of the program's own classes, iterators...) may cross as
# handles: "encode" maps such an object to a handle body (or None), "decode" a handle body to an object.
# Unset (the host, call tests): such values cannot cross at all.
HOOKS = {"encode": None, "decode": None}
_BIG_INT_BITS = 60  # ints wider than this cross as hex strings (no decimal-conversion limit, no float loss)
# type objects that may cross by name (a test may check `f() is int` or `type(x) == list`)
_TYPES = {t.__name__: t for t in (int, float, str, bool, bytes, list, tuple, dict, set, frozenset, complex,
                                  type(None), bytearray, object, type, Counter, OrderedDict, defaultdict, deque)}


class OrderedSet(set):
    """A ``set`` that iterates in the order the sending process's set did.

    A set rebuilt in another process can iterate in another order (hash seeds, table sizes, deletions);
    a program's ``tuple(s)`` or ``list(s)`` is judged on the order the program's own set had. Any
    change to the set drops the recorded order (it iterates as a plain set again).
    """

    __slots__ = ("_order",)

    def __init__(self, items=()):
        items = list(items)
        super().__init__(items)
        self._order = items if len(items) == len(self) else None

    def __iter__(self):
        if self._order is not None and len(self._order) == set.__len__(self):
            return iter(self._order)
        return set.__iter__(self)

    def __repr__(self):
        return "{" + ", ".join(repr(x) for x in self) + "}" if self else "set()"

    def _forget(name):  # noqa: N805 - builds the mutating methods below
        def method(self, *args):
            self._order = None
            return getattr(set, name)(self, *args)

        method.__name__ = name
        return method

    for _m in ("add", "discard", "remove", "pop", "clear", "update", "difference_update", "intersection_update",
               "symmetric_difference_update", "__ior__", "__iand__", "__isub__", "__ixor__"):
        locals()[_m] = _forget(_m)
    del _m, _forget


class EncodeError(TypeError):
    """A value that is not plain data (its type is named in the message)."""


def _enc(x, depth: int, seen: set):
    t = type(x)
    if x is None or t is bool or t is str:
        return x
    if t is int:
        return x if x.bit_length() <= _BIG_INT_BITS else {"__i": format(x, "x")}
    if t is float:
        if math.isfinite(x):
            return x
        return {"__x": repr(x)}  # 'inf', '-inf', 'nan': JSON has no spelling for these
    if depth > _MAX_DEPTH:
        raise EncodeError("value nested too deeply")
    if t in _CONTAINERS:
        if id(x) in seen:
            raise EncodeError("value contains a reference cycle")
        seen.add(id(x))
        try:
            if t is list:
                return [_enc(v, depth + 1, seen) for v in x]
            if t is tuple:
                return {"__t": [_enc(v, depth + 1, seen) for v in x]}
            if t is set or t is OrderedSet:
                return {"__s": [_enc(v, depth + 1, seen) for v in x]}
            if t is frozenset:
                return {"__f": [_enc(v, depth + 1, seen) for v in x]}
            if t is deque:
                return {"__q": [x.maxlen, [_enc(v, depth + 1, seen) for v in x]]}
            items = [[_enc(k, depth + 1, seen), _enc(v, depth + 1, seen)] for k, v in dict.items(x)]
            if t is dict:
                return {"__d": items}
            if t is Counter:
                return {"__C": items}
            if t is OrderedDict:
                return {"__O": items}
            return {"__D": [_enc_factory(x.default_factory, depth, seen), items]}
        finally:
            seen.discard(id(x))
    if t is bytes:
        return {"__b": binascii.b2a_base64(x, newline=False).decode()}
    if t is bytearray:
        return {"__B": binascii.b2a_base64(x, newline=False).decode()}
    if t is type and _TYPES.get(x.__name__) is x:
        return {"__y": x.__name__}
    if t is complex:
        return {"__c": [_enc(x.real, depth, seen), _enc(x.imag, depth, seen)]}
    if HOOKS["encode"] is not None:  # assert tests: other objects cross as handles (see _serve_calls)
        handle = HOOKS["encode"](x)
        if handle is not None:
            return {"__h": handle}
    raise EncodeError(f"cannot serialize a value of type {t.__module__}.{t.__qualname__}")


_CONTAINERS = (list, tuple, set, OrderedSet, frozenset, dict, Counter, OrderedDict, defaultdict, deque)
# operations on a handled object that run the program's own methods (in the program's process)
_HANDLE_OPS = {
    "eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "lt": lambda a, b: a < b, "le": lambda a, b: a <= b,
    "gt": lambda a, b: a > b, "ge": lambda a, b: a >= b, "repr": repr, "str": str, "len": len, "bool": bool,
    "hash": hash, "getitem": lambda a, k: a[k], "contains": lambda a, k: k in a,
}
_MUTABLE = (list, set, OrderedSet, dict, Counter, OrderedDict, defaultdict, deque, bytearray)


def update_in_place(target, new) -> None:
    """Make ``target`` (a mutable container sent to a call) hold what the callee left in its copy ``new``."""
    if isinstance(target, (list, bytearray)):
        target[:] = new
    elif isinstance(target, dict):
        dict.clear(target)
        dict.update(target, new)
    elif isinstance(target, (set, deque)):
        target.clear()
        (target.update if isinstance(target, set) else target.extend)(new)


def _enc_factory(factory, depth: int, seen: set):
    """A defaultdict's factory: None, a builtin type by name, or the value it makes (a constant factory)."""
    if factory is None:
        return None
    if type(factory) is type and _TYPES.get(factory.__name__) is factory:
        return {"__y": factory.__name__}
    return {"__v": _enc(factory(), depth + 1, seen)}  # e.g. `lambda: 0`: rebuilt as a maker of fresh copies


def _dec_factory(v):
    if v is None:
        return None
    if type(v) is dict and "__v" in v:
        made = v["__v"]
        return lambda: decode_value(made)
    return decode_value(v)


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
            return OrderedSet(decode_value(e) for e in body)
        if tag == "__f":
            return frozenset(decode_value(e) for e in body)
        if tag == "__d":
            return {decode_value(k): decode_value(val) for k, val in body}
        if tag == "__b":
            return binascii.a2b_base64(body)
        if tag == "__B":
            return bytearray(binascii.a2b_base64(body))
        if tag == "__i":
            if type(body) is not str:
                raise ValueError("bad int tag")
            return int(body, 16)
        if tag == "__C":
            return Counter({decode_value(k): decode_value(val) for k, val in body})
        if tag == "__O":
            return OrderedDict((decode_value(k), decode_value(val)) for k, val in body)
        if tag == "__D":
            d = defaultdict(_dec_factory(body[0]))
            d.update((decode_value(k), decode_value(val)) for k, val in body[1])
            return d
        if tag == "__q":
            return deque((decode_value(e) for e in body[1]), body[0])
        if tag == "__h" and HOOKS["decode"] is not None:
            return HOOKS["decode"](body)
        if tag == "__y":
            if body not in _TYPES:
                raise ValueError(f"unknown type {str(body)[:40]!r}")
            return _TYPES[body]
        if tag == "__x":
            if body not in ("inf", "-inf", "nan"):
                raise ValueError(f"bad float tag {body!r}")
            return float(body)
        if tag == "__c":
            return complex(decode_value(body[0]), decode_value(body[1]))
    raise ValueError(f"malformed tagged value: {str(v)[:80]}")


def to_json(v) -> str:
    """JSON text of tagged data (None/bool/int/finite float/str/list/dict with str keys) without `json`."""
    t = type(v)
    if v is None:
        return "null"
    if t is bool:
        return "true" if v else "false"
    if t is int or t is float:
        return repr(v)
    if t is str:
        return _json_str(v)
    if t is list:
        return "[" + ",".join([to_json(e) for e in v]) + "]"
    if t is dict:
        return "{" + ",".join([_json_str(k) + ":" + to_json(e) for k, e in v.items()]) + "}"
    raise EncodeError(f"not tagged data: {t.__name__}")


def json_to_tagged(v):
    """Plain JSON data (as parsed from a request) to tagged form, so dicts and floats survive the trip."""
    t = type(v)
    if t is dict:
        return {"__d": [[k, json_to_tagged(e)] for k, e in v.items()]}
    if t is list:
        return [json_to_tagged(e) for e in v]
    if t is float and not math.isfinite(v):
        return {"__x": repr(v)}
    if t is int and v.bit_length() > _BIG_INT_BITS:
        return {"__i": format(v, "x")}
    return v


# --------------------------------------------------------------------------------------------------
# Candidate-side call server (only when run as a script inside the sandbox).


def _serve_calls(solution_path: str) -> None:  # pragma: no cover - runs inside the container
    import os
    import sys

    rfd, wfd = 3, 4

    def send(obj) -> None:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except Exception:
            pass
        data = (to_json(obj) + "\n").encode()
        while data:
            n = os.write(wfd, data)
            data = data[n:]

    def read_exact(n: int) -> bytes:
        chunks = []
        while n:
            chunk = os.read(rfd, n)
            if not chunk:
                os._exit(0)  # the harness is gone
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def recv():
        size = int.from_bytes(read_exact(4), "big")
        return marshal.loads(read_exact(size))

    mod = type(sys)("solution")
    mod.__file__ = solution_path
    sys.modules["solution"] = mod
    try:
        with open(solution_path, "rb") as f:
            source = f.read()
        exec(compile(source, "solution.py", "exec"), mod.__dict__)
    except BaseException as exc:  # SystemExit at import time is a failure too
        _show(exc)
        send({"op": "loaded", "ok": False, "error": _describe(exc)})
        os._exit(1)
    send({"op": "loaded", "ok": True})

    handles = {}  # objects of the program that an assert harness holds handles to: number -> object

    def to_handle(obj):
        n = len(handles) + 1
        handles[n] = obj
        t = type(obj)
        return [n, f"{t.__module__}.{t.__qualname__}"]

    def from_handle(body):
        return handles[body[0]]

    def handle_op(h, what: str, args: list, kwargs: dict):
        """One operation on a handled object, as the harness's proxy asks for it."""
        obj = handles[h]
        if what == "getattr":
            return getattr(obj, args[0])
        if what == "setattr":
            return setattr(obj, args[0], args[1])
        if what == "invoke":
            return obj(*args, **kwargs)
        if what == "iter":
            return list(obj)
        if what in _HANDLE_OPS:
            return _HANDLE_OPS[what](obj, *args)
        raise TypeError(f"unsupported operation {what!r}")

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
            if op == "names":  # only an assert harness asks: it takes objects as handles
                HOOKS["encode"], HOOKS["decode"] = to_handle, from_handle
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
                        except (EncodeError, RecursionError):
                            pass
                send({"op": "names", "found": found})
                continue
            handled = bool(req.get("writeback"))  # an assert harness: it takes objects as handles
            HOOKS["encode"], HOOKS["decode"] = (to_handle, from_handle) if handled else (None, None)
            args = decode_value(req["args"])
            kwargs = decode_value(req.get("kwargs", {"__d": []}))
            if op == "handle":
                result = handle_op(req["id"], req["what"], args, kwargs)
            else:
                result = lookup(req["name"])(*args, **kwargs)
        except BaseException as exc:
            _show(exc)
            send({"op": "raised", "error": _describe(exc)})
            continue
        try:
            reply = {"op": "returned", "value": encode_value(result)}
            if req.get("writeback"):  # the arguments a call may have changed in place, for assert tests
                reply["args_after"] = [[i, encode_value(a)] for i, a in enumerate(args) if type(a) in _MUTABLE]
            send(reply)
        except (EncodeError, ValueError, RecursionError) as exc:
            send({"op": "bad_value", "error": str(exc)[:500]})


def _describe(exc: BaseException) -> str:
    try:
        return (f"{type(exc).__name__}: {exc}")[-2000:]
    except Exception:
        return type(exc).__name__


def _show(exc: BaseException) -> None:
    import sys

    try:  # the interpreter's own C traceback printer: no `traceback` import needed
        sys.__excepthook__(type(exc), exc, exc.__traceback__)
    except Exception:
        pass


def _run_main(path: str, cached=None) -> None:  # pragma: no cover - runs inside the container
    """Run a Python program as ``__main__`` and end the way the interpreter would.

    Exit status: the ``SystemExit`` code, 1 after an uncaught exception, else 0. Non-daemon threads
    are joined, atexit handlers run and stdio is flushed, then the process ends with ``os._exit``:
    tearing down every preloaded module (a full interpreter finalization) would cost more CPU than
    most programs.
    """
    import builtins
    import os
    import sys

    main = type(sys)("__main__")
    main.__file__ = path
    main.__builtins__ = builtins
    sys.modules["__main__"] = main
    sys.argv = [path]
    code = 0
    try:
        with open(path, "rb") as f:
            source = f.read()
        # `cached`: (source, code) compiled once per program by its own zygote
        compiled = cached[1] if cached is not None and cached[0] == source else compile(source, path, "exec")
        exec(compiled, main.__dict__)
    except SystemExit as exc:
        code = _exit_code(exc)
    except BaseException as exc:
        _show(exc)
        code = 1
    try:
        threading = sys.modules.get("threading")
        if threading is not None:
            threading._shutdown()
        import atexit

        atexit._run_exitfuncs()
    except SystemExit as exc:
        code = _exit_code(exc)
    except BaseException as exc:
        _show(exc)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            code = code or 120  # what CPython exits with when flushing stdout fails
    os._exit(code)


def _exit_code(exc: SystemExit) -> int:
    import sys

    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code & 0xFF
    try:
        print(exc.code, file=sys.stderr)
    except BaseException:
        pass
    return 1


# Modules most programs import: loaded once in the zygote, so forked programs get them for free.
PRELOAD = ("typing", "collections", "itertools", "functools", "heapq", "bisect", "math", "re", "string",
           "random", "json", "fractions", "decimal", "operator", "copy", "statistics", "datetime")


def _sibling_fork(libc):  # pragma: no cover - runs inside the container
    """A ``fork`` whose child is a child of *our parent* (the runner), or None where unavailable.

    ``clone(CLONE_PARENT)`` gives the program the runner as its parent from its first instruction:
    the same process tree the classic double fork gives (so the runner waits for it, reads its rusage,
    and ``getppid()`` is PID 1, which ignores its signals), at half the price: one fork of the zygote
    instead of two plus a reap. It mirrors what ``os.fork`` does around ``fork()`` (CPython's
    before/after-fork hooks, the GIL held throughout) and what glibc's ``fork`` does for the child's
    thread descriptor (the kernel stores the new thread id there, ``CLONE_CHILD_SETTID``). The
    descriptor's thread-id slot is found by checking, with a real ``os.fork``, which slot glibc
    rewrites; without a single such slot (another libc) or on an unknown architecture the zygote
    keeps the double fork.
    """
    import ctypes
    import os

    # raw clone: x86_64 clone(flags, stack, parent_tid, child_tid, tls); aarch64 swaps the last two
    arch = os.uname().machine
    if arch == "x86_64":
        nr, ctid_last = 56, False
    elif arch == "aarch64":
        nr, ctid_last = 220, True
    else:
        return None
    try:
        self_fn = libc.pthread_self
        self_fn.restype = ctypes.c_void_p
        tcb = self_fn()
        me = os.getpid()  # single-threaded: the main thread's id is the pid
        slots = [off for off in range(0, 4096, 4) if ctypes.c_int.from_address(tcb + off).value == me]
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            child = os.getpid()
            good = [off for off in slots if ctypes.c_int.from_address(tcb + off).value == child]
            os.write(w, (",".join(map(str, good))).encode())
            os._exit(0)
        os.close(w)
        reply = os.read(r, 4096).decode()
        os.close(r)
        os.waitpid(pid, 0)
        good = [int(x) for x in reply.split(",") if x]
        if len(good) != 1:
            return None
        ctid = tcb + good[0]
        raw = ctypes.PyDLL(None, use_errno=True).syscall  # PyDLL: the GIL stays held, as in os.fork
        raw.restype = ctypes.c_long
        raw.argtypes = [ctypes.c_long, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                        ctypes.c_void_p]
        api = ctypes.pythonapi
        before, after_parent, after_child = api.PyOS_BeforeFork, api.PyOS_AfterFork_Parent, api.PyOS_AfterFork_Child
    except (AttributeError, OSError, ValueError):
        return None
    # CLONE_PARENT | CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID | SIGCHLD: glibc's fork flags, plus
    # CLONE_PARENT
    flags = 0x00008000 | 0x01000000 | 0x00200000 | 17
    args = (nr, flags, None, None, None, ctid) if ctid_last else (nr, flags, None, None, ctid, None)

    def fork() -> int:
        """The child's pid (0 in the child), or -errno."""
        before()
        pid = raw(*args)
        if pid == 0:
            after_child()
            return 0
        after_parent()
        return pid if pid > 0 else -ctypes.get_errno()

    return fork


class _Quitter:
    """``exit`` / ``quit`` as ``site`` defines them (the interpreter here runs without ``site``)."""

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"Use {self.name}() or Ctrl-D (i.e. EOF) to exit"

    def __call__(self, code=None):
        raise SystemExit(code)


def _install_quitters() -> None:
    import builtins

    for name in ("exit", "quit"):
        if not hasattr(builtins, name):
            setattr(builtins, name, _Quitter(name))


def _zygote() -> None:  # pragma: no cover - runs inside the container
    import ctypes
    import resource
    import socket
    import sys

    if hasattr(sys, "set_int_max_str_digits"):
        sys.set_int_max_str_digits(0)
    _install_quitters()
    for name in PRELOAD:
        try:
            __import__(name)
        except ImportError:
            pass
    import atexit  # noqa: F401  (every program runs its exit handlers: imported once, here)
    import fcntl  # noqa: F401  (used by every child's setup)
    import gc

    libc = ctypes.CDLL(None)
    prctl = libc.prctl
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    forks = [_sibling_fork(libc)]
    # Objects that exist now are never collected: a child's first GC pass then does not touch (and
    # copy-on-write) the whole inherited heap.
    gc.collect()
    gc.freeze()
    prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE=0: other processes (programs) cannot ptrace us
    # SOCK_SEQPACKET from the runner: one request (+ fds) per message
    _serve(socket.socket(fileno=3), forks, prctl, resource, None)


def _serve(ctl, forks, prctl, resource, cached) -> None:  # pragma: no cover - runs inside the container
    """The zygote loop: a spawn request (spec + the child's fds) in, the new process's pid out."""
    import errno
    import os
    import socket

    env = None
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(ctl, 1 << 20, 16)
        except OSError:
            os._exit(0)
        if not msg:
            os._exit(0)
        spec = marshal.loads(msg)
        if spec["mode"] != "exec" and spec["env"] != env:
            # A job's programs share one environment: set it here once (the zygote runs nothing that
            # reads it) and every forked program inherits it, instead of rebuilding it per test.
            env = spec["env"]
            os.environ.clear()
            os.environ.update(env)
        pid = forks[0]() if forks[0] is not None else -1
        if pid == 0:
            _child(spec, fds, ctl, forks, prctl, resource, cached)
        if pid > 0:
            data = str(pid).encode()
        else:  # the double fork: where clone(CLONE_PARENT) is unavailable (or just failed)
            if pid == -errno.EINVAL:  # not allowed here (e.g. we are PID 1): do not try again
                forks[0] = None
            r, w = os.pipe()
            mid = os.fork()
            if mid == 0:
                os.close(r)
                pid = os.fork()
                if pid:
                    os.write(w, str(pid).encode())
                    os._exit(0)
                os.close(w)
                _child(spec, fds, ctl, forks, prctl, resource, cached)  # re-parented once `mid` exits
            os.close(w)
            data = b""
            while True:
                chunk = os.read(r, 32)
                if not chunk:
                    break
                data += chunk
            os.close(r)
            os.waitpid(mid, 0)
        for fd in fds:
            os.close(fd)
        try:
            ctl.send(data or b"0")
        except OSError:
            os._exit(0)


def _child(spec, fds, ctl, forks, prctl, resource, cached) -> None:  # pragma: no cover - in the container
    """A forked child: a program's process, or a program's own zygote; never returns."""
    import os

    if spec["mode"] == "zygote":
        try:
            _program_zygote(spec, fds, ctl, forks, prctl, resource)
        finally:
            os._exit(70)
    try:
        os.setsid()
        _child_setup(spec, fds, prctl, resource)
    except BaseException as exc:
        _show(exc)  # stderr is already the program's stderr pipe (or ours)
        os._exit(126)
    mode = spec["mode"]
    if mode == "exec":
        try:
            os.execve(spec["argv"][0], spec["argv"], spec["env"])
        finally:
            os._exit(127)
    ctl.detach()
    if mode == "main":
        _run_main(spec["path"], cached)
    else:
        _serve_calls(spec["path"])
    os._exit(0)


def _program_zygote(spec, fds, ctl, forks, prctl, resource) -> None:  # pragma: no cover - in the container
    """A zygote for the tests of one Python program: the program compiled once, then the same loop.

    Forked from the zygote right after the runner wrote the source, before any of the program ran;
    it compiles the code (compiling runs none of it) and never runs it, and stays non-dumpable like
    the zygote. Each test's process is forked from it and runs the cached code object when
    ``main.py`` still holds the same source (a test may have rewritten the file: then that test
    compiles it itself, as it always did). For a small program, compiling was most of a test's CPU.
    It dies with the job's other processes; where it fails or dies, the runner uses the zygote.
    """
    import fcntl
    import os
    import socket

    ctl.detach()  # the zygote's channel to the runner is not ours: fd 3 becomes our own channel
    staged = [fcntl.fcntl(fd, fcntl.F_DUPFD, 256) for fd in fds]
    for target, src in enumerate(staged):
        os.dup2(src, target, inheritable=False)
    os.closerange(len(staged), 4096)
    cached = None
    try:
        with open(spec["path"], "rb") as f:
            source = f.read()
        cached = (source, compile(source, spec["path"], "exec"))
    except BaseException:  # a program that does not compile: each test reports it, as before
        pass
    _serve(socket.socket(fileno=3), forks, prctl, resource, cached)


def _child_setup(spec, fds, prctl, resource) -> None:  # pragma: no cover - runs inside the container
    import fcntl
    import os

    staged = [fcntl.fcntl(fd, fcntl.F_DUPFD, 256) for fd in fds]
    for target, src in enumerate(staged):
        os.dup2(src, target, inheritable=True)
    os.closerange(len(staged), 4096)
    for res, value in spec["limits"]:
        resource.setrlimit(res, (value, value))
    # dumpable again (first: /proc/self of a non-dumpable process is root's), so the harness can read
    # its exit code in /proc and it can raise its own OOM score
    prctl(4, 1, 0, 0, 0)
    fd = os.open("/proc/self/oom_score_adj", os.O_WRONLY)
    try:
        os.write(fd, b"1000")  # the kernel's OOM killer picks programs first, never the runner
    finally:
        os.close(fd)
    os.chdir(spec["cwd"])


if __name__ == "__main__":  # pragma: no cover - runs inside the container
    _zygote()
