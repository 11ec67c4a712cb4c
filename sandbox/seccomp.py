"""The sandbox's own seccomp allow-list: the system calls the runner and ordinary Python and C++ programs
make, and nothing else (everything else fails with EPERM).

``TRACED`` is what :mod:`rlvr.sandbox.seccomp_trace` recorded for the runner, its zygote and a workload
of ordinary programs (threads, multiprocessing, subprocess, asyncio, epoll, mmap, signals, files, g++
and the programs it builds, HumanEval, every limit hit). ``REVIEWED`` adds, by hand, the calls the same
libraries make on other paths or other glibc versions (older ``stat``/``open`` spellings, ``statx``,
``sendfile`` in ``shutil``, Unix sockets in ``multiprocessing.Manager``...). Left out on purpose, though
Docker's default profile allows them: ``io_uring_*`` (a large, often-exploited kernel surface),
``userfaultfd`` (a staple of kernel exploits), ``bpf``, ``perf_event_open``, the key-management calls,
``ptrace`` and ``process_vm_*`` (no process may inspect another), ``kcmp``, ``pidfd_getfd``, ``unshare``,
``setns`` and namespace-creating ``clone`` flags (denied by argument), ``personality``, ``memfd_secret``,
the NUMA policy calls. ``clone3`` answers ENOSYS (its flags live in memory, where seccomp cannot look),
so glibc falls back to ``clone``, whose flags are checked.

:func:`docker_profile` is the profile in Docker's JSON format (the Docker backend's ``--security-opt
seccomp=...``); :func:`bpf_program` compiles the same rules with libseccomp for bwrap's ``--seccomp``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os

TRACED = frozenset("""
access arch_prctl brk chdir chmod clock_gettime clock_nanosleep clone close close_range dup2 dup3
epoll_create1 epoll_ctl epoll_wait execve exit exit_group faccessat2 fcntl futex getcwd getdents64 getegid
geteuid getgid getpid getppid getpriority getrandom getrusage getsockname getsockopt gettid getuid ioctl
kill link lseek madvise mkdir mmap mprotect mremap munmap newfstatat openat pidfd_open pipe2 poll prctl
pread64 prlimit64 pselect6 read readlink recvfrom recvmsg rename restart_syscall rmdir rseq rt_sigaction
rt_sigprocmask rt_sigreturn sched_getaffinity sendmsg sendto set_robust_list set_tid_address setitimer
setpriority setsid sigaltstack socketpair sysinfo tgkill umask uname unlink unlinkat vfork wait4 write
""".split())

REVIEWED = frozenset("""
open stat fstat lstat statx readlinkat faccessat getdents mkdirat renameat renameat2 linkat symlink
symlinkat fchmod fchmodat fchown fchownat chown lchown utimensat utime utimes futimesat truncate ftruncate
fallocate fsync fdatasync sync_file_range fadvise64 flock fchdir statfs fstatfs pipe dup readv writev
pwrite64 preadv pwritev preadv2 pwritev2 sendfile copy_file_range splice select ppoll epoll_pwait
epoll_pwait2 epoll_create eventfd eventfd2 timerfd_create timerfd_settime timerfd_gettime
socket connect bind listen accept accept4 shutdown getpeername setsockopt recvmmsg sendmmsg
nanosleep clock_getres gettimeofday time times getitimer alarm pause rt_sigpending rt_sigsuspend
rt_sigtimedwait rt_sigqueueinfo tkill sched_yield sched_getparam sched_getscheduler sched_setaffinity
sched_get_priority_max sched_get_priority_min getcpu getresuid getresgid getgroups getpgrp getpgid
setpgid getsid getrlimit setrlimit msync mincore mlock munlock membarrier memfd_create get_robust_list
waitid capget wait4 exit set_thread_area get_thread_area futex_waitv ioprio_get
""".split())

ALLOWED = TRACED | REVIEWED
DENIED_EXAMPLES = ("io_uring_setup", "userfaultfd", "bpf", "perf_event_open", "keyctl", "add_key", "ptrace",
                   "process_vm_readv", "unshare", "setns", "personality", "kcmp", "pidfd_getfd")
# clone flags that create namespaces: NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET
CLONE_NEW_MASK = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000


def docker_profile() -> dict:
    """The allow-list in Docker's seccomp JSON format (x86_64 and aarch64)."""
    plain = sorted(ALLOWED - {"clone"})
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": errno.EPERM,
        "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
                    {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}],
        "syscalls": [
            {"names": plain, "action": "SCMP_ACT_ALLOW"},
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": CLONE_NEW_MASK, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS},
        ],
    }


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


def bpf_program() -> bytes:
    """The same rules compiled to a classic-BPF seccomp program (libseccomp), for ``bwrap --seccomp``."""
    path = ctypes.util.find_library("seccomp")
    if path is None:
        raise OSError("libseccomp is not installed (apt-get install -y libseccomp2)")
    lib = ctypes.CDLL(path, use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                          ctypes.POINTER(_ArgCmp)]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    act_allow, act_errno = 0x7FFF0000, 0x00050000  # SCMP_ACT_ALLOW, SCMP_ACT_ERRNO(0)
    scmp_cmp_masked_eq = 7
    ctx = lib.seccomp_init(act_errno | errno.EPERM)
    if not ctx:
        raise OSError("seccomp_init failed")
    try:
        for name in sorted(ALLOWED - {"clone"}):
            nr = lib.seccomp_syscall_resolve_name(name.encode())
            if nr < 0:  # not a call of this architecture (e.g. `open` on aarch64)
                continue
            if lib.seccomp_rule_add_array(ctx, act_allow, nr, 0, None) < 0:
                raise OSError(f"seccomp rule for {name} failed")
        clone = lib.seccomp_syscall_resolve_name(b"clone")
        cmp = (_ArgCmp * 1)(_ArgCmp(0, scmp_cmp_masked_eq, CLONE_NEW_MASK, 0))
        if lib.seccomp_rule_add_array(ctx, act_allow, clone, 1, cmp) < 0:
            raise OSError("seccomp rule for clone failed")
        clone3 = lib.seccomp_syscall_resolve_name(b"clone3")
        if clone3 >= 0 and lib.seccomp_rule_add_array(ctx, act_errno | errno.ENOSYS, clone3, 0, None) < 0:
            raise OSError("seccomp rule for clone3 failed")
        r, w = os.pipe()
        try:
            if lib.seccomp_export_bpf(ctx, w) < 0:
                raise OSError("seccomp_export_bpf failed")
            os.close(w)
            w = -1
            chunks = []
            while chunk := os.read(r, 1 << 16):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(r)
            if w >= 0:
                os.close(w)
    finally:
        lib.seccomp_release(ctx)
