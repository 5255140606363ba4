"""Fixtures: a real API server on TLS (its PKI made by `pki init`'s code) and its admin."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from apiserver.auth.authorizer import UserInfo
from apiserver.listeners import ServingOptions
from apiserver.server import APIServer
from apiserver.storage import open_storage
from cli.cmd_pki import NodeSpec, PkiOptions, init_pki
from tests.unit.apiserver.httpapi.client import HTTPS, TOKEN, Cluster

LOCAL = ipaddress.ip_address("127.0.0.1")


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    pki = tmp_path / "pki-dir"
    init_pki(PkiOptions(directory=pki, nodes=(NodeSpec("node1", (LOCAL,)),)), echo=lambda *_: None)
    storage = await open_storage("sqlite", str(tmp_path / "data"))
    serving = ServingOptions(
        listen=("127.0.0.1:0",),
        tls_cert_file=str(pki / "pki" / "apiserver.crt"),
        tls_private_key_file=str(pki / "pki" / "apiserver.key"),
        client_ca_file=str(pki / "pki" / "ca.crt"),
    )
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
