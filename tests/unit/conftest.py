"""Shared fixtures for unit tests: a real API server on a unix socket (so the local admin)
over SQLite in a temporary directory (no scheduler, no controllers), and a client to it.
Directories can override either fixture with their own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from apimachinery.client import Client
from apiserver.server import APIServer
from apiserver.storage import open_storage


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[APIServer]:
    storage = await open_storage("sqlite", str(tmp_path))
    srv = APIServer(storage, f"unix:{tmp_path}/api.sock")
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop(grace=0)


@pytest.fixture
async def client(server: APIServer) -> AsyncIterator[Client]:
    c = Client(server.local_address, timeout=10)
    try:
        yield c
    finally:
        await c.close()


@pytest.fixture(autouse=True)
def _no_local_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    """A `tinykube up` cluster running on this machine is no unit test's default server."""
    monkeypatch.setenv("TINYKUBE_CLUSTERS_DIR", "/nonexistent/tinykube-clusters")
