"""Cluster DNS on two nodes: pods ask 169.254.20.10 and get Services' addresses.

Built on localcluster/netcluster.py with `--cluster-dns` agents: each
agent puts 169.254.20.10 on its node's loopback and answers there. A pod's
query follows its default route to its own node, so the same address works on
every node. The query is sent by a small script inside the pod's namespace
(the wire format from netplugin/dns/message.py), as a resolver would.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from apimachinery.client import Client
from localcluster.netcluster import NetworkCluster
from localcluster.netcluster_objects import endpoints, service
from localcluster.netns import Underlay
from netplugin.constants import DNS_ADDRESS

pytestmark = [pytest.mark.root, pytest.mark.timeout(180)]

# Ask NAME (type A) of SERVER over UDP, or over TCP with "tcp"; print [rcode, addresses].
ASK = r"""
import json, socket, struct, sys
from netplugin.dns import message
server, name, transport = sys.argv[1], sys.argv[2], sys.argv[3]
query = message.build_query(7, name)
if transport == "tcp":
    s = socket.create_connection((server, 53), timeout=3)
    s.sendall(struct.pack("!H", len(query)) + query)
    size = struct.unpack("!H", s.recv(2))[0]
    reply = b""
    while len(reply) < size:
        reply += s.recv(size - len(reply))
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(3)
    s.sendto(query, (server, 53))
    reply = s.recv(512)
print(json.dumps(message.parse_answer(reply)))
"""


@pytest.fixture
def cluster(underlay: Underlay, tmp_path: Path) -> Iterator[NetworkCluster]:
    with NetworkCluster(underlay, tmp_path, nodes=2, agent_args=["--cluster-dns"]) as c:
        yield c


def ask(
    cluster: NetworkCluster, pod_node: str, pod: str, name: str, transport: str = "udp"
) -> list[object]:
    argv = [sys.executable, "-c", ASK, DNS_ADDRESS, name, transport]
    deadline = time.monotonic() + 20
    while True:
        proc = cluster.exec(cluster.pod(pod_node, pod), argv, check=False)
        if proc.returncode == 0:
            return list(json.loads(proc.stdout))
        assert time.monotonic() < deadline, proc.stderr
        time.sleep(0.2)  # the agent may still be starting its server


def test_pods_on_both_nodes_resolve_services(cluster: NetworkCluster) -> None:
    svc = service("web", "", [{"name": "http", "port": 80, "targetPort": 8080}])
    svc.spec.ClearField("selector")
    headless = service("db", "", [{"name": "pg", "port": 5432, "targetPort": 5432}])
    headless.spec.ClearField("selector")
    headless.spec.cluster_ip = "None"

    async def create(client: Client) -> str:
        created = await client.create(svc)
        await client.create(headless)
        ports = [("pg", 5432, "TCP")]
        await client.create(endpoints("db", [(["10.244.0.9", "10.244.1.9"], [], ports)]))
        return str(created.spec.cluster_ip)

    cluster_ip = cluster.api(create)
    for node in ("node1", "node2"):
        cluster.add_pod(node, "client")
    web = "web.default.svc.cluster.local"
    deadline = time.monotonic() + 20
    for node in ("node1", "node2"):
        while ask(cluster, node, "client", web) != [0, [cluster_ip]]:
            assert time.monotonic() < deadline, "the Service never resolved"
            time.sleep(0.2)
        assert ask(cluster, node, "client", web, "tcp") == [0, [cluster_ip]]
        assert ask(cluster, node, "client", "db.default.svc.cluster.local") == [
            0,
            ["10.244.0.9", "10.244.1.9"],
        ]
        assert ask(cluster, node, "client", "nope.default.svc.cluster.local") == [3, []]


def test_cleanup_removes_the_dns_address(cluster: NetworkCluster) -> None:
    listed = cluster.exec("node1", ["ip", "-o", "addr", "show", "dev", "lo"])
    deadline = time.monotonic() + 20
    while DNS_ADDRESS not in listed.stdout:
        assert time.monotonic() < deadline, "the agent never added the DNS address"
        time.sleep(0.2)
        listed = cluster.exec("node1", ["ip", "-o", "addr", "show", "dev", "lo"])
    cluster.stop_agent("node1")
    cluster.netplugin("node1", "--cleanup", "--cni-conf-dir", str(cluster.nodes["node1"].conf_dir))
    after = cluster.exec("node1", ["ip", "-o", "addr", "show", "dev", "lo"]).stdout
    assert DNS_ADDRESS not in after
