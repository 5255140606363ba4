"""Paged lists on etcd, end to end: an API server over a real etcd member, paged while written.

The storage conformance suite checks `list_page` on etcd itself; here the whole
path does: the gRPC List of an API server whose storage is etcd reads each
page with a Range at the first page's revision. 1200 ConfigMaps are paged
500 at a time while a task creates, deletes and updates ConfigMaps in the
ranges of the later pages: the pages joined are the state before the first
page. After etcd compacts past that revision, the next page is 410 with
Kubernetes' message, and the Python client starts its list over by itself.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path

import grpc.aio
import pytest

from apimachinery import errors, scheme
from apimachinery.client import Client
from apiserver.registry import paging
from apiserver.server import APIServer
from apiserver.storage.etcd import EtcdStorage
from apiserver.storage.etcd_client import EtcdConfig
from protos import api_pb2_grpc
from tests.unit.apiserver.objects import configmap
from tests.unit.apiserver.test_list_paging import page, rows
from tests.unit.storage.etcd_server import EtcdServer, needs_etcd

pytestmark = needs_etcd
N = 1200
CM = scheme.for_resource("configmaps")


@pytest.fixture
async def server(etcd_server: EtcdServer, tmp_path: Path) -> AsyncIterator[APIServer]:
    storage = EtcdStorage(EtcdConfig((etcd_server.endpoint,)))
    srv = APIServer(storage, f"unix:{tmp_path}/api.sock")
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop(grace=0)


@pytest.fixture
async def stub(server: APIServer) -> AsyncIterator[api_pb2_grpc.ResourcesStub]:
    channel = grpc.aio.insecure_channel(server.local_address)
    try:
        yield api_pb2_grpc.ResourcesStub(channel)
    finally:
        await channel.close()


async def test_pages_on_etcd_are_the_first_pages_snapshot(
    server: APIServer, stub: api_pb2_grpc.ResourcesStub
) -> None:
    names = [f"cm-{i:04}" for i in range(N)]
    for i in range(0, N, 100):
        await asyncio.gather(
            *(server.store.create(configmap(n, v="0")) for n in names[i : i + 100])
        )
    expected, revision = await server.store.list_packed(CM, "default")
    rng = random.Random(5)
    steps = 0

    async def churn() -> None:
        nonlocal steps
        alive = list(names)
        while True:
            target = alive.pop(rng.randrange(len(alive)))
            await server.store.create(configmap(f"{target}-new", v="new"))
            await server.store.delete(CM, "default", target)
            changed = await server.store.get(CM, "default", rng.choice(alive))
            changed.data["v"] = "changed"
            await server.store.update(changed)
            steps += 1

    first = await page(stub, limit=500)
    assert first.resource_version == str(revision)
    writer = asyncio.ensure_future(churn())
    pages = [first]
    try:
        while token := getattr(pages[-1], "continue"):
            wanted = 20 * len(pages)
            while steps < wanted:
                await asyncio.sleep(0.005)
            pages.append(await page(stub, limit=500, continue_=token))
    finally:
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)
    assert [len(p.items) for p in pages] == [500, 500, 200]
    assert pages[0].remaining_item_count == 700
    joined = [row for p in pages for row in rows(p.items)]
    assert joined == rows(expected)
    now, _ = await server.store.list_packed(CM, "default")
    assert steps >= 40 and rows(now) != joined


async def test_a_token_compacted_on_etcd_is_410_and_the_client_lists_again(
    server: APIServer, stub: api_pb2_grpc.ResourcesStub
) -> None:
    for i in range(5):
        await server.store.create(configmap(f"e{i}"))
    first = await page(stub, limit=2)
    await server.store.create(configmap("e9"))
    await server.storage.compact(await server.storage.current_revision())
    with pytest.raises(errors.Expired) as info:
        await page(stub, limit=2, continue_=getattr(first, "continue"))
    assert str(info.value) == paging.EXPIRED_CONTINUE

    compacted = False
    real = server.store.list_page

    async def compact_once(info: object, namespace: str = "", options: object = None) -> object:
        nonlocal compacted
        if isinstance(options, paging.ListOptions) and options.continue_token and not compacted:
            compacted = True
            await server.store.create(configmap("e5"))
            await server.storage.compact(await server.storage.current_revision())
        return await real(info, namespace, options)  # type: ignore[arg-type]

    server.store.list_page = compact_once  # type: ignore[assignment]
    client = Client(server.local_address, timeout=10)
    try:
        items, _ = await client.list("configmaps", "default", chunk_size=2)
    finally:
        await client.close()
    assert compacted
    assert [o.metadata.name for o in items] == ["e0", "e1", "e2", "e3", "e4", "e5", "e9"]
