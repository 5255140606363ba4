"""Pods on different nodes reach each other over the VXLAN overlay, for real.

Two and three node namespaces on an underlay bridge, an API server, a
`tinykube netplugin` agent per node and pods wired by `tinykube-cni ADD`
(localcluster/netcluster.py). Each test checks traffic end to end
(an HTTP GET answered by the pod's name) and, where it matters, the kernel's
entries (`ip route`, `ip neigh`, `bridge fdb` on tinykube.1).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from localcluster.netcluster import NetworkCluster
from localcluster.netns import Underlay

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(180)]


def test_pod_to_pod_across_two_nodes_both_directions(underlay: Underlay, tmp_path: Path) -> None:
    with NetworkCluster(underlay, tmp_path, nodes=2) as cluster:
        ip_a = cluster.add_pod("node1", "a")
        ip_b = cluster.add_pod("node2", "b")
        assert ip_a.startswith(cluster.pod_cidr("node1").rsplit(".", 2)[0])
        cluster.serve("node1", "a")
        cluster.serve("node2", "b")
        assert cluster.http_get(cluster.pod("node1", "a"), ip_b) == "b"
        assert cluster.http_get(cluster.pod("node2", "b"), ip_a) == "a"
        # the node itself reaches the remote pod (source: its tinykube.1 address)
        assert cluster.http_get("node1", ip_b) == "b"
        assert cluster.http_get("node2", ip_a) == "a"


def test_three_nodes_every_pair(underlay: Underlay, tmp_path: Path) -> None:
    with NetworkCluster(underlay, tmp_path, nodes=3) as cluster:
        ips = {}
        for n in ("node1", "node2", "node3"):
            ips[n] = cluster.add_pod(n, f"p-{n}")
            cluster.serve(n, f"p-{n}")
        for src in ips:
            for dst, ip in ips.items():
                if src != dst:
                    assert cluster.http_get(cluster.pod(src, f"p-{src}"), ip) == f"p-{dst}"
        for n in ips:
            assert len(cluster.routes(n)) == 2, cluster.routes(n)
