"""Probes of the seed (examples/web-app.yaml) on a local cluster, shared by the e2e modules.

Each reads the cluster through its API (`cluster.api`) or acts as an operator
would (`cordon`, `delete pod`), never through the host's network.
"""

from __future__ import annotations

from typing import Any

from localcluster.cluster import Cluster
from localcluster.probes import cli, wait


def web_pods(cluster: Cluster) -> list[Any]:
    async def read(client: Any) -> list[Any]:
        items, _ = await client.list("pods", "default", label_selector="app=web-app")
        return [p for p in items if not p.metadata.HasField("deletion_timestamp")]

    return cluster.api(read)


def running(cluster: Cluster) -> dict[str, tuple[str, str]]:
    """Running web-app pods: name -> (node, pod IP)."""
    return {
        p.metadata.name: (p.spec.node_name, p.status.pod_ip)
        for p in web_pods(cluster)
        if p.status.phase == "Running" and p.status.pod_ip
    }


def two_running(cluster: Cluster, *, on: set[str] | None = None, gone: str = "") -> bool:
    """Both replicas Running (on exactly the nodes `on`, when given; `gone` not among them),
    from one read. Two reads can disagree: a wait that counted two pods in one read and
    their nodes in another once passed with a single replica, the node-lost pod counted in
    the first and deleted by the second."""
    pods = running(cluster)
    if len(pods) != 2 or gone in pods:
        return False
    return on is None or {node for node, _ in pods.values()} == on


def pod_ready(cluster: Cluster, name: str) -> bool:
    async def read(client: Any) -> bool:
        pod = await client.get("pods", name, "default")
        return bool(pod.status.phase == "Running")

    try:
        return cluster.api(read)
    except Exception:
        return False


def cluster_ip(cluster: Cluster, service: str = "web-app-service") -> str:
    async def read(client: Any) -> str:
        svc = await client.get("services", service, "default")
        return str(svc.spec.cluster_ip)

    return cluster.api(read)


def endpoints_of(cluster: Cluster) -> set[str]:
    async def read(client: Any) -> set[str]:
        ep = await client.get("endpoints", "web-app-service", "default")
        return {a.ip for s in ep.subsets for a in s.addresses}

    return cluster.api(read)


def spread(cluster: Cluster) -> None:
    """One replica per node. Spreading is a score, not a rule: after the replacement above
    both may share a node; then cordon that node and delete one of them (an operator's
    rebalance), so node2 surely has a replica to lose."""
    for _ in range(3):
        pods = running(cluster)
        nodes = [node for node, _ in pods.values()]
        if sorted(nodes) == ["node1", "node2"]:
            return
        crowded = nodes[0]
        victim = next(name for name, (node, _) in pods.items() if node == crowded)
        cli(cluster, "cordon", crowded)
        try:
            cli(cluster, "delete", "pod", victim)
            wait(
                lambda: two_running(cluster, gone=victim),  # noqa: B023
                "a replacement on the other node",
                cluster,
            )
        finally:
            cli(cluster, "uncordon", crowded)
    raise AssertionError(f"replicas did not spread: {running(cluster)}")
