"""The sandbox's verdict suites run against both backends: every test here that takes ``sandbox_url`` or
``sandbox_client`` runs once on the Docker pool and once on the bwrap pool (same runner, same root
filesystem). ``docker_sandbox_url`` is the Docker pool alone, for tests of Docker's own machinery."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def bwrap_sandbox_url():
    """A bwrap-backed server (2 sandboxes) for the whole session; the root filesystem is unpacked once."""
    from rlvr.sandbox.image import build_image, ensure_rootfs
    from rlvr.sandbox.testing import running_server

    build_image()
    ensure_rootfs()
    with running_server(size=2, backend="bwrap") as url:
        yield url


@pytest.fixture(scope="session")
def docker_sandbox_url(_docker_pool_url):
    return _docker_pool_url


@pytest.fixture(scope="session", params=["docker", "bwrap"])
def sandbox_url(request):
    return request.getfixturevalue("_docker_pool_url" if request.param == "docker" else "bwrap_sandbox_url")


@pytest.fixture(scope="session")
def sandbox_client(sandbox_url):
    from rlvr.sandbox.client import SandboxClient

    client = SandboxClient(sandbox_url, timeout_s=120)
    yield client
    client.close()


@pytest.fixture
def sandbox_backend(request, sandbox_url):
    """Which backend this run of a test uses ("docker" or "bwrap")."""
    return request.node.callspec.params["sandbox_url"]
