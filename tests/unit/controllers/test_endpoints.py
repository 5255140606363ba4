"""The endpoints controller against a real API server."""

from __future__ import annotations

import asyncio
from pathlib import Path

from apimachinery.client import Client
from controllers.endpoints import compute_subsets
from protos import core_pb2
from tests.unit.controllers.infra import (
    api_server,
    controllers,
    eventually,
    get_or_none,
    pod,
    service,
    set_pod_running,
)


def _ips(ep: core_pb2.Endpoints) -> tuple[list[str], list[str]]:
    ready = [a.ip for s in ep.subsets for a in s.addresses]
    unready = [a.ip for s in ep.subsets for a in s.not_ready_addresses]
    return ready, unready


async def _endpoints_with(
    client: Client, name: str, ready: list[str], unready: list[str]
) -> core_pb2.Endpoints:
    async def check() -> core_pb2.Endpoints | None:
        ep: core_pb2.Endpoints | None = await get_or_none(client, "endpoints", name)
        return ep if ep is not None and _ips(ep) == (ready, unready) else None

    return await eventually(check)


async def test_ready_and_unready_pods_with_named_target_port(tmp_path: Path) -> None:
    async with api_server(tmp_path) as client, controllers(client, ["endpoints"]):
        await client.create(service("web", {"app": "web"}, target="http"))
        for name, port in (("web-a", 8080), ("web-b", 8080), ("web-c", 9090)):
            await client.create(pod(name, {"app": "web"}, node_name="node1", ports={"http": port}))
        await client.create(pod("web-noport", {"app": "web"}, node_name="node1"))
        await client.create(pod("other", {"app": "other"}, node_name="node1", ports={"http": 80}))
        await set_pod_running(client, "web-b", "10.244.0.7", ready=True)
        await set_pod_running(client, "web-a", "10.244.0.5", ready=True)
        await set_pod_running(client, "web-c", "10.244.0.9", ready=False)
        await set_pod_running(client, "web-noport", "10.244.0.11", ready=True)
        await set_pod_running(client, "other", "10.244.0.12", ready=True)

        ep = await _endpoints_with(client, "web", ["10.244.0.5", "10.244.0.7"], ["10.244.0.9"])
        # One subset per distinct port set: a and b serve 8080, c serves 9090.
        assert len(ep.subsets) == 2
        by_port = {s.ports[0].port: s for s in ep.subsets}
        assert [a.ip for a in by_port[8080].addresses] == ["10.244.0.5", "10.244.0.7"]
        assert [a.ip for a in by_port[9090].not_ready_addresses] == ["10.244.0.9"]
        assert by_port[8080].ports[0].name == "web"
        assert by_port[8080].ports[0].protocol == "TCP"
        first = by_port[8080].addresses[0]
        assert first.target_ref.kind == "Pod"
        assert first.target_ref.name == "web-a"
        assert first.target_ref.namespace == "default"
        assert first.target_ref.uid
        assert first.node_name == "node1"

        # web-c becomes ready; web-a becomes unready.
        await set_pod_running(client, "web-c", "10.244.0.9", ready=True)
        await set_pod_running(client, "web-a", "10.244.0.5", ready=False)
        await _endpoints_with(client, "web", ["10.244.0.7", "10.244.0.9"], ["10.244.0.5"])

        # A terminating pod leaves; a pod relabelled out of the selector leaves.
        await client.delete("pods", "web-b")  # bound to a node: graceful, stays Terminating
        assert (await client.get("pods", "web-b")).metadata.HasField("deletion_timestamp")
        relabel = await client.get("pods", "web-c")
        relabel.metadata.labels["app"] = "moved"
        await client.update(relabel)
        await _endpoints_with(client, "web", [], ["10.244.0.5"])


async def test_unchanged_state_writes_nothing_and_service_delete_removes(tmp_path: Path) -> None:
    async with api_server(tmp_path) as client, controllers(client, ["endpoints"]):
        await client.create(service("web", {"app": "web"}, target=80))
        await client.create(pod("web-a", {"app": "web"}, node_name="node1"))
        await set_pod_running(client, "web-a", "10.244.0.5", ready=True)
        ep = await _endpoints_with(client, "web", ["10.244.0.5"], [])
        assert ep.subsets[0].ports[0].port == 80
        version = ep.metadata.resource_version
        # A pod status change that does not alter the endpoints causes no write.
        p = await client.get("pods", "web-a")
        p.status.host_ip = "192.168.0.1"
        await client.update_status(p)
        # Someone edits the Endpoints by hand: the controller puts them back.
        hand = await client.get("endpoints", "web")
        del hand.subsets[:]
        await client.update(hand)
        repaired = await _endpoints_with(client, "web", ["10.244.0.5"], [])
        assert int(repaired.metadata.resource_version) > int(version)
        settled = repaired.metadata.resource_version
        p = await client.get("pods", "web-a")
        p.status.host_ip = "192.168.0.2"
        await client.update_status(p)
        await asyncio.sleep(0.5)  # time for the controller to see the change (and ignore it)
        ep = await _endpoints_with(client, "web", ["10.244.0.5"], [])
        assert ep.metadata.resource_version == settled

        await client.delete("services", "web")

        async def gone() -> bool:
            return await get_or_none(client, "endpoints", "web") is None

        await eventually(gone)


async def test_service_without_selector_is_left_alone(tmp_path: Path) -> None:
    async with api_server(tmp_path) as client, controllers(client, ["endpoints"]):
        manual = core_pb2.Service(api_version="v1", kind="Service")
        manual.metadata.name = "external"
        manual.spec.ports.add(port=5432, protocol="TCP").target_port.int_val = 5432
        await client.create(manual)
        ep = core_pb2.Endpoints(api_version="v1", kind="Endpoints")
        ep.metadata.name = "external"
        subset = ep.subsets.add()
        subset.addresses.add(ip="192.168.1.10")
        subset.ports.add(port=5432, protocol="TCP")
        await client.create(ep)
        # A selector-bearing Service in the same run proves the controller is working.
        await client.create(service("web", {"app": "web"}))
        await client.create(pod("web-a", {"app": "web"}, node_name="node1"))
        await set_pod_running(client, "web-a", "10.244.0.5", ready=True)
        await _endpoints_with(client, "web", ["10.244.0.5"], [])
        kept = await client.get("endpoints", "external")
        assert [a.ip for a in kept.subsets[0].addresses] == ["192.168.1.10"]


def test_publish_not_ready_and_pods_without_ip() -> None:
    svc = service("db", {"app": "db"}, target=5432)
    svc.spec.publish_not_ready_addresses = True
    unready = pod("db-0", {"app": "db"}, node_name="node1")
    unready.status.pod_ip = "10.244.1.3"
    no_ip = pod("db-1", {"app": "db"}, node_name="node1")
    subsets = compute_subsets(svc, [unready, no_ip])
    assert [a.ip for a in subsets[0].addresses] == ["10.244.1.3"]
    assert not subsets[0].not_ready_addresses
    svc.spec.publish_not_ready_addresses = False
    subsets = compute_subsets(svc, [unready, no_ip])
    assert [a.ip for a in subsets[0].not_ready_addresses] == ["10.244.1.3"]
    assert not subsets[0].addresses
