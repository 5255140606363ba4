"""A client given two API servers on one etcd keeps working when one of them goes away.

Two real API servers (apiserver/server.py APIServer over EtcdStorage) share a
real etcd member; each serves the admin on its own unix socket. The client is
`Client("unix:A,unix:B")`, the list form of --server
(apimachinery/channel_failover.py): reads and writes move to B when A is
gone, a watch resumes on B from its last resourceVersion without a gap or a
repeat, an informer's cache keeps following, and with both gone the error
names each server.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from apimachinery import errors
from apimachinery.client import Client
from apimachinery.factory import SharedInformerFactory
from apiserver.server import APIServer
from apiserver.storage.etcd import EtcdStorage
from apiserver.storage.etcd_client import EtcdConfig
from protos import core_pb2

from .etcd_server import EtcdServer, needs_etcd

pytestmark = [needs_etcd, pytest.mark.timeout(60)]
TIMEOUT = 10.0


def configmap(name: str, **data: str) -> core_pb2.ConfigMap:
    cm = core_pb2.ConfigMap(api_version="v1", kind="ConfigMap")
    cm.metadata.name = name
    cm.metadata.namespace = "default"
    cm.data.update(data)
    return cm


class Pair:
    """Two API servers on one etcd; `stop(i)` takes one away (idempotent)."""

    def __init__(self, etcd: EtcdServer, root: Path) -> None:
        self.etcd = etcd
        self.sockets = [root / "a.sock", root / "b.sock"]
        self.servers: list[APIServer | None] = [None, None]

    @property
    def addresses(self) -> list[str]:
        return [f"unix:{path}" for path in self.sockets]

    async def start(self, i: int) -> None:
        storage = EtcdStorage(EtcdConfig((self.etcd.endpoint,)))
        server = APIServer(storage, self.addresses[i])
        await server.start()
        self.servers[i] = server

    async def stop(self, i: int) -> None:
        server, self.servers[i] = self.servers[i], None
        if server is not None:
            await server.stop(grace=0)


@pytest.fixture
async def pair(etcd_server: EtcdServer, tmp_path: Path) -> AsyncIterator[Pair]:
    servers = Pair(etcd_server, tmp_path)
    try:
        await servers.start(0)
        await servers.start(1)
        yield servers
    finally:
        await servers.stop(0)
        await servers.stop(1)


async def test_reads_and_writes_move_to_the_next_server(pair: Pair) -> None:
    async with Client(",".join(pair.addresses), timeout=TIMEOUT) as client:
        created = await client.create(configmap("before", n="1"))
        assert client._connection.current_server == pair.addresses[0]
        await pair.stop(0)
        got = await client.get(core_pb2.ConfigMap, "before", "default")
        assert got.metadata.resource_version == created.metadata.resource_version
        assert client._connection.current_server == pair.addresses[1]
        after = await client.create(configmap("after", n="2"))  # never sent to the dead one
        items, _ = await client.list(core_pb2.ConfigMap, "default")
        assert {i.metadata.name for i in items} == {"before", "after"}
        assert int(after.metadata.resource_version) > int(created.metadata.resource_version)


async def test_a_dead_first_server_is_skipped_from_the_first_call(
    pair: Pair, tmp_path: Path
) -> None:
    dead = f"unix:{tmp_path}/nobody.sock"
    async with Client(f"{dead},{pair.addresses[1]}", timeout=TIMEOUT) as client:
        await client.create(configmap("x"))
        assert client._connection.current_server == pair.addresses[1]


async def test_with_every_server_gone_the_error_names_each(pair: Pair) -> None:
    await pair.stop(0)
    await pair.stop(1)
    async with Client(",".join(pair.addresses), timeout=TIMEOUT) as client:
        with pytest.raises(errors.ServiceUnavailable) as caught:
            await client.get(core_pb2.ConfigMap, "x", "default")
    message = caught.value.message
    assert message.startswith("cannot reach the API server at ")
    for address in pair.addresses:
        assert f"{address}: " in message


async def test_a_watch_resumes_on_the_next_server_without_gap_or_repeat(
    pair: Pair, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="apimachinery.channel_failover")
    async with (
        Client(",".join(pair.addresses), timeout=TIMEOUT) as client,
        Client(pair.addresses[1], timeout=TIMEOUT) as writer,
    ):
        _, start = await client.list(core_pb2.ConfigMap, "default")
        watch = client.watch(core_pb2.ConfigMap, "default", resource_version=start)
        first = await writer.create(configmap("one"))
        event = await asyncio.wait_for(watch.__anext__(), TIMEOUT)
        assert (event.type, event.object.metadata.name) == ("ADDED", "one")
        await pair.stop(0)  # the watch was on A
        second = await writer.create(configmap("two"))
        first.data["k"] = "v"
        third = await writer.update(first)
        seen = [await asyncio.wait_for(watch.__anext__(), TIMEOUT) for _ in range(2)]
        assert [(e.type, e.object.metadata.name, e.resource_version) for e in seen] == [
            ("ADDED", "two", second.metadata.resource_version),
            ("MODIFIED", "one", third.metadata.resource_version),
        ]
        assert client._connection.current_server == pair.addresses[1]
        assert "watch moves to the next API server" in caplog.text  # one stream, resumed
        aclose = getattr(watch, "aclose", None)
        if aclose is not None:
            await aclose()


async def test_an_informer_keeps_following_through_a_failover(pair: Pair) -> None:
    async with (
        Client(",".join(pair.addresses), timeout=TIMEOUT) as client,
        Client(pair.addresses[1], timeout=TIMEOUT) as writer,
    ):
        factory = SharedInformerFactory(client)
        informer = factory.informer(core_pb2.ConfigMap)
        factory.start()
        try:
            assert await factory.wait_for_sync(TIMEOUT)
            await writer.create(configmap("early"))
            await pair.stop(0)
            await writer.create(configmap("late"))

            async def cached() -> set[str]:
                return {o.metadata.name for o in informer.store.list()}

            for _ in range(200):
                if await cached() >= {"early", "late"}:
                    break
                await asyncio.sleep(0.05)
            assert await cached() >= {"early", "late"}
        finally:
            await factory.stop()
