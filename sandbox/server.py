"""The HTTP face of the sandbox: FastAPI app over one :class:`~rlvr.sandbox.pool.SandboxPool`.

``POST /v1/execute`` and ``POST /v1/execute/batch`` run programs; ``GET /healthz`` and ``GET /metrics``
(Prometheus text) observe the service. A malformed request gets a 422 whose ``detail`` names the field;
a body over ``max_body_bytes`` gets a 413, one that does not arrive within ``body_timeout_s`` a 408;
an overloaded pool answers 503; nothing a request contains can take the service down.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from rlvr.sandbox.pool import Overloaded, PoolConfig, RequestRejected, SandboxPool
from rlvr.sandbox.schema import BatchRequest, ExecuteRequest

log = logging.getLogger(__name__)


class SafeJSONResponse(JSONResponse):
    """JSON whose strings are always valid UTF-8 (a lone surrogate that slipped through becomes '?')."""

    def render(self, content) -> bytes:
        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "replace")


async def _reply(send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class BodyLimits:
    """ASGI middleware: reads a request's whole body before the app sees it, within ``max_bytes``
    (else 413, also when Content-Length says so up front) and ``timeout_s`` (else 408: a client that
    sends its body slowly, or stops, cannot hold a connection and its buffer open)."""

    def __init__(self, app, max_bytes: int, timeout_s: float):
        self.app, self.max_bytes, self.timeout_s = app, max_bytes, timeout_s

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or ()).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_bytes:
            return await _reply(send, 413, f"request body of {int(length)} bytes is over this service's "
                                           f"limit of {self.max_bytes} bytes (max_body_bytes)")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        chunks, size, more = [], 0, True
        while more:
            try:
                msg = await asyncio.wait_for(receive(), max(deadline - loop.time(), 0.0))
            except TimeoutError:
                return await _reply(send, 408, f"request body not received within {self.timeout_s:g} s "
                                               "(body_timeout_s)")
            if msg["type"] == "http.disconnect":
                return None
            chunk = msg.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return await _reply(send, 413, f"request body is over this service's limit of "
                                               f"{self.max_bytes} bytes (max_body_bytes)")
            chunks.append(chunk)
            more = msg.get("more_body", False)
        body, replayed = b"".join(chunks), False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)


class _PoolCollector:
    """Gauges and counters read straight from the pool's state at scrape time."""

    def __init__(self, pool: SandboxPool):
        self.pool = pool

    def collect(self):
        p = self.pool
        yield GaugeMetricFamily("sandbox_queue_depth", "Requests waiting for a container", value=p.waiting)
        yield GaugeMetricFamily("sandbox_running", "Requests running in a container", value=p.running)
        yield GaugeMetricFamily("sandbox_workers", "Containers in the pool", value=p.config.size)
        yield GaugeMetricFamily("sandbox_workers_up", "Containers currently started",
                                value=p.healthy_workers())
        yield CounterMetricFamily("sandbox_container_restarts", "Containers recycled",
                                  value=p.counters.get("container_restarts", 0))
        yield CounterMetricFamily("sandbox_container_losses", "Containers lost mid-job",
                                  value=p.counters.get("container_losses", 0))


def create_app(config: PoolConfig | None = None) -> FastAPI:
    pool = SandboxPool(config or PoolConfig())
    if hasattr(sys, "set_int_max_str_digits"):  # big integers in tests and answers, still bounded
        sys.set_int_max_str_digits(pool.config.max_int_digits)
    registry = CollectorRegistry()
    executions = Counter("sandbox_executions", "Programs executed", ["language", "status"], registry=registry)
    tests = Counter("sandbox_tests", "Tests executed", ["status"], registry=registry)
    latency = Histogram("sandbox_execution_seconds", "Time from admission to verdict", ["language"],
                        registry=registry,
                        buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120))
    registry.register(_PoolCollector(pool))

    def on_result(req: ExecuteRequest, response: dict, seconds: float) -> None:
        executions.labels(req.language, response["status"]).inc()
        for t in response.get("tests", []):
            tests.labels(t["status"]).inc()
        latency.labels(req.language).observe(seconds)

    pool.on_result = on_result

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # The HTTP side is up at once; the pool starts behind it, retrying while the Docker engine is
        # slow or away (GET /healthz: 503 with the reason until it is ready).
        async def start() -> None:
            await pool.start_with_retries()
            if pool.ready:
                log.info("sandbox pool %s up: %d containers of %s", pool.pool_id, pool.config.size, pool.image)

        starting = asyncio.get_running_loop().create_task(start())
        try:
            yield
        finally:
            starting.cancel()
            await pool.close()

    app = FastAPI(title="rlvr sandbox", version="1", lifespan=lifespan, default_response_class=SafeJSONResponse)
    app.state.pool = pool
    app.add_middleware(BodyLimits, max_bytes=pool.config.max_body_bytes, timeout_s=pool.config.body_timeout_s)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        parts = []
        for e in exc.errors():
            loc = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"
            parts.append(f"{loc}: {str(e.get('msg', '')).removeprefix('Value error, ')}")
        return SafeJSONResponse(status_code=422, content={"detail": "; ".join(parts)})

    @app.exception_handler(RequestRejected)
    async def _rejected(request: Request, exc: RequestRejected):
        return SafeJSONResponse(status_code=422, content={"detail": str(exc)})

    @app.exception_handler(Overloaded)
    async def _overloaded(request: Request, exc: Overloaded):
        return SafeJSONResponse(status_code=503, content={"detail": f"overloaded: {exc}"})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unexpected error")
        return SafeJSONResponse(status_code=500, content={"detail": f"{type(exc).__name__}: {exc}"})

    # Responses are plain JSON-ready dicts: JSONResponse skips FastAPI's per-field re-encoding.
    @app.post("/v1/execute")
    async def execute(req: ExecuteRequest) -> SafeJSONResponse:
        return SafeJSONResponse(await pool.execute(req))

    @app.post("/v1/execute/batch")
    async def execute_batch(batch: BatchRequest) -> SafeJSONResponse:
        if len(batch.requests) > pool.config.max_batch:
            raise RequestRejected(f"requests: {len(batch.requests)} requests are more than this service's "
                                  f"maximum {pool.config.max_batch} per batch")
        for i, r in enumerate(batch.requests):
            try:
                pool.check(r)
            except RequestRejected as exc:
                raise RequestRejected(f"requests.{i}.{exc}") from None
        return SafeJSONResponse({"results": await pool.execute_batch(batch.requests)})

    @app.get("/healthz")
    async def healthz() -> SafeJSONResponse:
        ok = pool.ready and pool.healthy_workers() > 0
        body = {"ok": ok, "ready": pool.ready, "workers": pool.config.size,
                "workers_up": pool.healthy_workers(), "idle": pool._idle.qsize() if pool._idle else 0,
                "queue_depth": pool.waiting, "image": pool.image, "pool_id": pool.pool_id,
                "time": time.time()}
        if not pool.ready:
            body["detail"] = "starting" + (f": {pool.start_error}" if pool.start_error else "")
        return SafeJSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(registry).decode(), media_type="text/plain; version=0.0.4")

    return app

