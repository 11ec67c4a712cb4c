"""Shared test helpers: schema rows, and a scripted stand-in for the sandbox client.

The fake client is for unit tests of the logic AROUND the sandbox (request building, reward modes,
bookkeeping); everything that executes code is tested against the real sandbox as well.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def code_row(tests: list[str], entry_point: str = "add", prompt: str = "Write add(a, b).", **extra: Any) -> dict:
    return {
        "prompt": [{"role": "user", "content": prompt}],
        "data_source": "unit",
        "ability": "code",
        "reward_model": {
            "style": "rule",
            "ground_truth": {
                "language": "python",
                "tests": [{"type": "assert", "code": t} for t in tests],
                "entry_point": entry_point,
            },
        },
        "extra_info": dict(extra),
    }


ADD_TESTS = ["assert add(1, 2) == 3", "assert add(-1, 1) == 0", "assert add(2, 2) == 4"]
ADD_OK = "def add(a, b):\n    return a + b\n"


def fenced(code: str, tag: str = "python") -> str:
    return f"Here you go:\n```{tag}\n{code}```\nDone."


def response(statuses: list[str]) -> dict[str, Any]:
    passed = sum(s == "accepted" for s in statuses)
    overall = next((s for s in statuses if s != "accepted"), "accepted")
    return {"status": overall, "passed": passed, "total": len(statuses),
            "tests": [{"status": s, "cpu_time_s": 0.0, "wall_time_s": 0.0, "stdout": "", "stderr": ""}
                      for s in statuses]}


class FakeClient:
    """Answers each request with ``verdict(request)``; records every batch it was sent."""

    def __init__(self, verdict: Callable[[dict[str, Any]], dict[str, Any]]):
        self.verdict = verdict
        self.batches: list[list[dict[str, Any]]] = []

    async def execute_batch(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        self.batches.append(list(requests))
        return [self.verdict(r) for r in requests]


class SyncFakeClient(FakeClient):
    def execute_batch(self, requests):  # type: ignore[override]
        self.batches.append(list(requests))
        return [self.verdict(r) for r in requests]
