"""Learner weights -> rollout workers, versioned: the one place that owns it.

Three sides, one module:

* learner rank (:func:`gather_full_weights`): every rank takes part (ZeRO-3 shards are gathered
  collectively), rank 0 returns the full HF-named state dict on CPU, the others ``None``;
* controller (:class:`WeightSync`): after each update it gathers, hands rank 0's weights to every
  rollout worker with the new version number, keeps the latest copy for a worker that Ray restarts,
  and times it;
* rollout worker (:func:`check_weight_names`, :func:`load_full_weights`): refuses a state dict that
  does not match its model, loads it, records the version it now samples with.

The transport is the seam (:class:`Transport`): today the Ray object store (rank 0's dict is one object
that every worker reads, zero-copy on a node); an NCCL broadcast from rank 0 to the rollout GPUs
(as verl / OpenRLHF do for 7B models) replaces :class:`ObjectStoreTransport` without touching the
controller, the learner or the workers' version bookkeeping.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from typing import Any, Protocol

import torch

__all__ = [
    "gather_full_weights",
    "check_weight_names",
    "load_full_weights",
    "Transport",
    "ObjectStoreTransport",
    "WeightSync",
]

# a tied output head is not a separate tensor in every checkpoint: its absence is never a mismatch
_OPTIONAL = ("lm_head.weight",)


# ---------------------------------------------------------------------------------------- learner side
def gather_full_weights(module: torch.nn.Module, zero_stage: int, rank: int) -> dict[str, torch.Tensor] | None:
    """Full (unsharded) weights on rank 0 as CPU copies, ``None`` on other ranks. Collective under
    ZeRO-3: every rank must call it together."""
    ctx: Any = contextlib.nullcontext()
    if zero_stage == 3:
        import deepspeed

        ctx = deepspeed.zero.GatheredParameters(list(module.parameters()), modifier_rank=None)
    with ctx:
        if rank != 0:
            return None
        return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


# ---------------------------------------------------------------------------------------- worker side
def check_weight_names(expected: Iterable[str], given: Iterable[str]) -> None:
    """Raise naming up to five missing and five unexpected tensors when the names differ."""
    expected, given = set(expected), set(given)
    missing = sorted(k for k in expected - given if not k.endswith(_OPTIONAL))
    unexpected = sorted(k for k in given - expected if not k.endswith(_OPTIONAL))
    if missing or unexpected:
        raise RuntimeError(f"weight sync mismatch: missing={missing[:5]} unexpected={unexpected[:5]}")


def load_full_weights(model: torch.nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
    """Load a learner's full state dict into a worker's copy of the same HF model, in place."""
    check_weight_names(model.state_dict().keys(), state_dict.keys())
    model.load_state_dict(state_dict, strict=False)


# ---------------------------------------------------------------------------------------- controller side
class Transport(Protocol):
    """Moves the gathered weights of one version from the learner ranks to rollout workers."""

    def gather(self, learners: list[Any]) -> Any:
        """Run the collective gather on every rank; return a handle to rank 0's weights."""

    def send(self, handle: Any, workers: list[Any], version: int) -> None:
        """Load ``handle``'s weights into ``workers`` as ``version``; return when all have them."""


class ObjectStoreTransport:
    """Rank 0's state dict as one Ray object; every worker's ``update_weights`` reads it."""

    def gather(self, learners: list[Any]) -> Any:
        import ray

        refs = [lr.gather_weights.remote() for lr in learners]
        ray.get(refs[1:])  # the other ranks return None once their part of the gather is done
        return refs[0]

    def send(self, handle: Any, workers: list[Any], version: int) -> None:
        import ray

        ray.get([w.update_weights.remote(handle, version) for w in workers])


class WeightSync:
    """Versioned weight sync from the learner ranks to the rollout workers.

    ``version`` counts the updates the workers' weights contain (0: the starting checkpoint). The latest
    handle is kept so that :meth:`restore` can give a restarted worker the current weights.
    """

    def __init__(self, learners: list[Any], workers: list[Any], transport: Transport | None = None):
        self.learners, self.workers = learners, workers
        self.transport = transport or ObjectStoreTransport()
        self.version = 0
        self._handle: Any = None
        self.last_seconds = 0.0

    def push(self, version: int) -> float:
        """Gather the learner's weights and load them into every worker as ``version``; seconds taken."""
        t0 = time.perf_counter()
        self._handle = self.transport.gather(self.learners)
        self.transport.send(self._handle, self.workers, version)
        self.version = version
        self.last_seconds = time.perf_counter() - t0
        return self.last_seconds

    def restore(self, worker_index: int) -> None:
        """Give worker ``worker_index`` (just restarted from the starting checkpoint) the current weights."""
        if self.version > 0:
            if self._handle is None:
                self._handle = self.transport.gather(self.learners)
            self.transport.send(self._handle, [self.workers[worker_index]], self.version)
