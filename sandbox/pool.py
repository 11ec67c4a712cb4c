"""A pool of warm, hardened containers, each running our job runner (sandbox/runner.py) as PID 1.

The host talks to each runner over the container's attached stdin/stdout (one JSON line per frame),
so a job costs no ``docker exec``. Each container runs one job at a time; the pool size is the
admission limit (about one running test per core). Containers are labelled, recycled after
``jobs_per_container`` jobs or any anomaly, reaped by label at start and at close, and created with
``StdinOnce`` so that if this process dies, the runner sees EOF, exits, and Docker removes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

import tenacity
from pydantic import BaseModel, ConfigDict, Field
from rlvr.sandbox.bwrap import BwrapWorker
from rlvr.sandbox.schema import ExecuteRequest
from rlvr.sandbox.verdict import Status
from rlvr.sandbox.worker import (  # noqa: F401  (LABEL_*, clip_json, docker_retry: part of this module's API)
    LABEL,
    LABEL_OWNER,
    LABEL_POOL,
    ContainerLost,
    Worker,
    clip_json,
    docker_retry,
)

log = logging.getLogger(__name__)


class PoolConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # docker: hardened containers (the default); bwrap: rootless bubblewrap sandboxes for hosts without
    # Docker (SLURM), same runner and root filesystem; the differences are listed in sandbox/README.md
    backend: Literal["docker", "bwrap"] = "docker"
    # rlvr: our allow-list (rlvr.sandbox.seccomp: what the runner and ordinary programs need; no io_uring,
    # userfaultfd, bpf, ptrace, namespaces...); default: Docker's default profile (bwrap: none)
    seccomp: Literal["rlvr", "default"] = "rlvr"
    size: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    image: str | None = None  # default: the content-hash tag from rlvr.sandbox.image
    pool_id: str | None = None  # default: random; labels this pool's containers
    cpus_per_container: float = Field(default=1.0, gt=0)
    pids_limit: int = Field(default=128, ge=16)
    tmpfs_mb: int = Field(default=128, ge=8)
    # The runner and harness live in the same memory cgroup as the program; this is their share.
    memory_overhead_mb: int = Field(default=96, ge=32)
    max_memory_limit_mb: int = Field(default=4096, ge=32)
    jobs_per_container: int = Field(default=500, ge=1)
    output_limit_bytes: int = Field(default=8 << 20, ge=1024)
    # stdout/stderr returned per test, in bytes of their JSON escaping (a NUL takes 6): comparison uses
    # up to output_limit_bytes
    return_output_bytes: int = Field(default=64 << 10, ge=0)
    fsize_limit_bytes: int = Field(default=32 << 20, ge=1024)
    nofile_limit: int = Field(default=256, ge=16)
    stack_limit_mb: int = Field(default=256, ge=8)
    # Wall-clock backstop per test = time_limit * wall_factor + wall_extra_s (CPU time is the verdict).
    wall_factor: float = Field(default=3.0, ge=1.0)
    wall_extra_s: float = Field(default=1.0, ge=0.0)
    max_queue: int = Field(default=4096, ge=0)  # waiting requests beyond this get "overloaded"
    retries_on_container_loss: int = Field(default=1, ge=0)
    # Parent cgroup for the containers (Docker's --cgroup-parent), e.g. to give the sandbox its own
    # CPU weight on a shared host or to account its CPU time separately.
    cgroup_parent: str | None = None
    # What one HTTP request may ask of the service (over a limit: 413 for sizes, 408 for a slow body,
    # 422 for counts). A response never exceeds max_response_bytes: each test's stdout/stderr are cut
    # to an equal share of it (and to return_output_bytes), measured as escaped JSON.
    max_body_bytes: int = Field(default=32 << 20, ge=1024)
    body_timeout_s: float = Field(default=60.0, gt=0)
    max_tests: int = Field(default=1000, ge=1)
    max_batch: int = Field(default=1024, ge=1)
    max_response_bytes: int = Field(default=16 << 20, ge=64 << 10)
    # decimal digits of an integer in a request (Python's default 4300 is lower than some tests need;
    # parsing is quadratic in the digits, so it stays bounded: 50k digits parse in about 15 ms)
    max_int_digits: int = Field(default=50_000, ge=640)
    # a Docker API call that takes longer has stalled: it is retried with backoff (tenacity), and at start
    # the service stays up, answering /healthz with 503 and the reason, until the pool is warm
    docker_timeout_s: float = Field(default=120.0, gt=0)


class Overloaded(RuntimeError):
    """More requests are waiting than ``max_queue``."""


class RequestRejected(ValueError):
    """A request that is valid JSON but not acceptable for this pool (message names the field)."""


def _process_start_ticks(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return "?"


def owner_tag(pid: int | None = None) -> str:
    pid = pid or os.getpid()
    return f"{socket.gethostname()}:{pid}:{_process_start_ticks(pid)}"


def owner_alive(tag: str) -> bool:
    """Whether the service that labelled a container still runs (pid reuse is told apart by start time)."""
    try:
        host, pid, ticks = tag.rsplit(":", 2)
    except ValueError:
        return False
    if host != socket.gethostname():
        return True  # another machine's container on a shared engine: not ours to judge
    return _process_start_ticks(int(pid)) == ticks


def reap_containers(client, pool_id: str | None = None, only_orphans: bool = False) -> int:
    """Remove sandbox containers: one pool's, or (``only_orphans``) those whose owner process is gone."""
    filters = {"label": [f"{LABEL_POOL}={pool_id}"] if pool_id else [LABEL]}
    removed = 0
    for c in client.containers.list(all=True, filters=filters):
        if only_orphans and owner_alive(c.labels.get(LABEL_OWNER, "")):
            continue
        with contextlib.suppress(Exception):
            c.remove(force=True)
            removed += 1
    return removed


class SandboxPool:
    """Async front of the worker containers: admission control, retries on container loss, metrics."""

    def __init__(self, config: PoolConfig | None = None, **overrides):
        self.config = (config or PoolConfig()).model_copy(update=overrides) if overrides else (
            config or PoolConfig())
        PoolConfig.model_validate(self.config.model_dump())
        self.pool_id = self.config.pool_id or secrets.token_hex(4)
        self.owner = owner_tag()
        self.client = None
        self.image = None
        self.workers: list[Worker] = []
        self._idle: asyncio.Queue[Worker] | None = None
        self._executor = ThreadPoolExecutor(max_workers=self.config.size + 2, thread_name_prefix="sbx")
        self.waiting = 0
        self.running = 0
        self.counters: dict[str, int] = {"container_restarts": 0, "container_losses": 0}
        self._lock = threading.Lock()
        self.on_result = None  # hook(response, seconds) for metrics
        self._closed = False
        self.ready = False  # all containers started once; /healthz answers 503 until then
        self.start_error: str | None = None  # the last reason start-up is still retrying

    def metrics_inc(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.counters[key] = self.counters.get(key, 0) + n

    async def start_with_retries(self) -> None:
        """:meth:`start`, retried with backoff (1 s -> 30 s) for as long as it fails: a Docker engine that
        is slow, stalled or restarting delays readiness (``start_error`` says why) but never ends the
        service."""
        async for attempt in tenacity.AsyncRetrying(
                wait=tenacity.wait_exponential(multiplier=1, max=30), retry=tenacity.retry_if_exception_type(Exception),
                before_sleep=self._log_start_failure):
            with attempt:
                if self._closed:
                    return
                await self.start()

    def _log_start_failure(self, state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception()
        self.start_error = f"{type(exc).__name__}: {exc}"
        log.warning("sandbox pool start failed (attempt %d), retrying: %s", state.attempt_number, self.start_error)

    async def start(self) -> None:
        if self.config.backend == "bwrap":
            return await self._start_bwrap()
        from rlvr.sandbox.image import docker_client, ensure_image, image_tag

        loop = asyncio.get_running_loop()
        self.client = await loop.run_in_executor(self._executor, docker_client, self.config.docker_timeout_s)
        self.image = self.config.image or image_tag()
        if not self.config.image:
            await loop.run_in_executor(self._executor, lambda: ensure_image(log=log.info))
        n = await loop.run_in_executor(self._executor,
                                       lambda: reap_containers(self.client, only_orphans=True))
        if n:
            log.info("reaped %d orphaned sandbox containers", n)
        await self._start_workers(Worker)

    async def _start_bwrap(self) -> None:
        from rlvr.sandbox.image import ensure_rootfs

        loop = asyncio.get_running_loop()
        rootfs = self.config.image or str(await loop.run_in_executor(self._executor, lambda: ensure_rootfs(log=log.info)))
        self.image = rootfs  # a folder: the unpacked root filesystem
        await self._start_workers(BwrapWorker)

    async def _start_workers(self, cls: type[Worker]) -> None:
        loop = asyncio.get_running_loop()
        self._idle = asyncio.Queue()
        self.workers = [cls(self, i) for i in range(self.config.size)]
        try:
            await asyncio.gather(*(loop.run_in_executor(self._executor, w.start) for w in self.workers))
        except Exception:
            await loop.run_in_executor(self._executor, lambda: [w.stop() for w in self.workers])
            raise
        for w in self.workers:
            self._idle.put_nowait(w)
        self.ready, self.start_error = True, None

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(self._executor, w.stop) for w in self.workers))
        if self.client is not None:
            await loop.run_in_executor(self._executor, lambda: reap_containers(self.client, self.pool_id))
        self._executor.shutdown(wait=False)

    async def __aenter__(self) -> SandboxPool:
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    def check(self, req: ExecuteRequest) -> None:
        if req.memory_limit_mb > self.config.max_memory_limit_mb:
            raise RequestRejected(f"memory_limit_mb: {req.memory_limit_mb} is above this pool's maximum "
                                  f"{self.config.max_memory_limit_mb}")
        if len(req.tests) > self.config.max_tests:
            raise RequestRejected(f"tests: {len(req.tests)} tests are more than this service's maximum "
                                  f"{self.config.max_tests} per request")

    async def execute(self, req: ExecuteRequest, response_bytes: int | None = None) -> dict:
        """Run one request to a response; container trouble becomes a retry, then ``sandbox_error``.

        The response's size stays within ``response_bytes`` (default: the config's max_response_bytes).
        """
        self.check(req)
        budget = response_bytes or self.config.max_response_bytes
        if not self.ready:
            raise Overloaded("not ready: the pool is starting" + (f" ({self.start_error})" if self.start_error else ""))
        if self.waiting >= self.config.max_queue and self._idle.empty():
            raise Overloaded(f"{self.waiting} requests already waiting")
        t0 = time.monotonic()
        attempts = self.config.retries_on_container_loss + 1
        response = None
        for attempt in range(attempts):
            self.waiting += 1
            try:
                worker = await self._idle.get()
            finally:
                self.waiting -= 1
            self.running += 1
            keep = False
            try:
                response, keep = await asyncio.get_running_loop().run_in_executor(
                    self._executor, worker.run_job, req, budget)
            except ContainerLost as exc:
                self.metrics_inc("container_losses")
                log.warning("container %d lost (attempt %d/%d): %s", worker.index, attempt + 1, attempts, exc)
                response = _sandbox_error(req, str(exc))
            except Exception as exc:  # docker API trouble etc.: never let a request kill the service
                log.exception("worker %d failed", worker.index)
                response = _sandbox_error(req, f"{type(exc).__name__}: {exc}")
            finally:
                self.running -= 1
                self._release(worker, healthy=keep)
            if response["status"] != Status.SANDBOX_ERROR.value:
                break
        if self.on_result:
            self.on_result(req, response, time.monotonic() - t0)
        return response

    def _release(self, worker: Worker, healthy: bool) -> None:
        if healthy:
            self._idle.put_nowait(worker)
            return

        async def heal():
            loop = asyncio.get_running_loop()
            while not self._closed:
                try:
                    await loop.run_in_executor(self._executor, worker.restart)
                    break
                except Exception:
                    log.exception("restarting container %d failed; retrying", worker.index)
                    await asyncio.sleep(1.0)
            if not self._closed:
                self._idle.put_nowait(worker)

        asyncio.get_running_loop().create_task(heal())

    async def execute_batch(self, reqs: list[ExecuteRequest]) -> list[dict]:
        """Responses in order; one request's failure is its own ``sandbox_error``, never the batch's."""
        share = max(self.config.max_response_bytes // max(len(reqs), 1), 4096)

        async def one(r: ExecuteRequest) -> dict:
            try:
                return await self.execute(r, share)
            except (RequestRejected, Overloaded):
                raise
            except Exception as exc:
                log.exception("request failed in a batch")
                return _sandbox_error(r, f"{type(exc).__name__}: {exc}")

        return list(await asyncio.gather(*(one(r) for r in reqs)))

    def healthy_workers(self) -> int:
        return sum(1 for w in self.workers if w.container_id is not None)

    def container_ids(self) -> list[str]:
        return [w.container_id for w in self.workers if w.container_id]


def _sandbox_error(req: ExecuteRequest, message: str) -> dict:
    total = len(req.selected_tests()) or 1
    return {"status": Status.SANDBOX_ERROR.value, "passed": 0, "total": total,
            "tests": [], "message": clip_json(message, 2000)}
