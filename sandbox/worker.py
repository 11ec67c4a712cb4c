"""One warm sandbox of the pool and the frames to its runner: :class:`Worker` (a hardened Docker
container, its attach stream) and what it shares with other backends (:mod:`rlvr.sandbox.bwrap`): the
runner and candidate sources handed to every sandbox, the environment of programs, the framing over a
stream, one job's request -> runner frames -> verdicts, and the size-bounded, UTF-8-safe response text.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import secrets
import socket
import time
from pathlib import Path
from typing import Any

import tenacity
from rlvr.sandbox.candidate import json_to_tagged
from rlvr.sandbox.languages import get_language
from rlvr.sandbox.schema import ExecuteRequest
from rlvr.sandbox.seccomp import docker_profile
from rlvr.sandbox.verdict import Status, classify, decode_output, overall_status

log = logging.getLogger("rlvr.sandbox.pool")

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

    def __init__(self, pool: Any, index: int):  # pool: the owning rlvr.sandbox.pool.SandboxPool
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
        self.handshake()

    def handshake(self) -> None:
        """A fresh runner on ``self.stream``: no jobs yet, and it must answer a ping as PID 1."""
        self.jobs = 0
        self.stream.send({"op": "ping", "nonce": "ping", "seq": 0})
        reply = self.stream.recv(time.monotonic() + 30)
        if reply.get("op") != "ping" or reply.get("pid") != 1:
            raise ContainerLost(f"runner of {self.container_id} did not start properly: {reply}")

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
