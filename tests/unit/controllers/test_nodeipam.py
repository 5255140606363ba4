"""Node IPAM: a /24 per node, the lowest free one, reused after a node goes."""

from __future__ import annotations

from pathlib import Path

import pytest

from apimachinery.client import Client
from controllers.base import ControllerOptions
from controllers.nodeipam import CIDRRangeFull, CIDRSet
from tests.unit.controllers.infra import api_server, controllers, eventually, node


async def _cidr(client: Client, name: str) -> str:
    async def check() -> str:
        n = await client.get("nodes", name)
        return str(n.spec.pod_cidr)

    return await eventually(check)


def test_cidr_set_allocates_lowest_free_and_releases() -> None:
    cidrs = CIDRSet("10.244.0.0/16", 24)
    assert cidrs.size == 256
    assert cidrs.allocate_next() == "10.244.0.0/24"
    assert cidrs.allocate_next() == "10.244.1.0/24"
    assert cidrs.occupy("10.244.7.0/24")
    assert not cidrs.occupy("10.245.0.0/24")  # outside the cluster CIDR
    assert not cidrs.occupy("10.244.3.0/25")  # not one of our subnets
    cidrs.release("10.244.0.0/24")
    assert cidrs.allocate_next() == "10.244.0.0/24"
    assert cidrs.allocate_next() == "10.244.2.0/24"
    assert cidrs.allocate_next() == "10.244.3.0/24"
    small = CIDRSet("10.0.0.0/30", 31)
    small.allocate_next()
    small.allocate_next()
    with pytest.raises(CIDRRangeFull):
        small.allocate_next()
    with pytest.raises(ValueError):
        CIDRSet("10.0.0.0/24", 16)


async def test_distinct_cidrs_rebuild_and_reuse(tmp_path: Path) -> None:
    async with api_server(tmp_path) as client:
        # A node that already holds a range before the controller starts.
        pre = node("node0")
        pre.spec.pod_cidr = "10.244.0.0/24"
        pre.spec.pod_cidrs.append("10.244.0.0/24")
        await client.create(pre)
        await client.create(node("node1"))
        async with controllers(client, ["nodeipam"]):
            assert await _cidr(client, "node1") == "10.244.1.0/24"  # 0 was in use: rebuilt
            await client.create(node("node2"))
            await client.create(node("node3"))
            got = {await _cidr(client, "node2"), await _cidr(client, "node3")}
            assert got == {"10.244.2.0/24", "10.244.3.0/24"}
            n1 = await client.get("nodes", "node1")
            assert list(n1.spec.pod_cidrs) == ["10.244.1.0/24"]

            await client.delete("nodes", "node1")
            await client.create(node("node4"))
            assert await _cidr(client, "node4") == "10.244.1.0/24"  # the released range


async def test_full_range_records_event_and_waits(tmp_path: Path) -> None:
    opts = ControllerOptions(cluster_cidr="10.250.0.0/23", node_cidr_mask_size=24)
    async with api_server(tmp_path) as client, controllers(client, ["nodeipam"], opts):
        await client.create(node("a"))
        await client.create(node("b"))
        assert await _cidr(client, "a") != await _cidr(client, "b")
        await client.create(node("c"))

        async def failed_event() -> bool:
            events, _ = await client.list("events", "default")
            return any(
                e.reason == "CIDRAssignmentFailed" and e.involved_object.name == "c" for e in events
            )

        await eventually(failed_event)
        assert not (await client.get("nodes", "c")).spec.pod_cidr
        freed = await _cidr(client, "a")
        await client.delete("nodes", "a")
        assert await _cidr(client, "c") == freed
