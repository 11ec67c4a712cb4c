"""The job runner: PID 1 of every sandbox container (standard library only; it runs in the image).

Started as ``python3 -I -S -B -c <this source> <candidate.py source>``. It reads one JSON frame per line
on stdin and answers one JSON line per frame on stdout; nothing else is ever written to stdout.

Per program (a "job"): ``begin`` writes the source into a private scratch dir and compiles it;
``test`` frames run it; ``end`` kills every other process in the container (but the zygote), wipes
the writable places and reports whether the container is still clean. The runner reports facts
(exit status, CPU/wall time, output bytes, OOM kills, values returned); the host decides verdicts,
so expected outputs never enter the container.

Programs are fresh processes forked from the zygote (candidate.py), a clean interpreter started by
the runner that never runs candidate code, or, for the stdio tests of a Python program, from that
program's own zygote (forked from the zygote; it compiled the program once and never runs it). Both
fork programs as children of the runner (clone with CLONE_PARENT), which waits for them.

Why a program cannot forge a verdict:
- as PID 1 of the container's pid namespace, the kernel drops SIGKILL/SIGSTOP sent to it from inside;
  the handled signals are ignored;
- it is non-dumpable, so same-uid processes cannot ptrace it or open /proc/1/fd/* or /proc/1/mem;
- programs get only their own pipes as descriptors;
- function-call and assert tests are run by a *harness* process forked from the runner (it holds the
  assert code in memory, and is non-dumpable too) that talks to the program's process over pipes with
  plain data only, and reports to the runner over its own pipe, each message stamped with a nonce the
  program never saw. A program that kills the harness fails its remaining tests.
"""

import ast  # imported once here so every forked harness has it for free
import base64
import builtins
import ctypes
import fcntl
import json
import marshal
import math
import os
import resource
import select
import signal
import socket
import sys
import time
import traceback

CLK_TCK = os.sysconf("SC_CLK_TCK")
OOM_CONTROL = "/sys/fs/cgroup/memory/memory.oom_control"
# How often a running program's CPU time is read from /proc (the verdict clock; RLIMIT_CPU is the
# kernel's backstop). A program that ends sooner is never polled: wait4 reports its CPU time.
CPU_POLL_S = 0.02
WIPE_DIRS = ("/tmp", "/dev/shm")
CANDIDATE_BOOT = sys.argv[1] if len(sys.argv) > 1 else ""
CODEC = {"__name__": "sandbox_candidate"}
exec(CANDIDATE_BOOT, CODEC)  # the value codec (encode_value/decode_value); its __main__ part is skipped
STDERR_KEEP = 64 * 1024


# ------------------------------------------------------------------------------------------------ io


def write_all(fd, data):
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except InterruptedError:
            continue
        view = view[n:]


class LineReader:
    """JSON lines from a file descriptor, buffering partial reads."""

    def __init__(self, fd):
        self.fd, self.buf = fd, bytearray()

    def pending(self):
        return b"\n" in self.buf

    def fill(self):
        chunk = os.read(self.fd, 1 << 20)
        if not chunk:
            return False
        self.buf.extend(chunk)
        return True

    def take(self):
        i = self.buf.find(b"\n")
        if i < 0:
            return None
        line = bytes(self.buf[:i])
        del self.buf[: i + 1]
        return json.loads(line)

    def read(self):
        while True:
            msg = self.take()
            if msg is not None:
                return msg
            if not self.fill():
                return None


def b64(data):
    return base64.b64encode(bytes(data)).decode()


# ------------------------------------------------------------------------------------------ processes


def read_file(path, size=4096):
    """Bytes of a small /proc or cgroup file (one read; no buffered file object)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, size)
    finally:
        os.close(fd)


class CgroupFile:
    """A cgroup file kept open and re-read with pread (its content is regenerated at offset 0)."""

    def __init__(self, path):
        self.path, self.fd = path, None

    def read(self):
        """The file's bytes, or None where it is not readable."""
        try:
            if self.fd is None:
                self.fd = os.open(self.path, os.O_RDONLY)
            return os.pread(self.fd, 4096, 0)
        except OSError:
            return None


OOM_FILE = CgroupFile(OOM_CONTROL)
# CPU time and memory of everything in the container (cgroup v1, else v2): what a test's whole process
# tree uses, forked helpers included, is the change over the test less what we ourselves used
CPU_FILES = (CgroupFile("/sys/fs/cgroup/cpuacct/cpuacct.usage"), CgroupFile("/sys/fs/cgroup/cpu.stat"))
MEM_FILES = (CgroupFile("/sys/fs/cgroup/memory/memory.usage_in_bytes"), CgroupFile("/sys/fs/cgroup/memory.current"))


def cgroup_cpu():
    """CPU seconds used by the whole container so far, or None where no cgroup file is readable."""
    data = CPU_FILES[0].read()
    if data:
        return int(data) / 1e9
    data = CPU_FILES[1].read()
    if data:
        for line in data.split(b"\n"):
            if line.startswith(b"usage_usec "):
                return int(line.split()[1]) / 1e6
    return None


def cgroup_memory():
    """Bytes charged to the container now, or None."""
    for f in MEM_FILES:
        data = f.read()
        if data:
            return int(data)
    return None


def proc_tree_cpu():
    """CPU seconds of every process in our PID namespace but us and the zygotes, where no cgroup tells:
    the live ones' own and reaped children's time, plus the children PID 1 reaped. Without a cgroup
    (the bwrap backend) this is the whole-tree clock; a process reaped by a parent that is gone by the
    next look is missed (its time was its parent's children time while the parent lived)."""
    skip = {os.getpid(), ZYGOTE.pid, *SPARE}
    total = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            fields = read_file(f"/proc/{name}/stat").rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        pid = int(name)
        if pid == 1:  # the runner: only what it reaped
            total += int(fields[13]) + int(fields[14])
        elif pid not in skip:
            total += int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
    return total / CLK_TCK


class TreeMeter:
    """What a test's process tree uses: the container's CPU and memory over the test, less the CPU of the
    measuring process (``self_cpu``) and the memory charged before the test started. Processes the
    program forked and never waited for, or left running, count as much as the program itself. Without
    a readable cgroup, CPU comes from /proc (:func:`proc_tree_cpu`) and memory from rlimits and peaks."""

    def __init__(self):
        cpu = cgroup_cpu()
        self.cgroup = cpu is not None
        self.cpu0, self.self0 = (cpu if self.cgroup else proc_tree_cpu()), time.process_time()
        self.mem0 = cgroup_memory()
        self.peak = 0

    def cpu(self):
        if not self.cgroup:
            return max(0.0, proc_tree_cpu() - self.cpu0)
        now = cgroup_cpu()
        if now is None:
            return 0.0
        return max(0.0, (now - self.cpu0) - (time.process_time() - self.self0))

    def memory(self):
        """Bytes charged since the test started (the highest seen so far)."""
        now = cgroup_memory()
        if now is not None and self.mem0 is not None:
            self.peak = max(self.peak, now - self.mem0)
        return self.peak


def oom_kills():
    data = OOM_FILE.read()
    if data:
        for line in data.split(b"\n"):
            if line.startswith(b"oom_kill "):
                return int(line.split()[1])
    return -1


def proc_cpu(pid):
    """CPU seconds (user+system) used so far by a live process, from /proc (None once gone)."""
    try:
        fields = read_file(f"/proc/{pid}/stat").rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return None


STALL_S = 0.5  # a gap this long between two looks at the clock, in a loop that looks every 20 ms: a stall


class WallClock:
    """Wall time for the backstop, less the time the runner itself stood still: a container paused by
    the host (the freezer stops us with the program) or an overloaded host that did not schedule us.
    Such a stall is the infrastructure's; it is never charged to the program. Read it often."""

    def __init__(self):
        self.t0 = self.last = time.monotonic()
        self.stalled = 0.0

    def elapsed(self):
        now = time.monotonic()
        if now - self.last > STALL_S:
            self.stalled += now - self.last - CPU_POLL_S
        self.last = now
        return now - self.t0 - self.stalled


def status_bytes(pid, key):
    """A ``kB`` field of /proc/PID/status (``b"VmRSS"``, ``b"VmData"``) in bytes (0 if unknown)."""
    try:
        for line in read_file(f"/proc/{pid}/status", 8192).split(b"\n"):
            if line.startswith(key + b":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def pidfd_open(pid):
    """A descriptor that becomes readable when ``pid`` ends (so select wakes on exit), or -1."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return -1


class Zygote:
    """The clean interpreter every program is forked from (see candidate.py); restarted when unwell."""

    def __init__(self):
        self.pid, self.sock = None, None

    def start(self):
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        null = os.open("/dev/null", os.O_RDWR)
        pid = os.fork()
        if pid == 0:
            try:
                staged = [fcntl.fcntl(fd, fcntl.F_DUPFD, 256) for fd in (null, null, 2, child.fileno())]
                for target, src in enumerate(staged):
                    os.dup2(src, target, inheritable=True)
                os.closerange(4, 4096)
                argv = [sys.executable, "-s", "-P", "-S", "-B", "-c", CANDIDATE_BOOT, "--zygote"]
                os.execve(argv[0], argv, {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8",
                                          "PYTHONHASHSEED": os.environ.get("PYTHONHASHSEED", "0")})
            finally:
                os._exit(127)
        child.close()
        os.close(null)
        parent.settimeout(20)
        self.pid, self.sock = pid, parent

    def healthy(self):
        try:
            state = read_file(f"/proc/{self.pid}/stat").rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError, TypeError):
            return False
        return state in (b"S", b"R", b"D")

    def stop(self):
        if self.pid is not None:
            kill_tree(self.pid)
            try:
                os.waitpid(self.pid, 0)
            except ChildProcessError:
                pass
        if self.sock is not None:
            self.sock.close()
        self.pid, self.sock = None, None

    def restart(self):
        self.stop()
        self.start()

    def spawn(self, spec, fds, may_restart=True):
        """Fork a fresh program process with ``fds`` as its 0..n-1; returns its pid (a child of PID 1)."""
        for _ in range(2):
            if may_restart and (self.pid is None or not self.healthy()):
                self.restart()
            try:
                socket.send_fds(self.sock, [marshal.dumps(spec)], fds)
                pid = int(self.sock.recv(64))
                if pid > 0:
                    return pid
            except (OSError, ValueError, AttributeError):
                pass
            if not may_restart:
                break
            self.restart()
        raise RuntimeError("the zygote does not answer")


ZYGOTE = Zygote()
# Programs at most this long (nearly all) get a zygote of their own that compiles them once for all
# their tests; the bound keeps its compile time and memory (in the overhead share) small.
PROGRAM_ZYGOTE_MAX_SOURCE = 64 * 1024


class ProgramZygote(Zygote):
    """A zygote for one Python program's stdio tests, forked from ``ZYGOTE`` (see candidate.py):
    it compiles the program once, so a test's process only runs it. Never restarted: when it does
    not answer (say a test killed it) it is stopped and the tests go back to ``ZYGOTE``."""

    def __init__(self, spec):
        super().__init__()
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        null = os.open("/dev/null", os.O_RDWR)
        try:
            self.pid = ZYGOTE.spawn(dict(spec, mode="zygote"), [null, null, null, child.fileno()])
        except RuntimeError:
            parent.close()
            raise
        finally:
            child.close()
            os.close(null)
        parent.settimeout(20)
        self.sock = parent

    def spawn(self, spec, fds, may_restart=False):
        if self.healthy():  # e.g. not stopped by a test's SIGSTOP
            try:
                return super().spawn(spec, fds, may_restart=False)
            except RuntimeError:
                pass
        self.stop()  # kills whatever holds its pid now
        raise RuntimeError("the program's zygote does not answer")


def rlimits(cpu_s, fsize, nofile, stack):
    lim = [
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_FSIZE, fsize),
        (resource.RLIMIT_NOFILE, nofile),
    ]
    if stack:
        lim.append((resource.RLIMIT_STACK, stack))
    if cpu_s:
        lim.append((resource.RLIMIT_CPU, int(math.ceil(cpu_s)) + 1))
    return lim


def decode_status(status):
    if os.WIFSIGNALED(status):
        return None, os.WTERMSIG(status)
    return os.WEXITSTATUS(status), None


def run_process(spec, stdin, time_limit, wall_limit, output_limit, spawn=None, memory_limit=0, base_rss=0):
    """Run one process to completion, feeding stdin and draining stdout/stderr while it runs.

    Returns facts: outcome ('exited' | 'timeout' | 'output_limit'), exit code or signal, CPU seconds
    (from wait4, children included), wall seconds, OOM kill, captured output. CPU time is the verdict
    clock, counted for the whole process tree (:class:`TreeMeter`); the wall limit is only a backstop
    for sleeping or blocked programs. With ``memory_limit`` (bytes), the tree's memory is held to it: the
    container's charge over the test while it runs, and the program's peak RSS (less ``base_rss``, what
    it shares with the zygote it was forked from) at the end; over it, the outcome is ``memory_limit``.
    """
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    oom_before = oom_kills()
    t0 = time.monotonic()
    clock = WallClock()
    meter = TreeMeter()
    try:
        pid = (spawn or ZYGOTE.spawn)(spec, [in_r, out_w, err_w])
    finally:
        for fd in (in_r, out_w, err_w):
            os.close(fd)
    exit_fd = pidfd_open(pid)  # -1: no pidfd here, poll wait4 with short naps instead
    for fd in (in_w, out_r, err_r):
        os.set_blocking(fd, False)
    stdin_view = memoryview(stdin)
    out, err = bytearray(), bytearray()
    out_total = err_total = 0
    outcome, timeout_kind, status, rusage = "exited", None, None, None
    open_reads = [out_r, err_r]
    killed = ended = False
    idle = 0.0005
    next_poll = t0 + CPU_POLL_S
    while True:
        if in_w >= 0:  # feed stdin as far as the pipe takes it (all at once when it is small)
            try:
                while stdin_view:
                    n = os.write(in_w, stdin_view[: 1 << 16])
                    stdin_view = stdin_view[n:]
            except BlockingIOError:
                pass
            except OSError:  # the program closed its stdin: the rest is not wanted
                stdin_view = stdin_view[:0]
            if not stdin_view:
                os.close(in_w)
                in_w = -1
        if exit_fd < 0 or ended:
            wpid, st, ru = os.wait4(pid, os.WNOHANG)
            if wpid == pid:
                status, rusage = st, ru
                break
        now = time.monotonic()
        waited = clock.elapsed()
        if not killed:
            if out_total > output_limit or err_total > output_limit:
                outcome, killed = "output_limit", True
            elif now >= next_poll:
                next_poll = now + CPU_POLL_S
                used = max(proc_cpu(pid) or 0.0, meter.cpu())
                if used > time_limit:
                    outcome, timeout_kind, killed = "timeout", "cpu", True
                elif memory_limit and meter.memory() > memory_limit:
                    outcome, killed = "memory_limit", True
                elif waited > wall_limit:
                    outcome, timeout_kind, killed = "timeout", "wall", True
            if killed:
                kill_tree(pid)
                if outcome != "output_limit":  # forked helpers stop using CPU and memory now too
                    signal_others({1, ZYGOTE.pid, *SPARE})
        rlist = open_reads + [exit_fd] if exit_fd >= 0 and not ended else list(open_reads)
        wlist = [in_w] if in_w >= 0 else []
        if not rlist and not wlist:  # pipes closed, process not reaped yet: short, growing naps
            time.sleep(idle)
            idle = min(idle * 2, 0.02)
            continue
        try:
            r, w, _ = select.select(rlist, wlist, [], max(next_poll - now, 0.0) if not killed else 0.02)
        except InterruptedError:
            continue
        for fd in r:
            if fd == exit_fd:
                ended = True
                continue
            try:
                chunk = os.read(fd, 1 << 16)
            except BlockingIOError:
                continue
            if not chunk:
                open_reads.remove(fd)
                continue
            if fd == out_r:
                out_total += len(chunk)
                if len(out) < output_limit:
                    out.extend(chunk[: output_limit - len(out)])
            else:
                err_total += len(chunk)
                if len(err) < STDERR_KEEP:
                    err.extend(chunk[: STDERR_KEEP - len(err)])
    wall = time.monotonic() - t0
    # drain what is left in the pipes after exit (bounded by the caps)
    for fd in (out_r, err_r):
        if fd in open_reads:
            try:
                while True:
                    chunk = os.read(fd, 1 << 16)
                    if not chunk:
                        break
                    if fd == out_r:
                        out_total += len(chunk)
                        if len(out) < output_limit:
                            out.extend(chunk[: output_limit - len(out)])
                    else:
                        err_total += len(chunk)
                        if len(err) < STDERR_KEEP:
                            err.extend(chunk[: STDERR_KEEP - len(err)])
                    if out_total > output_limit + (1 << 20):
                        break
            except (BlockingIOError, OSError):
                pass
    for fd in (in_w, out_r, err_r, exit_fd):
        if fd >= 0:
            os.close(fd)
    if outcome == "exited" and (out_total > output_limit or err_total > output_limit):
        outcome = "output_limit"
    code, sig = decode_status(status)
    cpu = max(rusage.ru_utime + rusage.ru_stime, meter.cpu())
    if outcome == "exited" and cpu > time_limit:
        outcome, timeout_kind = "timeout", "cpu"
    if outcome == "exited" and sig == signal.SIGXCPU:
        outcome, timeout_kind = "timeout", "cpu"
    if outcome == "exited" and memory_limit:
        peak = max(meter.memory(), rusage.ru_maxrss * 1024 - base_rss)
        # over the limit; or failed at it (an allocation refused by RLIMIT_DATA can end in any error)
        if peak > memory_limit or ((code or sig) and peak >= 0.9 * memory_limit):
            outcome = "memory_limit"
    return {
        "outcome": outcome,
        "timeout_kind": timeout_kind,
        "exit": code,
        "signal": sig,
        "cpu_s": round(cpu, 4),
        "wall_s": round(wall, 4),
        "oom": oom_kills() > oom_before >= 0,
        "stdout_b64": b64(out),
        "stderr_b64": b64(err),
        "stdout_bytes": out_total,
        "stderr_bytes": err_total,
    }


def zombie_status(pid, timeout=2.0):
    """Wait status of a process that is not our child, once it is a zombie (None if unknown)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            return None
        if fields[0] in (b"Z", b"X"):
            return int(fields[49]) if len(fields) > 49 else None
        time.sleep(0.0005)
    return None


def kill_tree(pid):
    for target in (-pid, pid):  # its session's process group, then itself
        try:
            os.kill(target, signal.SIGKILL)
        except OSError:
            pass


SPARE = set()  # processes of the current job that a test's limits must not kill (its program's zygote)


def signal_others(keep):
    """One round of SIGKILL to every process but ``keep`` (no reaping: a caller may still wait4 one)."""
    for p in other_pids():
        if p not in keep:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass


def kill_all_others(spare=()):
    """SIGKILL every process in the container except PID 1 (us) and ``spare``, and reap them.

    Processes are found in /proc, so daemons that double-forked away from their parent are found
    too; orphans are re-parented to us, so we can reap them. A fork bomb racing us is bounded by the
    pids limit and dies within a few rounds.
    """
    nap = 0.0002
    keep = {1, *spare}
    for _ in range(400):
        alive = [p for p in other_pids() if p not in keep]
        for p in alive:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        while True:
            try:
                wpid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if wpid == 0 or wpid in keep:
                break
        if not alive:
            return True
        time.sleep(nap)
        nap = min(nap * 2, 0.01)
    return False


def other_pids():
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != 1]


def wipe(path):
    """Remove everything under ``path``; False if something could not be removed.

    Iterative and relative to directory descriptors: a program-made tree of any depth (paths far beyond
    PATH_MAX, more levels than Python's recursion limit) or with unreadable directories is removed.
    """
    try:
        top = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return True
    ok = True
    stack = [(top, None, None)]  # (dir fd, parent fd, name in parent)
    while stack:
        fd, parent, name = stack[-1]
        descended = False
        try:
            entries = list(os.scandir(fd))
        except OSError:
            entries, ok = [], False
        for e in entries:
            try:
                if e.is_dir(follow_symlinks=False):
                    try:
                        os.chmod(e.name, 0o700, dir_fd=fd, follow_symlinks=False)
                    except (OSError, NotImplementedError):
                        pass
                    child = os.open(e.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                    stack.append((child, fd, e.name))
                    descended = True
                    break
                os.unlink(e.name, dir_fd=fd)
            except OSError:
                ok = False
        if descended:
            continue
        stack.pop()
        os.close(fd)
        if parent is not None:
            try:
                os.rmdir(name, dir_fd=parent)
            except OSError:  # a directory we cannot empty: stop (descending into it again would loop)
                for fd, _, _ in stack:
                    os.close(fd)
                return False
    return ok


def ipc_leftovers():
    found = []
    for name in ("shm", "sem", "msg"):
        try:
            with open(f"/proc/sysvipc/{name}") as f:
                if len(f.read().strip().splitlines()) > 1:
                    found.append(f"sysv {name}")
        except OSError:
            pass
    try:
        if os.listdir("/dev/mqueue"):
            found.append("posix mqueue")
    except OSError:
        pass
    return found


# --------------------------------------------------------------------------------------------- harness

encode_value = CODEC["encode_value"]
decode_value = CODEC["decode_value"]
update_in_place = CODEC["update_in_place"]
BUILTIN_NAMES = frozenset(dir(builtins))


class CandidateGone(Exception):
    """The candidate process ended or was killed during a call (facts in .info)."""

    def __init__(self, info):
        super().__init__(info.get("outcome"))
        self.info = info


class CandidateRaised(Exception):
    pass


class CandidateBadValue(Exception):
    pass


class Candidate:
    """The candidate program loaded in its own process, reached only through plain-data calls."""

    def __init__(self, job):
        self.job = job
        self.pid = None
        self.out, self.err = bytearray(), bytearray()
        self.out_total = self.err_total = 0
        self.dead = []  # pids of ended candidate processes; the runner (their parent) reaps them

    def start(self):
        job = self.job
        req_r, self.req_w = os.pipe()
        self.resp_r, resp_w = os.pipe()
        self.out_r, out_w = os.pipe()
        self.err_r, err_w = os.pipe()
        null = os.open("/dev/null", os.O_RDONLY)
        self.oom_before = oom_kills()
        spec = {"mode": "call", "path": job["source_path"], "cwd": job["scratch"], "env": job["env"],
                "limits": job["limits_total"]}
        try:
            self.pid = ZYGOTE.spawn(spec, [null, out_w, err_w, req_r, resp_w], may_restart=False)
        finally:
            for fd in (req_r, resp_w, out_w, err_w, null):
                os.close(fd)
        for fd in (self.resp_r, self.out_r, self.err_r):
            os.set_blocking(fd, False)
        self.reader = LineReader(self.resp_r)
        self.status = None
        self.cpu_base = 0.0
        self.meter = TreeMeter()  # the candidate and anything it forks, from here on
        return self.wait_reply(self.job["time_limit"])

    def send(self, obj):
        data = marshal.dumps(obj)
        try:
            write_all(self.req_w, len(data).to_bytes(4, "big") + data)
        except OSError:
            pass  # it died; wait_reply reports how

    def cpu(self):
        """CPU seconds the candidate's process tree has used since it started."""
        if self.pid is None:
            return self.cpu_base
        self.cpu_base = max(self.cpu_base, proc_cpu(self.pid) or 0.0, self.meter.cpu())
        return self.cpu_base

    def drain(self, fds):
        for fd in fds:
            try:
                chunk = os.read(fd, 1 << 16)
            except BlockingIOError:
                continue
            except OSError:
                chunk = b""
            if not chunk:
                continue
            if fd == self.out_r:
                self.out_total += len(chunk)
                room = self.job["output_limit"] - len(self.out)
                if room > 0:
                    self.out.extend(chunk[:room])
            elif fd == self.err_r:
                self.err_total += len(chunk)
                room = STDERR_KEEP - len(self.err)
                if room > 0:
                    self.err.extend(chunk[:room])

    def wait_reply(self, cpu_budget):
        """Next message from the candidate, watching its CPU, wall time and output while waiting."""
        job = self.job
        start_cpu, clock = self.cpu(), WallClock()
        while True:
            if self.reader.pending():
                return self.reader.take()
            r, _, _ = select.select([self.resp_r, self.out_r, self.err_r], [], [], 0.02)
            self.drain([fd for fd in r if fd != self.resp_r])
            if self.resp_r in r:
                try:
                    alive = self.reader.fill()
                except BlockingIOError:
                    alive = True
                if self.reader.pending():
                    return self.reader.take()
                if not alive:
                    raise CandidateGone(self.finish("exited"))
            now_cpu = self.cpu()
            if now_cpu - start_cpu > cpu_budget:
                raise CandidateGone(self.finish("timeout", "cpu"))
            if job["memory_limit"] and self.meter.memory() > job["memory_limit"]:
                raise CandidateGone(self.finish("memory_limit"))
            if clock.elapsed() > job["wall_limit"]:
                raise CandidateGone(self.finish("timeout", "wall"))
            if self.out_total > job["output_limit"] or self.err_total > job["output_limit"]:
                raise CandidateGone(self.finish("output_limit"))
            if len(self.reader.buf) > job["output_limit"] + (1 << 20):
                raise CandidateGone(self.finish("output_limit"))

    def finish(self, outcome, timeout_kind=None):
        """Kill (if needed) and reap the candidate; facts about how it ended."""
        if outcome != "exited":
            kill_tree(self.pid)
        cpu = self.cpu()
        status = zombie_status(self.pid)
        self.dead.append(self.pid)
        self.drain([self.out_r, self.err_r])
        for fd in (self.req_w, self.resp_r, self.out_r, self.err_r):
            try:
                os.close(fd)
            except OSError:
                pass
        code, sig = decode_status(status) if status is not None else (None, None)
        if outcome == "exited" and sig == signal.SIGXCPU:
            outcome, timeout_kind = "timeout", "cpu"
        info = {"outcome": "died" if outcome == "exited" else outcome, "timeout_kind": timeout_kind,
                "exit": code, "signal": sig, "oom": oom_kills() > self.oom_before >= 0}
        self.pid, self.cpu_base = None, cpu
        return info

    def take_output(self):
        out, err = bytes(self.out), bytes(self.err)
        totals = (self.out_total, self.err_total)
        self.out, self.err = bytearray(), bytearray()
        self.out_total = self.err_total = 0
        return out, err, totals

    def call(self, name, args, kwargs, cpu_budget, writeback=False, op="call"):
        """The tagged value the call returned (with ``writeback``: and the arguments it changed).

        ``op="call"`` calls the program's global ``name``; any other ``op`` is an operation on the object
        behind handle ``name`` (an assert test's :class:`Remote`)."""
        frame = {"op": "call", "name": name, "args": args, "kwargs": kwargs, "writeback": writeback}
        if op != "call":
            frame.update(op="handle", id=name, what=op)
        self.send(frame)
        msg = self.wait_reply(cpu_budget)
        op = msg.get("op") if isinstance(msg, dict) else None
        if op == "returned":
            return (msg["value"], msg.get("args_after") or []) if writeback else msg["value"]
        if op == "raised":
            raise CandidateRaised(str(msg.get("error", ""))[:2000])
        if op == "bad_value":
            raise CandidateBadValue(str(msg.get("error", ""))[:500])
        raise CandidateBadValue(f"unexpected reply from the candidate process: {str(msg)[:200]}")


def run_harness(job, cmd_fd, res_fd, nonce):
    """Harness process main loop: one command per test from the runner, one stamped result back."""
    cmds = LineReader(cmd_fd)
    cand = Candidate(job)
    load_info = None

    def report(obj):
        obj["nonce"] = nonce
        write_all(res_fd, (json.dumps(obj) + "\n").encode())

    def ensure_loaded():
        nonlocal load_info
        if cand.pid is not None:
            return None
        t0 = time.monotonic()
        cpu0 = 0.0
        try:
            msg = cand.start()
        except CandidateGone as gone:
            out, err, totals = cand.take_output()
            return dict(gone.info, outcome="load_failed", cause=gone.info["outcome"], message="",
                        cpu_s=0.0, wall_s=round(time.monotonic() - t0, 4),
                        stdout_b64=b64(out), stderr_b64=b64(err), stdout_bytes=totals[0])
        if not (isinstance(msg, dict) and msg.get("op") == "loaded" and msg.get("ok")):
            info = cand.finish("killed")
            out, err, totals = cand.take_output()
            return dict(info, outcome="load_failed", cause="raised",
                        message=str(msg.get("error", "") if isinstance(msg, dict) else msg)[:2000],
                        cpu_s=cpu0, wall_s=round(time.monotonic() - t0, 4),
                        stdout_b64=b64(out), stderr_b64=b64(err), stdout_bytes=totals[0])
        cand.take_output()  # output printed while loading is not part of any test
        return None

    while True:
        cmd = cmds.read()
        if cmd is None:
            os._exit(0)
        failed = ensure_loaded()
        if failed is not None:
            report(failed)
            continue
        t0 = time.monotonic()
        cpu0 = cand.cpu()
        budget = job["time_limit"]
        result = {}
        try:
            if cmd["type"] == "call":
                value = cand.call(cmd["fn_name"], cmd["args"], {"__d": []}, budget)
                result = {"outcome": "returned", "value": value}
            else:
                result = run_assert(cmd["code"], cand, budget, cpu0)
        except CandidateGone as gone:
            result = dict(gone.info)
        except CandidateRaised as exc:
            result = {"outcome": "raised", "message": str(exc)}
        except CandidateBadValue as exc:
            result = {"outcome": "bad_value", "message": str(exc)}
        cpu = (cand.cpu() if cand.pid is not None else cpu0) - cpu0
        out, err, totals = cand.take_output()
        result.update(cpu_s=round(max(cpu, 0.0), 4), wall_s=round(time.monotonic() - t0, 4),
                      stdout_b64=b64(out), stderr_b64=b64(err), stdout_bytes=totals[0],
                      stderr_bytes=totals[1])
        result.setdefault("exit", None)
        result.setdefault("signal", None)
        result.setdefault("oom", False)
        result["reap"], cand.dead = cand.dead, []
        result["keep"] = cand.pid  # the candidate lives on to the next test; nothing else it started does
        report(result)


def free_names(code):
    """Names the test code reads but never binds at top level: the candidate may provide them.

    A builtin's name counts when the test calls it directly on plain arguments (``max(3, 5)``): that is
    how a test calls a function under test that is named like a builtin, and the program's definition
    must then be the one called, as in plain Python. Where the call wraps another call (``abs(f(x) - y)``,
    ``len(f(x))``), the builtin is a helper of the test's comparison and stays the builtin: a program
    cannot redefine the test's own arithmetic.
    """
    tree = ast.parse(code)
    bound = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for a in node.names:
                bound.add((a.asname or a.name).split(".")[0])
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    called, helpers = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in BUILTIN_NAMES:
            called.add(node.func.id)
            inner = [*node.args, *(k.value for k in node.keywords)]
            if any(isinstance(n, ast.Call) for a in inner for n in ast.walk(a)):
                helpers.add(node.func.id)
    return sorted(used - bound - (BUILTIN_NAMES - (called - helpers)))


def run_assert(code, cand, budget, cpu0):
    """Run assert-style test code here, in the harness; candidate names become remote proxies.

    The test's comparisons (``==``, ``abs(...) < eps``) therefore happen in this process on plain
    values decoded from the candidate's replies; the candidate never sees the test code.
    """
    compiled = compile(code, "test.py", "exec")
    names = free_names(code)
    env = {"__name__": "__test__", "__builtins__": builtins}
    call = remote_caller(cand, cpu0, budget)
    if names:
        cand.send({"op": "names", "names": names})
        reply = cand.wait_reply(budget)
        for name, what in (reply.get("found") or {}).items():
            if what.get("callable"):
                env[name] = make_proxy(call, name)
            elif "value" in what:
                env[name] = decode_value(what["value"])
    try:
        exec(compiled, env)
    except (CandidateGone, CandidateRaised, CandidateBadValue):
        raise
    except AssertionError as exc:
        return {"outcome": "assert_failed", "message": ("AssertionError: " + str(exc))[:2000]}
    except BaseException as exc:
        msg = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        return {"outcome": "assert_failed", "message": msg[-2000:]}
    return {"outcome": "passed"}


class Remote:
    """An object of the program (say an instance of its own class) that assert code holds: every use runs
    in the program's process, and what comes back is plain data or another Remote.

    Comparing a Remote with plain data is False (never the program's ``__eq__``): an object that claims
    to equal everything cannot pass ``assert f(x) == 5``. Two Remotes compare with the program's own
    methods (``assert f(x) == Point(1, 2)``), as in plain Python.
    """

    __slots__ = ("_h", "_call")

    def __init__(self, call, h):
        object.__setattr__(self, "_call", call)
        object.__setattr__(self, "_h", h)

    def _op(self, what, *args, **kwargs):
        return self._call(what, self._h, list(args), kwargs)

    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return self._op("getattr", name)

    def __setattr__(self, name, value):
        self._op("setattr", name, value)

    def __call__(self, *args, **kwargs):
        return self._op("invoke", *args, **kwargs)

    def _cmp(what):  # noqa: N805 - builds the comparison methods
        def method(self, other):
            if not isinstance(other, Remote):
                return NotImplemented
            return bool(self._op(what, other))
        return method

    __eq__, __ne__, __lt__ = _cmp("eq"), _cmp("ne"), _cmp("lt")
    __le__, __gt__, __ge__ = _cmp("le"), _cmp("gt"), _cmp("ge")
    del _cmp

    def __hash__(self):
        return self._op("hash")

    def __repr__(self):
        return self._op("repr")

    def __str__(self):
        return self._op("str")

    def __len__(self):
        return self._op("len")

    def __bool__(self):
        return self._op("bool")

    def __getitem__(self, key):
        return self._op("getitem", key)

    def __contains__(self, key):
        return self._op("contains", key)

    def __iter__(self):
        return iter(self._op("iter"))


def remote_caller(cand, cpu0, budget):
    """``call(op, target, args, kwargs)``: a call of the program's function ``target`` (op "call") or an
    operation on its object behind handle ``target``, within the test's CPU budget. Objects that are not
    data cross as :class:`Remote` handles; arguments the call changed in place are updated here."""

    def call(op, target, args, kwargs):
        left = budget - (cand.cpu() - cpu0)
        if left <= 0:
            raise CandidateGone(cand.finish("timeout", "cpu"))
        value, changed = cand.call(target, encode_value(list(args)), encode_value(dict(kwargs)), left,
                                   writeback=True, op=op)
        for i, tagged in changed:  # in-place changes to the arguments show in the test's own objects
            if type(i) is int and 0 <= i < len(args):
                update_in_place(args[i], decode_value(tagged))
        return decode_value(value)

    CODEC["HOOKS"].update(encode=lambda x: [x._h] if type(x) is Remote else None,
                          decode=lambda body: Remote(call, body[0]))
    return call


def make_proxy(call, name):
    def proxy(*args, **kwargs):
        return call("call", name, args, kwargs)

    proxy.__name__ = name
    return proxy


# ------------------------------------------------------------------------------------------------ jobs


class Job:
    def __init__(self, frame):
        self.frame = frame
        self.nonce = frame["nonce"]
        self.kind = frame["kind"]
        self.scratch = None
        self.binary = None
        self.harness = None
        self.harness_killed = None
        self.zygote = None
        self.ok = False

    def begin(self):
        f = self.frame
        self.scratch = os.path.join("/tmp", "job-" + os.urandom(6).hex())
        os.mkdir(self.scratch, 0o700)
        self.env = dict(f["env"], HOME=self.scratch, TMPDIR=self.scratch)
        self.source_path = os.path.join(self.scratch, f["source_name"])
        with open(self.source_path, "w", encoding="utf-8", errors="surrogatepass") as fh:
            fh.write(f["code"])
        self.tl = float(f["time_limit_s"])
        self.wall = float(f["wall_limit_s"])
        self.out_limit = int(f["output_limit"])
        self.memory_limit = int(f.get("memory_limit") or 0)
        self.limits = rlimits(self.tl, f["fsize_limit"], f["nofile_limit"], f["stack_limit"])
        if f.get("rlimit_memory") and self.memory_limit:
            # no memory cgroup (bwrap): each program's private writable memory (heap, anonymous maps,
            # thread stacks) is capped, on top of what it inherits from the zygote it is forked from
            data = self.memory_limit + status_bytes(ZYGOTE.pid, b"VmData")
            self.limits.append((resource.RLIMIT_DATA, data))
        self.ok = False
        reply = {"op": "begin", "compile": None, "ok": True}
        if f.get("compile"):
            ctl = float(f["compile_time_limit_s"])
            spec = {"mode": "exec", "argv": f["compile"], "cwd": self.scratch, "env": self.env,
                    "limits": rlimits(ctl, f["fsize_limit"], f["nofile_limit"], 0)}
            res = run_process(spec, b"", ctl, ctl * 3 + 5, self.out_limit)
            reply["compile"] = res
            reply["ok"] = res["outcome"] == "exited" and res["exit"] == 0
        if reply["ok"] and self.kind in ("call", "assert"):
            self.start_harness(f)
        if (reply["ok"] and self.kind == "stdio" and f.get("run_python") and f.get("n_tests", 1) > 1
                and len(f["code"]) <= PROGRAM_ZYGOTE_MAX_SOURCE):
            try:
                self.zygote = ProgramZygote({"path": self.source_path, "cwd": self.scratch,
                                             "env": self.env, "limits": []})
            except RuntimeError:
                self.zygote = None
        self.ok = reply["ok"]
        return reply

    def spawn(self, spec, fds):
        """A test's process: from the program's own zygote while it answers, else from ZYGOTE."""
        if self.zygote is not None:
            try:
                return self.zygote.spawn(spec, fds)
            except RuntimeError:
                self.zygote = None
        return ZYGOTE.spawn(spec, fds)

    def start_harness(self, f):
        cmd_r, self.cmd_w = os.pipe()
        self.res_r, res_w = os.pipe()
        self.harness_nonce = os.urandom(16).hex()
        hjob = {
            "source_path": self.source_path, "scratch": self.scratch,
            "env": self.env, "time_limit": self.tl, "wall_limit": self.wall,
            "output_limit": self.out_limit, "memory_limit": self.memory_limit,
            # one backstop for the whole candidate process: every test's CPU plus loading
            "limits_total": rlimits(self.tl * (f["n_tests"] + 1), f["fsize_limit"], f["nofile_limit"],
                                    f["stack_limit"]) + [x for x in self.limits if x[0] == resource.RLIMIT_DATA],
        }
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                os.close(self.cmd_w)
                os.close(self.res_r)
                null = os.open("/dev/null", os.O_RDWR)
                for fd in (0, 1):  # fd 1 is our reply stream to the host: test code's prints go nowhere
                    os.dup2(null, fd)
                os.close(null)
                os.setsid()
                run_harness(hjob, cmd_r, res_w, self.harness_nonce)
            except BaseException:
                traceback.print_exc()
                code = 70
            os._exit(code)
        os.close(cmd_r)
        os.close(res_w)
        self.harness = pid
        self.res_reader = LineReader(self.res_r)

    def test(self, frame):
        if not self.ok:  # the host may pipeline tests behind a begin that failed to compile
            return {"outcome": "not_run"}
        if self.kind in ("call", "assert"):
            return self.harness_test(frame)
        stdin = frame.get("stdin", "").encode("utf-8", errors="surrogatepass")
        if self.frame.get("run_python"):
            spec = {"mode": "main", "path": self.source_path}
        else:
            spec = {"mode": "exec", "argv": list(self.frame["run"])}
        spec.update(cwd=self.scratch, env=self.env, limits=self.limits)
        SPARE.clear()
        if self.zygote is not None:
            SPARE.add(self.zygote.pid)
        # a Python test's process starts as a copy of its zygote: those resident pages are not its own
        parent = self.zygote.pid if self.zygote is not None else ZYGOTE.pid
        base = status_bytes(parent, b"VmRSS") if self.frame.get("run_python") else 0
        res = run_process(spec, stdin, self.tl, self.wall, self.out_limit, spawn=self.spawn,
                          memory_limit=self.memory_limit, base_rss=base)
        # nothing a test started may linger into the next test
        kill_all_others(spare=[ZYGOTE.pid, *SPARE])
        return res

    def harness_test(self, frame):
        if self.harness is None:
            if self.harness_killed:  # the program killed it earlier: its remaining tests fail too
                return dict(self.harness_killed)
            return {"outcome": "harness_error", "message": "no harness (did begin fail?)"}
        cmd = {"type": self.kind}
        if self.kind == "call":
            cmd.update(fn_name=frame["fn_name"], args=frame["args"])
        else:
            cmd["code"] = frame["code"]
        try:
            write_all(self.cmd_w, (json.dumps(cmd) + "\n").encode())
        except OSError:
            return self.harness_lost()
        deadline = time.monotonic() + 2 * self.wall + 10
        while not self.res_reader.pending():
            left = deadline - time.monotonic()
            if left <= 0:
                kill_tree(self.harness)
                os.waitpid(self.harness, 0)
                self.harness = None
                return {"outcome": "timeout", "timeout_kind": "wall", "message": "test code ran too long"}
            r, _, _ = select.select([self.res_r], [], [], min(left, 1.0))
            if r and not self.res_reader.fill():
                return self.harness_lost()
        msg = self.res_reader.take()
        if not isinstance(msg, dict) or msg.pop("nonce", None) != self.harness_nonce:
            return {"outcome": "harness_error", "message": "result without the harness nonce"}
        for pid in msg.pop("reap", ()):  # ended candidate processes are our children (re-parented)
            try:
                os.waitpid(pid, os.WNOHANG)
            except (ChildProcessError, TypeError):
                pass
        keep = msg.pop("keep", None)
        # a helper the program started during this test cannot keep working (unaccounted) until the next
        kill_all_others(spare=[ZYGOTE.pid, self.harness] + ([keep] if type(keep) is int else []))
        return msg

    def harness_lost(self):
        """The harness died mid-test: only the candidate can have done that (e.g. killed its parent)."""
        _, status = os.waitpid(self.harness, 0)
        code, sig = decode_status(status)
        self.harness = None
        self.harness_killed = {"outcome": "harness_killed", "exit": code, "signal": sig,
                               "message": "the test harness was killed during the test"}
        return dict(self.harness_killed)

    def end(self):
        if self.zygote is not None:  # stopped (and reaped) first: no waiting in cleanup's kill rounds
            self.zygote.stop()
            self.zygote = None
        SPARE.clear()
        return cleanup()


def cleanup():
    """After a job: no process but us, nothing left in writable places, no IPC objects."""
    problems = []
    if not kill_all_others(spare=[ZYGOTE.pid]):
        problems.append("processes survive SIGKILL")
    if not ZYGOTE.healthy():
        ZYGOTE.restart()
    for d in WIPE_DIRS:
        if not wipe(d):
            problems.append(f"could not wipe {d}")
    problems += ipc_leftovers()
    return {"op": "end", "clean": not problems, "problems": problems}


def main():
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 0
    except Exception:
        pass
    reader = LineReader(0)
    job = None
    ZYGOTE.start()
    while True:
        try:
            frame = reader.read()
        except (ValueError, UnicodeDecodeError) as exc:
            reply(None, {"op": "error", "message": f"bad frame: {exc}"})
            flush()
            continue
        if frame is None:
            kill_all_others()
            return
        op = frame.get("op")
        try:
            if op == "ping":
                out = {"op": "ping", "pid": os.getpid()}
            elif op == "begin":
                if job is not None:
                    job.end()
                job = Job(frame)
                out = job.begin()
            elif op == "test":
                out = job.test(frame) if job else {"outcome": "harness_error", "message": "no job"}
                out["op"] = "test"
            elif op == "end":
                out = job.end() if job else cleanup()
                job = None
            else:
                out = {"op": "error", "message": f"unknown op {op!r}"}
        except BaseException:
            out = {"op": "error", "message": traceback.format_exc()[-4000:]}
        reply(frame, out)
        # Coalesce replies while more frames are already waiting (a pipelined job): one write, one
        # trip through the Docker engine, instead of one per test.
        if not reader.pending() and not select.select([0], [], [], 0)[0]:
            flush()


OUTBOX = []


def reply(frame, out):
    if frame is not None:
        out["nonce"] = frame.get("nonce")
        out["seq"] = frame.get("seq")
    OUTBOX.append(json.dumps(out) + "\n")
    if sum(len(x) for x in OUTBOX) > (4 << 20):
        flush()


def flush():
    if OUTBOX:
        data = "".join(OUTBOX).encode()
        OUTBOX.clear()
        write_all(1, data)


if __name__ == "__main__":
    main()
