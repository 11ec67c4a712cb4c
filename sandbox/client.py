"""Python clients for the sandbox service (sync and asyncio).

Both spread requests over a list of server URLs (replicas), retry (tenacity, exponential backoff,
each attempt on the next replica) only on transport failures (connection refused/reset, timeouts) and
on 502/503/504 answers, never on a 4xx or on a verdict, and bound every call by a deadline
(``timeout_s``, across all attempts). A request that is wrong gets
:class:`SandboxRequestError` with the server's message naming the field.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from tenacity import AsyncRetrying, RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

RETRY_STATUS = frozenset({502, 503, 504})


class SandboxError(RuntimeError):
    """Base class of client errors."""


class SandboxRequestError(SandboxError):
    """The server rejected the request (4xx); retrying would not help."""

    def __init__(self, status_code: int, detail: str):
        super().__init__(f"HTTP {status_code}: {detail}")
        self.status_code, self.detail = status_code, detail


class SandboxUnavailable(SandboxError):
    """No server answered within the retries and the deadline."""


def _normalize(urls: list[str] | str) -> list[str]:
    if isinstance(urls, str):
        urls = [u for u in urls.replace(",", " ").split() if u]
    urls = [u.rstrip("/") for u in urls]
    if not urls:
        raise ValueError("SandboxClient needs at least one server URL")
    return urls


def _detail(resp: httpx.Response) -> str:
    try:
        body = resp.json()
        return str(body.get("detail", body)) if isinstance(body, dict) else str(body)
    except ValueError:
        return resp.text[:2000]


class _Policy:
    """URL rotation, attempt count and deadline shared by both clients."""

    def __init__(self, urls, timeout_s: float, retries: int, backoff_s: float, batch_chunk: int):
        self.urls = _normalize(urls)
        self.timeout_s, self.retries, self.backoff_s = float(timeout_s), int(retries), backoff_s
        self.batch_chunk = batch_chunk
        self._rr = itertools.count()
        self._lock = threading.Lock()

    def next_url(self) -> str:
        with self._lock:
            return self.urls[next(self._rr) % len(self.urls)]

    def chunks(self, requests: list[dict]) -> list[list[dict]]:
        # at least one chunk per server, so a batch is spread over all replicas
        n = max(len(self.urls), -(-len(requests) // self.batch_chunk))
        size = max(1, -(-len(requests) // n))
        return [requests[i: i + size] for i in range(0, len(requests), size)]

    def handle(self, resp: httpx.Response):
        """The JSON body; :class:`SandboxRequestError` on a 4xx (final); :class:`_Retryable` on 502-504."""
        if resp.status_code in RETRY_STATUS:
            raise _Retryable(f"HTTP {resp.status_code}: {_detail(resp)}")
        if resp.status_code >= 400:
            raise SandboxRequestError(resp.status_code, _detail(resp))
        return resp.json()

    def retry_kwargs(self, deadline: float, clock, sleep) -> dict:
        """tenacity settings: ``retries + 1`` attempts at most, exponential backoff from ``backoff_s``,
        never sleeping past ``deadline`` (on ``clock``), retrying only :class:`_Retryable`."""

        def wait(state: RetryCallState) -> float:
            return min(self.backoff_s * 2 ** (state.attempt_number - 1), max(0.0, deadline - clock()))

        def out_of_time(state: RetryCallState) -> bool:
            return deadline - clock() <= 0

        return {
            "retry": retry_if_exception_type(_Retryable),
            "stop": stop_after_attempt(self.retries + 1) | out_of_time,
            "wait": wait,
            "sleep": sleep,
            "reraise": True,
        }

    def unavailable(self, path: str, exc: Exception) -> SandboxUnavailable:
        return SandboxUnavailable(f"{path} failed after {self.retries + 1} attempts or the deadline: {exc}")


class _Retryable(Exception):
    """A transport failure or a 502/503/504: worth another attempt (on the next replica)."""


class SandboxClient:
    """Blocking client. ``execute(request)`` -> response dict; ``execute_batch(requests)`` -> list."""

    def __init__(self, urls: list[str] | str, timeout_s: float = 60, retries: int = 3,
                 backoff_s: float = 0.2, batch_chunk: int = 64, transport: httpx.BaseTransport | None = None):
        self.policy = _Policy(urls, timeout_s, retries, backoff_s, batch_chunk)
        self._http = httpx.Client(timeout=timeout_s, limits=httpx.Limits(max_connections=64),
                                  transport=transport)
        self._threads = ThreadPoolExecutor(max_workers=max(4, 2 * len(self.policy.urls)))

    def _post(self, path: str, body: dict, timeout_s: float | None):
        deadline = time.monotonic() + (timeout_s or self.policy.timeout_s)

        def attempt() -> dict:
            url, left = self.policy.next_url(), deadline - time.monotonic()
            try:
                return self.policy.handle(self._http.post(url + path, json=body, timeout=max(left, 0.001)))
            except httpx.TransportError as exc:
                raise _Retryable(f"{url}: {type(exc).__name__}: {exc}") from exc

        try:
            return Retrying(**self.policy.retry_kwargs(deadline, time.monotonic, time.sleep))(attempt)
        except _Retryable as exc:
            raise self.policy.unavailable(path, exc) from None

    def execute(self, request: dict, timeout_s: float | None = None) -> dict:
        return self._post("/v1/execute", request, timeout_s)

    def execute_batch(self, requests: list[dict], timeout_s: float | None = None) -> list[dict]:
        if not requests:
            return []
        chunks = self.policy.chunks(list(requests))
        futures = [self._threads.submit(self._post, "/v1/execute/batch", {"requests": c}, timeout_s)
                   for c in chunks]
        out: list[dict] = []
        for f in futures:
            out.extend(f.result()["results"])
        return out

    def health(self) -> list[dict]:
        return [self._http.get(u + "/healthz", timeout=5).json() for u in self.policy.urls]

    def close(self) -> None:
        self._http.close()
        self._threads.shutdown(wait=False)

    def __enter__(self) -> SandboxClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class AsyncSandboxClient:
    """asyncio client with the same methods as :class:`SandboxClient`, as coroutines."""

    def __init__(self, urls: list[str] | str, timeout_s: float = 60, retries: int = 3,
                 backoff_s: float = 0.2, batch_chunk: int = 64,
                 transport: httpx.AsyncBaseTransport | None = None):
        self.policy = _Policy(urls, timeout_s, retries, backoff_s, batch_chunk)
        self._http = httpx.AsyncClient(timeout=timeout_s, limits=httpx.Limits(max_connections=64),
                                       transport=transport)

    async def _post(self, path: str, body: dict, timeout_s: float | None):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (timeout_s or self.policy.timeout_s)

        async def attempt() -> dict:
            url, left = self.policy.next_url(), max(deadline - loop.time(), 0.001)
            try:
                resp = await asyncio.wait_for(self._http.post(url + path, json=body, timeout=left), left)
            except (TimeoutError, httpx.TransportError) as exc:
                raise _Retryable(f"{url}: {type(exc).__name__}: {exc}") from exc
            return self.policy.handle(resp)

        try:
            return await AsyncRetrying(**self.policy.retry_kwargs(deadline, loop.time, asyncio.sleep))(attempt)
        except _Retryable as exc:
            raise self.policy.unavailable(path, exc) from None

    async def execute(self, request: dict, timeout_s: float | None = None) -> dict:
        return await self._post("/v1/execute", request, timeout_s)

    async def execute_batch(self, requests: list[dict], timeout_s: float | None = None) -> list[dict]:
        if not requests:
            return []
        chunks = self.policy.chunks(list(requests))
        parts = await asyncio.gather(*(self._post("/v1/execute/batch", {"requests": c}, timeout_s)
                                       for c in chunks))
        return [r for p in parts for r in p["results"]]

    async def health(self) -> list[dict]:
        return [(await self._http.get(u + "/healthz", timeout=5)).json() for u in self.policy.urls]

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncSandboxClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()


def health_problem(url: str, timeout_s: float = 5.0) -> str | None:
    """What is wrong with the replica at ``url`` right now, or None when ``/healthz`` answers 200 with
    ``{"ok": true}`` (at least one warm container)."""
    try:
        resp = httpx.get(url.rstrip("/") + "/healthz", timeout=timeout_s)
    except httpx.HTTPError as exc:
        return f"does not answer ({type(exc).__name__})"
    if resp.status_code != 200:
        return f"/healthz answered HTTP {resp.status_code}"
    try:
        ok = resp.json().get("ok") is True
    except (ValueError, AttributeError):
        ok = False
    return None if ok else "/healthz does not report ok (no warm container)"


def unhealthy(urls: list[str] | str, timeout_s: float = 5.0) -> list[str]:
    """The URLs whose replica is not healthy right now (see :func:`health_problem`)."""
    return [url for url in _normalize(urls) if health_problem(url, timeout_s) is not None]


def wait_until_healthy(urls: list[str] | str, timeout_s: float, interval_s: float = 2.0, log=None) -> None:
    """Poll every URL's ``/healthz`` until all answer 200; :class:`SandboxUnavailable` naming the ones
    that still do not after ``timeout_s``. ``log(message)`` hears about each wait (replicas that start
    after the driver, as on a fresh KubeRay or SLURM cluster)."""
    deadline = time.monotonic() + timeout_s
    bad = unhealthy(urls)
    while bad:
        if time.monotonic() >= deadline:
            raise SandboxUnavailable(f"sandbox replicas not healthy after {timeout_s:g} s: {', '.join(bad)}")
        if log:
            log(f"waiting for {len(bad)} sandbox replica(s) to become healthy: {', '.join(bad)}")
        time.sleep(min(interval_s, max(0.0, deadline - time.monotonic())))
        bad = unhealthy(bad)
