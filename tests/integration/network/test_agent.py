"""The node agent's lifecycle: restart without disturbance, --dry-run, --cleanup, masquerade."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import pytest

from localcluster.netcluster import NetworkCluster
from localcluster.netns import Underlay
from netplugin.constants import BRIDGE, CNI_CONF_FILE, NFT_NAT_TABLE, NFT_TABLE, VXLAN_DEVICE

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(180)]

# The commands an agent logs when it changes the node's links, routes, neighbours, FDB,
# sysctls or the CNI config (the proxy's own nft sync is its business).
NODE_CHANGE = re.compile(r"netplugin\.commands (ip |bridge |sysctl |cat > |rm )")
NODE_CHANGE_TEXT = re.compile(r"^(ip |bridge |sysctl |cat > |rm )", re.MULTILINE)


def nft_tables(cluster: NetworkCluster, node: str) -> str:
    return cluster.exec(node, ["nft", "list", "tables"]).stdout


def test_restarted_agents_change_nothing_and_connections_keep_flowing(
    underlay: Underlay, tmp_path: Path
) -> None:
    with NetworkCluster(underlay, tmp_path, nodes=2) as cluster:
        cluster.add_pod("node1", "a")
        ip_b = cluster.add_pod("node2", "b")
        cluster.serve("node2", "b", port=9000, mode="echo")
        before = {
            n: (cluster.routes(n), cluster.neighbours(n), cluster.fdb(n)) for n in cluster.nodes
        }
        client = cluster.echo_client(cluster.pod("node1", "a"), ip_b, 9000, duration=6.0)
        time.sleep(1.0)
        offsets = {n: cluster.log_offset(n) for n in cluster.nodes}
        for n in cluster.nodes:
            cluster.kill_agent(n)
            cluster.start_agent(n)
        for n in cluster.nodes:
            cluster.wait_for_log(n, "agent running", since=offsets[n])
        time.sleep(2.5)  # the first reconcile and two periodic ones (--resync-period 1)
        assert client.proc is not None and client.proc.wait(timeout=30) == 0, client.log.read_text()
        assert client.log.read_text().startswith("sent ")
        for n in cluster.nodes:
            log = cluster.agent_log(n)[offsets[n] :]
            assert not NODE_CHANGE.search(log), log
            assert (cluster.routes(n), cluster.neighbours(n), cluster.fdb(n)) == before[n]
            for lines in before[n]:
                assert len(lines) == 1  # one remote node: one entry each, no duplicates


def test_dry_run_prints_the_commands_and_changes_nothing(
    underlay: Underlay, tmp_path: Path
) -> None:
    with NetworkCluster(underlay, tmp_path, nodes=2) as cluster:
        node3 = cluster.add_node("node3", agent=False)
        cidr1 = cluster.pod_cidr("node1")
        out = cluster.netplugin(
            "node3", "--node-name", "node3", "--iface", "eth1", "--server", cluster.server,
            "--cni-conf-dir", str(node3.conf_dir), "--masquerade", "--dry-run",
        ).stdout  # fmt: skip
        assert (
            "ip link add tinykube.1 mtu 1450 type vxlan id 1 local 10.201.0.13 dev eth1 "
            "dstport 8472 nolearning"
        ) in out
        assert f"ip route add {cidr1} via {cidr1.split('/')[0]} dev tinykube.1 onlink" in out
        assert "sysctl -w net.ipv4.ip_forward=1" in out
        assert f"table ip {NFT_NAT_TABLE} {{" in out  # masquerade
        assert f"table ip {NFT_TABLE}" in out  # the proxy's sync
        assert f"cat > {node3.conf_dir / CNI_CONF_FILE}" in out
        # nothing changed
        assert node3.ns.ip("link", "show", VXLAN_DEVICE, check=False).returncode != 0
        assert node3.ns.ip("link", "show", BRIDGE, check=False).returncode != 0
        assert nft_tables(cluster, "node3").strip() == ""
        assert node3.conflist() is None
        assert cluster.exec("node3", ["sysctl", "-n", "net.ipv4.ip_forward"]).stdout.strip() == "0"
        assert (
            "netplugin.tinykube.io/vtep-mac" not in cluster.get_node("node3").metadata.annotations
        )


def test_cleanup_removes_everything_and_is_idempotent(underlay: Underlay, tmp_path: Path) -> None:
    with NetworkCluster(underlay, tmp_path, nodes=2, masquerade=True) as cluster:
        node1 = cluster.nodes["node1"]
        cluster.add_pod("node1", "a")
        tables = nft_tables(cluster, "node1")
        assert NFT_TABLE in tables and NFT_NAT_TABLE in tables
        cluster.stop_agent("node1")
        cluster.netplugin("node1", "--cleanup", "--cni-conf-dir", str(node1.conf_dir))
        assert node1.ns.ip("link", "show", VXLAN_DEVICE, check=False).returncode != 0
        assert node1.ns.ip("link", "show", BRIDGE, check=False).returncode != 0
        assert node1.conflist() is None
        assert nft_tables(cluster, "node1").strip() == ""
        assert cluster.routes("node1") == []
        # a second run finds nothing of the overlay's, the bridge's, the conflist's or the
        # masquerade's to remove (the proxy's cleanup re-states its table delete each time)
        again = cluster.netplugin(
            "node1", "--cleanup", "--dry-run", "--cni-conf-dir", str(node1.conf_dir)
        )
        assert not NODE_CHANGE_TEXT.search(again.stdout), again.stdout
        assert NFT_NAT_TABLE not in again.stdout
        cluster.netplugin("node1", "--cleanup", "--cni-conf-dir", str(node1.conf_dir))
        assert nft_tables(cluster, "node1").strip() == ""
        # and the node comes back whole when its agent starts again
        cluster.start_agent("node1")
        cluster.wait_converged()


def test_masquerade_lets_pods_reach_outside_the_cluster(underlay: Underlay, tmp_path: Path) -> None:
    """The underlay namespace (10.201.0.1) has no route to pods: only a masqueraded
    connection (source = the node IP) gets its answer back."""
    with NetworkCluster(underlay, tmp_path, nodes=1) as cluster:
        cluster.add_pod("node1", "a")
        cluster.spawn("underlay", [sys.executable, "-c", SERVER, "8081"], "outside.log")
        outside = underlay.address
        wait_listening(cluster, 8081)
        with pytest.raises(ConnectionError):
            cluster.http_get(cluster.pod("node1", "a"), outside, 8081, timeout=2)
        cluster.stop_agent("node1")
        cluster.start_agent("node1", extra=["--masquerade"])
        cluster.wait_for_log("node1", f"table ip {NFT_NAT_TABLE}")
        got = cluster.http_get(cluster.pod("node1", "a"), outside, 8081)
        assert got == cluster.nodes["node1"].ip  # the server saw the node, not the pod
        # a restarted agent finds the table right and leaves it alone
        offset = cluster.log_offset("node1")
        cluster.kill_agent("node1")
        cluster.start_agent("node1", extra=["--masquerade"])
        part = cluster.wait_for_log("node1", "agent running", since=offset)
        assert NFT_NAT_TABLE not in part, part


SERVER = r"""
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = self.client_address[0].encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.HTTPServer(("0.0.0.0", int(sys.argv[1])), H).serve_forever()
"""


def wait_listening(cluster: NetworkCluster, port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if cluster.exec("underlay", ["ss", "-Hltn", f"sport = :{port}"]).stdout.strip():
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {port} in the underlay")


def test_an_agent_started_before_its_node_exists_waits_for_it(
    underlay: Underlay, tmp_path: Path
) -> None:
    """On a VM the agent starts before the kubelet registers the Node: it waits, then joins."""
    with NetworkCluster(underlay, tmp_path, nodes=1) as cluster:
        cluster.add_node("node2", register=False)
        cluster.wait_for_log("node2", "waiting for the node's podCIDR")
        time.sleep(1.0)
        assert cluster.nodes["node2"].agent is not None and cluster.nodes["node2"].agent.running
        cluster.register_node("node2")
        cluster.wait_converged()
        ip_b = cluster.add_pod("node2", "b")
        cluster.serve("node2", "b")
        cluster.add_pod("node1", "a")
        assert cluster.http_get(cluster.pod("node1", "a"), ip_b) == "b"
