"""The garbage collector: background cascade, orphan and foreground deletion, by uid."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from apimachinery.client import Client
from tests.unit.controllers.infra import (
    api_server,
    controllers,
    deployment,
    eventually,
    get_or_none,
    owner_ref,
    pod,
    replicaset,
)

GC = ["garbagecollector"]


async def _tree(client: Client) -> tuple[Any, Any, list[Any]]:
    """Deployment web -> ReplicaSet web-1 -> pods web-1-a, web-1-b (unbound: no kubelet needed)."""
    d = await client.create(deployment("web"))
    rs = await client.create(replicaset("web-1", owner=d))
    pods = [await client.create(pod(f"web-1-{s}", {"app": "web"}, owner=rs)) for s in "ab"]
    return d, rs, pods


async def _gone(client: Client, resource: str, name: str) -> bool:
    return await get_or_none(client, resource, name) is None


async def _all_gone(client: Client, *objs: tuple[str, str]) -> bool:
    for resource, name in objs:
        if not await _gone(client, resource, name):
            return False
    return True


async def test_background_cascade_deployment_rs_pods(tmp_path: Path) -> None:
    async with api_server(tmp_path) as client, controllers(client, GC):
        _d, _rs, pods = await _tree(client)
        bystander = await client.create(pod("lonely", {"app": "web"}))
        await client.delete("deployments", "web")
        await eventually(
            lambda: _all_gone(
                client,
                ("replicasets", "web-1"),
                *(("pods", p.metadata.name) for p in pods),
            )
        )
        assert await get_or_none(client, "pods", bystander.metadata.name) is not None


async def test_dangling_owner_found_at_start_and_uid_not_name(tmp_path: Path) -> None:
    async with api_server(tmp_path) as client:
        d = await client.create(deployment("web"))
        rs = await client.create(replicaset("web-1", owner=d))
        # The owner is deleted and re-created under the same name before the GC runs:
        # a different uid, so the ReplicaSet's owner is still gone.
        await client.delete("deployments", "web")
        again = await client.create(deployment("web"))
        assert again.metadata.uid != d.metadata.uid
        # A ReplicaSet owned by the live Deployment stays.
        keep = await client.create(replicaset("web-2", owner=again))
        async with controllers(client, GC):
            await eventually(lambda: _gone(client, "replicasets", rs.metadata.name))
            await asyncio.sleep(0.3)
            assert await get_or_none(client, "replicasets", keep.metadata.name) is not None
            assert await get_or_none(client, "deployments", "web") is not None


async def test_orphan_keeps_dependents_without_the_reference(tmp_path: Path) -> None:
    async with api_server(tmp_path) as client, controllers(client, GC):
        _d, rs, pods = await _tree(client)
        await client.delete("replicasets", "web-1", propagation_policy="Orphan")
        await eventually(lambda: _gone(client, "replicasets", "web-1"))
        for p in pods:
            left = await client.get("pods", p.metadata.name)
            assert not any(r.uid == rs.metadata.uid for r in left.metadata.owner_references)
        await asyncio.sleep(0.3)  # and nothing deletes them afterwards
        for p in pods:
            assert await get_or_none(client, "pods", p.metadata.name) is not None
        assert await get_or_none(client, "deployments", "web") is not None


async def test_foreground_deletes_dependents_first(tmp_path: Path) -> None:
    async with api_server(tmp_path) as client:
        _d, _rs, pods = await _tree(client)
        # Without the GC the owner waits, marked, with the finalizer.
        marked = await client.delete("deployments", "web", propagation_policy="Foreground")
        assert marked.metadata.HasField("deletion_timestamp")
        assert "foregroundDeletion" in marked.metadata.finalizers
        assert await get_or_none(client, "replicasets", "web-1") is not None

        seen: list[str] = []

        async def record() -> None:
            async for ev in client.watch("replicasets"):
                if ev.type == "DELETED":
                    seen.append("rs")
            # never ends on its own

        async def record_pods() -> None:
            async for ev in client.watch("pods"):
                if ev.type == "DELETED":
                    seen.append("pod")

        async def record_deploy() -> None:
            async for ev in client.watch("deployments"):
                if ev.type == "DELETED":
                    seen.append("deployment")

        watchers = [asyncio.ensure_future(f()) for f in (record, record_pods, record_deploy)]
        await asyncio.sleep(0.2)
        try:
            async with controllers(client, GC):
                await eventually(
                    lambda: _all_gone(
                        client,
                        ("deployments", "web"),
                        ("replicasets", "web-1"),
                        *(("pods", p.metadata.name) for p in pods),
                    )
                )
                await eventually(lambda: _true(len(seen) == 4))
        finally:
            for w in watchers:
                w.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)
        # Leaves first: both pods, then the ReplicaSet, then the Deployment.
        assert seen == ["pod", "pod", "rs", "deployment"]


async def test_surviving_owner_keeps_dependent(tmp_path: Path) -> None:
    async with api_server(tmp_path) as client, controllers(client, GC):
        a = await client.create(replicaset("a"))
        b = await client.create(replicaset("b"))
        shared = pod("shared", {"app": "x"}, owner=a)
        ref = owner_ref(b)
        ref.controller = False
        shared.metadata.owner_references.append(ref)
        shared = await client.create(shared)
        await client.delete("replicasets", "a")

        async def only_b() -> bool:
            p = await client.get("pods", "shared")
            return [r.uid for r in p.metadata.owner_references] == [b.metadata.uid]

        await eventually(only_b)  # the dangling reference is dropped, the pod stays
        await client.delete("replicasets", "b")
        await eventually(lambda: _gone(client, "pods", "shared"))


async def _true(value: bool) -> bool:
    return value
