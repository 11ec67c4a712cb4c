"""Verifiers by name: ``get("code_tests", urls=[...])``.

Built-ins register themselves with :func:`register`. Other installed packages add verifiers without
touching this repo through the entry-point group ``rlvr.verifiers``, e.g. in their pyproject.toml::

    [project.entry-points."rlvr.verifiers"]
    my_judge = "my_pkg.rewards:MyJudge"      # a class, a TRL-style reward function, or a verifier object

Entry points are read lazily, the first time a name is not found among the registered ones.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any, TypeVar

from rlvr.rewards.base import FunctionVerifier, Verifier, as_verifier

__all__ = ["register", "get", "build", "names", "ENTRY_POINT_GROUP", "SANDBOX_VERIFIERS", "UnknownVerifierError"]

ENTRY_POINT_GROUP = "rlvr.verifiers"
# built-ins that call the sandbox service (the CLIs start a local one when no URL is configured)
SANDBOX_VERIFIERS = frozenset({"code_tests", "composite"})
_REGISTRY: dict[str, Callable[..., Any]] = {}
_FACTORIES: set[str] = set()  # names registered with factory=True
_BUILTIN_MODULES = ("rlvr.rewards.code_tests", "rlvr.rewards.format", "rlvr.rewards.composite", "rlvr.rewards.numeric")

T = TypeVar("T")


class UnknownVerifierError(KeyError):
    def __str__(self) -> str:  # KeyError would print the message with quotes
        return str(self.args[0])


def register(name: str, factory: bool = False) -> Callable[[T], T]:
    """Decorator: register a verifier under ``name``. What ``get(name, **kwargs)`` does with it:

    * a class: ``cls(**kwargs)`` builds the verifier;
    * a function with ``factory=True``: ``fn(**kwargs)`` returns the verifier (an explicit flag, never
      a guess from annotations);
    * any other function: a TRL-style reward function ``fn(completions, **row_fields)``, with
      ``kwargs`` bound as extra keyword arguments on every call;
    * an object that already is a :class:`Verifier` (``name`` + ``verify``): used as is.
    """

    def deco(obj: T) -> T:
        if name in _REGISTRY and _REGISTRY[name] is not obj:
            raise ValueError(f"a verifier named {name!r} is already registered ({_REGISTRY[name]!r})")
        if factory and (inspect.isclass(obj) or not callable(obj)):
            raise TypeError(f"register({name!r}, factory=True) needs a function that returns a verifier")
        _REGISTRY[name] = obj  # type: ignore[assignment]
        if factory:
            _FACTORIES.add(name)
        return obj

    return deco


@functools.cache
def _load_builtins() -> None:
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)


def _entry_point(name: str) -> Callable[..., Any] | None:
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            return ep.load()
    return None


def names() -> list[str]:
    """Every available verifier name: registered built-ins plus installed entry points."""
    _load_builtins()
    return sorted(set(_REGISTRY) | {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})


def build(name: str, obj: Any, kwargs: dict[str, Any]) -> Verifier:
    """Turn a registered object into a verifier (see :func:`register` for the rules)."""
    if inspect.isclass(obj) or name in _FACTORIES:
        return as_verifier(obj(**kwargs), name=name)
    if isinstance(obj, Verifier) and not inspect.isfunction(obj):
        if kwargs:
            raise TypeError(f"verifier {name!r} is a ready-made object: it takes no arguments (got {sorted(kwargs)})")
        return obj
    if callable(obj):
        return FunctionVerifier(obj, name=name, **kwargs)
    raise TypeError(f"verifier {name!r} is {obj!r}: register a class, a reward function or a verifier object")


def get(name: str, **kwargs: Any) -> Verifier:
    """Build the verifier registered as ``name`` (or found as an entry point) with ``kwargs``."""
    _load_builtins()
    obj = _REGISTRY.get(name)
    if obj is None:
        obj = _entry_point(name)
        if obj is None:
            raise UnknownVerifierError(f"unknown verifier {name!r}; available: {', '.join(names()) or 'none'}")
        _REGISTRY[name] = obj
    return build(name, obj, kwargs)
