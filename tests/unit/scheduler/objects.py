"""Builders for scheduler tests: Nodes, Pods, and their digested forms."""

from __future__ import annotations

from protos import core_pb2, meta_pb2
from scheduler.snapshot import Cache, Snapshot
from scheduler.types import NodeInfo, PodInfo


def node(
    name: str,
    *,
    cpu: str = "4",
    memory: str = "8Gi",
    pods: str = "110",
    labels: dict[str, str] | None = None,
    taints: list[tuple[str, str, str]] | None = None,
    unschedulable: bool = False,
    ready: bool = True,
) -> core_pb2.Node:
    n = core_pb2.Node(api_version="v1", kind="Node")
    n.metadata.name = name
    n.metadata.labels.update({"kubernetes.io/hostname": name, **(labels or {})})
    n.spec.unschedulable = unschedulable
    for key, value, effect in taints or []:
        n.spec.taints.add(key=key, value=value, effect=effect)
    for field in (n.status.capacity, n.status.allocatable):
        field.update({"cpu": cpu, "memory": memory, "pods": pods})
    n.status.conditions.add(type="Ready", status="True" if ready else "False")
    return n


def pod(
    name: str,
    *,
    namespace: str = "default",
    cpu: str = "",
    memory: str = "",
    node_name: str = "",
    labels: dict[str, str] | None = None,
    owner: str = "",
    tolerations: list[tuple[str, str, str, str]] | None = None,
    node_selector: dict[str, str] | None = None,
    uid: str = "",
) -> core_pb2.Pod:
    p = core_pb2.Pod(api_version="v1", kind="Pod")
    p.metadata.name = name
    p.metadata.namespace = namespace
    p.metadata.uid = uid or f"uid-{name}"
    p.metadata.labels.update(labels or {})
    if owner:
        p.metadata.owner_references.append(
            meta_pb2.OwnerReference(
                api_version="apps/v1",
                kind="ReplicaSet",
                name=owner,
                uid=f"uid-{owner}",
                controller=True,
                block_owner_deletion=True,
            )
        )
    c = p.spec.containers.add(name="c", image="nginx:latest")
    if cpu:
        c.resources.requests["cpu"] = cpu
    if memory:
        c.resources.requests["memory"] = memory
    if node_name:
        p.spec.node_name = node_name
    for key, op, value, effect in tolerations or []:
        p.spec.tolerations.add(key=key, operator=op, value=value, effect=effect)
    p.spec.node_selector.update(node_selector or {})
    p.spec.scheduler_name = "default-scheduler"
    return p


def node_info(n: core_pb2.Node, *pods: core_pb2.Pod) -> NodeInfo:
    info = NodeInfo(n.metadata.name)
    info.set_node(n)
    for p in pods:
        info.add_pod(PodInfo.of(p))
    return info


def snapshot(nodes: list[core_pb2.Node], pods: list[core_pb2.Pod] | None = None) -> Snapshot:
    return Snapshot.build(nodes, pods or [])


def cache(nodes: list[core_pb2.Node], pods: list[core_pb2.Pod] | None = None) -> Cache:
    c = Cache()
    for n in nodes:
        c.add_node(n)
    for p in pods or []:
        c.add_pod(p)
    return c
