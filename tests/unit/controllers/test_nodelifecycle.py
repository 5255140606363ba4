"""Node lifecycle: a lost lease makes a node Unknown and tainted, its pods are evicted."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

from apimachinery import errors
from apimachinery.client import Client
from controllers.base import ControllerOptions
from controllers.nodelifecycle import desired_taints, reconcile_taints
from controllers.taint_eviction import eviction_deadline, timestamp_seconds
from protos import core_pb2
from tests.unit.controllers.infra import (
    api_server,
    controllers,
    eventually,
    get_or_none,
    lease,
    node,
    now,
    pod,
    set_pod_running,
)

FAST = ControllerOptions(node_monitor_period=0.1, node_monitor_grace_period=1.5)
UNREACHABLE = "node.kubernetes.io/unreachable"


class Kubelets:
    """Renews the Lease of every node in `alive`, as hollow kubelets would."""

    def __init__(self, client: Client, *names: str) -> None:
        self.client = client
        self.alive = set(names)

    async def renew_forever(self) -> None:
        while True:
            for name in sorted(self.alive):
                lz = await self.client.get("leases", name, "kube-node-lease")
                lz.spec.renew_time.CopyFrom(now())
                await self.client.update(lz)
            await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def kubelets(client: Client, *names: str) -> AsyncIterator[Kubelets]:
    for name in names:
        await client.create(node(name))
        await client.create(lease(name))
    k = Kubelets(client, *names)
    task = asyncio.ensure_future(k.renew_forever())
    try:
        yield k
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def _taints(n: core_pb2.Node) -> set[tuple[str, str]]:
    return {(t.key, t.effect) for t in n.spec.taints}


def _ready(n: core_pb2.Node) -> str:
    return next((c.status for c in n.status.conditions if c.type == "Ready"), "")


async def _events(client: Client, reason: str) -> list[core_pb2.Event]:
    events, _ = await client.list(core_pb2.Event, "default")
    return [e for e in events if e.reason == reason]


def _no_default_toleration(p: core_pb2.Pod) -> core_pb2.Pod:
    """A toleration that blocks the default one yet does not match the taint (value differs)."""
    p.spec.tolerations.add(key=UNREACHABLE, operator="Equal", value="x", effect="NoExecute")
    return p


def _tolerating(p: core_pb2.Pod, seconds: int) -> core_pb2.Pod:
    p.spec.tolerations.add(
        key=UNREACHABLE, operator="Exists", effect="NoExecute", toleration_seconds=seconds
    )
    return p


async def test_lost_lease_unknown_taint_evict_and_recover(tmp_path: Path) -> None:
    async with (
        api_server(tmp_path) as client,
        kubelets(client, "node1", "node2") as alive,
        controllers(client, ["nodelifecycle"], FAST),
    ):
        await client.create(_no_default_toleration(pod("intolerant", node_name="node2")))
        await client.create(_tolerating(pod("brief", node_name="node2"), 1))
        await client.create(pod("patient", node_name="node2"))  # default 300 s toleration
        await client.create(_no_default_toleration(pod("elsewhere", node_name="node1")))
        await set_pod_running(client, "patient", "10.244.2.5", ready=True)
        await asyncio.sleep(2.0)  # longer than the grace period: renewed leases keep nodes Ready
        for name in ("node1", "node2"):
            n = await client.get("nodes", name)
            assert _ready(n) == "True" and not _taints(n)

        alive.alive.discard("node2")  # its kubelet dies

        async def unknown() -> core_pb2.Node | None:
            n = await client.get(core_pb2.Node, "node2")
            return (
                n if _ready(n) == "Unknown" and (UNREACHABLE, "NoExecute") in _taints(n) else None
            )

        n2 = await eventually(unknown, timeout=6)
        ready = next(c for c in n2.status.conditions if c.type == "Ready")
        assert ready.reason == "NodeStatusUnknown"
        assert ready.message == "Kubelet stopped posting node status."
        assert (UNREACHABLE, "NoSchedule") in _taints(n2)
        taint = next(t for t in n2.spec.taints if t.effect == "NoExecute")
        added = timestamp_seconds(taint.time_added)
        assert abs(added - time.time()) < 3

        async def marked(name: str) -> float | None:
            p = await get_or_none(client, "pods", name)
            return (
                time.time() if p is not None and p.metadata.HasField("deletion_timestamp") else None
            )

        await eventually(lambda: marked("intolerant"), timeout=3)
        brief_at = await eventually(lambda: marked("brief"), timeout=4)
        assert brief_at - added >= 0.9  # tolerated for its second, not evicted at once
        # Graceful: the pods stay Terminating while their node is away.
        assert (await client.get("pods", "brief")).metadata.HasField("deletion_timestamp")
        patient = await client.get("pods", "patient")
        assert not patient.metadata.HasField("deletion_timestamp")
        assert next(c.status for c in patient.status.conditions if c.type == "Ready") == "False"
        assert not (await client.get("pods", "elsewhere")).metadata.HasField("deletion_timestamp")
        n1 = await client.get("nodes", "node1")
        assert _ready(n1) == "True" and not _taints(n1)

        async def events_recorded() -> bool:
            evictions = await _events(client, "TaintManagerEviction")
            not_ready = await _events(client, "NodeNotReady")
            return any(
                e.message == "Marking for deletion Pod default/brief" for e in evictions
            ) and any(e.involved_object.name == "node2" for e in not_ready)

        await eventually(events_recorded)

        # The kubelet comes back: lease renewed, Ready posted again; the taints go.
        alive.alive.add("node2")
        back = await client.get("nodes", "node2")
        for c in back.status.conditions:
            if c.type == "Ready":
                c.status = "True"
                c.reason = "KubeletReady"
                c.last_heartbeat_time.CopyFrom(now())
        await client.update_status(back)

        async def healed() -> bool:
            n = await client.get("nodes", "node2")
            return _ready(n) == "True" and not _taints(n)

        await eventually(healed, timeout=5)
        await asyncio.sleep(1.0)
        assert not (await client.get("pods", "patient")).metadata.HasField("deletion_timestamp")
        assert any(e.involved_object.name == "node2" for e in await _events(client, "NodeReady"))


async def test_never_renewed_node_and_unschedulable_taint(tmp_path: Path) -> None:
    async with api_server(tmp_path) as client, controllers(client, ["nodelifecycle"], FAST):
        await client.create(node("silent", ready=None))  # registered, never a lease or status

        async def unknown() -> core_pb2.Node | None:
            n = await client.get(core_pb2.Node, "silent")
            return n if _ready(n) == "Unknown" else None

        n = await eventually(unknown, timeout=6)
        ready = next(c for c in n.status.conditions if c.type == "Ready")
        assert ready.reason == "NodeStatusNeverUpdated"

        async def tainted() -> bool:
            return (UNREACHABLE, "NoExecute") in _taints(await client.get("nodes", "silent"))

        await eventually(tainted)
        assert any(
            e.involved_object.name == "silent" for e in await _events(client, "RegisteredNode")
        )

        async def cordon(value: bool) -> None:
            for _ in range(10):
                n = await client.get("nodes", "silent")
                n.spec.unschedulable = value
                try:
                    await client.update(n)
                    return
                except errors.Conflict:
                    continue

        await cordon(True)

        async def has_unschedulable() -> bool:
            taints = _taints(await client.get("nodes", "silent"))
            return ("node.kubernetes.io/unschedulable", "NoSchedule") in taints

        await eventually(has_unschedulable)
        await cordon(False)

        async def lost_unschedulable() -> bool:
            return not await has_unschedulable()

        await eventually(lost_unschedulable)


def test_taint_and_deadline_rules() -> None:
    n = node("n", ready="False")
    n.spec.taints.add(key="dedicated", value="gpu", effect="NoSchedule")
    n.status.conditions.add(type="DiskPressure", status="True")
    assert desired_taints(n) == {
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/not-ready", "NoSchedule"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
    }
    stamp = now()
    taints = reconcile_taints(n, stamp)
    assert taints is not None
    assert ("dedicated", "NoSchedule") in {(t.key, t.effect) for t in taints}  # not ours: kept
    no_exec = next(t for t in taints if t.effect == "NoExecute")
    assert no_exec.time_added == stamp
    n.spec.ClearField("taints")
    n.spec.taints.extend(taints)
    assert reconcile_taints(n, now()) is None  # already right: nothing to write

    taint = core_pb2.Taint(key=UNREACHABLE, effect="NoExecute")
    taint.time_added.FromSeconds(1000)
    forever = pod("p")
    forever.spec.tolerations.add(key=UNREACHABLE, operator="Exists", effect="NoExecute")

    def added(t: core_pb2.Taint) -> float:
        return timestamp_seconds(t.time_added)

    assert eviction_deadline(forever, [taint], added) is None
    assert eviction_deadline(_tolerating(pod("p"), 30), [taint], added) == 1030.0
    assert eviction_deadline(_no_default_toleration(pod("p")), [taint], added) == 0.0
    everything = pod("p")
    everything.spec.tolerations.add(operator="Exists")
    assert eviction_deadline(everything, [taint], added) is None
