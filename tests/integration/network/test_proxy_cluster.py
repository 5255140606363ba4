"""Services across a real two-node cluster: agents program the proxy from the API server.

Built on localcluster/netcluster.py: an API server on a unix socket,
node namespaces with `tinykube netplugin` agents (overlay and proxy), pods
wired by `tinykube-cni`. There are no kubelets, so the Services here have no
selector and the test writes their Endpoints itself -- exactly what the
endpoints controller would write for these pods. Each pod serves HTTP and
answers with its name.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from apimachinery.client import Client
from localcluster.netcluster import NetworkCluster, Target
from localcluster.netcluster_objects import endpoints, service
from localcluster.netns import Underlay

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(240)]

# COUNT GETs of http://IP:PORT/; prints a JSON list of [body or error name, seconds].
GETS = r"""
import json, sys, time, urllib.request
ip, port, count, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
out = []
for _ in range(count):
    t = time.monotonic()
    try:
        with urllib.request.urlopen(f"http://{ip}:{port}/", timeout=timeout) as r:
            body = r.read().decode().strip()
    except Exception as e:
        reason = getattr(e, "reason", e)
        body = type(reason).__name__
    out.append([body, round(time.monotonic() - t, 4)])
print(json.dumps(out))
"""


def gets(
    cluster: NetworkCluster, target: Target, ip: str, port: int, count: int = 1, timeout: float = 3
) -> list[tuple[str, float]]:
    argv = [sys.executable, "-c", GETS, ip, str(port), str(count), str(timeout)]
    proc = cluster.exec(target, argv, timeout=count * timeout + 30)
    return [(body, seconds) for body, seconds in json.loads(proc.stdout)]


def bodies(replies: list[tuple[str, float]]) -> set[str]:
    return {body for body, _ in replies}


@pytest.fixture
def cluster(underlay: Underlay, tmp_path: Path) -> Iterator[NetworkCluster]:
    with NetworkCluster(underlay, tmp_path, nodes=2) as c:
        yield c


def create_service(
    cluster: NetworkCluster,
    name: str,
    ips: list[str],
    *,
    node_port: bool = False,
    affinity: str = "None",
    affinity_seconds: int = 0,
) -> Any:
    """A selector-less Service on port 80 -> 8080 with `ips` as its ready endpoints."""
    svc = service(
        name,
        "",
        [{"name": "http", "port": 80, "targetPort": 8080}],
        type_="NodePort" if node_port else "ClusterIP",
        affinity=affinity,
    )
    svc.spec.ClearField("selector")
    if affinity_seconds:
        svc.spec.session_affinity_config.client_ip.timeout_seconds = affinity_seconds

    async def create(client: Client) -> Any:
        created = await client.create(svc)
        await client.create(endpoints(name, [(ips, [], [("http", 8080, "TCP")])] if ips else []))
        return created

    return cluster.api(create)


def set_endpoints(cluster: NetworkCluster, name: str, ips: list[str]) -> None:
    async def update(client: Client) -> None:
        ep = await client.get("endpoints", name, "default")
        del ep.subsets[:]
        if ips:
            ep.subsets.extend(endpoints(name, [(ips, [], [("http", 8080, "TCP")])]).subsets)
        await client.update(ep)

    cluster.api(update)


def wait_programmed(cluster: NetworkCluster, needle: str, timeout: float = 20) -> None:
    """Until every node's table mentions `needle` (agents sync within a fraction of a second)."""
    deadline = time.monotonic() + timeout
    for node in cluster.nodes:
        while True:
            listed = cluster.exec(node, ["nft", "list", "table", "ip", "tinykube"], check=False)
            if needle in listed.stdout:
                break
            assert time.monotonic() < deadline, f"{needle!r} not programmed on {node}"
            time.sleep(0.1)


def test_cluster_ip_from_pods_and_nodes_reaches_endpoints_on_both_nodes(
    cluster: NetworkCluster,
) -> None:
    ip_a = cluster.add_pod("node1", "a")
    ip_b = cluster.add_pod("node2", "b")
    cluster.add_pod("node1", "c")
    cluster.add_pod("node2", "d")
    cluster.serve("node1", "a")
    cluster.serve("node2", "b")
    svc = create_service(cluster, "web", [ip_a, ip_b])
    vip = svc.spec.cluster_ip
    wait_programmed(cluster, f"dnat to {ip_b}:8080")
    for client in (cluster.pod("node1", "c"), cluster.pod("node2", "d")):
        replies = gets(cluster, client, vip, 80, count=50)
        assert bodies(replies) == {"a", "b"}, (client.name, replies)
    for node in ("node1", "node2"):
        assert bodies(gets(cluster, node, vip, 80, count=20)) == {"a", "b"}, node


def test_node_port_from_the_underlay_on_every_node(cluster: NetworkCluster) -> None:
    ip_a = cluster.add_pod("node1", "a")
    ip_b = cluster.add_pod("node2", "b")
    cluster.serve("node1", "a")
    cluster.serve("node2", "b")
    svc = create_service(cluster, "web", [ip_a, ip_b], node_port=True)
    node_port = svc.spec.ports[0].node_port
    assert 30000 <= node_port <= 32767
    wait_programmed(cluster, f"tcp . {node_port} : goto external-default/web/tcp/80")
    for node in cluster.nodes.values():
        replies = gets(cluster, "underlay", node.ip, node_port, count=30)
        assert bodies(replies) == {"a", "b"}, (node.name, replies)


def test_hairpin_a_pod_reaches_itself_through_its_service(cluster: NetworkCluster) -> None:
    ip_a = cluster.add_pod("node1", "a")
    cluster.serve("node1", "a")
    svc = create_service(cluster, "self", [ip_a])
    wait_programmed(cluster, f"dnat to {ip_a}:8080")
    replies = gets(cluster, cluster.pod("node1", "a"), svc.spec.cluster_ip, 80, count=5)
    assert bodies(replies) == {"a"}, replies


def test_no_endpoints_refused_then_served_again(cluster: NetworkCluster) -> None:
    ip_b = cluster.add_pod("node2", "b")
    cluster.add_pod("node1", "c")
    cluster.serve("node2", "b")
    svc = create_service(cluster, "web", [ip_b], node_port=True)
    vip, node_port = svc.spec.cluster_ip, svc.spec.ports[0].node_port
    wait_programmed(cluster, f"dnat to {ip_b}:8080")
    client = cluster.pod("node1", "c")
    assert bodies(gets(cluster, client, vip, 80)) == {"b"}
    set_endpoints(cluster, "web", [])
    wait_programmed(cluster, f"{vip} . tcp . 80 : goto reject-chain")
    for target, ip, port in ((client, vip, 80), ("underlay", cluster.nodes["node1"].ip, node_port)):
        ((body, seconds),) = gets(cluster, target, ip, port, timeout=5)
        assert body == "ConnectionRefusedError" and seconds < 1.0, (body, seconds)
    set_endpoints(cluster, "web", [ip_b])
    wait_programmed(cluster, f"dnat to {ip_b}:8080")
    assert bodies(gets(cluster, client, vip, 80)) == {"b"}


def test_client_ip_affinity_through_the_api(cluster: NetworkCluster) -> None:
    ip_a = cluster.add_pod("node1", "a")
    ip_b = cluster.add_pod("node2", "b")
    cluster.add_pod("node1", "c")
    cluster.serve("node1", "a")
    cluster.serve("node2", "b")
    svc = create_service(cluster, "sticky", [ip_a, ip_b], affinity="ClientIP", affinity_seconds=600)
    wait_programmed(cluster, "update @affinity-default/sticky/tcp/80__")
    wait_programmed(cluster, "timeout 10m")  # the Service's own 600 s, as nft prints it
    replies = gets(cluster, cluster.pod("node1", "c"), svc.spec.cluster_ip, 80, count=20)
    assert len(bodies(replies)) == 1, replies
