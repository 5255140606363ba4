"""A lost hollow node, end to end: its pods are replaced elsewhere, and it never runs one twice.

Real pieces, fast timings: the API server (DefaultTolerationSeconds 2 s),
the scheduler and every controller in one control plane, three hollow
kubelets (fake runtime) renewing their Leases every 0.2 s.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from apimachinery.client import Client
from apiserver.server import APIServer
from apiserver.storage import open_storage
from controllers.base import ControllerOptions
from controlplane import run_control_plane
from kubelet.config import KubeletConfig
from kubelet.kubelet import Kubelet
from kubelet.runtime.fake import FakeRuntime
from kubelet.runtime.interface import SandboxState
from protos import core_pb2
from tests.unit.controllers.infra import deployment, eventually, service

OPTIONS = ControllerOptions(node_monitor_period=0.2, node_monitor_grace_period=1.5)
NODES = ("node1", "node2", "node3")


class HollowNode:
    def __init__(self, address: str, name: str) -> None:
        self.address = address
        self.name = name
        self.runtime = FakeRuntime()
        self.client: Client | None = None
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        config = KubeletConfig(
            node_name=self.name,
            node_ip="127.0.0.1",
            lease_renew_interval=0.2,
            node_status_update_frequency=0.3,
            housekeeping_interval=0.3,
        )
        self.client = Client(self.address, timeout=10)
        self.task = asyncio.ensure_future(Kubelet(self.client, config, self.runtime).run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        if self.client is not None:
            await self.client.close()
        self.task = self.client = None

    def running_uids(self) -> set[str]:
        return {s.pod_uid for s in self.runtime.sandboxes.values() if s.state is SandboxState.READY}


@contextlib.asynccontextmanager
async def cluster(tmp_path: Path) -> AsyncIterator[tuple[Client, dict[str, HollowNode]]]:
    storage = await open_storage("sqlite", str(tmp_path))
    server = APIServer(storage, f"unix:{tmp_path}/api.sock", default_toleration_seconds=2)
    await server.start()
    address = server.local_address
    plane = asyncio.ensure_future(run_control_plane(address, options=OPTIONS))
    nodes = {name: HollowNode(address, name) for name in NODES}
    for n in nodes.values():
        n.start()
    client = Client(address, timeout=10)
    try:
        yield client, nodes
    finally:
        for n in nodes.values():
            await n.stop()
        plane.cancel()
        await asyncio.gather(plane, return_exceptions=True)
        await client.close()
        await server.stop(grace=0)


def _ready(pod: core_pb2.Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)


async def _live_pods(client: Client) -> list[core_pb2.Pod]:
    pods, _ = await client.list(core_pb2.Pod, "default", label_selector="app=web")
    return [p for p in pods if not p.metadata.HasField("deletion_timestamp")]


async def test_lost_node_pods_recreated_elsewhere_and_not_run_twice(tmp_path: Path) -> None:
    async with cluster(tmp_path) as (client, nodes):
        await client.create(service("web", {"app": "web"}, target=80))
        d = deployment("web")
        d.spec.replicas = 2
        await client.create(d)

        async def two_ready_on_two_nodes() -> list[core_pb2.Pod] | None:
            pods = await _live_pods(client)
            ok = len(pods) == 2 and all(_ready(p) for p in pods)
            return pods if ok and len({p.spec.node_name for p in pods}) == 2 else None

        before = await eventually(two_ready_on_two_nodes, timeout=20)
        lost = before[0]
        lost_node = nodes[lost.spec.node_name]
        node_cidr = (await client.get("nodes", lost_node.name)).spec.pod_cidr
        assert node_cidr.startswith("10.244.")

        await lost_node.stop()  # its kubelet dies; its fake pods are "still running" there

        async def replaced() -> list[core_pb2.Pod] | None:
            pods = await _live_pods(client)
            ok = len(pods) == 2 and all(_ready(p) for p in pods)
            on_lost = [p for p in pods if p.spec.node_name == lost_node.name]
            return pods if ok and not on_lost else None

        after = await eventually(replaced, timeout=20)
        assert lost.metadata.uid not in {p.metadata.uid for p in after}
        # The lost pod is Terminating, not gone: its node never confirmed it stopped.
        old = await client.get("pods", lost.metadata.name)
        assert old.metadata.HasField("deletion_timestamp")
        node = await client.get("nodes", lost_node.name)
        assert any(t.key == "node.kubernetes.io/unreachable" for t in node.spec.taints)

        async def endpoints_follow() -> bool:
            ep = await client.get("endpoints", "web")
            ips = sorted(a.ip for s in ep.subsets for a in s.addresses)
            return ips == sorted(p.status.pod_ip for p in after)

        await eventually(endpoints_follow, timeout=10)

        # The node comes back: its kubelet stops the old pod and deletes it; nothing runs twice.
        lost_node.start()

        async def old_gone_and_healed() -> bool:
            pods, _ = await client.list("pods", "default", label_selector="app=web")
            n = await client.get("nodes", lost_node.name)
            return lost.metadata.uid not in {p.metadata.uid for p in pods} and not n.spec.taints

        await eventually(old_gone_and_healed, timeout=20)
        await eventually(lambda: _true(lost.metadata.uid not in lost_node.running_uids()))
        running: list[str] = []
        for n in nodes.values():
            running.extend(n.running_uids())
        assert len(running) == len(set(running))
        assert set(running) == {p.metadata.uid for p in after}


async def _true(value: bool) -> bool:
    return value
