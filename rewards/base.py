"""The verifier protocol, and the runner that isolates one sample's failure from the batch.

A verifier is anything with a ``name`` and ``async def verify(self, batch: list[Sample]) -> list[RewardResult]``.
Plain functions in the TRL style, ``fn(completions, **row_fields) -> list[float]`` (sync or async), are
wrapped by :func:`as_verifier`. The GRPO controller, the eval harness and curation all go through
:func:`score`, which guarantees one :class:`RewardResult` per sample whatever the verifier does.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

__all__ = [
    "Sample",
    "RewardResult",
    "Verifier",
    "FunctionVerifier",
    "OverlongPolicy",
    "as_verifier",
    "score",
    "score_sync",
]

log = logging.getLogger(__name__)


@dataclass
class Sample:
    """One completion to score. ``row`` is the dataset row (see rlvr/data/SCHEMA.md) it answers."""

    row: dict[str, Any]
    completion: str
    truncated: bool = False  # generation hit the length limit before EOS
    num_tokens: int | None = None  # completion length, used by the soft overlong penalty
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class RewardResult:
    """A reward and why. ``info["reason"]`` is None on success, else a short code such as ``no_code``."""

    reward: float
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def reason(self) -> str | None:
        return self.info.get("reason")

    @classmethod
    def fail(cls, reason: str, **info: Any) -> RewardResult:
        return cls(0.0, {"reason": reason, **info})


@runtime_checkable
class Verifier(Protocol):
    name: str

    async def verify(self, batch: list[Sample]) -> list[RewardResult]: ...


# ---------------------------------------------------------------------------------------- wrapping
async def _in_daemon_thread(fn: Callable[[], Any]) -> Any:
    """Run blocking ``fn`` off the event loop in a daemon thread.

    Not ``asyncio.to_thread``: a hung function would keep the default executor's thread alive and
    block interpreter exit. A daemon thread that never returns is abandoned once its deadline passes.
    """
    loop = asyncio.get_running_loop()
    fut: asyncio.Future = loop.create_future()

    def settle(setter: Callable[[Any], None], value: Any) -> None:
        if not fut.done():
            setter(value)

    def target() -> None:
        try:
            value = fn()
        except BaseException as exc:  # noqa: BLE001 - delivered to the awaiting coroutine
            loop.call_soon_threadsafe(settle, fut.set_exception, exc)
        else:
            loop.call_soon_threadsafe(settle, fut.set_result, value)

    threading.Thread(target=target, daemon=True, name="verifier").start()
    return await fut


class FunctionVerifier:
    """Adapts a TRL-style reward function: ``fn(completions, **columns) -> list[float | None]``.

    Every row field is passed as a list aligned with ``completions`` (as TRL passes dataset columns),
    plus ``truncated``. Only the keyword arguments the function declares are passed, unless it takes
    ``**kwargs``. ``None`` means "not applicable to this sample": reward 0, reason ``not_applicable``
    (a composite skips it). A dict result ``{"score": float, ...}`` (verl style) keeps its other keys as info.
    """

    def __init__(self, fn: Callable[..., Any], name: str | None = None, **bound: Any):
        self.fn = fn
        self.bound = bound
        self.name = name or getattr(fn, "__name__", type(fn).__name__)
        params = inspect.signature(fn).parameters
        self._var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        self._accepts = set(params)

    def _kwargs(self, batch: list[Sample]) -> dict[str, Any]:
        keys: list[str] = []
        for s in batch:
            keys.extend(k for k in s.row if k not in keys)
        cols = {k: [s.row.get(k) for s in batch] for k in keys}
        cols["truncated"] = [s.truncated for s in batch]
        cols.update(self.bound)
        if self._var_kw:
            return cols
        return {k: v for k, v in cols.items() if k in self._accepts}

    async def verify(self, batch: list[Sample]) -> list[RewardResult]:
        completions = [s.completion for s in batch]
        kwargs = self._kwargs(batch)
        if inspect.iscoroutinefunction(self.fn):
            values = await self.fn(completions, **kwargs)
        else:
            values = await _in_daemon_thread(lambda: self.fn(completions, **kwargs))
        return [_to_result(v) for v in values]


def _to_result(value: Any) -> RewardResult:
    if isinstance(value, RewardResult):
        return value
    if value is None:
        return RewardResult.fail("not_applicable")
    if isinstance(value, dict):
        info = {k: v for k, v in value.items() if k != "score"}
        info.setdefault("reason", None)
        return RewardResult(float(value["score"]), info)
    return RewardResult(float(value), {"reason": None})


class _SyncMethodVerifier:
    """An object whose ``verify`` is a plain method: run it in a thread so it cannot block the loop."""

    def __init__(self, obj: Any):
        self.obj = obj
        self.name = getattr(obj, "name", type(obj).__name__)

    async def verify(self, batch: list[Sample]) -> list[RewardResult]:
        values = await _in_daemon_thread(lambda: self.obj.verify(batch))
        return [_to_result(v) for v in values]


def as_verifier(obj: Any, name: str | None = None) -> Verifier:
    """Accept a verifier object, an object with a sync ``verify``, or a TRL-style function."""
    verify = getattr(obj, "verify", None)
    if verify is not None and callable(verify):
        if inspect.iscoroutinefunction(verify):
            if not hasattr(obj, "name"):
                obj.name = name or type(obj).__name__
            return obj
        return _SyncMethodVerifier(obj)
    if callable(obj):
        return FunctionVerifier(obj, name=name)
    raise TypeError(f"{obj!r} is not a verifier: it needs an async verify(batch) method, or must be callable")


# ---------------------------------------------------------------------------------------- overlong
@dataclass(frozen=True)
class OverlongPolicy:
    """What a truncated (length-limited, no EOS) completion earns.

    * ``zero``: reward 0 with reason ``truncated``; the verifier never sees it (default: a cut-off
      program is not an answer, and this saves sandbox time).
    * ``score``: verify it like any other completion.
    * ``soft``: verify it, then add DAPO's soft overlong penalty, which falls linearly from 0 to -1
      as ``num_tokens`` goes from ``max_tokens - buffer_tokens`` to ``max_tokens`` (applies to every
      sample with ``num_tokens``, truncated or not).
    """

    mode: Literal["zero", "score", "soft"] = "zero"
    max_tokens: int | None = None
    buffer_tokens: int = 0

    def __post_init__(self) -> None:
        if self.mode not in ("zero", "score", "soft"):
            raise ValueError(f"overlong mode {self.mode!r} is not one of zero, score, soft")
        if self.mode == "soft" and (self.max_tokens is None or not 0 < self.buffer_tokens <= self.max_tokens):
            raise ValueError("overlong mode 'soft' needs max_tokens and 0 < buffer_tokens <= max_tokens")

    def penalty(self, num_tokens: int | None, truncated: bool = False) -> float:
        """The soft penalty of one completion (:func:`rlvr.algos.shaping.overlong_penalty`, the one
        implementation); 0 unless the mode is ``soft``."""
        if self.mode != "soft" or num_tokens is None:
            return 0.0
        import torch

        from rlvr.algos.shaping import overlong_penalty

        assert self.max_tokens is not None
        pen = overlong_penalty(
            torch.tensor([num_tokens]), self.max_tokens, self.buffer_tokens, truncated=torch.tensor([truncated])
        )
        return float(pen[0])


# ---------------------------------------------------------------------------------------- runner
async def _guarded(verifier: Verifier, batch: list[Sample], deadline_s: float) -> list[RewardResult]:
    """Run ``verify`` with a deadline and check its answer's shape; raise on any problem."""
    results = await asyncio.wait_for(verifier.verify(batch), timeout=deadline_s)
    results = [_to_result(r) for r in results]
    if len(results) != len(batch):
        raise ValueError(f"returned {len(results)} results for {len(batch)} samples")
    for r in results:
        if not math.isfinite(r.reward):
            raise ValueError(f"returned a non-finite reward {r.reward}")
    return results


def _failure(exc: BaseException, deadline_s: float) -> RewardResult:
    if isinstance(exc, TimeoutError):
        return RewardResult.fail("verifier_timeout", error=f"no answer within {deadline_s:g} s")
    return RewardResult.fail("verifier_error", error=f"{type(exc).__name__}: {exc}")


async def score(
    verifier: Any,
    samples: Sequence[Sample],
    deadline_s: float = 60.0,
    overlong: OverlongPolicy | None = None,
) -> list[RewardResult]:
    """Score ``samples``; always returns one result per sample, in order.

    The whole batch is verified first. If that raises, hangs past ``deadline_s`` or returns a malformed
    answer, each sample is verified alone (concurrently, each with ``deadline_s``): only the samples that
    still fail get reward 0 with reason ``verifier_error`` or ``verifier_timeout``, and the cause is logged.
    Worst case is therefore about ``2 * deadline_s``.
    """
    v = as_verifier(verifier)
    policy = overlong or OverlongPolicy()
    out: list[RewardResult | None] = [None] * len(samples)
    todo: list[int] = []
    for i, s in enumerate(samples):
        if s.truncated and policy.mode == "zero":
            out[i] = RewardResult.fail("truncated")
        else:
            todo.append(i)
    if todo:
        batch = [samples[i] for i in todo]
        t0 = time.perf_counter()
        try:
            results = await _guarded(v, batch, deadline_s)
        except Exception as exc:  # includes TimeoutError from the deadline
            log.warning("verifier %s failed on a batch of %d (%s); retrying per sample", v.name, len(batch), exc)
            singles = await asyncio.gather(
                *(_guarded(v, [s], deadline_s) for s in batch), return_exceptions=True
            )
            results = []
            for i, r in zip(todo, singles, strict=True):
                if isinstance(r, BaseException):
                    if not isinstance(r, Exception):
                        raise r from exc  # KeyboardInterrupt / cancellation are not the sample's fault
                    log.warning("verifier %s failed on sample %d: %s", v.name, i, r)
                    results.append(_failure(r, deadline_s))
                else:
                    results.append(r[0])
        elapsed = time.perf_counter() - t0
        for i, r in zip(todo, results, strict=True):
            r.reward += policy.penalty(samples[i].num_tokens, samples[i].truncated)
            r.info.setdefault("verify_s", elapsed)
            out[i] = r
    return [r for r in out if r is not None]


def score_sync(verifier: Any, samples: Sequence[Sample], **kwargs: Any) -> list[RewardResult]:
    """:func:`score` for callers without an event loop."""
    return asyncio.run(score(verifier, samples, **kwargs))
