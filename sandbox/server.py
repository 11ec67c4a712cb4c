"""The HTTP face of the sandbox: FastAPI app over one :class:`~rlvr.sandbox.pool.SandboxPool`.

``POST /v1/execute`` and ``POST /v1/execute/batch`` run programs; ``GET /healthz`` and ``GET /metrics``
(Prometheus text) observe the service. A malformed request gets a 422 whose ``detail`` names the field;
an overloaded pool answers 503; nothing a request contains can take the service down.
"""

from __future__ import annotations

import logging
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
        await pool.start()
        log.info("sandbox pool %s up: %d containers of %s", pool.pool_id, pool.config.size, pool.image)
        try:
            yield
        finally:
            await pool.close()

    app = FastAPI(title="rlvr sandbox", version="1", lifespan=lifespan)
    app.state.pool = pool

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        parts = []
        for e in exc.errors():
            loc = ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body"
            parts.append(f"{loc}: {str(e.get('msg', '')).removeprefix('Value error, ')}")
        return JSONResponse(status_code=422, content={"detail": "; ".join(parts)})

    @app.exception_handler(RequestRejected)
    async def _rejected(request: Request, exc: RequestRejected):
        return JSONResponse(status_code=422, content={"detail": str(exc)})

    @app.exception_handler(Overloaded)
    async def _overloaded(request: Request, exc: Overloaded):
        return JSONResponse(status_code=503, content={"detail": f"overloaded: {exc}"})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unexpected error")
        return JSONResponse(status_code=500, content={"detail": f"{type(exc).__name__}: {exc}"})

    # Responses are plain JSON-ready dicts: JSONResponse skips FastAPI's per-field re-encoding.
    @app.post("/v1/execute")
    async def execute(req: ExecuteRequest) -> JSONResponse:
        return JSONResponse(await pool.execute(req))

    @app.post("/v1/execute/batch")
    async def execute_batch(batch: BatchRequest) -> JSONResponse:
        for i, r in enumerate(batch.requests):
            try:
                pool.check(r)
            except RequestRejected as exc:
                raise RequestRejected(f"requests.{i}.{exc}") from None
        return JSONResponse({"results": await pool.execute_batch(batch.requests)})

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"ok": pool.healthy_workers() > 0, "workers": pool.config.size,
                "workers_up": pool.healthy_workers(), "idle": pool._idle.qsize() if pool._idle else 0,
                "queue_depth": pool.waiting, "image": pool.image, "pool_id": pool.pool_id,
                "time": time.time()}

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(registry).decode(), media_type="text/plain; version=0.0.4")

    return app

