"""`tinykube top`: kubectl's tables cell for cell, its sorting, and its words when metrics are
missing, with a fake metrics source and a fake client."""

from __future__ import annotations

import time
from typing import Any

import grpc
import grpc.aio
import pytest
from click.testing import CliRunner

from apimachinery.client import Client
from cli import cmd_top, context
from cli.cmd_top import go_duration, node_table, pod_table, top_nodes, top_pods
from cli.context import CommandError
from cli.main import cli
from protos import core_pb2, metrics_pb2


def node(name: str, cpu: str, memory: str) -> metrics_pb2.NodeMetrics:
    m = metrics_pb2.NodeMetrics(usage={"cpu": cpu, "memory": memory})
    m.metadata.name = name
    return m


def pod(namespace: str, name: str, **containers: tuple[str, str]) -> metrics_pb2.PodMetrics:
    m = metrics_pb2.PodMetrics()
    m.metadata.name, m.metadata.namespace = name, namespace
    for cname, (cpu, memory) in containers.items():
        m.containers.add(name=cname, usage={"cpu": cpu, "memory": memory})
    return m


ALLOCATABLE = {"cpu": "2", "memory": "8Gi"}


def test_node_table_as_kubectl_prints_it() -> None:
    metrics = [node("node2", "1500m", "7Gi"), node("node1", "250000001n", f"{1034 * 1024}Ki")]
    allocatable = {"node1": ALLOCATABLE, "node2": ALLOCATABLE, "node3": ALLOCATABLE}
    # every cell tab-terminated (kubectl's printValue), so lines end in padding, as kubectl's do
    assert node_table(metrics, allocatable) == (
        "NAME    CPU(cores)   CPU(%)      MEMORY(bytes)   MEMORY(%)   \n"
        "node1   251m         12%         1034Mi          12%         \n"
        "node2   1500m        75%         7168Mi          87%         \n"
        "node3   <unknown>    <unknown>   <unknown>       <unknown>   \n"
    )
    by_cpu = node_table(metrics, {}, sort_by="cpu", no_headers=True)
    assert by_cpu == "node2   1500m   7168Mi   \nnode1   251m    1034Mi   \n"


def test_pod_table_sums_containers_sorts_and_splits() -> None:
    metrics = [
        pod("default", "web", app=("3m", "12Mi"), side=("1500000n", "4Mi")),
        pod("kube-system", "dns", c=("10m", "20Mi")),
        pod("default", "api", c=("0", "30Mi")),
    ]
    assert pod_table(metrics[:1] + metrics[2:]) == (
        "NAME   CPU(cores)   MEMORY(bytes)   \n"
        "api    0m           30Mi            \n"
        "web    5m           16Mi            \n"
    )
    assert pod_table(metrics, all_namespaces=True, sort_by="memory") == (
        "NAMESPACE     NAME   CPU(cores)   MEMORY(bytes)   \n"
        "default       api    0m           30Mi            \n"
        "kube-system   dns    10m          20Mi            \n"
        "default       web    5m           16Mi            \n"
    )
    assert pod_table(metrics[:1], containers=True, sort_by="cpu") == (
        "POD   NAME   CPU(cores)   MEMORY(bytes)   \n"
        "web   app    3m           12Mi            \n"
        "web   side   2m           4Mi             \n"
    )


def test_go_durations() -> None:
    assert go_duration(190.5) == "3m10.5s"
    assert go_duration(3725) == "1h2m5s"
    assert go_duration(0.25) == "0.25s"


class FakeMetrics:
    def __init__(self, nodes: list[Any], pods: list[Any]) -> None:
        self._nodes, self._pods = nodes, pods
        self.asked: list[tuple[str, ...]] = []

    async def nodes(self, name: str, selector: str) -> list[Any]:
        self.asked.append(("nodes", name, selector))
        return self._nodes

    async def pods(self, namespace: str, name: str, selector: str) -> list[Any]:
        self.asked.append(("pods", namespace, name, selector))
        return self._pods

    async def close(self) -> None:
        return None


class FakeClient:
    def __init__(self, objects: list[Any]) -> None:
        self.objects = objects

    async def get(self, resource: str, name: str, namespace: str = "") -> Any:
        return next(o for o in self.objects if o.metadata.name == name)

    async def list(self, resource: str, namespace: str = "", **_: Any) -> tuple[list[Any], str]:
        kind = core_pb2.Node if resource == "nodes" else core_pb2.Pod
        return [o for o in self.objects if isinstance(o, kind)], "1"


def core_pod(name: str, age: float) -> core_pb2.Pod:
    p = core_pb2.Pod()
    p.metadata.name, p.metadata.namespace = name, "default"
    p.metadata.creation_timestamp.seconds = int(time.time() - age)
    return p


@pytest.fixture
def source(monkeypatch: pytest.MonkeyPatch) -> FakeMetrics:
    fake = FakeMetrics([], [])
    monkeypatch.setattr(cmd_top, "make_metrics", lambda client: fake)
    return fake


async def test_why_there_is_nothing_to_show(
    source: FakeMetrics, capsys: pytest.CaptureFixture[str]
) -> None:
    client: Any = FakeClient([])
    assert await top_pods(client, "default", "", "") == 0
    assert capsys.readouterr().err == "No resources found in default namespace.\n"
    assert await top_pods(client, "default", "", "", all_namespaces=True) == 0
    assert capsys.readouterr().err == "No resources found\n"
    assert source.asked[-1] == ("pods", "", "", "")
    client.objects = [core_pod("young", 30)]
    with pytest.raises(CommandError, match=r"^metrics not available yet$"):
        await top_pods(client, "default", "", "app=web")
    client.objects = [core_pod("young", 30), core_pod("old", 190.5)]
    with pytest.raises(CommandError, match=r"Metrics not available for pod default/old, age: 3m1"):
        await top_pods(client, "default", "", "")
    with pytest.raises(CommandError, match=r"^metrics not available yet$"):
        await top_nodes(client, "", "")


async def test_top_nodes_reads_allocatable(
    source: FakeMetrics, capsys: pytest.CaptureFixture[str]
) -> None:
    n = core_pb2.Node()
    n.metadata.name = "node1"
    n.status.allocatable.update({"cpu": "4", "memory": "1Gi"})
    source._nodes = [node("node1", "1", "512Mi")]
    assert await top_nodes(FakeClient([n]), "node1", "") == 0  # type: ignore[arg-type]
    assert capsys.readouterr().out.splitlines()[1].split() == [
        "node1",
        "1000m",
        "25%",
        "512Mi",
        "50%",
    ]
    assert source.asked == [("nodes", "node1", "")]


async def test_a_server_without_the_metrics_service() -> None:
    async with Client("127.0.0.1:1") as client:
        metrics = cmd_top.MetricsClient(client)

        async def unimplemented() -> None:
            raise grpc.aio.AioRpcError(
                grpc.StatusCode.UNIMPLEMENTED, grpc.aio.Metadata(), grpc.aio.Metadata(), "no"
            )

        with pytest.raises(CommandError, match=r"^Metrics API not available$"):
            await metrics._call(unimplemented())
        await metrics.close()


def test_flags_checked_before_any_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(context, "make_client", lambda opts: pytest.fail("no call expected"))
    runner = CliRunner()
    base = ["--server", "127.0.0.1:1", "top"]
    bad = runner.invoke(cli, [*base, "nodes", "--sort-by", "name"])
    assert bad.exit_code == 1 and "error: --sort-by accepts only cpu or memory" in bad.output
    both = runner.invoke(cli, [*base, "po", "web", "-l", "app=web"])
    assert (
        both.exit_code == 1 and "error: only one of NAME or selector can be provided" in both.output
    )
    node_both = runner.invoke(cli, [*base, "no", "n1", "-l", "a=b"])
    assert "error: only one of NAME or --selector can be provided" in node_both.output
    assert (
        "Display resource (CPU/memory) usage of pods."
        in runner.invoke(cli, [*base, "pods", "--help"]).output
    )
