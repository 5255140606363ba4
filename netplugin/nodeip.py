"""The node's IP and underlay interface, chosen explicitly -- never guessed.

The overlay needs two facts about the machine it runs on: the address other
nodes send VXLAN packets to (the node IP, published on the Node object and
used as the VXLAN device's `local`), and the interface that address lives on
(the device's `dev`, whose MTU bounds the overlay's MTU).

Why explicit: flannel's and Kubernetes' habit of taking "the interface of the
default route" picks the wrong address on Vagrant, where every VM's eth0 is
the NAT network's 10.0.2.15 and the nodes only reach each other on eth1. So
the operator says which one:

    tinykube netplugin --node-name node1 --node-ip 192.168.56.11
        -> the interface holding 192.168.56.11 (eth1), its MTU (1500)
    tinykube netplugin --node-name node1 --iface eth1
        -> eth1's first IPv4 address (192.168.56.11), its MTU
    both given -> eth1 must hold 192.168.56.11

Failure modes, each a `NodeIPError` naming what is wrong:

    --node-ip 192.168.56.99   "no interface holds 192.168.56.99"
    --iface eth9              "interface eth9 not found"
    --iface eth2 (no IPv4)    "interface eth2 has no IPv4 address"
    --node-ip abc             "--node-ip: 'abc' is not an IPv4 address"
    neither                   "give --node-ip or --iface ..."

The choice itself (`choose`) is a pure function over a list of interfaces so
that it is unit-tested without root; `read_interfaces` is the netlink dump
(`ip -4 -o addr show`, `ip link show`) of the current network namespace.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field


class NodeIPError(ValueError):
    """The node IP or interface given cannot be used; the message says why."""


@dataclass(frozen=True)
class Interface:
    """One link of the namespace: its name, MTU and IPv4 addresses (in kernel order)."""

    name: str
    mtu: int
    ipv4: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class NodeAddress:
    """What the overlay is bound to: the node IP, the interface holding it, that link's MTU."""

    ip: str
    iface: str
    mtu: int


def _parse_ip(text: str) -> str:
    try:
        return str(ipaddress.IPv4Address(text.strip()))
    except ValueError:
        raise NodeIPError(f"--node-ip: {text!r} is not an IPv4 address") from None


def choose(interfaces: Sequence[Interface], node_ip: str = "", iface: str = "") -> NodeAddress:
    """Pick the node address from `--node-ip` and/or `--iface` (see the module docstring)."""
    if not node_ip and not iface:
        raise NodeIPError(
            "give --node-ip or --iface: the node IP is never guessed from the default route"
        )
    by_name = {i.name: i for i in interfaces}
    if iface:
        link = by_name.get(iface)
        if link is None:
            raise NodeIPError(f"interface {iface} not found")
        if node_ip:
            ip = _parse_ip(node_ip)
            if ip not in link.ipv4:
                raise NodeIPError(f"interface {iface} does not hold {ip}")
            return NodeAddress(ip, link.name, link.mtu)
        if not link.ipv4:
            raise NodeIPError(f"interface {iface} has no IPv4 address")
        return NodeAddress(link.ipv4[0], link.name, link.mtu)
    ip = _parse_ip(node_ip)
    for link in interfaces:
        if ip in link.ipv4:
            return NodeAddress(ip, link.name, link.mtu)
    raise NodeIPError(f"no interface holds {ip}")


def read_interfaces() -> list[Interface]:
    """Every link of the current network namespace with its MTU and IPv4 addresses."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        names: dict[int, tuple[str, int]] = {}
        for link in ipr.get_links():
            names[int(link["index"])] = (
                str(link.get_attr("IFLA_IFNAME")),
                int(link.get_attr("IFLA_MTU") or 0),
            )
        addrs: dict[int, list[str]] = {}
        for addr in ipr.get_addr(family=2):  # AF_INET
            addrs.setdefault(int(addr["index"]), []).append(str(addr.get_attr("IFA_ADDRESS")))
    return [
        Interface(name, mtu, tuple(addrs.get(index, ())))
        for index, (name, mtu) in sorted(names.items())
    ]


def resolve(node_ip: str = "", iface: str = "") -> NodeAddress:
    """`choose` over this namespace's interfaces."""
    if not node_ip and not iface:
        return choose([], node_ip, iface)  # the same error, without touching netlink
    return choose(read_interfaces(), node_ip, iface)
