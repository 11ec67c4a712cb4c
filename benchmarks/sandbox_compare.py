"""Sandbox throughput of versions side by side: the service of a git revision (default: before the
issue-15 hardening, Docker) against the working tree's on each of its backends (Docker, bwrap), on the
workloads of benchmarks/sandbox_bench.py (the 164 HumanEval programs with their asserts; 60 stdio
programs x 10 tests), interleaved over several rounds (the order rotating) so that a shared, noisy
machine loads all alike. Reports tests/s per version and round, and each ratio to the old version.

    .venv/bin/python benchmarks/sandbox_compare.py [--old fac2773] [--rounds 5] [--backends docker --backends bwrap]

Writes benchmarks/results/sandbox_compare.json and its table between the markers in BENCHMARKS.md. The old revision is checked out into a temporary git
worktree and its ``rlvr.sandbox`` package is imported from there (everything else is the working tree's).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
app = typer.Typer(add_completion=False)
BEGIN, END = "<!-- sandbox_compare:begin (benchmarks/sandbox_compare.py writes this) -->", "<!-- sandbox_compare:end -->"

# Starts `rlvr sandbox serve` with rlvr.sandbox imported from the directory in argv[1].
BOOT = """import importlib.util, sys
src = sys.argv.pop(1)
import rlvr
spec = importlib.util.spec_from_file_location("rlvr.sandbox", src + "/__init__.py", submodule_search_locations=[src])
mod = importlib.util.module_from_spec(spec)
sys.modules["rlvr.sandbox"] = mod
spec.loader.exec_module(mod)
from rlvr.sandbox.cli import app
app()
"""


@contextmanager
def server(sandbox_dir: Path, size: int, extra: list[str]):
    import httpx
    from rlvr.sandbox.testing import free_port

    port = free_port()
    cmd = [sys.executable, "-c", BOOT, str(sandbox_dir), "serve", "--port", str(port), "--pool-size", str(size),
           "--log-level", "warning", *extra]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(1800):
            if proc.poll() is not None:
                raise SystemExit(f"server from {sandbox_dir} exited with {proc.returncode}")
            try:
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(60)


def measure(url: str, reqs: list[dict]) -> tuple[float, int]:
    from rlvr.sandbox.client import SandboxClient

    with SandboxClient(url, timeout_s=1800) as client:
        client.execute_batch(reqs[:4])  # warm-up
        t0 = time.perf_counter()
        results = client.execute_batch(reqs)
        dt = time.perf_counter() - t0
    return dt, sum(r["status"] == "accepted" for r in results)


@app.command()
def main(
    old: Annotated[str, typer.Option(help="Git revision to compare against.")] = "fac2773",
    rounds: int = 3,
    size: Annotated[int, typer.Option(help="Containers per service.")] = 2,
    stdio_programs: int = 60,
    backends: Annotated[list[str] | None, typer.Option("--backends", help="Backends of the working tree's service.")] = None,
    out: Path = ROOT / "benchmarks/results/sandbox_compare.json",
    benchmarks_md: Path = ROOT / "BENCHMARKS.md",
) -> None:
    from benchmarks.sandbox_bench import humaneval_workload, stdio_workload

    backends = backends or ["docker", "bwrap"]
    workloads = {"humaneval": humaneval_workload(), "stdio": stdio_workload(stdio_programs)}
    tests = {k: sum(max(len(r.get("tests", [])), 1) for r in v) for k, v in workloads.items()}
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        wt = Path(tmp) / "old"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(wt), old], check=True)
        try:
            from contextlib import ExitStack

            names = ["old"] + [f"new {b}" for b in backends]
            with ExitStack() as stack:
                urls = {"old": stack.enter_context(server(wt / "sandbox", size, []))}
                for b in backends:
                    urls[f"new {b}"] = stack.enter_context(server(ROOT / "sandbox", size, ["--backend", b]))
                for rnd in range(rounds):
                    order = names[rnd % len(names):] + names[: rnd % len(names)]
                    for name, reqs in workloads.items():
                        for v in order:
                            dt, ok = measure(urls[v], reqs)
                            row = {"round": rnd, "workload": name, "version": v, "seconds": round(dt, 3),
                                   "programs": len(reqs), "accepted": ok, "tests": tests[name],
                                   "programs_per_s": round(len(reqs) / dt, 1), "tests_per_s": round(tests[name] / dt, 1)}
                            rows.append(row)
                            print(json.dumps(row), flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(wt)], check=False)
    summary = {}
    for name in workloads:
        def per_round(v: str, name: str = name) -> list[float]:
            return [r["tests_per_s"] for r in rows if r["workload"] == name and r["version"] == v]

        old_rates = per_round("old")
        summary[name] = {"old_tests_per_s": statistics.median(old_rates)}
        for v in names[1:]:
            ratios = [n / o for o, n in zip(old_rates, per_round(v), strict=True)]
            summary[name][v] = {"tests_per_s": statistics.median(per_round(v)),
                                "ratio_to_old_per_round": [round(x, 3) for x in ratios],
                                "ratio_to_old_median": round(statistics.median(ratios), 3)}
    result = {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
              "machine": f"{platform.node()}, {os.cpu_count()} cores, {platform.machine()}",
              "command": "python benchmarks/sandbox_compare.py " + " ".join(sys.argv[1:]),
              "old": old, "new": subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                                capture_output=True, text=True).stdout.strip() + " (working tree)",
              "backends": backends, "containers": size, "rows": rows, "summary": summary}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"{result['date']}, {result['machine']}, {size} containers per service, {rounds} rounds "
             f"(order rotating); old = {old}, new = {result['new']}", "",
             "| workload | version | tests/s (median) | ratio to old (median) | ratio per round |", "|---|---|---|---|---|"]
    for name, s in summary.items():
        lines.append(f"| {name} | old (docker) | {s['old_tests_per_s']:.1f} | 1 | |")
        for v in names[1:]:
            lines.append(f"| {name} | {v} | {s[v]['tests_per_s']:.1f} | {s[v]['ratio_to_old_median']:.3f} | "
                         f"{', '.join(f'{x:.2f}' for x in s[v]['ratio_to_old_per_round'])} |")
    if benchmarks_md.is_file() and BEGIN in benchmarks_md.read_text():
        text = benchmarks_md.read_text()
        head, rest = text.split(BEGIN, 1)
        benchmarks_md.write_text(head + BEGIN + "\n" + "\n".join(lines) + "\n" + END + rest.split(END, 1)[1])
    for name, s in summary.items():
        for v in names[1:]:
            print(f"{name}: old {s['old_tests_per_s']} tests/s, {v} {s[v]['tests_per_s']} tests/s, ratio "
                  f"{s[v]['ratio_to_old_median']} (per round {s[v]['ratio_to_old_per_round']})")
    print(f"-> {out}")


if __name__ == "__main__":
    app()
