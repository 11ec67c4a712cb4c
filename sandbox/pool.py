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
import json
import logging
import os
import re
import secrets
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

import tenacity
from pydantic import BaseModel, ConfigDict, Field
from rlvr.sandbox.candidate import json_to_tagged
from rlvr.sandbox.languages import get_language
from rlvr.sandbox.schema import ExecuteRequest
from rlvr.sandbox.seccomp import docker_profile
from rlvr.sandbox.verdict import Status, classify, decode_output, overall_status

log = logging.getLogger(__name__)

LABEL = "rlvr.sandbox"
LABEL_POOL = "rlvr.sandbox.pool"
LABEL_OWNER = "rlvr.sandbox.owner"  # "hostname:pid:process-start-ticks" of the service that owns it
HERE = Path(__file__).resolve().parent
RUNNER_SOURCE = (HERE / "runner.py").read_text()
CANDIDATE_SOURCE = (HERE / "candidate.py").read_text()
CANDIDATE_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}


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


def _transient(exc: BaseException) -> bool:
    """A Docker API failure worth retrying: a timeout, a dropped connection, a 5xx (a stalled or
    restarting engine), not a 4xx (a request the engine will refuse again)."""
    import docker
    import requests

    if isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout, TimeoutError)):
        return True
    if isinstance(exc, docker.errors.APIError):
        return exc.status_code is None or exc.status_code >= 500
    return False


def docker_retry(seconds: float = 60.0):
    """Retry a Docker API call on transient failures, backing off 0.2 s -> 5 s, for up to ``seconds``."""
    return tenacity.retry(
        retry=tenacity.retry_if_exception(_transient), stop=tenacity.stop_after_delay(seconds),
        wait=tenacity.wait_exponential(multiplier=0.2, max=5), reraise=True,
        before_sleep=lambda rs: log.warning("Docker API: %s; retrying", rs.outcome.exception()))


class ContainerLost(RuntimeError):
    """The container died or stopped answering mid-job (not the program's verdict)."""


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


class DockerStream:
    """Frames over a container's attach socket (Docker multiplexes stdout/stderr with 8-byte headers)."""

    def __init__(self, sock):
        self.sock = sock
        self.out = bytearray()
        self.err_tail = bytearray()
        self.raw = bytearray()

    def send(self, obj: dict) -> None:
        try:
            self.sock.sendall((json.dumps(obj) + "\n").encode())
        except OSError as exc:
            raise ContainerLost(f"write to runner failed: {exc}") from exc

    def recv(self, deadline: float) -> dict:
        while True:
            i = self.out.find(b"\n")
            if i >= 0:
                line = bytes(self.out[:i])
                del self.out[: i + 1]
                try:
                    return json.loads(line)
                except ValueError as exc:
                    raise ContainerLost(f"garbled frame from runner: {line[:200]!r}") from exc
            left = deadline - time.monotonic()
            if left <= 0:
                raise ContainerLost("runner did not answer in time")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(1 << 20)
            except TimeoutError as exc:
                raise ContainerLost("runner did not answer in time") from exc
            except OSError as exc:
                raise ContainerLost(f"read from runner failed: {exc}") from exc
            if not chunk:
                raise ContainerLost("container exited: " + self.err_tail.decode(errors="replace")[-500:])
            self.raw.extend(chunk)
            self._demux()

    def _demux(self) -> None:
        while len(self.raw) >= 8:
            stream, size = self.raw[0], int.from_bytes(self.raw[4:8], "big")
            if len(self.raw) < 8 + size:
                return
            payload = self.raw[8: 8 + size]
            del self.raw[: 8 + size]
            if stream == 1:
                self.out.extend(payload)
            else:
                self.err_tail = (self.err_tail + payload)[-8192:]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


class Worker:
    """One container and the attach socket to its runner. Used by one job at a time."""

    def __init__(self, pool: SandboxPool, index: int):
        self.pool, self.index = pool, index
        self.container_id: str | None = None
        self.stream: DockerStream | None = None
        self.jobs = 0
        self.memory_mb: int | None = None
        self.seq = 0

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        cfg, api = self.pool.config, self.pool.client.api
        mem = cfg.memory_overhead_mb + 512
        host_config = api.create_host_config(
            network_mode="none",
            read_only=True,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"] + (
                [f"seccomp={json.dumps(docker_profile())}"] if cfg.seccomp == "rlvr" else []),
            pids_limit=cfg.pids_limit,
            mem_limit=f"{mem}m",
            memswap_limit=f"{mem}m",
            nano_cpus=int(cfg.cpus_per_container * 1e9),
            tmpfs={"/tmp": f"rw,exec,nosuid,nodev,size={cfg.tmpfs_mb}m,mode=1777"},
            shm_size="16m",
            ipc_mode="private",
            auto_remove=True,
            cgroup_parent=cfg.cgroup_parent,
            # every runner reply passes through the container's stdout: no json-file log of it on the
            # host's disk (attach works with any log driver)
            log_config={"type": "none", "config": {}},
        )
        created = docker_retry()(api.create_container)(
            self.pool.image,
            # -E -s -P (isolated mode but for -E) and no site: the environment below is all ours, and its
            # hash seed is shared by the runner (whose harness runs assert tests) and the zygote (whose
            # children run the program), so sets iterate in the same order on both sides, as in one
            # plain Python process
            command=["/usr/bin/python3", "-s", "-P", "-S", "-B", "-c", RUNNER_SOURCE, CANDIDATE_SOURCE],
            user="65534:65534",
            working_dir="/tmp",
            environment={"PATH": CANDIDATE_ENV["PATH"], "LANG": "C.UTF-8",
                         "PYTHONHASHSEED": str(secrets.randbelow(1 << 32))},
            stdin_open=True,
            detach=False,  # sets StdinOnce: our socket closing means EOF for the runner
            hostname="sandbox",
            labels={LABEL: "1", LABEL_POOL: self.pool.pool_id, LABEL_OWNER: self.pool.owner},
            host_config=host_config,
            name=f"rlvr-sbx-{self.pool.pool_id}-{self.index}-{secrets.token_hex(3)}",
        )
        self.container_id = created["Id"]
        sock = docker_retry()(api.attach_socket)(self.container_id, params={"stdin": 1, "stdout": 1, "stderr": 1,
                                                                            "stream": 1})
        raw = getattr(sock, "_sock", sock)
        self.stream = DockerStream(raw)
        self._sock_holder = sock  # keep the SocketIO alive so the raw socket is not closed under us
        docker_retry()(api.start)(self.container_id)
        self.memory_mb = 512
        self.jobs = 0
        self.stream.send({"op": "ping", "nonce": "ping", "seq": 0})
        reply = self.stream.recv(time.monotonic() + 30)
        if reply.get("op") != "ping" or reply.get("pid") != 1:
            raise ContainerLost(f"runner did not start properly: {reply}")

    def stop(self) -> None:
        if self.stream:
            self.stream.close()
            self.stream = None
        if self.container_id:
            with contextlib.suppress(Exception):
                self.pool.client.api.remove_container(self.container_id, force=True)
            self.container_id = None

    def restart(self) -> None:
        self.stop()
        self.pool.metrics_inc("container_restarts")
        self.start()

    def alive(self) -> bool:
        """Whether the idle container still answers: its attach socket neither closed nor holds data
        (an idle runner writes nothing). Costs one non-blocking peek."""
        sock = self.stream.sock if self.stream else None
        if sock is None:
            return False
        try:
            sock.setblocking(False)
            try:
                sock.recv(1, socket.MSG_PEEK)  # returns only at EOF (b"") or with unasked-for bytes
                return False
            finally:
                sock.setblocking(True)
        except BlockingIOError:  # nothing to read: the runner waits for a frame
            return True
        except OSError:
            return False

    def begin_extra(self) -> dict:
        """Backend-specific fields of a job's begin frame."""
        return {}

    def set_memory(self, memory_mb: int) -> None:
        if self.memory_mb == memory_mb:
            return
        total = memory_mb + self.pool.config.memory_overhead_mb
        docker_retry()(self.pool.client.api.update_container)(self.container_id, mem_limit=f"{total}m",
                                                              memswap_limit=f"{total}m")
        self.memory_mb = memory_mb

    # -- one job ---------------------------------------------------------------------------------
    def _send(self, frame: dict, nonce: str) -> int:
        self.seq += 1
        frame.update(nonce=nonce, seq=self.seq)
        self.stream.send(frame)
        return self.seq

    def _call(self, frame: dict, nonce: str, timeout: float) -> dict:
        return self._recv(nonce, self._send(frame, nonce), timeout)

    def _recv(self, nonce: str, seq: int, timeout: float) -> dict:
        reply = self.stream.recv(time.monotonic() + timeout)
        if reply.get("nonce") != nonce or reply.get("seq") != seq:
            raise ContainerLost(f"runner reply out of order or without our nonce: {str(reply)[:200]}")
        if reply.get("op") == "error":
            raise ContainerLost("runner error: " + str(reply.get("message"))[-1000:])
        return reply

    def run_job(self, req: ExecuteRequest, response_bytes: int = 16 << 20) -> tuple[dict, bool]:
        """Run one request; returns (response, container_still_good)."""
        cfg = self.pool.config
        if not self.alive():  # it died while idle: a fresh one, before the request can land on it
            log.warning("container %d found dead before use; restarting it", self.index)
            self.restart()
        n = max(len(req.selected_tests()), 1)
        # each test's stdout and stderr (and the compile log) get an equal share of the response
        self._clip_bytes = max(256, min(cfg.return_output_bytes, (response_bytes - 2048) // (2 * n + 1) - 512))
        lang = get_language(req.language)
        tests = req.selected_tests()
        kind = req.kind
        tl = req.time_limit_s
        wall = tl * cfg.wall_factor + cfg.wall_extra_s
        nonce = secrets.token_hex(16)
        self.set_memory(req.memory_limit_mb)
        begin = {
            "op": "begin", "kind": kind, "source_name": lang.source_name, "code": req.code,
            "compile": list(lang.compile) if lang.compile else None, "run": list(lang.run),
            "run_python": lang.run_python,
            "time_limit_s": tl, "wall_limit_s": wall, "compile_time_limit_s": lang.compile_time_limit_s,
            "output_limit": cfg.output_limit_bytes, "fsize_limit": cfg.fsize_limit_bytes,
            "memory_limit": req.memory_limit_mb << 20,
            "nofile_limit": cfg.nofile_limit, "stack_limit": cfg.stack_limit_mb << 20,
            "env": dict(CANDIDATE_ENV, **lang.env), "n_tests": max(1, len(tests)),
            **self.begin_extra(),
        }
        frames = [self._test_frame(t) for t in tests] or [{"op": "test", "stdin": req.stdin}]
        per_test_timeout = 2 * wall + 15  # the runner's own backstops fire long before this
        # Without fail_fast no decision depends on a verdict: send the whole job at once and read the
        # replies as they come (the runner answers tests behind a failed compile with "not_run").
        pipelined = not req.fail_fast
        seqs = []
        begin_seq = self._send(begin, nonce)
        begin_budget = lang.compile_time_limit_s * 3 + 30
        if pipelined:
            seqs = [self._send(f, nonce) for f in frames] + [self._send({"op": "end"}, nonce)]
            # the runner coalesces the replies of a pipelined job: bound the whole job, not each reply
            job_deadline = time.monotonic() + begin_budget + len(frames) * per_test_timeout + 30

            def left() -> float:
                return job_deadline - time.monotonic()
        started = self._recv(nonce, begin_seq, left() if pipelined else begin_budget)
        self.jobs += 1
        compile_info = None
        if started.get("compile") is not None:
            c = started["compile"]
            compile_info = {"status": "ok" if started.get("ok") else Status.COMPILE_ERROR.value,
                            "cpu_time_s": c.get("cpu_s"), "wall_time_s": c.get("wall_s"),
                            "stderr": self._clip(decode_output(c.get("stderr_b64", "")))}
        results: list[dict] = []
        statuses: list[Status] = []
        for i, f in enumerate(frames):
            if pipelined:
                raw = self._recv(nonce, seqs[i], left())
            elif not started.get("ok"):
                break
            else:
                raw = self._recv(nonce, self._send(f, nonce), per_test_timeout)
            if not started.get("ok"):
                continue
            test = tests[i] if tests else None
            try:
                status, message = classify(raw, test.model_dump() if test else None, compare=req.compare,
                                           float_tol=req.float_tol, mle_markers=lang.mle_markers)
            except Exception as exc:  # whatever the program produced, it is the program's verdict
                log.exception("classifying a test result failed")
                status, message = Status.WRONG_ANSWER, f"could not judge the result: {type(exc).__name__}"
            statuses.append(status)
            results.append(self._test_result(status, message, raw))
            if req.fail_fast and status != Status.ACCEPTED:
                break
        overall = overall_status(statuses) if started.get("ok") else Status.COMPILE_ERROR
        end = self._recv(nonce, seqs[-1], left()) if pipelined else self._call({"op": "end"}, nonce, 30)
        clean = bool(end.get("clean")) and self.jobs < cfg.jobs_per_container
        if not end.get("clean"):
            log.warning("container %s dirty after job: %s", self.index, end.get("problems"))
        passed = sum(s == Status.ACCEPTED for s in statuses)
        total = len(tests) if tests else 1
        response = {"status": overall.value, "passed": passed, "total": total, "tests": results}
        if compile_info is not None:
            response["compile"] = compile_info
        return response, clean

    @staticmethod
    def _test_frame(test) -> dict:
        if test.type == "stdio":
            return {"op": "test", "stdin": test.stdin}
        if test.type == "call":
            return {"op": "test", "fn_name": test.fn_name, "args": json_to_tagged(test.args)}
        return {"op": "test", "code": test.code}

    def _clip(self, text: str) -> str:
        return clip_json(text, getattr(self, "_clip_bytes", self.pool.config.return_output_bytes))

    def _test_result(self, status: Status, message: str, raw: dict) -> dict:
        return {
            "status": status.value,
            "cpu_time_s": float(raw.get("cpu_s") or 0.0),
            "wall_time_s": float(raw.get("wall_s") or 0.0),
            "stdout": self._clip(decode_output(raw.get("stdout_b64", ""))),
            "stderr": self._clip(decode_output(raw.get("stderr_b64", ""))),
            "message": clip_json(str(message), 2000),
        }


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
        from rlvr.sandbox.bwrap import BwrapWorker
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


_SURROGATE = re.compile("[\ud800-\udfff]")


def clip_json(text: str, limit: int) -> str:
    """``text`` with lone surrogates (which no UTF-8 response can carry) replaced by U+FFFD, cut so
    that its JSON escaping (control characters grow to 6 bytes), quotes aside, takes at most ``limit``
    bytes."""
    text = _SURROGATE.sub("\ufffd", text[:limit])

    def size(t: str) -> int:
        return len(json.dumps(t, ensure_ascii=False).encode("utf-8")) - 2

    if 6 * len(text) <= limit or size(text) <= limit:
        return text
    lo, hi = 0, len(text)  # the longest prefix whose escaped form fits
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if size(text[:mid]) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo]


def _sandbox_error(req: ExecuteRequest, message: str) -> dict:
    total = len(req.selected_tests()) or 1
    return {"status": Status.SANDBOX_ERROR.value, "passed": 0, "total": total,
            "tests": [], "message": clip_json(message, 2000)}
