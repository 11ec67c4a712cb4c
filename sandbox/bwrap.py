"""The rootless backend: each pool worker is our runner under ``bwrap`` (bubblewrap), for hosts where
Docker is not allowed (most SLURM sites). Same runner, same image root filesystem (unpacked once by
:func:`rlvr.sandbox.image.ensure_rootfs`, mounted read-only), the same frames over a socket pair
instead of Docker's attach stream.

Each worker: new user, PID, network, IPC, UTS and cgroup namespaces (no network at all), the runner as
PID 1 of its PID namespace (``--as-pid-1``: orphans are re-parented to it, it reaps them), uid/gid 65534,
no capabilities, a new session (no terminal to inject into), a private size-capped ``/tmp`` and
``/dev/shm``, a fresh ``/proc``, a minimal ``/dev``, an empty environment, and the sandbox ends with
the service (``--die-with-parent``). What differs from Docker is listed in sandbox/README.md.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

from rlvr.sandbox.worker import (
    CANDIDATE_ENV,
    CANDIDATE_SOURCE,
    RUNNER_SOURCE,
    ContainerLost,
    DockerStream,
    Worker,
)

_BPF: bytes | None = None


def _bpf() -> bytes:
    global _BPF
    if _BPF is None:
        from rlvr.sandbox.seccomp import bpf_program

        _BPF = bpf_program()
    return _BPF


class PipeStream(DockerStream):
    """Frames over a plain socket (no Docker multiplexing: every byte is the runner's stdout)."""

    def _demux(self) -> None:
        self.out.extend(self.raw)
        self.raw.clear()


def bwrap_command(rootfs: Path, tmpfs_mb: int, hashseed: int, seccomp_fd: int | None = None) -> list[str]:
    exe = shutil.which("bwrap")
    if exe is None:
        raise ContainerLost("`bwrap` is not installed: apt-get install -y bubblewrap")
    return [
        exe, "--ro-bind", str(rootfs), "/", "--proc", "/proc", "--dev", "/dev",
        "--size", str(tmpfs_mb << 20), "--tmpfs", "/tmp", "--size", str(16 << 20), "--tmpfs", "/dev/shm",
        "--unshare-all", "--unshare-user", "--uid", "65534", "--gid", "65534", "--hostname", "sandbox",
        "--as-pid-1", "--die-with-parent", "--new-session", "--cap-drop", "ALL", "--chdir", "/tmp",
        "--clearenv", "--setenv", "PATH", CANDIDATE_ENV["PATH"], "--setenv", "LANG", "C.UTF-8",
        "--setenv", "PYTHONHASHSEED", str(hashseed),
        *(["--seccomp", str(seccomp_fd)] if seccomp_fd is not None else []),
        "/usr/bin/python3", "-s", "-P", "-S", "-B", "-c", RUNNER_SOURCE, CANDIDATE_SOURCE,
    ]


class BwrapWorker(Worker):
    """A :class:`~rlvr.sandbox.worker.Worker` whose "container" is a bwrap sandbox process."""

    def start(self) -> None:
        import secrets

        cfg = self.pool.config
        host, child = socket.socketpair()
        filt = -1
        try:
            if cfg.seccomp == "rlvr":  # the same allow-list as the Docker backend's, as a BPF program
                filt = os.memfd_create("rlvr-seccomp")
                os.write(filt, _bpf())
                os.lseek(filt, 0, os.SEEK_SET)
            self.proc = subprocess.Popen(
                bwrap_command(Path(self.pool.image), cfg.tmpfs_mb, secrets.randbelow(1 << 32),
                              filt if filt >= 0 else None),
                stdin=child, stdout=child, stderr=subprocess.DEVNULL, close_fds=True, start_new_session=True,
                pass_fds=(filt,) if filt >= 0 else ())
        finally:
            child.close()
            if filt >= 0:
                os.close(filt)
        self.container_id = f"bwrap:{self.proc.pid}"
        self.stream = PipeStream(host)
        self.memory_mb = None
        self.handshake()

    def stop(self) -> None:
        if self.stream:
            self.stream.close()
            self.stream = None
        proc = getattr(self, "proc", None)
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, 9)  # bwrap and everything in the sandbox (PID namespace: its init dies)
            except OSError:
                pass
            proc.wait(30)
        self.container_id = None

    def set_memory(self, memory_mb: int) -> None:
        self.memory_mb = memory_mb  # enforced per program by the runner (RLIMIT_DATA), see begin_extra

    def begin_extra(self) -> dict:
        return {"rlimit_memory": True}
