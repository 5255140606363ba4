"""The benchmark's reference path (bench/vxlan_reference.py): a bare kernel VXLAN, for real.

bench/network.py compares tinykube's overlay with this path, so it must be
what it claims to be: two namespaces on the same underlay bridge as the nodes,
a VXLAN device each with the pods' MTU and static entries, traffic between the
two devices carried as VXLAN over the underlay, and nothing else -- no bridge
of ours, no nftables -- and everything gone after `destroy()`.
"""

from __future__ import annotations

import json
import subprocess
import sys

from bench.vxlan_reference import DEVICE, PORT, VNI, BareVxlan
from localcluster.netns import Underlay, namespaces_with_prefix

RECEIVE = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((sys.argv[1], 9000)); s.settimeout(5)
print("ready", flush=True)
print(len(s.recv(65535)))
"""

SEND = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, 10, 2)  # IP_MTU_DISCOVER = IP_PMTUDISC_DO: never fragment
s.sendto(b"x" * int(sys.argv[2]), (sys.argv[1], 9000))
"""


def test_bare_vxlan_carries_traffic_over_the_underlay(underlay: Underlay) -> None:
    ref = BareVxlan(underlay)
    ref.create()
    try:
        client, server = ref.client, ref.server
        # The device: VXLAN with the pods' MTU (underlay - 50), the fixed VNI and port,
        # bound to the machine's underlay address, no learning.
        link = json.loads(client.ns.ip("-d", "-j", "link", "show", DEVICE).stdout)[0]
        info = link["linkinfo"]["info_data"]
        assert link["mtu"] == underlay.mtu - 50 == ref.mtu
        assert (info["id"], info["port"], info["local"]) == (VNI, PORT, client.machine.ip)
        assert not info.get("learning", False)
        # Static entries only: the peer's MAC without ARP, the peer's underlay address.
        assert server.mac in client.ns.ip("neigh", "show", "dev", DEVICE, "nud", "permanent").stdout
        fdb = client.ns.exec(["bridge", "fdb", "show", "dev", DEVICE]).stdout
        assert f"{server.mac} dst {server.machine.ip}" in fdb
        # A full-size datagram (MTU 1450, don't-fragment set) crosses the VXLAN device, and
        # it came in through the peer's VXLAN device.
        size = str(ref.mtu - 28)  # IPv4 20 + UDP 8
        receiver = subprocess.Popen(
            [*server.ns.prefix(), sys.executable, "-c", RECEIVE, server.ip],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert receiver.stdout is not None and receiver.stdout.readline().strip() == "ready"
            client.ns.exec([sys.executable, "-c", SEND, server.ip, size])
            assert receiver.wait(timeout=10) == 0
            assert receiver.stdout.read().strip() == size
        finally:
            receiver.kill()
            receiver.wait()
            if receiver.stdout is not None:
                receiver.stdout.close()
        stats = server.ns.ip("-s", "-j", "link", "show", DEVICE).stdout
        assert json.loads(stats)[0]["stats64"]["rx"]["packets"] >= 1
        # Nothing else in the path: no nftables rules in either namespace.
        for end in ref.ends:
            assert end.ns.exec(["nft", "list", "ruleset"]).stdout.strip() == ""
    finally:
        ref.destroy()
    assert not [n for n in namespaces_with_prefix(underlay.prefix) if n.endswith(("vx1", "vx2"))]
    assert "v-vx1" not in underlay.ns.ip("-o", "link", "show").stdout
