"""Paged lists over HTTP, as kubectl and client-go page them: limit, continue, 410 Expired.

The HTTP list goes through the same registry path as the gRPC List
(registry/paging.py), so the promise is the same: every page is read at the
first page's revision. 1200 ConfigMaps are paged 500 at a time while a task
writes into the ranges of the later pages; the pages joined are the state
before the first page. A compacted token answers Kubernetes' 410 Status
with, in `metadata.continue`, the token that reads the rest at the newest
revision; `resourceVersionMatch=Exact` reads an old revision until it is
compacted.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from apimachinery import scheme
from apiserver.registry import paging
from apiserver.server import APIServer
from tests.unit.apiserver.httpapi.client import CONFIGMAPS, HTTPS, Cluster
from tests.unit.apiserver.objects import configmap

N = 1200
CM = scheme.for_resource("configmaps")


def rows(items: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [
        (i["metadata"]["name"], i["metadata"]["resourceVersion"], i.get("data", {}).get("v", ""))
        for i in items
    ]


async def fill(server: APIServer, names: list[str]) -> None:
    for i in range(0, len(names), 200):
        await asyncio.gather(
            *(server.store.create(configmap(n, v="0")) for n in names[i : i + 200])
        )


async def test_pages_are_one_snapshot_while_others_write(cluster: Cluster, admin: HTTPS) -> None:
    server = cluster.server
    names = [f"cm-{i:04}" for i in range(N)]
    await fill(server, names)
    expected = (await admin.call("GET", CONFIGMAPS)).data
    assert len(expected["items"]) == N
    rng = random.Random(11)
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

    first = (await admin.call("GET", f"{CONFIGMAPS}?limit=500")).data
    meta = first["metadata"]
    assert meta["resourceVersion"] == expected["metadata"]["resourceVersion"]
    assert meta["remainingItemCount"] == N - 500
    writer = asyncio.ensure_future(churn())
    pages = [first]
    try:
        while token := pages[-1]["metadata"].get("continue"):
            wanted = 25 * len(pages)
            while steps < wanted:  # the store moves on before each next page
                await asyncio.sleep(0.005)
            answer = await admin.call("GET", f"{CONFIGMAPS}?limit=500&continue={token}")
            assert answer.status == 200, answer.data
            pages.append(answer.data)
    finally:
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)
    assert [len(p["items"]) for p in pages] == [500, 500, 200]
    assert {p["metadata"]["resourceVersion"] for p in pages} == {meta["resourceVersion"]}
    assert "remainingItemCount" not in pages[-1]["metadata"]
    joined = [row for p in pages for row in rows(p["items"])]
    assert joined == rows(expected["items"])
    now = (await admin.call("GET", CONFIGMAPS)).data
    assert steps >= 50 and rows(now["items"]) != joined


async def test_a_compacted_token_is_410_with_a_token_for_the_rest(
    cluster: Cluster, admin: HTTPS
) -> None:
    server = cluster.server
    await fill(server, [f"e{i}" for i in range(5)])
    first = (await admin.call("GET", f"{CONFIGMAPS}?limit=2")).data
    await server.store.create(configmap("e3a"))
    await server.storage.compact(await server.storage.current_revision())
    token = first["metadata"]["continue"]
    gone = await admin.call("GET", f"{CONFIGMAPS}?limit=2&continue={token}")
    assert gone.status == 410
    status = gone.data
    assert (status["kind"], status["reason"], status["code"]) == ("Status", "Expired", 410)
    assert status["message"] == paging.EXPIRED_CONTINUE
    # Kubernetes' inconsistent remainder: on from the same key, at the newest revision.
    rest_token = status["metadata"]["continue"]
    rest = (await admin.call("GET", f"{CONFIGMAPS}?limit=10&continue={rest_token}")).data
    assert [i["metadata"]["name"] for i in rest["items"]] == ["e2", "e3", "e3a", "e4"]
    assert rest["metadata"]["resourceVersion"] == str(await server.storage.current_revision())


async def test_exact_serves_an_old_revision_until_compacted(cluster: Cluster, admin: HTTPS) -> None:
    server = cluster.server
    await fill(server, ["x0", "x1", "x2"])
    old = (await admin.call("GET", CONFIGMAPS)).data
    rv = old["metadata"]["resourceVersion"]
    await server.store.delete(CM, "default", "x1")
    exact = f"{CONFIGMAPS}?resourceVersion={rv}&resourceVersionMatch=Exact"
    first = (await admin.call("GET", f"{exact}&limit=2")).data
    assert first["metadata"]["resourceVersion"] == rv
    token = first["metadata"]["continue"]
    rest = (await admin.call("GET", f"{CONFIGMAPS}?limit=2&continue={token}")).data
    assert rows(first["items"] + rest["items"]) == rows(old["items"])
    await server.storage.compact(await server.storage.current_revision())
    expired = await admin.call("GET", exact)
    assert (expired.status, expired.data["reason"]) == (410, "Expired")
    assert expired.data["message"] == paging.EXPIRED_LIST
    forbidden = await admin.call("GET", f"{CONFIGMAPS}?resourceVersionMatch=Exact")
    assert (forbidden.status, forbidden.data["reason"]) == (422, "Invalid")
    assert forbidden.data["message"] == (
        'ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Forbidden:'
        " resourceVersionMatch is forbidden unless resourceVersion is provided"
    )
