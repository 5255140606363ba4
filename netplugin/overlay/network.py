"""What the overlay should hold, and the changes that get the kernel there (pure).

flannel's VXLAN backend (its vxlan_network.go) turns every other node's lease
-- podCIDR, public IP, VTEP MAC -- into three kernel entries on the VXLAN
device. This module does the same as plain computation, with no kernel access,
so that every case is unit-tested; overlay/kernel.py reads and changes the
kernel.

Per remote node, with the device tinykube.1:

    route      <podCIDR> via <its network address> dev tinykube.1 onlink
    neighbour  <network address> lladdr <VTEP MAC> dev tinykube.1 nud permanent
    FDB        <VTEP MAC> dev tinykube.1 dst <node IP> self permanent

Why three: the route sends pod traffic for 10.244.2.0/24 to the "gateway"
10.244.2.0 -- the address the remote VXLAN device holds as /32 -- over
tinykube.1 (onlink: that address is not on any local subnet). To build the
Ethernet frame the kernel needs that gateway's MAC: the permanent neighbour
entry gives it without ARP. To put the frame in a UDP packet the VXLAN driver
needs the underlay address behind that MAC: the FDB entry. With `nolearning`
and these static entries there is no flooding and no multicast.

Reconcile = desired minus actual, keyed the way the kernel keys them (a route
by destination, a neighbour by IP, an FDB entry by MAC):

    key only desired                  -> add
    key in both, entry differs        -> replace (the node IP or the MAC changed)
    key only actual                   -> delete (the node left, its podCIDR changed)
    several actual entries for a key  -> keep the desired one, delete the rest

Worked example. This node is node1; node2 (10.244.1.0/24, 10.201.0.12,
MAC 02:00:00:00:00:02) and node3 (10.244.2.0/24, 10.201.0.13, MAC ..:03) are in the
cache. The kernel already holds node2's three entries and node4's (deleted
from the API). Then node2's agent restarted with a new IP 10.201.0.22 and a
new VXLAN device (MAC ..:22). The plan, deletions first:

    ip route del 10.244.3.0/24 via 10.244.3.0 dev tinykube.1          (node4)
    ip neigh del 10.244.3.0 dev tinykube.1                             (node4)
    bridge fdb del 02:00:00:00:00:02 dev tinykube.1 dst 10.201.0.12    (node2's old MAC)
    bridge fdb del 02:00:00:00:00:04 dev tinykube.1 dst 10.201.0.14    (node4)
    ip neigh replace 10.244.1.0 lladdr 02:00:00:00:00:22 dev tinykube.1 nud permanent
    ip neigh add 10.244.2.0 lladdr 02:00:00:00:00:03 dev tinykube.1 nud permanent
    bridge fdb add 02:00:00:00:00:03 dev tinykube.1 dst 10.201.0.13 self permanent
    bridge fdb add 02:00:00:00:00:22 dev tinykube.1 dst 10.201.0.22 self permanent
    ip route add 10.244.2.0/24 via 10.244.2.0 dev tinykube.1 onlink    (node3)

node2's route is unchanged (same podCIDR, same gateway): no command, so
established connections to node2's pods never lose their route. The order
(neighbour and FDB before the route) means a new route never points at a
gateway the kernel cannot yet resolve, as flannel orders it.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from netplugin.constants import ANNOTATION_NODE_IP, ANNOTATION_VTEP_MAC

log = logging.getLogger(__name__)


@dataclass(frozen=True, order=True)
class Lease:
    """One remote node's facts (flannel's subnet lease): podCIDR, underlay IP, VTEP MAC."""

    node: str
    pod_cidr: str
    node_ip: str
    vtep_mac: str

    @property
    def gateway(self) -> str:
        """The podCIDR's network address: what the remote VXLAN device holds as /32."""
        return str(ipaddress.IPv4Network(self.pod_cidr).network_address)


@dataclass(frozen=True, order=True)
class RouteEntry:
    dst: str  # 10.244.1.0/24
    gateway: str  # 10.244.1.0

    @property
    def key(self) -> str:
        return self.dst


@dataclass(frozen=True, order=True)
class NeighEntry:
    ip: str
    mac: str

    @property
    def key(self) -> str:
        return self.ip


@dataclass(frozen=True, order=True)
class FdbEntry:
    mac: str
    dst: str

    @property
    def key(self) -> str:
        return self.mac


Entry = RouteEntry | NeighEntry | FdbEntry
Op = Literal["add", "replace", "del"]


@dataclass(frozen=True)
class OverlayState:
    """The overlay's entries on the VXLAN device, desired or read from the kernel."""

    routes: tuple[RouteEntry, ...] = ()
    neighbours: tuple[NeighEntry, ...] = ()
    fdb: tuple[FdbEntry, ...] = ()


@dataclass(frozen=True)
class Change:
    """One kernel change to one entry."""

    op: Op
    entry: Entry

    def argv(self, device: str) -> list[str]:
        """The `ip` / `bridge` command that makes this change by hand."""
        e = self.entry
        if isinstance(e, RouteEntry):
            if self.op == "del":
                return ["ip", "route", "del", e.dst, "via", e.gateway, "dev", device]
            return ["ip", "route", self.op, e.dst, "via", e.gateway, "dev", device, "onlink"]
        if isinstance(e, NeighEntry):
            if self.op == "del":
                return ["ip", "neigh", "del", e.ip, "dev", device]
            argv = ["ip", "neigh", self.op, e.ip, "lladdr", e.mac, "dev", device]
            return [*argv, "nud", "permanent"]
        if self.op == "del":
            return ["bridge", "fdb", "del", e.mac, "dev", device, "dst", e.dst]
        return ["bridge", "fdb", self.op, e.mac, "dev", device, "dst", e.dst, "self", "permanent"]


# ---------------------------------------------------------------------- leases from Nodes


def normalize_mac(text: str) -> str:
    """`AA-BB-...` / `aa:bb:...` -> `aa:bb:cc:dd:ee:ff`; ValueError if it is not a MAC."""
    parts = text.strip().lower().replace("-", ":").split(":")
    if len(parts) != 6 or not all(len(p) == 2 for p in parts):
        raise ValueError(f"not a MAC address: {text!r}")
    int("".join(parts), 16)
    return ":".join(parts)


def node_internal_ip(node: Any) -> str:
    for addr in node.status.addresses:
        if addr.type == "InternalIP":
            return str(addr.address)
    return ""


def lease_from_node(node: Any) -> tuple[Lease | None, str]:
    """The node's lease, or None and the reason it has none (yet)."""
    name = str(node.metadata.name)
    annotations = node.metadata.annotations
    if not node.spec.pod_cidr:
        return None, "no podCIDR"
    mac_text = annotations.get(ANNOTATION_VTEP_MAC, "")
    if not mac_text:
        return None, "no VTEP MAC annotation"
    ip_text = annotations.get(ANNOTATION_NODE_IP, "") or node_internal_ip(node)
    if not ip_text:
        return None, "no node IP (annotation or InternalIP)"
    try:
        cidr = str(ipaddress.IPv4Network(node.spec.pod_cidr))
        ip = str(ipaddress.IPv4Address(ip_text))
        mac = normalize_mac(mac_text)
    except ValueError as err:
        return None, f"bad value: {err}"
    return Lease(name, cidr, ip, mac), ""


def leases_from_nodes(nodes: Iterable[Any], self_name: str) -> list[Lease]:
    """The leases of every other node that has all three facts, sorted by node name."""
    leases = []
    for node in nodes:
        if node.metadata.name == self_name:
            continue
        lease, reason = lease_from_node(node)
        if lease is None:
            log.debug("node skipped", extra={"node": node.metadata.name, "reason": reason})
            continue
        leases.append(lease)
    return sorted(leases)


# ---------------------------------------------------------------------- desired and plan


def desired_state(leases: Iterable[Lease], own_pod_cidr: str = "") -> OverlayState:
    """Three entries per lease; a key claimed twice goes to the first node by name."""
    routes: dict[str, RouteEntry] = {}
    neighbours: dict[str, NeighEntry] = {}
    fdb: dict[str, FdbEntry] = {}
    for lease in sorted(leases):
        if lease.pod_cidr == own_pod_cidr or lease.pod_cidr in routes:
            log.warning(
                "podCIDR claimed twice, node ignored",
                extra={"node": lease.node, "podCIDR": lease.pod_cidr},
            )
            continue
        if lease.vtep_mac in fdb:
            log.warning(
                "VTEP MAC claimed twice, node ignored",
                extra={"node": lease.node, "mac": lease.vtep_mac},
            )
            continue
        routes[lease.pod_cidr] = RouteEntry(lease.pod_cidr, lease.gateway)
        neighbours[lease.gateway] = NeighEntry(lease.gateway, lease.vtep_mac)
        fdb[lease.vtep_mac] = FdbEntry(lease.vtep_mac, lease.node_ip)
    return OverlayState(
        tuple(sorted(routes.values())),
        tuple(sorted(neighbours.values())),
        tuple(sorted(fdb.values())),
    )


def _diff(desired: Iterable[Entry], actual: Iterable[Entry]) -> tuple[list[Change], list[Change]]:
    """(deletions, additions and replacements) for one kind of entry."""
    want: dict[str, Entry] = {e.key: e for e in desired}
    have: dict[str, list[Entry]] = {}
    for e in actual:
        if e not in have.setdefault(e.key, []):
            have[e.key].append(e)
    deletes: list[Change] = []
    updates: list[Change] = []
    for key in sorted(have):
        target = want.get(key)
        present = have[key]
        if target is None:
            deletes.extend(Change("del", e) for e in present)
        elif target in present:
            deletes.extend(Change("del", e) for e in present if e != target)
        else:
            deletes.extend(Change("del", e) for e in present[1:])
            updates.append(Change("replace", target))
    updates.extend(Change("add", want[key]) for key in sorted(want) if key not in have)
    return deletes, updates


def plan(desired: OverlayState, actual: OverlayState) -> list[Change]:
    """The changes, deletions first (route, neighbour, FDB), then neighbour, FDB, route."""
    route_del, route_upd = _diff(desired.routes, actual.routes)
    neigh_del, neigh_upd = _diff(desired.neighbours, actual.neighbours)
    fdb_del, fdb_upd = _diff(desired.fdb, actual.fdb)
    return [*route_del, *neigh_del, *fdb_del, *neigh_upd, *fdb_upd, *route_upd]
