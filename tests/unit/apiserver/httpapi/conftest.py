"""Fixtures: a real API server on TLS (its PKI made by `pki init`'s code) and its admin."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from apiserver.auth.authorizer import UserInfo
from apiserver.server import APIServer
from apiserver.storage import open_storage
from tests.unit.apiserver.httpapi.client import HTTPS, TOKEN, Cluster
from tests.unit.apiserver.objects import tls_serving


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    pki, serving = tls_serving(tmp_path)
    storage = await open_storage("sqlite", str(tmp_path / "data"))
    tokens = {TOKEN: UserInfo("bob", ("developers",), uid="42")}
    server = APIServer(storage, f"unix:{tmp_path}/api.sock", serving=serving, static_tokens=tokens)
    await server.start()
    try:
        yield Cluster(server, pki, server.ports[1])
    finally:
        await server.stop(grace=0)


@pytest.fixture
def admin(cluster: Cluster) -> HTTPS:
    return cluster.client()
