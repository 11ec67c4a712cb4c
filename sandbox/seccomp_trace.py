"""Derive the pool's seccomp allow-list from what legitimate programs use (run by hand, not at run time).

The runner, its zygote and a workload of ordinary programs (Python: threads, multiprocessing,
subprocess, asyncio, select/epoll, mmap, signals, sockets pairs, files, ctypes, big recursion; C++:
iostream, containers, threads, files, deep recursion, big allocations; HumanEval with asserts; call
tests; programs that hit each limit) run under the bwrap backend with ``strace -f``; every system call
made after the sandbox's ``execve`` of the runner is collected. :mod:`rlvr.sandbox.seccomp` holds the
result (reviewed by hand: it adds what is needed on other machines, such as the other architecture
names, and denies namespace creation by argument).

    .venv/bin/python -m rlvr.sandbox.seccomp_trace        # prints the sorted syscall names as JSON
"""

from __future__ import annotations

import asyncio
import glob
import json
import os
import re
import sys
import tempfile
from collections import Counter

PY = [
    "import threading\nr=[]\nt=threading.Thread(target=lambda: r.append(sum(range(1000))))\nt.start(); t.join()\nprint(r[0])",
    "from concurrent.futures import ThreadPoolExecutor\nwith ThreadPoolExecutor(4) as ex:\n"
    "    print(sum(ex.map(lambda x: x*x, range(100))))",
    "import multiprocessing as mp\nif __name__ == '__main__':\n    with mp.Pool(2) as p:\n        print(sum(p.map(abs, range(-50, 50))))",
    "import multiprocessing as mp\ndef f(q):\n    q.put(42)\nif __name__ == '__main__':\n"
    "    q = mp.Queue(); p = mp.Process(target=f, args=(q,)); p.start(); print(q.get()); p.join()",
    "import subprocess, sys\nprint(subprocess.run([sys.executable, '-c', 'print(7)'], capture_output=True, text=True).stdout)",
    "import asyncio\nasync def main():\n    await asyncio.sleep(0.01)\n    return 3\nprint(asyncio.run(main()))",
    "import select, os\nr, w = os.pipe()\nos.write(w, b'x')\nprint(select.select([r], [], [], 0)[0] == [r])\n"
    "import selectors\ns = selectors.DefaultSelector(); s.register(r, selectors.EVENT_READ); print(len(s.select(0)))\n"
    "p = select.poll(); p.register(r); print(p.poll(0))",
    "import mmap\nm = mmap.mmap(-1, 4096)\nm[:3] = b'abc'\nprint(m[:3].decode())",
    "import signal, time\nsignal.signal(signal.SIGALRM, lambda *a: None)\nsignal.setitimer(signal.ITIMER_REAL, 0.01)\n"
    "time.sleep(0.05)\nprint('ok')",
    "import random, secrets, os, uuid\nprint(len(os.urandom(8)), secrets.randbelow(10) < 10, random.random() < 1, uuid.uuid4())",
    "import tempfile, os, shutil\nd = tempfile.mkdtemp()\nopen(os.path.join(d, 'a'), 'w').write('x')\n"
    "os.rename(os.path.join(d, 'a'), os.path.join(d, 'b'))\nprint(os.listdir(d))\nshutil.rmtree(d)",
    "import socket\na, b = socket.socketpair()\na.sendall(b'hi')\nprint(b.recv(2).decode())",
    "import zlib, hashlib, base64, json, re, decimal, fractions, heapq, bisect, itertools, functools, collections\n"
    "import math, statistics, datetime, time\nprint(zlib.crc32(b'x'), hashlib.sha256(b'x').hexdigest()[:4], "
    "datetime.datetime.now().year > 2000, time.time() > 0, time.perf_counter() > 0)",
    "import sys\nsys.setrecursionlimit(100000)\ndef f(n):\n    return 0 if n == 0 else 1 + f(n - 1)\nprint(f(50000))",
    "import os, resource\nprint(resource.getrlimit(resource.RLIMIT_STACK)[0] != 0, os.cpu_count() >= 1, "
    "len(os.sched_getaffinity(0)) >= 1)\nos.nice(0)\nprint(os.getcwd() != '', os.getppid() >= 0)",
    "import ctypes\nlibc = ctypes.CDLL(None)\nprint(libc.getpid() > 0)",
    "import os\nfor root, dirs, files in os.walk('/usr/lib/python3.11/json'):\n    pass\n"
    "print(os.path.exists('/etc/passwd'), os.access('/tmp', os.W_OK))",
    "import sys\ndata = sys.stdin.buffer.read()\nsys.stdout.buffer.write(data)\nsys.stdout.flush()",
    "import io, contextlib, traceback, pickle, copy, struct, array, string, textwrap, typing, dataclasses, enum\n"
    "print(len(pickle.dumps(list(range(10)))))",
    "import os\nif os.fork() == 0:\n    os._exit(3)\nprint(os.waitstatus_to_exitcode(os.wait()[1]))",
    "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.05: pass\nprint(time.monotonic() > 0, time.thread_time() >= 0)",
    "import threading, queue\nev = threading.Event()\nthreading.Timer(0.01, ev.set).start()\nprint(ev.wait(2))",
    "print(input()[::-1])\nexit()",
    "import sys\nprint(sys.stdin.readline(), file=sys.stderr)\nraise SystemExit(3)",
    "import faulthandler, gc, weakref, locale, os\nfaulthandler.enable(); gc.collect(); print(locale.getpreferredencoding())\n"
    "print(os.stat('.').st_mode > 0, os.getloadavg() is not None)",
]
CPP = [
    "#include <bits/stdc++.h>\nusing namespace std;\nint main(){int n; cin>>n; vector<long long> v(n); iota(v.begin(), v.end(), 1);"
    " sort(v.rbegin(), v.rend()); map<int,int> m; m[1]=2; unordered_map<int,int> u; u[3]=4;"
    " cout << accumulate(v.begin(), v.end(), 0LL) << endl; printf(\"%d\\n\", (int)m.size()); return 0;}",
    "#include <thread>\n#include <iostream>\n#include <atomic>\n#include <mutex>\nint main(){std::atomic<int> x{0}; std::mutex mu;"
    " std::thread t([&]{std::lock_guard<std::mutex> g(mu); x++;}); t.join(); std::cout<<x<<\"\\n\";}",
    "#include <cstdio>\n#include <cstdlib>\n#include <ctime>\n#include <chrono>\nint main(){srand(time(0)); auto t=std::chrono::steady_clock::now();"
    " int *p=(int*)malloc(100<<20); for(int i=0;i<(25<<20);i+=1024)p[i]=i; free(p);"
    " printf(\"%d\\n\", (int)(std::chrono::steady_clock::now()>=t));}",
    "#include <iostream>\n#include <fstream>\nint main(){std::ofstream f(\"x.txt\"); f<<42; f.close(); std::ifstream g(\"x.txt\");"
    " int v; g>>v; std::cout<<v<<std::endl; std::cerr<<\"err\"; return 0;}",
    "#include <cstdio>\nint f(int n){return n==0?0:1+f(n-1);}\nint main(){printf(\"%d\\n\", f(1000000));}",
    "#include <cstdio>\n#include <vector>\nint main(){std::vector<int> v; for(int i=0;;i++) v.push_back(i);}",
    "#include <cstdio>\nint main(){int *p = nullptr; return *p;}",
]


def requests() -> list[dict]:
    from benchmarks.sandbox_bench import humaneval_workload, stdio_workload

    stdio = [{"type": "stdio", "stdin": "10\nabc\n", "expected_stdout": ""}] * 2
    reqs = [{"language": "python", "code": c, "tests": stdio} for c in PY]
    reqs += [{"language": "cpp", "code": c, "tests": stdio, "memory_limit_mb": 256} for c in CPP]
    reqs += humaneval_workload() + stdio_workload(20)
    lib = "def f(x):\n    return x*2\nclass C:\n    def __init__(s): s.v=1\ndef g():\n    return C()\n"
    reqs.append({"language": "python", "code": lib, "tests": [{"type": "call", "fn_name": "f", "args": [2], "expected": 4}]})
    reqs.append({"language": "python", "code": lib, "tests": [{"type": "assert", "code": "assert f(2)==4\nassert g().v == 1"}]})
    one = [{"type": "stdio", "stdin": "", "expected_stdout": ""}]
    reqs += [
        {"language": "python", "code": "while True: pass", "time_limit_s": 0.3, "tests": one},
        {"language": "python", "code": "x=[]\nwhile True: x.append(bytearray(1<<20))", "memory_limit_mb": 64, "tests": one},
        {"language": "python", "code": "import time\ntime.sleep(5)", "time_limit_s": 0.3, "tests": one},
        {"language": "python", "code": "print('x'*(10<<20))", "tests": one},
        {"language": "cpp", "code": "int main(){ syntax error }", "tests": one},
        {"language": "python", "code": "import os\nos.makedirs('a/b/c')\nopen('a/b/c/f','w').write('x')", "tests": one},
    ]
    return reqs


CALL = re.compile(r"^(?:<\.\.\. )?([a-z0-9_]+)[( ]")


def syscalls(trace_dir: str) -> Counter:
    """Names of the calls made inside the sandbox; ``strace -ff`` wrote one file per process. The process
    that becomes the runner counts from its ``execve`` of python3 on (before it, bwrap set the sandbox
    up); bwrap's own monitor process (the one that exec'd bwrap) not at all; every other process was
    started inside the sandbox and counts whole. (PIDs inside the sandbox's namespace differ from the
    files' host PIDs, so the process tree is not used.)"""
    names: Counter = Counter()
    for path in glob.glob(f"{trace_dir}/trace.*"):
        lines = open(path, errors="replace").read().splitlines()
        start = next((i + 1 for i, line in enumerate(lines)
                      if line.startswith('execve("/usr/bin/python3"') and '"-c"' in line), None)
        if start is None:
            if any(line.startswith('execve("') and "bwrap" in line.split(",")[0] for line in lines):
                continue  # bwrap's monitor
            start = 0
        for line in lines[start:]:
            m = CALL.match(line)
            if m:
                names[m.group(1)] += 1
    for not_a_call in ("exited", "killed"):
        names.pop(not_a_call, None)
    return names


def main() -> None:
    import rlvr.sandbox.bwrap as bw
    from rlvr.sandbox.pool import SandboxPool
    from rlvr.sandbox.schema import ExecuteRequest

    out = tempfile.mkdtemp(prefix="rlvr-seccomp-")
    orig = bw.bwrap_command

    def traced(*a, **k):
        return ["strace", "-f", "-qq", "-o", f"{out}/trace", "-ff"] + orig(*a, **k)

    bw.bwrap_command = traced

    async def run() -> Counter:
        async with SandboxPool(size=2, backend="bwrap") as pool:
            res = await asyncio.gather(*(pool.execute(ExecuteRequest(**r)) for r in requests()))
        return Counter(r["status"] for r in res)

    statuses = asyncio.run(run())
    names = syscalls(out)
    print(json.dumps({"statuses": statuses, "syscalls": sorted(names)}, indent=1))
    print(f"traces in {out}", file=sys.stderr)


if __name__ == "__main__":
    sys.path.insert(0, os.getcwd())
    main()
