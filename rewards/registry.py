"""Verifiers by name: ``get("code_tests", urls=[...])``.

Built-ins register themselves with :func:`register`. Other installed packages add verifiers without
touching this repo through the entry-point group ``rlvr.verifiers``, e.g. in their pyproject.toml::

    [project.entry-points."rlvr.verifiers"]
    my_judge = "my_pkg.rewards:MyJudge"      # a class, a factory, or a TRL-style reward function

Entry points are read lazily, the first time a name is not found among the registered ones.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any, TypeVar

from rewards.base import FunctionVerifier, Verifier, as_verifier

__all__ = ["register", "get", "names", "ENTRY_POINT_GROUP", "SANDBOX_VERIFIERS", "UnknownVerifierError"]

ENTRY_POINT_GROUP = "rlvr.verifiers"
# built-ins that call the sandbox service (the CLIs start a local one when no URL is configured)
SANDBOX_VERIFIERS = frozenset({"code_tests", "composite"})
_REGISTRY: dict[str, Callable[..., Any]] = {}
_BUILTIN_MODULES = ("rewards.code_tests", "rewards.format", "rewards.composite", "rewards.numeric")

T = TypeVar("T")


class UnknownVerifierError(KeyError):
    def __str__(self) -> str:  # KeyError would print the message with quotes
        return str(self.args[0])


def register(name: str) -> Callable[[T], T]:
    """Decorator: register a verifier class, a factory, or a TRL-style function under ``name``."""

    def deco(obj: T) -> T:
        if name in _REGISTRY and _REGISTRY[name] is not obj:
            raise ValueError(f"a verifier named {name!r} is already registered ({_REGISTRY[name]!r})")
        _REGISTRY[name] = obj  # type: ignore[assignment]
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


def _is_verifier_factory(obj: Any) -> bool:
    """A class, or a function that builds a verifier (declared by returning one), vs a reward function."""
    if inspect.isclass(obj):
        return True
    ret = inspect.signature(obj).return_annotation
    return isinstance(ret, str) and "Verifier" in ret or (inspect.isclass(ret) and hasattr(ret, "verify"))


def get(name: str, **kwargs: Any) -> Verifier:
    """Build the verifier registered as ``name`` with ``kwargs``.

    A class or factory is called with ``kwargs``; a plain reward function gets them bound as extra
    keyword arguments on every call.
    """
    _load_builtins()
    obj = _REGISTRY.get(name)
    if obj is None:
        obj = _entry_point(name)
        if obj is None:
            raise UnknownVerifierError(f"unknown verifier {name!r}; available: {', '.join(names()) or 'none'}")
        _REGISTRY[name] = obj
    if _is_verifier_factory(obj):
        verifier = as_verifier(obj(**kwargs), name=name)
    else:
        verifier = FunctionVerifier(obj, name=name, **kwargs)
    return verifier
