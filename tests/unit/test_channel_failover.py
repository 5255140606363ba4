"""The client's server lists: parsing (flag, kubeconfig) and the rule for a write cut off.

The failover itself is shown with two real API servers on one etcd in
tests/unit/storage/test_apiserver_failover.py. Here: a write whose server
dies while it is in flight is not sent again (its outcome is unknown), a
read in the same position is; and the list forms of --server and of a
kubeconfig's server field.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest

from apimachinery import errors, kubeconfig
from apimachinery.channel import Connection, split_servers
from apimachinery.client import Client
from apimachinery.resourcelock import LEASE_API_VERSION
from cli.config import normalize_server, resolve
from protos import api_pb2_grpc, coordination_pb2


class Hanging(api_pb2_grpc.ResourcesServicer):
    """Answers nothing: every call waits until the server is stopped under it."""

    def __init__(self) -> None:
        self.received: list[str] = []

    async def _hang(self, method: str) -> Any:
        self.received.append(method)
        await asyncio.Event().wait()

    async def Create(self, request: Any, context: Any) -> Any:
        return await self._hang("Create")

    async def Get(self, request: Any, context: Any) -> Any:
        return await self._hang("Get")


async def start(servicer: api_pb2_grpc.ResourcesServicer, path: Path) -> grpc.aio.Server:
    server = grpc.aio.server()
    api_pb2_grpc.add_ResourcesServicer_to_server(servicer, server)
    server.add_insecure_port(f"unix:{path}")
    await server.start()
    return server


def lease(name: str) -> coordination_pb2.Lease:
    obj = coordination_pb2.Lease(api_version=LEASE_API_VERSION, kind="Lease")
    obj.metadata.name, obj.metadata.namespace = name, "kube-system"
    return obj


async def test_a_write_cut_off_in_flight_is_not_repeated_a_read_is(tmp_path: Path) -> None:
    first, second = Hanging(), Hanging()  # type: ignore[abstract]  # others: UNIMPLEMENTED
    a = await start(first, tmp_path / "a.sock")
    b = await start(second, tmp_path / "b.sock")
    client = Client(f"unix:{tmp_path}/a.sock,unix:{tmp_path}/b.sock", timeout=5)
    try:
        write = asyncio.ensure_future(client.create(lease("x")))
        while first.received != ["Create"]:
            await asyncio.sleep(0.01)
        await a.stop(0)  # A dies with the Create in flight
        with pytest.raises(errors.ServiceUnavailable, match="may or may not have been applied"):
            await write
        assert second.received == []  # not sent twice
        assert client._connection.current_server == f"unix:{tmp_path}/b.sock"

        a = await start(first, tmp_path / "a.sock")
        client._connection.failed(f"unix:{tmp_path}/b.sock")  # back to A
        read = asyncio.ensure_future(client.get(coordination_pb2.Lease, "x", "kube-system"))
        while first.received.count("Get") < 1:
            await asyncio.sleep(0.01)
        await a.stop(0)
        while second.received != ["Get"]:  # the read is repeated on B
            await asyncio.sleep(0.01)
        read.cancel()
        await asyncio.gather(read, return_exceptions=True)
    finally:
        await client.close()
        await a.stop(0)
        await b.stop(0)


def test_server_lists_split_and_normalize() -> None:
    assert split_servers(" a:1, b:2 ,") == ["a:1", "b:2"]
    with pytest.raises(ValueError, match="no API server address"):
        split_servers(" , ")
    assert normalize_server("https://10.0.0.1:6443/,10.0.0.2") == "10.0.0.1:6443,10.0.0.2:6443"
    assert resolve("10.0.0.1,10.0.0.2:7000", env={}).target == "10.0.0.1:6443,10.0.0.2:7000"
    connection = Connection("a:1,b:2")
    assert connection.servers == ["a:1", "b:2"] and connection.current_server == "a:1"
    connection.failed("b:2")  # not the current one: nothing moves
    assert connection.current_server == "a:1"
    connection.failed("a:1")
    assert connection.current_server == "b:2"


KUBECONFIG = """
apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "SERVER"}
contexts:
- name: x
  context: {cluster: c}
current-context: x
"""


def test_a_kubeconfig_server_may_list_several_servers() -> None:
    config = kubeconfig.loads(KUBECONFIG.replace("SERVER", "http://10.0.0.1:6443,http://h2"))
    assert config.target == "10.0.0.1:6443,h2:80" and not config.tls
    for bad, message in [
        ("https://a:6443,http://b:6443", "mixes http:// and https://"),
        ("https://a:6443,,https://b", "empty entry"),
        ("https://a:6443,ftp://b", "is not https://HOST"),
    ]:
        with pytest.raises(kubeconfig.KubeconfigError, match=message):
            kubeconfig.loads(KUBECONFIG.replace("SERVER", bad))
