"""Service-level behaviour: concurrency, container faults, reaping, replicas, clients, the image."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest
from rlvr.sandbox.client import AsyncSandboxClient, SandboxClient, SandboxRequestError, SandboxUnavailable
from rlvr.sandbox.pool import LABEL, LABEL_OWNER, LABEL_POOL

ECHO = "x = int(input())\nprint(x * 7)\n"


def echo_request(i: int, **kw) -> dict:
    return dict({"language": "python", "code": ECHO, "tests": [
        {"type": "stdio", "stdin": f"{i}\n", "expected_stdout": str(i * 7)}]}, **kw)


def labelled(pool_id: str) -> list:
    from rlvr.sandbox.image import docker_client

    return docker_client().containers.list(all=True, filters={"label": f"{LABEL_POOL}={pool_id}"})


def metric(url: str, name: str) -> float:
    text = httpx.get(url + "/metrics", timeout=10).text
    m = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


@pytest.mark.docker
def test_many_simultaneous_requests_lose_nothing(sandbox_url):
    async def main():
        async with AsyncSandboxClient(sandbox_url, timeout_s=300) as client:
            singles = await asyncio.gather(*(client.execute(echo_request(i)) for i in range(150)))
            batch = await client.execute_batch([echo_request(i) for i in range(150, 200)])
            return singles + batch

    results = asyncio.run(main())
    assert len(results) == 200
    assert [r["status"] for r in results] == ["accepted"] * 200
    assert [r["tests"][0]["stdout"] for r in results] == [f"{i * 7}\n" for i in range(200)]
    assert metric(sandbox_url, "sandbox_queue_depth") == 0


@pytest.mark.docker
def test_container_killed_mid_run_is_retried_or_reported_and_pool_heals():
    from rlvr.sandbox.image import docker_client
    from rlvr.sandbox.testing import running_server

    with running_server(size=2) as url, SandboxClient(url, timeout_s=120) as client:
        before = {c.id for c in labelled(url.pool_id)}
        assert len(before) == 2
        out = {}
        slow = {"language": "python", "code": "import time\ntime.sleep(2)\nprint('done')", "time_limit_s": 5,
                "tests": [{"type": "stdio", "stdin": "", "expected_stdout": "done"}]}
        t = threading.Thread(target=lambda: out.update(r=client.execute(slow)))
        t.start()
        victim = None
        for _ in range(100):  # the busy container: runner + zygote + the program
            for c in labelled(url.pool_id):
                if len(c.top()["Processes"]) > 2:
                    victim = c
            if victim:
                break
            time.sleep(0.05)
        assert victim is not None
        docker_client().api.kill(victim.id)
        t.join(60)
        assert out["r"]["status"] in ("accepted", "sandbox_error")
        assert metric(url, "sandbox_container_losses_total") >= 1
        for _ in range(100):
            health = httpx.get(url + "/healthz").json()
            if health["workers_up"] == 2 and health["idle"] == 2:
                break
            time.sleep(0.1)
        assert health["workers_up"] == 2
        after = {c.id for c in labelled(url.pool_id)}
        assert len(after) == 2 and victim.id not in after
        rs = client.execute_batch([echo_request(i) for i in range(6)])
        assert [r["status"] for r in rs] == ["accepted"] * 6
    assert labelled(url.pool_id) == []  # shutdown removed them


@pytest.mark.docker
def test_replicas_share_load_and_a_killed_service_leaves_no_container():
    from rlvr.sandbox.testing import running_server

    with running_server(size=1) as a, running_server(size=1) as b:
        client = SandboxClient([a, b], timeout_s=60, retries=3, batch_chunk=4)
        rs = client.execute_batch([echo_request(i) for i in range(16)])
        assert [r["status"] for r in rs] == ["accepted"] * 16
        done_a = sum(float(v) for v in re.findall(r'^sandbox_tests_total\{status="accepted"\} (\S+)$',
                                                   httpx.get(a + "/metrics").text, re.M))
        done_b = sum(float(v) for v in re.findall(r'^sandbox_tests_total\{status="accepted"\} (\S+)$',
                                                   httpx.get(b + "/metrics").text, re.M))
        assert done_a > 0 and done_b > 0 and done_a + done_b == 16
        # SIGKILL one replica: no shutdown code runs, yet its containers go away (StdinOnce -> EOF
        # -> the runner exits -> auto-remove), and the client fails over to the other replica.
        assert len(labelled(a.pool_id)) == 1
        a.process.send_signal(signal.SIGKILL)
        a.process.wait()
        rs = client.execute_batch([echo_request(i) for i in range(8)])
        assert [r["status"] for r in rs] == ["accepted"] * 8
        for _ in range(100):
            if not labelled(a.pool_id):
                break
            time.sleep(0.1)
        assert labelled(a.pool_id) == []
        client.close()


@pytest.mark.docker
def test_orphaned_containers_are_reaped_at_start():
    from rlvr.sandbox.image import docker_client, image_tag
    from rlvr.sandbox.pool import SandboxPool

    client = docker_client()
    orphan = client.containers.run(image_tag(), ["sleep", "300"], detach=True, network_mode="none",
                                   labels={LABEL: "1", LABEL_POOL: "orphan-test",
                                           LABEL_OWNER: f"{os.uname().nodename}:999999:1"})

    async def main():
        async with SandboxPool(size=1) as pool:
            return await pool.execute(__import__("rlvr.sandbox.schema").sandbox.schema.ExecuteRequest(**echo_request(3)))

    try:
        assert asyncio.run(main())["status"] == "accepted"
        assert labelled("orphan-test") == []
    finally:
        subprocess.run(["docker", "rm", "-f", orphan.id], capture_output=True)


# --------------------------------------------------------------------------------------------- client

def test_client_retries_transport_errors_only():
    calls = []

    def handler(status):
        def h(request: httpx.Request):
            calls.append(str(request.url))
            if status == "refuse":
                raise httpx.ConnectError("refused", request=request)
            return httpx.Response(status, json={"detail": "tests.0.code: Field required"})
        return h

    for status, n_calls, exc in [(422, 1, SandboxRequestError), (503, 3, SandboxUnavailable),
                                 ("refuse", 3, SandboxUnavailable), (400, 1, SandboxRequestError)]:
        calls.clear()
        c = SandboxClient(["http://a", "http://b"], retries=2, backoff_s=0.0,
                          transport=httpx.MockTransport(handler(status)))
        with pytest.raises(exc) as info:
            c.execute({"language": "python", "code": "x"})
        assert len(calls) == n_calls
        if status == 422:
            assert "tests.0.code" in str(info.value)
        if n_calls == 3:  # attempts alternate between the replicas
            assert calls == ["http://a/v1/execute", "http://b/v1/execute", "http://a/v1/execute"]


@pytest.mark.docker
def test_client_fails_over_and_respects_its_deadline(sandbox_url):
    dead = "http://127.0.0.1:9"  # nothing listens on the discard port
    with SandboxClient([dead, sandbox_url], retries=3, backoff_s=0.0) as c:
        assert c.execute(echo_request(2))["status"] == "accepted"
        assert [r["status"] for r in c.execute_batch([echo_request(i) for i in range(4)])] == ["accepted"] * 4
    t0 = time.monotonic()
    with SandboxClient([dead], retries=100, backoff_s=0.05, timeout_s=1.5) as c, \
            pytest.raises(SandboxUnavailable):
        c.execute(echo_request(1))
    assert time.monotonic() - t0 < 3
    slow = {"language": "python", "code": "import time\ntime.sleep(3)", "time_limit_s": 5}
    t0 = time.monotonic()
    with SandboxClient(sandbox_url, timeout_s=1.0) as c, pytest.raises(SandboxUnavailable):
        c.execute(slow)
    assert time.monotonic() - t0 < 2.5

    async def main():
        async with AsyncSandboxClient([dead, sandbox_url], backoff_s=0.0) as ac:
            one = await ac.execute(echo_request(5))
            many = await ac.execute_batch([echo_request(i) for i in range(3)])
            with pytest.raises(SandboxRequestError):
                await ac.execute({"language": "python"})
            return [one] + many

    assert [r["status"] for r in asyncio.run(main())] == ["accepted"] * 4


# ---------------------------------------------------------------------------------------------- image

def test_image_tag_is_a_content_hash():
    from rlvr.sandbox.image import SPEC, image_tag, mmdebstrap_command

    assert image_tag() == image_tag(dict(SPEC))
    assert re.fullmatch(r"rlvr-sandbox:[0-9a-f]{16}", image_tag())
    assert image_tag(dict(SPEC, packages=SPEC["packages"] + ["nodejs"])) != image_tag()
    cmd = mmdebstrap_command()
    assert cmd[0] == "mmdebstrap" and "--include=g++,python3" in cmd and cmd[-1] == "-"


@pytest.mark.docker
def test_build_image_is_idempotent_via_cli():
    from rlvr.sandbox.image import image_tag

    env = dict(os.environ)
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "rlvr.cli", "sandbox", "build-image"], capture_output=True,
                       text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == image_tag()
    r = subprocess.run([sys.executable, "-m", "rlvr.cli", "sandbox", "build-image"], capture_output=True,
                       text=True, env=env, timeout=60)
    assert r.returncode == 0 and "already present" in r.stderr
    assert time.monotonic() - t0 < 300


def test_no_docker_engine_gives_a_clear_error():
    env = dict(os.environ, DOCKER_HOST="unix:///nonexistent/docker.sock")
    r = subprocess.run([sys.executable, "-m", "rlvr.cli", "sandbox", "build-image"], capture_output=True,
                       text=True, env=env, timeout=60)
    assert r.returncode == 1
    assert "no Docker engine is reachable" in r.stderr and "dockerd" in r.stderr


@pytest.mark.docker
def test_containers_are_recycled_and_admission_is_bounded():
    from rlvr.sandbox.pool import Overloaded, SandboxPool
    from rlvr.sandbox.schema import ExecuteRequest

    slow = ExecuteRequest(language="python", code="import time\ntime.sleep(1)", time_limit_s=2)

    async def main():
        async with SandboxPool(size=1, jobs_per_container=2, max_queue=0) as pool:
            seen = []
            for i in range(5):
                r = await pool.execute(ExecuteRequest(**echo_request(i)))
                assert r["status"] == "accepted"
                seen.append(pool.container_ids()[0] if pool.container_ids() else None)
                while pool._idle.empty():  # wait for the recycle to finish
                    await asyncio.sleep(0.05)
            busy = asyncio.create_task(pool.execute(slow))
            await asyncio.sleep(0.3)
            with pytest.raises(Overloaded):
                await pool.execute(ExecuteRequest(**echo_request(9)))
            assert (await busy)["status"] == "accepted"
            return seen, pool.counters["container_restarts"]

    seen, restarts = asyncio.run(main())
    assert restarts >= 2
    assert len(set(seen)) >= 3  # a new container every second job


def test_sandbox_or_local_prefers_given_urls_then_the_environment(monkeypatch):
    from rlvr.sandbox.testing import sandbox_or_local

    said = []
    monkeypatch.setenv("RLVR_SANDBOX_URLS", "http://a:1,http://b:2")
    with sandbox_or_local(["http://given:3"], announce=said.append) as urls:
        assert urls == ["http://given:3"]
    with sandbox_or_local([], announce=said.append) as urls:
        assert urls == ["http://a:1", "http://b:2"]
    assert said == []  # nothing started


@pytest.mark.docker
def test_sandbox_or_local_starts_a_service_for_the_block(monkeypatch):
    from rlvr.sandbox.testing import sandbox_or_local

    monkeypatch.delenv("RLVR_SANDBOX_URLS", raising=False)
    said = []
    with sandbox_or_local(None, announce=said.append) as urls:
        assert len(urls) == 1 and os.environ["RLVR_SANDBOX_URLS"] == urls[0]
        with SandboxClient(urls, timeout_s=60) as client:
            assert client.execute_batch([echo_request(1)])[0]["status"] == "accepted"
        process = urls[0].process
    assert "RLVR_SANDBOX_URLS" not in os.environ and process.poll() is not None
    assert len(said) == 1 and "starting a local sandbox service" in said[0]


def test_wait_until_healthy_waits_for_a_late_replica_and_names_a_dead_one():
    """The controller's wait before the first step: a replica that comes up late is waited for (real
    HTTP), one that never does is named after the timeout."""
    import http.server
    import socket
    import threading

    from rlvr.sandbox.client import wait_until_healthy

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    class Healthz(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            body = b'{"ok": true}' if self.path == "/healthz" else b"{}"
            self.send_response(200 if self.path == "/healthz" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    servers = []

    def start() -> None:  # the replica starts listening only after a second
        servers.append(http.server.ThreadingHTTPServer(("127.0.0.1", port), Healthz))
        servers[0].serve_forever()

    late = threading.Timer(1.0, start)
    heard: list[str] = []
    late.start()
    try:
        t0 = time.monotonic()
        wait_until_healthy([f"http://127.0.0.1:{port}"], timeout_s=30, interval_s=0.2, log=heard.append)
        assert 0.9 < time.monotonic() - t0 < 30 and heard and f"127.0.0.1:{port}" in heard[0]
        with pytest.raises(SandboxUnavailable, match=r"not healthy after 0.5 s: http://127.0.0.1:9$"):
            wait_until_healthy([f"http://127.0.0.1:{port}", "http://127.0.0.1:9"], timeout_s=0.5, interval_s=0.1)
    finally:
        late.cancel()
        for server in servers:
            server.shutdown()
            server.server_close()


@pytest.mark.docker
def test_replicas_script_falls_back_to_bwrap_without_docker(tmp_path):
    """cluster/sandbox/replicas.sh on a host where no Docker engine answers (as on most SLURM sites):
    it picks the bwrap backend by itself, and the replica judges programs."""
    import signal

    from rlvr.sandbox.testing import free_port

    port = free_port()
    env = dict(os.environ, DOCKER_HOST="unix:///nonexistent/docker.sock", SANDBOX_REPLICAS="1",
               SANDBOX_POOL_SIZE="1", SANDBOX_PORT=str(port), SANDBOX_HOST="127.0.0.1", SANDBOX_BACKEND="")
    proc = subprocess.Popen(["bash", "cluster/sandbox/replicas.sh"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.2)
        from rlvr.sandbox.image import rootfs_dir

        assert httpx.get(url + "/healthz", timeout=5).json()["image"] == str(rootfs_dir())
        with SandboxClient(url, timeout_s=60) as client:
            r = client.execute(echo_request(7))
        assert r["status"] == "accepted"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    assert "(bwrap pool 1" in proc.stderr.read()


@pytest.mark.docker
def test_build_rootfs_is_idempotent_via_cli():
    from rlvr.sandbox.image import rootfs_dir

    r = subprocess.run([sys.executable, "-m", "rlvr.cli", "sandbox", "build-rootfs"], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0 and r.stdout.strip() == str(rootfs_dir())
    assert (rootfs_dir() / ".rlvr-complete").is_file() and (rootfs_dir() / "usr/bin/python3").exists()
