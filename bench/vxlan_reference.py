"""The reference path for bench/network.py: a bare kernel VXLAN between two namespaces.

tinykube's cross-node pod path is a VXLAN overlay plus everything a node adds
around it (a veth into the pod, the bridge tk0 with bridge netfilter, routing
and conntrack on both nodes). To tell the cost of VXLAN itself from the cost
of what tinykube adds, the benchmark measures, in the same run and on the same
underlay bridge, the smallest VXLAN path the kernel can make: two namespaces
plugged into the underlay like two more nodes, each holding a VXLAN device
with the pods' MTU, and iperf3 running on those devices directly. No pod, no
veth but the underlay's own, no bridge of ours, no nftables table, no
conntrack rules. Made by hand it is (with prefix tkb1, underlay 10.201.0.0/24):

    ip -n tkb1-ul link add v-vx1 mtu 1500 type veth peer name eth1 netns tkb1-vx1
    ip -n tkb1-ul link set v-vx1 master ul0 up                       (netns.Underlay)
    ip -n tkb1-vx1 addr add 10.201.0.31/24 dev eth1 && ip -n tkb1-vx1 link set eth1 up
    ip -n tkb1-vx1 link add vx0 address 02:00:0a:fa:00:01 mtu 1450 type vxlan id 42 \\
        local 10.201.0.31 dev eth1 dstport 4789 nolearning
    ip -n tkb1-vx1 addr add 10.250.0.1/24 dev vx0 && ip -n tkb1-vx1 link set vx0 up
    ip -n tkb1-vx1 neigh add 10.250.0.2 lladdr 02:00:0a:fa:00:02 dev vx0 nud permanent
    bridge -n tkb1-vx1 fdb add 02:00:0a:fa:00:02 dev vx0 dst 10.201.0.32 self permanent
    (and the mirror image in tkb1-vx2)

The static neighbour and FDB entries are the ones tinykube's overlay writes
(netplugin/overlay/network.py), so neither path pays for ARP or flooding. Its
ratio to the underlay is what VXLAN costs on this machine; tinykube's ratio
to it is what tinykube costs on top of VXLAN.

The two namespaces are machines of the bench's Underlay and go away with it
(Underlay.destroy); `destroy()` removes them earlier. Nothing here touches the
host's own namespace.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from localcluster.netns import Machine, NetNS, Underlay

DEVICE = "vx0"
VNI = 42
PORT = 4789  # the IANA VXLAN port: distinct from tinykube's 8472, though each namespace has its own
OVERLAY = ipaddress.IPv4Network("10.250.0.0/24")  # outside the cluster's and the underlay's ranges
FIRST_INDEX = 21  # machine numbers on the underlay: 10.201.0.31 and .32, clear of the nodes'
VXLAN_OVERHEAD = 50  # outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8, as netplugin uses


@dataclass
class Endpoint:
    """One side: a machine on the underlay and its VXLAN device's address and MAC."""

    machine: Machine
    ip: str
    mac: str

    @property
    def ns(self) -> NetNS:
        return self.machine.ns


@dataclass
class BareVxlan:
    """Two namespaces on `underlay` joined by a plain kernel VXLAN (see the module docstring)."""

    underlay: Underlay
    mtu: int = 0  # the VXLAN device's MTU; 0: the underlay's minus the VXLAN overhead
    ends: list[Endpoint] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.mtu:
            self.mtu = self.underlay.mtu - VXLAN_OVERHEAD

    @property
    def server(self) -> Endpoint:
        return self.ends[1]

    @property
    def client(self) -> Endpoint:
        return self.ends[0]

    def create(self) -> None:
        """Both namespaces, their devices, then each one's entries for the other."""
        try:
            for i in (1, 2):
                machine = self.underlay.add_machine(f"vx{i}", FIRST_INDEX + i - 1)
                ip = str(OVERLAY.network_address + i)
                mac = "02:00:" + ":".join(f"{b:02x}" for b in ipaddress.IPv4Address(ip).packed)
                end = Endpoint(machine, ip, mac)
                self._device(end)
                self.ends.append(end)
            for end, peer in ((self.ends[0], self.ends[1]), (self.ends[1], self.ends[0])):
                self._entries(end, peer)
        except BaseException:
            self.destroy()
            raise

    def _device(self, end: Endpoint) -> None:
        ns, local = end.ns, end.machine.ip
        ns.ip(
            "link", "add", DEVICE, "address", end.mac, "mtu", str(self.mtu), "type", "vxlan",
            "id", str(VNI), "local", local, "dev", end.machine.iface,
            "dstport", str(PORT), "nolearning",
        )  # fmt: skip
        ns.ip("addr", "add", f"{end.ip}/{OVERLAY.prefixlen}", "dev", DEVICE)
        ns.ip("link", "set", DEVICE, "up")

    def _entries(self, end: Endpoint, peer: Endpoint) -> None:
        end.ns.ip("neigh", "add", peer.ip, "lladdr", peer.mac, "dev", DEVICE, "nud", "permanent")
        fdb = ["bridge", "fdb", "add", peer.mac, "dev", DEVICE, "dst", peer.machine.ip]
        end.ns.exec([*fdb, "self", "permanent"])

    def destroy(self) -> None:
        """Remove both namespaces (their devices and underlay ports go with them); idempotent."""
        for i in (1, 2):
            self.underlay.remove_machine(f"vx{i}")
        self.ends.clear()
