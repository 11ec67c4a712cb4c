"""CPU cost of the sandbox's stdio path, per test and per program, robust to machine load.

Runs the stdio workload of ``sandbox_bench.py`` (small sort+sum Python programs, 10 tests each) through
an in-process :class:`~rlvr.sandbox.pool.SandboxPool` of one container, one program at a time, and counts
CPU time rather than wall time:

- ``container``: the container's cgroup (cpuacct, cgroup v1): runner, zygote, harness and programs,
  split into ``runner`` (PID 1 itself), ``zygote`` (with what it reaped) and ``programs`` (reaped by
  the runner), from /proc (clock ticks: coarse);
- ``host``: this process (the pool's framing, request models, verdicts);
- ``engine``: dockerd, containerd and the shims (the attach stream).

Usage: ``.venv/bin/python benchmarks/sandbox_cpu_micro.py [--programs 100] [--rounds 3]``. Prints one
line per round and the median; writes nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.sandbox_bench import _TCK, CPUACCT, _engine_pids, _proc_cpu, stdio_workload  # noqa: E402

CGROUP = "/rlvr-micro"


def cg_usage() -> float:
    return int((CPUACCT / CGROUP.strip("/") / "cpuacct.usage").read_text()) / 1e9


def _stat(pid: int) -> list[int]:
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return [int(x) for x in f[11:15]]  # utime stime cutime cstime (clock ticks)


def split(runner: int) -> dict[str, float]:
    """CPU seconds so far of the runner (itself), the zygote (itself) and what the runner reaped."""
    kids = Path(f"/proc/{runner}/task/{runner}/children").read_text().split()
    r = _stat(runner)
    z = _stat(int(kids[0])) if len(kids) == 1 else [0, 0, 0, 0]
    tck = _TCK
    return {"runner": (r[0] + r[1]) / tck, "zygote": (z[0] + z[1] + z[2] + z[3]) / tck,
            "programs": (r[2] + r[3]) / tck}


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--programs", type=int, default=100)
    ap.add_argument("--tests", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    from rlvr.sandbox.pool import SandboxPool
    from rlvr.sandbox.schema import ExecuteRequest

    reqs = [ExecuteRequest.model_validate(r) for r in stdio_workload(args.programs, args.tests)]
    engine = _engine_pids()
    async with SandboxPool(size=1, cgroup_parent=CGROUP, jobs_per_container=10**6) as pool:
        for r in reqs[:20]:  # warm-up
            assert (await pool.execute(r))["status"] == "accepted"
        w = pool.workers[0]
        runner = pool.client.api.inspect_container(w.container_id)["State"]["Pid"]
        rows = []
        for _ in range(args.rounds):
            s0 = split(runner)
            c0, h0, e0, t0 = (cg_usage(), time.process_time(), sum(_proc_cpu(p) for p in engine),
                              time.perf_counter())
            for r in reqs:
                res = await pool.execute(r)
                assert res["status"] == "accepted", res
            c1, h1, e1, t1 = (cg_usage(), time.process_time(), sum(_proc_cpu(p) for p in engine),
                              time.perf_counter())
            n_t = len(reqs) * args.tests
            s1 = split(runner)
            row = {"container_ms_per_test": 1e3 * (c1 - c0) / n_t,
                   "host_ms_per_program": 1e3 * (h1 - h0) / len(reqs),
                   "engine_ms_per_program": 1e3 * (e1 - e0) / len(reqs),
                   "total_ms_per_test": 1e3 * ((c1 - c0) + (h1 - h0) + (e1 - e0)) / n_t,
                   "wall_ms_per_test": 1e3 * (t1 - t0) / n_t,
                   **{f"{k}_ms_per_test": 1e3 * (s1[k] - s0[k]) / n_t for k in s0}}
            rows.append(row)
            print("  ".join(f"{k} {v:6.3f}" for k, v in row.items()), flush=True)
        med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        print("median  " + "  ".join(f"{k} {v:6.3f}" for k, v in med.items()))


if __name__ == "__main__":
    asyncio.run(main())
