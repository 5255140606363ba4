"""The overlay follows the Node objects: nodes leave, change IP; entries never duplicate.

Checked in the kernel of every node (`ip route` / `ip neigh` / `bridge fdb` on
tinykube.1) and with traffic between pods on different nodes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from localcluster.netcluster import NetworkCluster
from localcluster.netns import Underlay
from netplugin.constants import ANNOTATION_NODE_IP, ANNOTATION_VTEP_MAC

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(180)]


def eventually(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for: {what}")


def no_duplicates(cluster: NetworkCluster, node: str) -> None:
    for lines in (cluster.routes(node), cluster.neighbours(node), cluster.fdb(node)):
        assert len(lines) == len(set(lines)), lines


def test_a_deleted_node_leaves_no_entry_anywhere(underlay: Underlay, tmp_path: Path) -> None:
    with NetworkCluster(underlay, tmp_path, nodes=3) as cluster:
        gone = cluster.get_node("node3")
        cidr = gone.spec.pod_cidr
        gateway = cidr.split("/")[0]
        mac = gone.metadata.annotations[ANNOTATION_VTEP_MAC]
        ip = gone.metadata.annotations[ANNOTATION_NODE_IP]
        for n in ("node1", "node2"):
            assert any(r.startswith(cidr) for r in cluster.routes(n))
        cluster.delete_node("node3")

        def gone_everywhere() -> bool:
            for n in ("node1", "node2"):
                if any(r.startswith(cidr) for r in cluster.routes(n)):
                    return False
                if any(line.startswith(gateway + " ") for line in cluster.neighbours(n)):
                    return False
                if any(mac in line or f"dst {ip} " in line for line in cluster.fdb(n)):
                    return False
            return True

        eventually(gone_everywhere, "node3's route, neighbour and FDB entry removed")
        for n in ("node1", "node2"):
            assert len(cluster.routes(n)) == 1 and len(cluster.fdb(n)) == 1
        # the remaining pair still talks
        ip2 = cluster.add_pod("node2", "b")
        cluster.serve("node2", "b")
        cluster.add_pod("node1", "a")
        assert cluster.http_get(cluster.pod("node1", "a"), ip2) == "b"


def test_a_node_ip_change_updates_every_other_node(underlay: Underlay, tmp_path: Path) -> None:
    with NetworkCluster(underlay, tmp_path, nodes=2) as cluster:
        ip_a = cluster.add_pod("node1", "a")
        ip_b = cluster.add_pod("node2", "b")
        cluster.serve("node1", "a")
        cluster.serve("node2", "b")
        old_mac = cluster.get_node("node2").metadata.annotations[ANNOTATION_VTEP_MAC]

        # node2 moves to 10.201.0.22 (a new DHCP lease, a re-addressed VM) and its agent restarts
        node2 = cluster.nodes["node2"]
        cluster.kill_agent("node2")
        # (deleting the primary address first: the kernel drops its secondaries with it)
        node2.ns.ip("addr", "del", "10.201.0.12/24", "dev", "eth1")
        node2.ns.ip("addr", "add", "10.201.0.22/24", "dev", "eth1")
        node2.machine.ip = "10.201.0.22"
        cluster.start_agent("node2")

        eventually(
            lambda: any("dst 10.201.0.22 " in line for line in cluster.fdb("node1")),
            "node1's FDB entry for node2 points at 10.201.0.22",
        )
        new = cluster.get_node("node2").metadata.annotations
        assert new[ANNOTATION_NODE_IP] == "10.201.0.22"
        assert new[ANNOTATION_VTEP_MAC] != old_mac  # the device was re-created on the new IP
        eventually(
            lambda: (
                cluster.fdb("node1")
                == [f"{new[ANNOTATION_VTEP_MAC]} dst 10.201.0.22 self permanent"]
            ),
            "exactly one FDB entry on node1, the new one",
        )
        assert not any(old_mac in line for line in cluster.neighbours("node1"))
        cluster.wait_converged()
        assert cluster.http_get(cluster.pod("node1", "a"), ip_b) == "b"
        assert cluster.http_get(cluster.pod("node2", "b"), ip_a) == "a"
        for n in ("node1", "node2"):
            no_duplicates(cluster, n)


def test_drift_is_repaired(underlay: Underlay, tmp_path: Path) -> None:
    """Entries deleted by hand come back at the next periodic reconcile (--resync-period 1)."""
    with NetworkCluster(underlay, tmp_path, nodes=2) as cluster:
        cidr2 = cluster.pod_cidr("node2")
        before = (cluster.routes("node1"), cluster.neighbours("node1"), cluster.fdb("node1"))
        node1 = cluster.nodes["node1"].ns
        node1.ip("route", "del", cidr2, "dev", "tinykube.1")
        node1.ip("neigh", "flush", "dev", "tinykube.1", "nud", "permanent")
        eventually(
            lambda: (
                (cluster.routes("node1"), cluster.neighbours("node1"), cluster.fdb("node1"))
                == before
            ),
            "node1's entries restored",
        )


def test_the_overlay_outlives_the_api_server_and_catches_up(
    underlay: Underlay, tmp_path: Path
) -> None:
    """API server down: traffic keeps flowing on the kernel's entries. Back up: the agents'
    informers resume, and a node that joins meanwhile is added everywhere."""
    with NetworkCluster(underlay, tmp_path, nodes=2) as cluster:
        ip_b = cluster.add_pod("node2", "b")
        cluster.serve("node2", "b")
        cluster.add_pod("node1", "a")
        cluster.apiserver.stop()
        time.sleep(2.0)
        assert cluster.http_get(cluster.pod("node1", "a"), ip_b) == "b"
        for n in ("node1", "node2"):
            agent = cluster.nodes[n].agent
            assert agent is not None and agent.running
        cluster.apiserver.start()
        cluster.add_node("node3", wait=False)
        cluster.wait_converged(timeout=60)
        ip_c = cluster.add_pod("node3", "c")
        cluster.serve("node3", "c")
        assert cluster.http_get(cluster.pod("node1", "a"), ip_c) == "c"
        for n in cluster.nodes:
            no_duplicates(cluster, n)


def test_a_wrong_device_is_replaced_and_a_drifted_one_fixed_in_place(
    underlay: Underlay, tmp_path: Path
) -> None:
    with NetworkCluster(underlay, tmp_path, nodes=2) as cluster:
        ip_b = cluster.add_pod("node2", "b")
        cluster.serve("node2", "b")
        cluster.add_pod("node1", "a")
        node2 = cluster.nodes["node2"].ns
        gateway = cluster.pod_cidr("node2").split("/")[0]

        # drift: MTU and address changed by hand -> corrected on the same device (same MAC)
        mac = cluster.get_node("node2").metadata.annotations[ANNOTATION_VTEP_MAC]
        node2.ip("link", "set", "tinykube.1", "mtu", "1300")
        node2.ip("addr", "flush", "dev", "tinykube.1")
        eventually(
            lambda: (
                "mtu 1450" in node2.ip("link", "show", "tinykube.1").stdout
                and f"{gateway}/32" in node2.ip("addr", "show", "dev", "tinykube.1").stdout
            ),
            "node2's tinykube.1 back to MTU 1450 with its address",
        )
        assert mac in node2.ip("link", "show", "tinykube.1").stdout

        # wrong: someone re-made it with learning on -> replaced, new MAC published everywhere
        node2.ip("link", "del", "tinykube.1")
        node2.ip(
            "link", "add", "tinykube.1", "type", "vxlan", "id", "1", "local", "10.201.0.12",
            "dev", "eth1", "dstport", "8472", "learning",
        )  # fmt: skip

        def replaced() -> bool:
            new = cluster.get_node("node2").metadata.annotations[ANNOTATION_VTEP_MAC]
            details = node2.ip("-d", "link", "show", "tinykube.1", check=False).stdout
            return new != mac and "nolearning" in details and new in " ".join(cluster.fdb("node1"))

        eventually(replaced, "node2's device replaced and node1 told its new MAC")
        cluster.wait_converged()
        assert cluster.http_get(cluster.pod("node1", "a"), ip_b) == "b"
        for n in cluster.nodes:
            no_duplicates(cluster, n)
