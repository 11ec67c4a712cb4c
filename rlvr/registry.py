"""Name -> implementation tables, so configs pick algorithms by string and new ones need no core edits;
and the config-side check that a configured name exists, run when the config loads (not minutes later
inside an actor)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")

__all__ = ["Registry", "RegistryName"]


class Registry(Generic[T]):
    """``reg = Registry("advantage estimator")``; ``@reg.register("grpo")``; ``reg.get("grpo")``.

    ``get`` of an unknown name raises ``ValueError`` naming the kind, the bad name and the valid names.
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = obj
            return obj

        return deco

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise ValueError(f"unknown {self.kind} {name!r}; choose one of {sorted(self._items)}") from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))


class RegistryName:
    """A pydantic ``AfterValidator`` for a config field that names a registry entry::

        alg: Annotated[str, AfterValidator(RegistryName("rlvr.diffusion.sampler:ALGORITHMS", "sampler algorithm"))]

    ``where`` is ``"module:attribute"``, imported when a value is checked (config modules stay cheap to
    import): a :class:`Registry`, a mapping or a sequence of names, or a function returning the names.
    An unknown value fails validation with a message that names it and lists the valid ones.
    """

    def __init__(self, where: str, kind: str):
        self.where, self.kind = where, kind

    def names(self) -> list[str]:
        module, _, attr = self.where.partition(":")
        obj: Any = getattr(importlib.import_module(module), attr)
        if isinstance(obj, Registry):
            return obj.names()
        if callable(obj):
            obj = obj()
        return sorted(obj) if isinstance(obj, Iterable) else []

    def __call__(self, value: str) -> str:
        names = self.names()
        if value not in names:
            raise ValueError(f"unknown {self.kind} {value!r}; choose one of {names}")
        return value
