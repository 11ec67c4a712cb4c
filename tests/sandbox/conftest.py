"""Sandbox fixtures: a real server (real Docker) shared by the whole session.

``sandbox_url`` is session-scoped: it builds the image if needed (idempotent; scripts/setup.sh
normally did it already) and runs ``rlvr sandbox serve`` with two containers until the session ends.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def sandbox_url():
    from sandbox.image import build_image
    from sandbox.testing import running_server

    build_image()
    with running_server(size=2) as url:
        yield url


@pytest.fixture(scope="session")
def sandbox_client(sandbox_url):
    from sandbox.client import SandboxClient

    client = SandboxClient(sandbox_url, timeout_s=120)
    yield client
    client.close()
