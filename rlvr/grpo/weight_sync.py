"""Learner weights -> rollout workers, versioned: the one place that owns it.

Three sides, one module:

* learner rank: :func:`gather_full_weights` (the whole state dict on rank 0) or
  :func:`stream_full_weights` (a bucket of parameters at a time, streamed); under ZeRO-3 every rank
  takes part in the gathers;
* controller (:class:`WeightSync`): after each update it pushes the learners' weights to every rollout
  worker with the new version number through a :class:`Transport`, gives a worker that Ray restarts the
  current version, and times it;
* rollout worker: :func:`check_weight_names` / :func:`load_full_weights` or
  :func:`receive_full_weights` refuse weights that do not match the model, load them, and the worker
  records the version it now samples with.

Transports (``trainer.weight_sync``): ``bucketed`` (:class:`BucketedTransport`: ZeRO-3 shards gathered
``trainer.weight_sync_bucket_mb`` at a time and broadcast from learner rank 0 to each worker over a
two-member process group, NCCL on GPU and gloo on CPU, as verl / OpenRLHF do for 7B models) and
``object_store`` (:class:`ObjectStoreTransport`, the fallback: rank 0's whole state dict as one Ray object).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import torch

__all__ = [
    "gather_full_weights",
    "check_weight_names",
    "load_full_weights",
    "weight_manifest",
    "buckets",
    "device_id",
    "pair_backend",
    "PairGroup",
    "open_pair_group",
    "stream_full_weights",
    "receive_full_weights",
    "Transport",
    "ObjectStoreTransport",
    "BucketedTransport",
    "TRANSPORTS",
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


# ---------------------------------------------------------------------------------------- bucketed streaming
DEFAULT_BUCKET_MB = 256


def weight_manifest(module: torch.nn.Module) -> list[tuple[str, tuple[int, ...], str]]:
    """``(name, shape, dtype)`` of every parameter in ``named_parameters`` order (a tied head once). Under
    ZeRO-3 the shapes are the full ones (``ds_shape``), not the local shards."""
    return [
        (name, tuple(int(d) for d in getattr(p, "ds_shape", p.shape)), str(p.dtype).removeprefix("torch."))
        for name, p in module.named_parameters()
    ]


def buckets(manifest: list[tuple[str, tuple[int, ...], str]], bucket_bytes: int) -> list[list[int]]:
    """Consecutive manifest indices grouped into buckets of at most ``bucket_bytes`` (a larger tensor is a
    bucket of its own). Sender and receiver compute the same buckets from the same manifest."""
    out: list[list[int]] = []
    size = 0
    for i, (_, shape, dtype) in enumerate(manifest):
        nbytes = math.prod(shape) * getattr(torch, dtype).itemsize
        if out and size + nbytes <= bucket_bytes:
            out[-1].append(i)
            size += nbytes
        else:
            out.append([i])
            size = nbytes
    return out


def device_id(device: torch.device) -> str | None:
    """A GPU's UUID (the same physical device whatever index a process sees it as), None on CPU."""
    if device.type != "cuda":
        return None
    return str(torch.cuda.get_device_properties(device).uuid)


def pair_backend(sender: str | None, receiver: str | None) -> str:
    """NCCL between two different GPUs; gloo (through host memory) on CPU, and between two processes on the
    same GPU (a colocated learner rank 0 and rollout worker), which NCCL refuses as a duplicate device."""
    return "nccl" if sender is not None and receiver is not None and sender != receiver else "gloo"


@dataclass
class PairGroup:
    group: Any  # a torch ProcessGroup of two: learner rank 0 (rank 0) and one rollout worker (rank 1)
    backend: str  # "nccl" or "gloo"


def open_pair_group(addr: str, port: int, rank: int, prefix: str, backend: str, timeout_s: float = 300) -> PairGroup:
    """A two-member process group (learner rank 0 = rank 0, one rollout worker = rank 1) that is not the
    default group (the learner's default group is DeepSpeed's). Rank 0 hosts the TCP store at
    ``addr:port`` (created on first use); ``prefix`` names one generation of one pair."""
    import datetime

    import torch.distributed as dist

    timeout = datetime.timedelta(seconds=timeout_s)
    store = _STORES.get((addr, port)) if rank == 0 else None
    if store is None:
        store = dist.TCPStore(addr, port, is_master=rank == 0, wait_for_workers=False, timeout=timeout)
        if rank == 0:
            _STORES[(addr, port)] = store
    scoped = dist.PrefixStore(prefix, store)
    if backend == "nccl":
        return PairGroup(dist.ProcessGroupNCCL(scoped, rank, 2, dist.ProcessGroupNCCL.Options()), backend)
    return PairGroup(dist.ProcessGroupGloo(scoped, rank, 2, timeout), backend)


_STORES: dict[tuple[str, int], Any] = {}  # rank 0's store server, kept for the groups opened later


def _broadcast(pair: PairGroup, tensor: torch.Tensor) -> Any:
    import torch.distributed as dist

    opts = dist.BroadcastOptions()
    opts.rootRank = 0
    return pair.group.broadcast([tensor], opts)


def stream_full_weights(
    module: torch.nn.Module, zero_stage: int, rank: int, groups: list[PairGroup], bucket_bytes: int
) -> dict[str, float]:
    """Learner side of a bucketed sync (every learner rank calls it together under ZeRO-3): gather one
    bucket of parameters at a time and, on rank 0, broadcast it flat to every pair group. At most one
    bucket is gathered and one flat copy exists at a time. Returns bytes sent per group and buckets."""
    named = list(module.named_parameters())
    plan = buckets(weight_manifest(module), bucket_bytes)
    sent = 0
    for idx in plan:
        params = [named[i][1] for i in idx]
        ctx: Any = contextlib.nullcontext()
        if zero_stage == 3:
            import deepspeed

            ctx = deepspeed.zero.GatheredParameters(params, modifier_rank=None)
        with ctx:
            if rank == 0:
                flat = torch.cat([p.detach().reshape(-1) for p in params])
                host = flat.cpu() if flat.is_cuda and any(g.backend == "gloo" for g in groups) else flat
                for work in [_broadcast(g, host if g.backend == "gloo" else flat) for g in groups]:
                    work.wait()
                sent += flat.numel() * flat.element_size()
                del flat, host
    return {"bytes": float(sent), "buckets": float(len(plan))}


def receive_full_weights(
    model: torch.nn.Module, group: PairGroup, manifest: list[tuple[str, tuple[int, ...], str]], bucket_bytes: int
) -> None:
    """Worker side of a bucketed sync: receive each flat bucket and copy it into the model's parameters
    (refusing a manifest whose names or shapes differ from the model's)."""
    own = dict(model.named_parameters())
    check_weight_names(own.keys(), [m[0] for m in manifest])
    wrong = [(n, s, tuple(own[n].shape)) for n, s, _ in manifest if n in own and tuple(own[n].shape) != s]
    if wrong:
        raise RuntimeError(f"weight sync mismatch: shapes (name, sent, ours) {wrong[:5]}")
    device = next(model.parameters()).device if group.backend == "nccl" else torch.device("cpu")
    for idx in buckets(manifest, bucket_bytes):
        dtype = getattr(torch, manifest[idx[0]][2])
        total = sum(math.prod(manifest[i][1]) for i in idx)
        flat = torch.empty(total, dtype=dtype, device=device)
        _broadcast(group, flat).wait()
        off = 0
        with torch.no_grad():
            for i in idx:
                name, shape, _ = manifest[i]
                n = math.prod(shape)
                if name in own:
                    own[name].copy_(flat[off : off + n].view(shape))
                off += n
        del flat


# ---------------------------------------------------------------------------------------- controller side
class Transport(Protocol):
    """Moves the weights of one version from the learner ranks to rollout workers."""

    def push(self, learners: list[Any], workers: list[Any], version: int) -> None:
        """Load the learners' current weights into every worker as ``version``; return when all have them."""

    def restore(self, learners: list[Any], workers: list[Any], index: int, version: int) -> None:
        """Give worker ``index`` (just restarted from the starting checkpoint) the weights of ``version``,
        the last pushed (the learners are idle and still hold them)."""


class ObjectStoreTransport:
    """Rank 0's full state dict as one Ray object that every worker's ``update_weights`` reads (zero-copy
    on a node). The fallback: simple, but the whole model is gathered at once on every learner rank and
    copied to host memory once per sync. The latest object is kept for a restarted worker."""

    def __init__(self) -> None:
        self._handle: Any = None

    @classmethod
    def from_config(cls, trainer: Any) -> ObjectStoreTransport:
        return cls()

    def _gather(self, learners: list[Any]) -> Any:
        import ray

        refs = [lr.gather_weights.remote() for lr in learners]
        ray.get(refs[1:])  # the other ranks return None once their part of the gather is done
        return refs[0]

    def push(self, learners: list[Any], workers: list[Any], version: int) -> None:
        import ray

        self._handle = self._gather(learners)
        ray.get([w.update_weights.remote(self._handle, version) for w in workers])

    def restore(self, learners: list[Any], workers: list[Any], index: int, version: int) -> None:
        import ray

        if self._handle is None:
            self._handle = self._gather(learners)
        ray.get(workers[index].update_weights.remote(self._handle, version))


class BucketedTransport:
    """ZeRO-3 shards gathered a bucket at a time on the learner ranks and streamed from learner rank 0 to
    each rollout worker over its own two-member process group (NCCL between two GPUs; gloo on CPU and for a
    worker colocated on learner rank 0's GPU, see :func:`pair_backend`). A pair group per worker: a restarted
    worker gets a new group (a new generation) without disturbing the others."""

    def __init__(self, bucket_mb: int = DEFAULT_BUCKET_MB):
        self.bucket_bytes = int(bucket_mb) * 2**20
        self._address: tuple[str, int] | None = None
        self._sender: str | None = None
        self._manifest: list[tuple[str, tuple[int, ...], str]] | None = None  # the learner's, read once
        self._generation: dict[int, int] = {}

    @classmethod
    def from_config(cls, trainer: Any) -> BucketedTransport:
        return cls(trainer.weight_sync_bucket_mb)

    def _open(self, learners: list[Any], workers: list[Any], indices: list[int]) -> None:
        import ray

        if self._address is None:
            self._address = tuple(ray.get(learners[0].address.remote()))
            self._sender = ray.get(learners[0].device_id.remote())
        addr, port = self._address
        receivers = ray.get([workers[i].device_id.remote() for i in indices])
        pairs = {}
        for i, receiver in zip(indices, receivers, strict=True):
            self._generation[i] = self._generation.get(i, -1) + 1
            pairs[i] = (f"rlvr-weights/w{i}/g{self._generation[i]}", pair_backend(self._sender, receiver))
        ray.get(
            [learners[0].open_weight_groups.remote(addr, port, pairs)]
            + [workers[i].open_weight_group.remote(addr, port, *pairs[i]) for i in indices]
        )

    def _stream(self, learners: list[Any], workers: list[Any], indices: list[int], version: int) -> None:
        import ray

        fresh = [i for i in indices if i not in self._generation]
        if fresh:
            self._open(learners, workers, fresh)
        if self._manifest is None:
            self._manifest = ray.get(learners[0].weight_manifest.remote())
        ray.get(
            [lr.stream_weights.remote(indices, self.bucket_bytes) for lr in learners]
            + [workers[i].receive_weights.remote(self._manifest, self.bucket_bytes, version) for i in indices]
        )

    def push(self, learners: list[Any], workers: list[Any], version: int) -> None:
        self._stream(learners, workers, list(range(len(workers))), version)

    def restore(self, learners: list[Any], workers: list[Any], index: int, version: int) -> None:
        self._open(learners, workers, [index])  # the old pair died with the worker's process
        self._stream(learners, workers, [index], version)


TRANSPORTS = {"object_store": ObjectStoreTransport, "bucketed": BucketedTransport}


class WeightSync:
    """Versioned weight sync from the learner ranks to the rollout workers.

    ``version`` counts the updates the workers' weights contain (0: the starting checkpoint); a restarted
    worker is given the current version's weights (:meth:`restore`)."""

    def __init__(self, learners: list[Any], workers: list[Any], transport: Transport | None = None):
        self.learners, self.workers = learners, workers
        self.transport = transport or ObjectStoreTransport()
        self.version = 0
        self.last_seconds = 0.0

    def push(self, version: int) -> float:
        """Load the learners' weights into every worker as ``version``; seconds taken."""
        t0 = time.perf_counter()
        self.transport.push(self.learners, self.workers, version)
        self.version = version
        self.last_seconds = time.perf_counter() - t0
        return self.last_seconds

    def restore(self, worker_index: int) -> None:
        """Give worker ``worker_index`` (just restarted from the starting checkpoint) the current weights."""
        if self.version > 0:
            self.transport.restore(self.learners, self.workers, worker_index, self.version)
