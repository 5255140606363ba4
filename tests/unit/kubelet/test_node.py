"""Registration, the Lease, restarts: a hollow kubelet against a real API server."""

from __future__ import annotations

import asyncio

from apimachinery.client import Client
from kubelet.lease import NODE_LEASE_NAMESPACE
from kubelet.runtime.fake import FakeRuntime
from tests.unit.kubelet.conftest import Harness, eventually, pod, set_pod_cidr


def condition(obj: object, type_: str) -> object:
    return next(c for c in obj.status.conditions if c.type == type_)  # type: ignore[attr-defined]


async def test_registration_reports_capacity_addresses_and_conditions(
    client: Client, harness: Harness
) -> None:
    kubelet, _ = await harness.start("node1", kube_reserved={"cpu": "500m", "memory": "512Mi"})
    node = await client.get("nodes", "node1")
    assert node.metadata.labels["kubernetes.io/hostname"] == "node1"
    assert node.metadata.labels["kubernetes.io/os"] == "linux"
    assert node.metadata.labels["kubernetes.io/arch"]
    assert dict(node.status.capacity) == {"cpu": "4", "memory": "8Gi", "pods": "110"}
    assert dict(node.status.allocatable) == {"cpu": "3500m", "memory": "7680Mi", "pods": "110"}
    assert [(a.type, a.address) for a in node.status.addresses] == [
        ("InternalIP", "192.168.50.10"),
        ("Hostname", "node1"),
    ]
    ready = condition(node, "Ready")
    assert (ready.status, ready.reason, ready.message) == (  # type: ignore[attr-defined]
        "True",
        "KubeletReady",
        "kubelet is posting ready status",
    )
    for type_ in ("MemoryPressure", "DiskPressure", "PIDPressure"):
        assert condition(node, type_).status == "False"  # type: ignore[attr-defined]
    assert node.status.node_info.container_runtime_version == "fake://0.1.0"
    assert node.status.node_info.kubelet_version == "v0.1.0"
    assert node.status.node_info.operating_system == "linux"
    # The port the kubelet server got (the tests ask for any free one; 10250 by default).
    assert node.status.daemon_endpoints.kubelet_endpoint.port == kubelet.server.port > 0
    assert node.spec.pod_cidr == ""  # the kubelet never sets it


async def test_register_with_taints(client: Client, harness: Harness) -> None:
    from kubelet.config import TaintSpec

    taint = TaintSpec.parse("dedicated=infra:NoSchedule")
    await harness.start("node1", register_with_taints=[taint])
    node = await client.get("nodes", "node1")
    assert [(t.key, t.value, t.effect) for t in node.spec.taints] == [
        ("dedicated", "infra", "NoSchedule")
    ]


async def test_lease_is_created_and_renewed(client: Client, harness: Harness) -> None:
    kubelet, _ = await harness.start("node1")
    node = await client.get("nodes", "node1")
    lease = await eventually(lambda: client.get("leases", "node1", NODE_LEASE_NAMESPACE))
    assert lease.spec.holder_identity == "node1"
    assert lease.spec.lease_duration_seconds == 40
    assert [(r.kind, r.name, r.uid) for r in lease.metadata.owner_references] == [
        ("Node", "node1", node.metadata.uid)
    ]
    first = lease.spec.renew_time.ToNanoseconds()

    async def renewed() -> bool:
        again = await client.get("leases", "node1", NODE_LEASE_NAMESPACE)
        return bool(again.spec.renew_time.ToNanoseconds() > first)

    await eventually(renewed, timeout=5)
    assert kubelet.lease.renewals >= 2
    # The Lease is the heartbeat; the unchanged node status is not rewritten every cycle.
    writes = kubelet.node_status.writes
    await asyncio.sleep(1.0)  # five status cycles
    assert kubelet.node_status.writes == writes


async def test_lease_recreated_after_deletion(client: Client, harness: Harness) -> None:
    await harness.start("node1")
    await eventually(lambda: client.get("leases", "node1", NODE_LEASE_NAMESPACE))
    await client.delete("leases", "node1", NODE_LEASE_NAMESPACE)
    lease = await eventually(lambda: client.get("leases", "node1", NODE_LEASE_NAMESPACE))
    assert lease.spec.holder_identity == "node1"


async def test_restart_adopts_node_and_pods_without_duplicates(
    client: Client, harness: Harness
) -> None:
    runtime = FakeRuntime()
    kubelet, task = await harness.start("node1", runtime)
    node = await client.get("nodes", "node1")
    await set_pod_cidr(client, "node1", "10.244.1.0/24")
    await client.create(pod("web", "node1"))

    async def running() -> object:
        p = await client.get("pods", "web")
        return p if p.status.phase == "Running" else None

    before = await eventually(running)
    await harness.stop(task)

    # While the kubelet is away the node lifecycle controller marks the node Unknown.
    stale = await client.get("nodes", "node1")
    ready = condition(stale, "Ready")
    ready.status = "Unknown"  # type: ignore[attr-defined]
    ready.reason = "NodeStatusUnknown"  # type: ignore[attr-defined]
    await client.update_status(stale)

    again, _ = await harness.start("node1", runtime)
    nodes, _ = await client.list("nodes")
    assert [n.metadata.name for n in nodes] == ["node1"]
    assert nodes[0].metadata.uid == node.metadata.uid
    assert nodes[0].spec.pod_cidr == "10.244.1.0/24"  # kept

    async def ready_again() -> bool:
        n = await client.get("nodes", "node1")
        return condition(n, "Ready").status == "True"  # type: ignore[attr-defined,no-any-return]

    await eventually(ready_again)
    leases, _ = await client.list("leases", NODE_LEASE_NAMESPACE)
    assert [lease.metadata.name for lease in leases] == ["node1"]
    await asyncio.sleep(1.0)  # several resyncs of the adopted pod
    assert runtime.count("run_pod_sandbox") == 1  # adopted, not started again
    assert runtime.count("start_container") == 1
    after = await client.get("pods", "web")
    assert after.status.pod_ip == before.status.pod_ip  # type: ignore[attr-defined]
    assert again.status_manager.writes == 0  # nothing changed, nothing written
    assert kubelet is not again


async def test_a_new_node_turns_ready_as_soon_as_its_network_is(
    client: Client, harness: Harness
) -> None:
    """Until first Ready the status is recomputed every 0.2 s, whatever the usual frequency."""
    runtime = FakeRuntime()
    runtime.network_ready = False  # as before the network plugin writes its CNI config
    await harness.start("node1", runtime, node_status_update_frequency=30.0)
    node = await client.get("nodes", "node1")
    assert condition(node, "Ready").status == "False"  # type: ignore[attr-defined]
    runtime.network_ready = True

    async def ready() -> bool:
        n = await client.get("nodes", "node1")
        return bool(condition(n, "Ready").status == "True")  # type: ignore[attr-defined]

    await eventually(ready, timeout=3.0)
