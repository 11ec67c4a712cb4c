"""Start a real sandbox server on a free local port (a subprocess): for tests, and for the CLIs when no
sandbox URL is configured (:func:`sandbox_or_local`)."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import httpx


class ServerURL(str):
    """The base URL (a plain ``str``), plus the server ``process`` and its containers' ``pool_id``."""

    process: subprocess.Popen
    pool_id: str


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_server(startup_timeout_s: float = 180, **pool_kwargs) -> Iterator[ServerURL]:
    """Run ``rlvr sandbox serve`` on 127.0.0.1 with ``PoolConfig(**pool_kwargs)``; yields its base URL.

    Waits for ``/healthz``; on exit stops the server (SIGTERM, then SIGKILL) and removes any container
    still labelled with its pool id, so nothing outlives the block.
    """
    pool_kwargs.setdefault("pool_id", "t" + secrets.token_hex(4))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tempfile.NamedTemporaryFile("w+b", prefix="rlvr-sandbox-", suffix=".log", delete=False)
    cmd = [sys.executable, "-m", "rlvr.sandbox.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
           "--pool-json", json.dumps(pool_kwargs), "--log-level", "warning"]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
    try:
        deadline = time.monotonic() + startup_timeout_s
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"sandbox server exited with {proc.returncode}:\n"
                                   f"{log.read().decode(errors='replace')[-4000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"sandbox server did not become healthy in {startup_timeout_s} s")
            time.sleep(0.2)
        served = ServerURL(url)
        served.process, served.pool_id = proc, pool_kwargs["pool_id"]
        yield served
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        with contextlib.suppress(Exception):
            from rlvr.sandbox.image import docker_client
            from rlvr.sandbox.pool import reap_containers

            reap_containers(docker_client(), pool_kwargs["pool_id"])
        log.close()
        with contextlib.suppress(OSError):
            os.unlink(log.name)


@contextlib.contextmanager
def sandbox_or_local(urls: list[str] | None = None, announce=None) -> Iterator[list[str]]:
    """The sandbox endpoints to use: ``urls`` when given, else ``$RLVR_SANDBOX_URLS`` when set, else a
    local service started for the duration of the block (``announce(message)`` is told so). Lets
    ``rlvr train``, ``rlvr eval`` and ``rlvr data curate`` run on one machine without a running service.
    While a local service runs, ``$RLVR_SANDBOX_URLS`` points at it."""
    env = [u for u in os.environ.get("RLVR_SANDBOX_URLS", "").split(",") if u.strip()]
    if urls or env:
        yield list(urls or env)
        return
    if announce:
        announce("starting a local sandbox service for this run (set RLVR_SANDBOX_URLS to use a running one)")
    with running_server() as url:
        os.environ["RLVR_SANDBOX_URLS"] = url  # for verifiers that read it (composite, user verifiers)
        try:
            yield [url]
        finally:
            os.environ.pop("RLVR_SANDBOX_URLS", None)


# Appended to a correct solution: the entry point now returns a perturbed value of the same kind (a
# wrong program that plain Python and the sandbox must both fail).
_PERTURB = '''
def _rlvr_mutate(r):
    if isinstance(r, bool):
        return not r
    if isinstance(r, (int, float)):
        return r + 1
    if isinstance(r, str):
        return r + "#"
    if isinstance(r, (list, tuple)):
        return type(r)(list(r) + [None])
    if isinstance(r, dict):
        return dict(r, _rlvr=1)
    return 0 if r is None else None

_rlvr_original = {name}
def {name}(*args, **kwargs):
    return _rlvr_mutate(_rlvr_original(*args, **kwargs))
'''


def perturbed(code: str, entry_point: str) -> str:
    """``code`` whose function ``entry_point`` returns a perturbed value (a known-wrong program)."""
    return code + _PERTURB.format(name=entry_point)
