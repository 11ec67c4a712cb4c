"""``code_tests``: extract the program from each completion and run the row's tests in the sandbox.

Reward modes: ``binary`` (1 when every test passes), ``pass_rate`` (passed / total) and ``threshold``
(1 when passed / total >= ``threshold``). Fail-fast is on by default only for ``binary``, where the
first failure settles the reward anyway.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from rlvr.rewards.base import RewardResult, Sample
from rlvr.rewards.extract import extract_code
from rlvr.rewards.registry import register

__all__ = ["CodeTestsVerifier", "build_request", "reward_from_response", "sandbox_urls", "TIMEOUT_STATUSES"]

# sandbox statuses that mean "ran out of time" -> reason "timeout"
TIMEOUT_STATUSES = frozenset({"time_limit_exceeded"})
URLS_ENV = "RLVR_SANDBOX_URLS"


def sandbox_urls(urls: str | list[str] | None) -> list[str]:
    """Explicit URLs, else the comma-separated ``RLVR_SANDBOX_URLS``; error when neither is set."""
    if urls is None:
        urls = os.environ.get(URLS_ENV, "")
    if isinstance(urls, str):
        urls = [u.strip() for u in urls.split(",") if u.strip()]
    if not urls:
        raise ValueError(f"no sandbox URL: pass urls=[...] or set {URLS_ENV}=http://host:port[,...]")
    return list(urls)


def build_request(
    code: str,
    ground_truth: dict[str, Any],
    time_limit_s: float = 5.0,
    memory_limit_mb: int = 512,
    compare: str = "tokens",
    fail_fast: bool = False,
) -> dict[str, Any]:
    """The sandbox ``/v1/execute`` request for ``code`` against a row's ground truth.

    Per-row limits and compare mode in the ground truth override the given defaults.
    """
    prefix = ground_truth.get("prefix")
    return {
        "language": ground_truth["language"],
        "code": f"{prefix}\n{code}" if prefix else code,
        "tests": list(ground_truth["tests"]),
        "time_limit_s": float(ground_truth.get("time_limit_s") or time_limit_s),
        "memory_limit_mb": int(ground_truth.get("memory_limit_mb") or memory_limit_mb),
        "compare": ground_truth.get("compare") or compare,
        "fail_fast": fail_fast,
    }


def reward_from_response(
    response: dict[str, Any], mode: str = "binary", threshold: float = 1.0
) -> tuple[float, str | None]:
    """``(reward, reason)`` from a sandbox response; reason is None when all tests pass."""
    total = int(response.get("total") or 0)
    passed = int(response.get("passed") or 0)
    statuses = [t.get("status") for t in response.get("tests", [])]
    all_pass = response.get("status") == "accepted" and total > 0 and passed == total
    reason: str | None = None
    if not all_pass:
        failing = next((s for s in statuses if s != "accepted"), None) or response.get("status") or "no_tests"
        reason = "timeout" if failing in TIMEOUT_STATUSES else failing
    rate = passed / total if total else 0.0
    if mode == "binary":
        return (1.0 if all_pass else 0.0), reason
    if mode == "pass_rate":
        return rate, reason
    if mode == "threshold":
        return (1.0 if rate >= threshold else 0.0), reason
    raise ValueError(f"unknown reward mode {mode!r}: use binary, pass_rate or threshold")


@register("code_tests")
class CodeTestsVerifier:
    name = "code_tests"

    def __init__(
        self,
        urls: str | list[str] | None = None,
        mode: Literal["binary", "pass_rate", "threshold"] = "binary",
        threshold: float = 1.0,
        time_limit_s: float = 5.0,
        memory_limit_mb: int = 512,
        compare: Literal["exact", "tokens", "float"] = "tokens",
        fail_fast: bool | None = None,
        allow_unclosed: bool = False,
        allow_unfenced: bool = False,
        request_timeout_s: float = 120.0,
        retries: int = 3,
        client: Any = None,
    ):
        if mode not in ("binary", "pass_rate", "threshold"):
            raise ValueError(f"code_tests: unknown mode {mode!r}; use binary, pass_rate or threshold")
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"code_tests: threshold must be in [0, 1], got {threshold}")
        self.mode, self.threshold = mode, threshold
        self.limits = dict(time_limit_s=time_limit_s, memory_limit_mb=memory_limit_mb, compare=compare)
        self.fail_fast = (mode == "binary") if fail_fast is None else fail_fast
        self.extract = dict(allow_unclosed=allow_unclosed, allow_unfenced=allow_unfenced)
        self._client = client  # an injected AsyncSandboxClient-like object (tests, shared pools)
        self._urls = None if client is not None else sandbox_urls(urls)
        self._timeout, self._retries = request_timeout_s, retries

    async def _execute_batch(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if self._client is not None:
            return await self._client.execute_batch(requests)
        # A fresh client per call: HTTP connection pools are bound to the event loop that made them,
        # and callers (score_sync, Ray actors) may run each batch on a new loop.
        from rlvr.sandbox.client import AsyncSandboxClient

        client = AsyncSandboxClient(self._urls, timeout_s=self._timeout, retries=self._retries)
        try:
            return await client.execute_batch(requests)
        finally:
            close = getattr(client, "aclose", None) or getattr(client, "close", None)
            if close is not None:
                res = close()
                if hasattr(res, "__await__"):
                    await res

    async def verify(self, batch: list[Sample]) -> list[RewardResult]:
        from rlvr.data.schema import ground_truth_of

        results: list[RewardResult | None] = [None] * len(batch)
        requests, where = [], []
        for i, s in enumerate(batch):
            gt = ground_truth_of(s.row)
            code = extract_code(s.completion, gt.get("language", "python"), **self.extract)
            if code is None:
                results[i] = RewardResult.fail("no_code", code=None)
                continue
            requests.append(build_request(code, gt, fail_fast=self.fail_fast, **self.limits))
            where.append((i, code))
        if requests:
            responses = await self._execute_batch(requests)
            if len(responses) != len(requests):
                raise RuntimeError(f"sandbox answered {len(responses)} results for {len(requests)} requests")
            for (i, code), resp in zip(where, responses, strict=True):
                reward, reason = reward_from_response(resp, self.mode, self.threshold)
                results[i] = RewardResult(
                    reward,
                    {
                        "reason": reason,
                        "code": code,
                        "status": resp.get("status"),
                        "passed": resp.get("passed"),
                        "total": resp.get("total"),
                        "tests": [t.get("status") for t in resp.get("tests", [])],
                    },
                )
        return [r for r in results if r is not None]
