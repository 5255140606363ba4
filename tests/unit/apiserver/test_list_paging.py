"""Paged lists over gRPC against a real API server: one snapshot across pages, 410 once compacted.

Kubernetes' promise for `limit`/`continue` is that the pages of one list are
the state at the first page's revision, whatever is written between them.
Here 1200 ConfigMaps are listed 500 at a time while another task creates,
deletes and updates ConfigMaps in the very ranges the later pages cover: the
pages joined must be exactly the state read just before the first page, and
not the state at the end. Then the edges: `limit` counts matches of a
selector, remainingItemCount only without one, `resourceVersionMatch=Exact`
reads an old revision until it is compacted, a compacted continue token is
410 with Kubernetes' message, and the Python client pages by itself (500 at
a time) and starts over once when its snapshot is compacted under it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import grpc.aio
import pytest

from apimachinery import errors, scheme
from apimachinery.client import Client
from apiserver.registry import paging
from apiserver.registry.store import Store
from apiserver.server import APIServer
from protos import api_pb2, api_pb2_grpc

from .objects import configmap

N = 1200
Row = tuple[str, str, str]  # name, resourceVersion, data["v"]


@pytest.fixture
async def stub(server: APIServer) -> AsyncIterator[api_pb2_grpc.ResourcesStub]:
    """The raw Resources service on the local admin socket (to see each page's fields)."""
    channel = grpc.aio.insecure_channel(server.local_address)
    try:
        yield api_pb2_grpc.ResourcesStub(channel)
    finally:
        await channel.close()


async def page(stub: api_pb2_grpc.ResourcesStub, **fields: Any) -> api_pb2.ListResponse:
    """One List call; a failure raises the StatusError a client would get."""
    token = fields.pop("continue_", "")
    request = api_pb2.ListRequest(resource="configmaps", namespace="default", **fields)
    setattr(request, "continue", token)
    try:
        reply: api_pb2.ListResponse = await stub.List(request, timeout=10)
    except grpc.aio.AioRpcError as err:
        raise errors.from_rpc_error(err) from None
    return reply


def rows(items: Any) -> list[Row]:
    out = []
    for item in items:
        obj = scheme.unpack(item) if not hasattr(item, "metadata") else item
        out.append((obj.metadata.name, obj.metadata.resource_version, obj.data.get("v", "")))
    return out


async def fill(client: Client, names: list[str]) -> None:
    for i in range(0, len(names), 100):
        await asyncio.gather(*(client.create(configmap(n, v="0")) for n in names[i : i + 100]))


def spy(
    store: Store, before: Callable[[paging.ListOptions], Awaitable[None]] | None = None
) -> list[paging.ListOptions]:
    """Record the options of every registry list (and run `before` ahead of each)."""
    seen: list[paging.ListOptions] = []
    real = store.list_page

    async def list_page(info: Any, namespace: str = "", options: Any = None) -> paging.Page:
        seen.append(options)
        if before is not None:
            await before(options)
        return await real(info, namespace, options)

    store.list_page = list_page  # type: ignore[method-assign]
    return seen


async def test_pages_are_the_first_pages_snapshot_while_others_write(
    server: APIServer, client: Client, stub: api_pb2_grpc.ResourcesStub
) -> None:
    names = [f"cm-{i:04}" for i in range(N)]
    await fill(client, names)
    expected, revision = await server.store.list_packed(
        scheme.for_resource("configmaps"), "default"
    )
    assert len(expected) == N
    rng = random.Random(7)
    steps = 0

    async def churn() -> None:
        """Writes into every range the later pages read: creates, deletes, updates."""
        nonlocal steps
        alive = list(names)
        while True:
            target = alive.pop(rng.randrange(len(alive)))
            await client.create(configmap(f"{target}-new", v="new"))
            await client.delete("configmaps", target)
            changed = await client.get("configmaps", rng.choice(alive))
            changed.data["v"] = "changed"
            await client.update(changed)
            steps += 1

    async def after(count: int) -> None:
        while steps < count:
            await asyncio.sleep(0.005)

    first = await page(stub, limit=500)
    assert first.resource_version == str(revision)
    assert first.remaining_item_count == N - 500
    writer = asyncio.ensure_future(churn())
    try:
        pages = [first]
        while getattr(pages[-1], "continue"):
            await after(25 * len(pages))  # the snapshot has moved on before each next page
            pages.append(await page(stub, limit=500, continue_=getattr(pages[-1], "continue")))
    finally:
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)
    assert [len(p.items) for p in pages] == [500, 500, 200]
    assert {p.resource_version for p in pages} == {str(revision)}
    assert pages[1].remaining_item_count == 200 and not pages[2].HasField("remaining_item_count")
    joined = [row for p in pages for row in rows(p.items)]
    assert joined == rows(expected)
    now, _ = await client.list("configmaps", "default")
    assert steps >= 50 and rows(now) != joined  # the store did change meanwhile


async def test_limit_counts_matches_and_remaining_count_comes_without_selectors(
    client: Client, stub: api_pb2_grpc.ResourcesStub
) -> None:
    for i in range(30):
        cm = configmap(f"c{i:02}")
        if i % 3 == 0:
            cm.metadata.labels["keep"] = "yes"
        await client.create(cm)
    selected: list[Row] = []
    sizes = []
    token = ""
    while True:
        reply = await page(stub, limit=4, label_selector="keep=yes", continue_=token)
        assert not reply.HasField("remaining_item_count")
        sizes.append(len(reply.items))
        selected += rows(reply.items)
        token = getattr(reply, "continue")
        if not token:
            break
    assert sizes == [4, 4, 2]
    assert [r[0] for r in selected] == [f"c{i:02}" for i in range(0, 30, 3)]
    plain = await page(stub, limit=4)
    assert plain.remaining_item_count == 26
    everything = await page(stub)
    assert len(everything.items) == 30 and not getattr(everything, "continue")


async def test_exact_reads_an_old_revision_until_it_is_compacted(
    server: APIServer, client: Client, stub: api_pb2_grpc.ResourcesStub
) -> None:
    for i in range(3):
        await client.create(configmap(f"x{i}", v="1"))
    before = await page(stub)
    old = before.resource_version
    await client.delete("configmaps", "x0")
    await client.create(configmap("x3", v="1"))
    exact = await page(stub, resource_version=old, resource_version_match="Exact", limit=2)
    assert [r[0] for r in rows(exact.items)] == ["x0", "x1"]
    rest = await page(stub, limit=2, continue_=getattr(exact, "continue"))
    assert rows(exact.items) + rows(rest.items) == rows(before.items)
    newest = await page(stub, resource_version=old, resource_version_match="NotOlderThan")
    assert [r[0] for r in rows(newest.items)] == ["x1", "x2", "x3"]
    await server.storage.compact(await server.storage.current_revision())
    with pytest.raises(
        errors.Expired, match="The resourceVersion for the provided list is too old"
    ):
        await page(stub, resource_version=old, resource_version_match="Exact")


async def test_a_compacted_continue_token_is_410_with_kubernetes_message(
    server: APIServer, client: Client, stub: api_pb2_grpc.ResourcesStub
) -> None:
    for i in range(5):
        await client.create(configmap(f"e{i}"))
    first = await page(stub, limit=2)
    await client.create(configmap("e9"))
    await server.storage.compact(await server.storage.current_revision())
    with pytest.raises(errors.Expired) as info:
        await page(stub, limit=2, continue_=getattr(first, "continue"))
    assert str(info.value) == paging.EXPIRED_CONTINUE


async def test_bad_list_options_are_refused(stub: api_pb2_grpc.ResourcesStub) -> None:
    with pytest.raises(errors.Invalid) as invalid:
        await page(stub, resource_version_match="Exact")
    assert str(invalid.value) == (
        'ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Forbidden:'
        " resourceVersionMatch is forbidden unless resourceVersion is provided"
    )
    token = paging.encode_continue(5, "/registry/configmaps/default/a\0", "/registry/configmaps/")
    with pytest.raises(errors.BadRequest, match="specifying resource version is not allowed"):
        await page(stub, resource_version="5", continue_=token)
    with pytest.raises(errors.BadRequest, match="invalid continue token: continue key is not"):
        await page(stub, limit=1, continue_="bm90IGEgdG9rZW4")
    with pytest.raises(errors.BadRequest, match="must be a non-negative integer"):
        await page(stub, resource_version="soon")


async def test_the_client_lists_in_pages_of_500(server: APIServer, client: Client) -> None:
    await fill(client, [f"p-{i:04}" for i in range(1100)])
    seen = spy(server.store)
    items, version = await client.list("configmaps", "default")
    assert [o.metadata.name for o in items] == [f"p-{i:04}" for i in range(1100)]
    assert [o.limit for o in seen] == [500, 500, 500]
    assert [bool(o.continue_token) for o in seen] == [False, True, True]
    assert version == str(await server.storage.current_revision())


async def test_the_client_starts_over_once_when_its_snapshot_is_compacted(
    server: APIServer, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    for i in range(5):
        await client.create(configmap(f"r{i}"))
    compactions = 0

    async def compact_once(options: paging.ListOptions) -> None:
        nonlocal compactions
        if options.continue_token and not compactions:
            compactions += 1
            await client.create(configmap("r9"))  # written, then the snapshot is compacted
            await server.storage.compact(await server.storage.current_revision())

    seen = spy(server.store, compact_once)
    with caplog.at_level(logging.INFO, logger="apimachinery.client"):
        items, version = await client.list("configmaps", "default", chunk_size=2)
    assert [o.metadata.name for o in items] == ["r0", "r1", "r2", "r3", "r4", "r9"]
    assert version == str(await server.storage.current_revision())
    assert [bool(o.continue_token) for o in seen] == [False, True, False, True, True]
    assert "list expired between pages, listing again" in caplog.text


async def test_a_second_expiry_reaches_the_caller(server: APIServer, client: Client) -> None:
    for i in range(5):
        await client.create(configmap(f"s{i}"))

    async def compact_always(options: paging.ListOptions) -> None:
        if options.continue_token:
            await client.create(configmap(f"s-{random.random()}"))
            await server.storage.compact(await server.storage.current_revision())

    spy(server.store, compact_always)
    with pytest.raises(errors.Expired) as info:
        await client.list("configmaps", "default", chunk_size=2)
    assert str(info.value) == paging.EXPIRED_CONTINUE


def test_continue_tokens_are_kubernetes_own() -> None:
    prefix = "/registry/pods/"
    token = paging.encode_continue(42, "/registry/pods/default/web\0", prefix)
    assert paging.decode_continue(token, prefix) == (42, "/registry/pods/default/web\0")
    assert "=" not in token  # unpadded URL-safe base64, as Go's RawURLEncoding

    def made(**data: Any) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    latest = made(v="meta.k8s.io/v1", rv=-1, start="default/web\0")
    assert paging.decode_continue(latest, prefix) == (paging.LATEST, "/registry/pods/default/web\0")
    refused = {
        made(v="meta.k8s.io/v1", rv=0, start="a"): "incorrect encoded start resourceVersion",
        made(v="meta.k8s.io/v1", rv=3, start=""): "encoded start key empty",
        made(v="meta.k8s.io/v2", rv=3, start="a"): "server does not recognize",
        made(v="meta.k8s.io/v1", rv=3, start="../secrets/x"): "continue key is not valid",
        made(v="meta.k8s.io/v1", rv=3, start="a//b"): "continue key is not valid",
        "W10": "the token is not a JSON object",
    }
    for bad, message in refused.items():
        with pytest.raises(errors.BadRequest, match=message):
            paging.decode_continue(bad, prefix)
    with pytest.raises(errors.BadRequest, match="nests too deeply"):
        paging.decode_continue(base64.urlsafe_b64encode(b"[" * 20_000).decode(), prefix)
