"""A local subprocess executor for the tiny world's hidden tests.

Temporary: the sandbox service (Docker, no network, resource limits) replaces it for anything
untrusted at scale. This one only isolates a crash or an infinite loop of a generated program from
the caller: a fresh ``python -I`` per program, a wall-clock timeout, and a few POSIX rlimits.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

__all__ = ["ExecResult", "run_tests", "run_many", "build_program"]


@dataclass(frozen=True)
class ExecResult:
    passed: bool
    status: str  # "passed", "failed" (an assert or an exception), "timeout", "syntax_error"
    detail: str = ""


def build_program(code: str, tests: list[str]) -> str:
    """The solution, then each hidden test as its own statement (the first failing one stops the run)."""
    return code.rstrip() + "\n\n" + "\n".join(tests) + "\n"


def _limits() -> None:  # runs in the child before exec
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (512 * 2**20, 512 * 2**20))
    resource.setrlimit(resource.RLIMIT_CPU, (10, 10))
    resource.setrlimit(resource.RLIMIT_FSIZE, (2**20, 2**20))


def run_tests(code: str, tests: list[str], timeout: float = 5.0) -> ExecResult:
    """Run ``code`` followed by ``tests`` in a child interpreter; ``passed`` iff it exits 0 in time."""
    try:
        compile(code, "<solution>", "exec")
    except (SyntaxError, ValueError) as exc:
        return ExecResult(False, "syntax_error", str(exc))
    with tempfile.TemporaryDirectory(prefix="rlvr-exec-") as tmp:
        path = os.path.join(tmp, "prog.py")
        with open(path, "w") as fh:
            fh.write(build_program(code, tests))
        try:
            proc = subprocess.run(
                [sys.executable, "-I", "-S", path],
                cwd=tmp,
                capture_output=True,
                text=True,
                timeout=timeout,
                preexec_fn=_limits if os.name == "posix" else None,
                env={"PATH": os.environ.get("PATH", ""), "PYTHONHASHSEED": "0"},
            )
        except subprocess.TimeoutExpired:
            return ExecResult(False, "timeout", f"no exit within {timeout}s")
    if proc.returncode == 0:
        return ExecResult(True, "passed")
    return ExecResult(False, "failed", proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "")


def run_many(jobs: list[tuple[str, list[str]]], timeout: float = 5.0, workers: int = 2) -> list[ExecResult]:
    """``run_tests`` over many (code, tests) pairs, ``workers`` child processes at a time, in order."""
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(lambda job: run_tests(job[0], job[1], timeout), jobs))
