"""The node's pod bridge (tk0) and the pod ports on it: the CNI bridge plugin's node side.

Every pod on a node has one end of a veth pair on the bridge `tk0`; the bridge
holds the gateway address of the node's podCIDR, so the node routes pod
traffic like any directly connected subnet:

    ip link add tk0 address 0a:58:0a:f4:01:01 mtu 1450 type bridge
    ip addr add 10.244.1.1/24 dev tk0          # the connected route 10.244.1.0/24 comes with it
    ip link set tk0 up
    # per pod:
    ip link set veth1a2b3c4d master tk0
    bridge link set dev veth1a2b3c4d hairpin on
    ip link set veth1a2b3c4d up

Hairpin mode lets a frame leave through the port it came in on. A pod that
connects to its own Service's ClusterIP is DNATed back to itself by the node.
With br_netfilter loaded (net.bridge.bridge-nf-call-iptables = 1, which
Kubernetes nodes need and which is the default once the module is loaded), that
DNAT happens while the frame crosses the bridge, and the bridge then forwards
it back out of the pod's own port -- which it refuses unless the port has
hairpin on. (The proxy also masquerades such a connection, or the pod would
answer itself directly and the client would drop the reply.)
tests/integration/network/test_cni.py shows both: with hairpin the pod reaches
itself through a DNATed address, without it the connection times out.

Both the node agent (once at start, before the first pod) and each CNI ADD call
ensure_bridge(); they can race (containerd starts pods in parallel), so every
step tolerates "already exists" from the other caller. An address on the
bridge that is not the gateway's (a podCIDR that changed) is removed, so the
node never answers for a subnet it no longer owns.

All of it happens in the calling process's current network namespace (the
node's: the CNI plugin is run there by containerd, the agent is started there).
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from netplugin.commands import CommandLog

IFF_UP = 0x1


def ensure_bridge(bridge: str, gateway_cidr: str, mtu: int, cmds: CommandLog) -> None:
    """Make `bridge` exist, hold `gateway_cidr` (10.244.1.1/24), have `mtu` and be up."""
    with IPRoute() as ipr:
        ensure_bridge_with(ipr, bridge, gateway_cidr, mtu, cmds)


def bridge_mac(gateway: ipaddress.IPv4Address) -> str:
    """A fixed MAC for the bridge: 0a:58 + the gateway's four bytes (0a:58:0a:f4:01:01).

    Without one, a Linux bridge takes the lowest MAC among its ports and changes
    it as pods come and go, and every pod's ARP entry for the gateway goes stale.
    0a is a locally administered unicast prefix; the address bytes keep it unique
    per node.
    """
    return "0a:58:" + ":".join(f"{b:02x}" for b in gateway.packed)


def link_index(ipr: Any, name: str) -> int | None:
    """The index of link `name` in the socket's namespace, or None."""
    found = ipr.link_lookup(ifname=name)
    return int(found[0]) if found else None


def ensure_bridge_with(
    ipr: Any, bridge: str, gateway_cidr: str, mtu: int, cmds: CommandLog
) -> int | None:
    """ensure_bridge() over an open IPRoute; the bridge's index (None in a dry run)."""
    gateway = ipaddress.IPv4Interface(gateway_cidr)
    index = link_index(ipr, bridge)
    if index is None:
        mac = bridge_mac(gateway.ip)
        argv = ["ip", "link", "add", bridge, "address", mac, "mtu", str(mtu), "type", "bridge"]
        if not cmds.change(*argv):
            return None
        try:
            ipr.link("add", ifname=bridge, kind="bridge", address=mac, mtu=mtu)
        except NetlinkError as e:
            if e.code != errno.EEXIST:  # another ADD made it a moment ago
                raise
        index = link_index(ipr, bridge)
        if index is None:
            raise RuntimeError(f"bridge {bridge} vanished right after it was created")
    link = ipr.get_links(index)[0]
    kind = link.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND")
    if kind is not None and kind != "bridge":
        raise RuntimeError(f"link {bridge} exists but is a {kind}, not a bridge")
    if link.get("mtu") != mtu and cmds.change("ip", "link", "set", bridge, "mtu", str(mtu)):
        ipr.link("set", index=index, mtu=mtu)
    _ensure_address(ipr, index, bridge, gateway, cmds)
    if not link["flags"] & IFF_UP and cmds.change("ip", "link", "set", bridge, "up"):
        ipr.link("set", index=index, state="up")
    return index


def _ensure_address(
    ipr: Any, index: int, bridge: str, gateway: ipaddress.IPv4Interface, cmds: CommandLog
) -> None:
    present = False
    for msg in ipr.get_addr(index=index, family=socket.AF_INET):
        have = ipaddress.IPv4Interface(f"{msg.get('address')}/{msg['prefixlen']}")
        if have == gateway:
            present = True
        elif cmds.change("ip", "addr", "del", str(have), "dev", bridge):
            try:
                ipr.addr("del", index=index, address=str(have.ip), prefixlen=have.network.prefixlen)
            except NetlinkError as e:
                if e.code != errno.EADDRNOTAVAIL:
                    raise
    if present or not cmds.change("ip", "addr", "add", str(gateway), "dev", bridge):
        return
    try:
        ipr.addr("add", index=index, address=str(gateway.ip), prefixlen=gateway.network.prefixlen)
    except NetlinkError as e:
        if e.code != errno.EEXIST:
            raise


def attach_port(
    ipr: Any,
    port: str,
    port_index: int,
    bridge: str,
    bridge_index: int,
    hairpin: bool,
    cmds: CommandLog,
) -> None:
    """Put the pod's node-side veth on the bridge, hairpin on, and bring it up."""
    if cmds.change("ip", "link", "set", port, "master", bridge):
        ipr.link("set", index=port_index, master=bridge_index)
    if hairpin and cmds.change("bridge", "link", "set", "dev", port, "hairpin", "on"):
        ipr.brport("set", index=port_index, mode=1)
    if cmds.change("ip", "link", "set", port, "up"):
        ipr.link("set", index=port_index, state="up")


def hairpin_mode(ipr: Any, port_index: int) -> bool:
    """Whether the bridge port has hairpin mode on (for CHECK and tests)."""
    for msg in ipr.brport("show", index=port_index):
        mode = msg.get(("protinfo", "IFLA_BRPORT_MODE"))
        if mode is None:
            protinfo = msg.get_attr("IFLA_PROTINFO")
            mode = protinfo.get_attr("IFLA_BRPORT_MODE") if protinfo is not None else None
        return bool(mode)
    return False
