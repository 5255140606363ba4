"""metrics.k8s.io over HTTP: discovery, NodeMetrics and PodMetrics from a stand-in kubelet's
Summary, the conversion (nanocores, working set, Go durations), selectors, NotFound and 405,
and RBAC (the view role reads metrics; nobody else does)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
from google.protobuf import duration_pb2

from apiserver.httpapi.metrics import go_duration
from apiserver.metrics import cpu_quantity, memory_quantity
from kubelet.stats.cgroups import MemoryUsage
from kubelet.stats.rates import Rate
from kubelet.stats.summary import cpu_stats, memory_stats, timestamp
from protos import metrics_pb2, metrics_pb2_grpc
from tests.unit.apiserver.httpapi.client import HTTPS, TOKEN, Cluster

MIB = 1024 * 1024
AT = 1714557600.0  # 2024-05-01T10:00:00Z
BASE = "/apis/metrics.k8s.io/v1beta1"


def _stats(nano_cores: int | None, working_set: int) -> tuple[Any, Any]:
    rate = Rate(nano_cores, 1.5, AT) if nano_cores is not None else None
    cpu = cpu_stats(AT, 10 * 10**9, rate)
    return cpu, memory_stats(AT, MemoryUsage(working_set + MIB, working_set, working_set))


def summary(node: str) -> metrics_pb2.Summary:
    out = metrics_pb2.Summary()
    out.node.node_name = node
    out.node.cpu.CopyFrom(_stats(250_000_000, 0)[0])
    out.node.memory.CopyFrom(_stats(None, 1034 * MIB)[1])
    for name, containers in (("web", {"app": 3_000_000, "side": 1_000_000}), ("api", {"c": 0})):
        pod = out.pods.add()
        pod.pod_ref.name, pod.pod_ref.namespace, pod.pod_ref.uid = name, "default", name
        for cname, cores in containers.items():
            cpu, memory = _stats(cores, 12 * MIB)
            pod.containers.add(name=cname, cpu=cpu, memory=memory)
        pod.cpu.CopyFrom(_stats(sum(containers.values()), 0)[0])
    return out


class StandInStats(metrics_pb2_grpc.KubeletStatsServicer):
    def __init__(self, node: str) -> None:
        self.node = node
        self.uids: dict[str, str] = {}  # pod name -> the uid the API server gave it

    async def Summary(self, request: Any, context: Any) -> metrics_pb2.Summary:
        answer = summary(self.node)
        for pod in answer.pods:  # the stand-in knows the pods by name; the server by uid
            pod.pod_ref.uid = self.uids.get(pod.pod_ref.name, "")
        return answer


async def _node(admin: HTTPS, name: str, port: int, ready: str = "True") -> None:
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {"n": name}}}
    assert (await admin.call("POST", "/api/v1/nodes", node)).status == 201
    current = (await admin.call("GET", f"/api/v1/nodes/{name}")).data
    current["status"] = {
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        "conditions": [{"type": "Ready", "status": ready}],
        "allocatable": {"cpu": "2", "memory": "8Gi"},
    }
    assert (await admin.call("PUT", f"/api/v1/nodes/{name}/status", current)).status == 200


async def _pod(admin: HTTPS, name: str, node: str, **labels: str) -> str:
    spec = {"nodeName": node, "containers": [{"name": "app", "image": "i"}]}
    obj = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels}}
    answer = await admin.call("POST", "/api/v1/namespaces/default/pods", {**obj, "spec": spec})
    assert answer.status == 201, answer.body
    uid: str = answer.data["metadata"]["uid"]
    return uid


@contextlib.asynccontextmanager
async def kubelets(admin: HTTPS) -> AsyncIterator[StandInStats]:
    """node1 (Ready) with pods web and api; node2 NotReady with pod far; node3 unreachable."""
    server = grpc.aio.server()
    stand_in = StandInStats("node1")
    metrics_pb2_grpc.add_KubeletStatsServicer_to_server(stand_in, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        await _node(admin, "node1", port)
        await _node(admin, "node2", port, ready="False")
        await _node(admin, "node3", 1)  # nothing listens there
        stand_in.uids = {
            "web": await _pod(admin, "web", "node1", app="web"),
            "api": await _pod(admin, "api", "node1", app="api"),
        }
        await _pod(admin, "far", "node2", app="web")
        yield stand_in
    finally:
        await server.stop(0)


async def test_discovery_names_the_group(admin: HTTPS) -> None:
    groups = (await admin.call("GET", "/apis")).data["groups"]
    metrics = next(g for g in groups if g["name"] == "metrics.k8s.io")
    assert metrics["preferredVersion"]["groupVersion"] == "metrics.k8s.io/v1beta1"
    resources = (await admin.call("GET", BASE)).data["resources"]
    assert [(r["name"], r["kind"], r["namespaced"], r["verbs"]) for r in resources] == [
        ("nodes", "NodeMetrics", False, ["get", "list"]),
        ("pods", "PodMetrics", True, ["get", "list"]),
    ]


async def test_node_and_pod_metrics(admin: HTTPS) -> None:
    async with kubelets(admin):
        nodes = await admin.call("GET", f"{BASE}/nodes")
        assert nodes.status == 200, nodes.body
        assert nodes.data["kind"] == "NodeMetricsList"
        (node1,) = nodes.data["items"]  # node2 is not Ready, node3 cannot be reached
        assert node1["metadata"]["name"] == "node1" and node1["metadata"]["labels"] == {
            "n": "node1"
        }
        assert node1["usage"] == {"cpu": "250m", "memory": "1034Mi"}
        assert node1["timestamp"] == "2024-05-01T10:00:00Z" and node1["window"] == "1.5s"
        one = await admin.call("GET", f"{BASE}/nodes/node1")
        assert one.data["kind"] == "NodeMetrics" and one.data["usage"]["cpu"] == "250m"
        gone = await admin.call("GET", f"{BASE}/nodes/node3")
        assert gone.status == 404
        assert gone.data["message"] == 'nodemetrics.metrics.k8s.io "node3" not found'

        pods = (await admin.call("GET", f"{BASE}/namespaces/default/pods")).data
        assert pods["kind"] == "PodMetricsList"
        assert [p["metadata"]["name"] for p in pods["items"]] == ["api", "web"]
        web = pods["items"][1]
        assert web["containers"] == [
            {"name": "app", "usage": {"cpu": "3m", "memory": "12Mi"}},
            {"name": "side", "usage": {"cpu": "1m", "memory": "12Mi"}},
        ]
        assert web["metadata"]["namespace"] == "default" and web["window"] == "1.5s"
        chosen = await admin.call("GET", f"{BASE}/namespaces/default/pods?labelSelector=app%3Dweb")
        assert [p["metadata"]["name"] for p in chosen.data["items"]] == ["web"]
        everywhere = await admin.call("GET", f"{BASE}/pods")
        assert len(everywhere.data["items"]) == 2
        far = await admin.call("GET", f"{BASE}/namespaces/default/pods/far")
        assert far.status == 404
        assert far.data["message"] == 'podmetrics.metrics.k8s.io "default/far" not found'
        missing = await admin.call("GET", f"{BASE}/namespaces/default/pods/nobody")
        assert missing.status == 404 and missing.data["message"] == 'pods "nobody" not found'


async def test_only_get_and_list(admin: HTTPS) -> None:
    watch = await admin.call("GET", f"{BASE}/nodes?watch=1")
    assert watch.status == 405
    post = await admin.call("POST", f"{BASE}/namespaces/default/pods", {"kind": "PodMetrics"})
    assert post.status == 405
    assert (await admin.call("GET", f"{BASE}/services")).status == 404
    assert (await admin.call("GET", "/apis/metrics.k8s.io/v1/nodes")).status == 404
    fields = await admin.call("GET", f"{BASE}/pods?fieldSelector=metadata.name%3Dweb")
    assert fields.status == 400


async def test_rbac_view_reads_metrics(cluster: Cluster, admin: HTTPS) -> None:
    bob = cluster.client(None, token=TOKEN)
    denied = await bob.call("GET", f"{BASE}/namespaces/default/pods")
    assert denied.status == 403
    assert denied.data["message"] == (
        'pods.metrics.k8s.io is forbidden: User "bob" cannot list resource "pods" in API group'
        ' "metrics.k8s.io" in the namespace "default"'
    )
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "bob-views", "namespace": "default"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "User", "name": "bob", "apiGroup": "rbac.authorization.k8s.io"}],
    }
    path = "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings"
    assert (await admin.call("POST", path, binding)).status == 201

    async def allowed() -> int:
        return (await bob.call("GET", f"{BASE}/namespaces/default/pods")).status

    for _ in range(50):  # the RBAC index follows its watch
        if await allowed() == 200:
            break
        await asyncio.sleep(0.1)
    assert await allowed() == 200
    # a namespaced binding grants nothing at the cluster scope
    assert (await bob.call("GET", f"{BASE}/nodes")).status == 403


def test_quantities_and_durations() -> None:
    assert cpu_quantity(329087452) == "329087452n"
    assert cpu_quantity(2 * 10**9) == "2" and cpu_quantity(0) == "0"
    assert memory_quantity(2748180 * 1024) == "2748180Ki" and memory_quantity(1000) == "1k"
    assert go_duration(duration_pb2.Duration(seconds=20, nanos=64_000_000)) == "20.064s"
    assert go_duration(duration_pb2.Duration(seconds=65, nanos=500_000_000)) == "1m5.5s"
    assert go_duration(duration_pb2.Duration(seconds=3725)) == "1h2m5s"
    assert go_duration(duration_pb2.Duration()) == "0s"
    assert timestamp(AT).seconds == int(AT)
