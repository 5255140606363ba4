"""The whole path without root: a hollow kubelet's KubeletStats, the API server's Metrics
service, and `tinykube top`'s verbs. The fake runtime lends its container this test's own
process, so the cgroup read is the machine's real one."""

from __future__ import annotations

import os
from typing import Any

import pytest

from apimachinery.client import Client
from cli.cmd_top import MetricsClient, top_nodes, top_pods
from kubelet.runtime.fake import FakeRuntime
from kubelet.stats.cgroups import CgroupError, CgroupFS
from tests.unit.kubelet.conftest import Harness, eventually, pod, set_pod_cidr


def _readable_cgroup() -> bool:
    try:
        CgroupFS().dirs_of(os.getpid())
    except (CgroupError, OSError):
        return False
    return True


pytestmark = pytest.mark.skipif(not _readable_cgroup(), reason="no cgroup hierarchy to read")


async def _running(client: Client, name: str) -> Any:
    p = await client.get("pods", name)
    return p if p.status.phase == "Running" else None


async def test_top_through_the_api_server(
    client: Client, harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    runtime = FakeRuntime()
    await harness.start("node1", runtime, node_ip="127.0.0.1")
    await set_pod_cidr(client, "node1", "10.244.1.0/24")
    web = pod("web", "node1", "app")
    web.metadata.labels["app"] = "web"
    await client.create(web)
    await client.create(pod("idle", "node1", "app"))
    await eventually(lambda: _running(client, "web"))
    await eventually(lambda: _running(client, "idle"))
    by_pod = {c.labels["io.kubernetes.pod.name"]: c for c in runtime.running()}
    runtime.pids[by_pod["web"].id] = os.getpid()  # "idle" has no process: no metrics

    async def node_ready() -> bool:
        node = await client.get("nodes", "node1")
        return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)

    await eventually(node_ready)
    metrics = MetricsClient(client)
    try:
        pods = await metrics.pods("default", "", "")
        nodes = await metrics.nodes("", "")
    finally:
        await metrics.close()
    assert [p.metadata.name for p in pods] == ["web"]
    (app,) = pods[0].containers
    assert app.name == "app" and app.usage["cpu"] and app.usage["memory"] != "0"
    assert pods[0].window.seconds + pods[0].window.nanos > 0
    assert [n.metadata.name for n in nodes] == ["node1"]  # a hollow node: the kubelet process

    assert await top_pods(client, "default", "", "app=web") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "CPU(cores)", "MEMORY(bytes)"]
    name, cpu, memory = lines[1].split()
    assert name == "web" and cpu.endswith("m") and memory.endswith("Mi")
    assert await top_nodes(client, "", "") == 0
    row = capsys.readouterr().out.splitlines()[1].split()
    assert row[0] == "node1" and row[2].endswith("%") and row[4].endswith("%")
