"""The VXLAN device: what it must look like, and whether an existing one will do (pure).

flannel's device.go creates one VXLAN device per node; tinykube's is

    ip link add tinykube.1 mtu 1450 type vxlan id 1 local 10.201.0.11 dev eth1 \\
        dstport 8472 nolearning
    ip addr add 10.244.0.0/32 dev tinykube.1
    ip link set tinykube.1 up

  * VNI 1 and UDP port 8472 (the kernel's historical VXLAN port, flannel's too);
  * `local` = the node IP and `dev` = the underlay interface, both chosen
    explicitly (netplugin/nodeip.py), so packets leave by the right link;
  * `nolearning`: the FDB is written by the agent from Node objects, never
    learnt from traffic, so no flooding;
  * MTU = underlay MTU - 50 (outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8),
    so an encapsulated full-size frame still fits the underlay;
  * the address is the podCIDR's network address as /32: it is the "gateway"
    other nodes route this node's podCIDR through, and the source address of
    traffic this node itself sends into the overlay.

An existing device is reused when the parameters that are fixed at creation
(kind, VNI, port, local, dev, learning) match: its MAC, which every other node
has in its neighbour and FDB entries, then stays the same, and established
connections do not notice a restart. The MTU, the address and the up state
are corrected in place. A device with a wrong fixed parameter (the node IP
changed, another program made a device of that name) is deleted and created
again; it gets a new MAC, which the agent publishes on its Node.

Worked example: the device exists with local 10.201.0.12 but the agent now
runs with --node-ip 10.201.0.22 -> `device_action` says "replace" -> ip link
del, ip link add ... local 10.201.0.22, ip addr add, ip link set up -> the new
MAC goes into the Node's annotation and every other agent replaces its
neighbour entry and FDB entry for this node (overlay/network.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from netplugin.constants import VXLAN_DEVICE, VXLAN_ID, VXLAN_OVERHEAD, VXLAN_PORT


@dataclass(frozen=True)
class VxlanSpec:
    """The device the node should have."""

    local: str  # the node IP
    link: str  # the underlay interface
    mtu: int  # underlay MTU - VXLAN_OVERHEAD
    address: str  # the podCIDR's network address, held as /32
    name: str = VXLAN_DEVICE
    vni: int = VXLAN_ID
    port: int = VXLAN_PORT

    @classmethod
    def for_node(cls, node_ip: str, iface: str, underlay_mtu: int, gateway: str) -> VxlanSpec:
        return cls(node_ip, iface, underlay_mtu - VXLAN_OVERHEAD, gateway)

    def create_argv(self) -> list[str]:
        return [
            "ip", "link", "add", self.name, "mtu", str(self.mtu), "type", "vxlan",
            "id", str(self.vni), "local", self.local, "dev", self.link,
            "dstport", str(self.port), "nolearning",
        ]  # fmt: skip


@dataclass(frozen=True)
class VxlanLink:
    """A device of that name as found in the kernel."""

    name: str
    index: int
    kind: str
    mac: str
    mtu: int
    up: bool
    ipv4: tuple[str, ...] = field(default=())  # "10.244.0.0/32"
    vni: int = 0
    port: int = 0
    local: str = ""
    link: str = ""  # the underlay interface's name
    learning: bool = True


DeviceAction = Literal["create", "replace", "reuse"]


def device_action(spec: VxlanSpec, actual: VxlanLink | None) -> DeviceAction:
    """create (none), replace (a fixed parameter differs) or reuse."""
    if actual is None:
        return "create"
    fixed_ok = (
        actual.kind == "vxlan"
        and actual.vni == spec.vni
        and actual.port == spec.port
        and actual.local == spec.local
        and actual.link == spec.link
        and not actual.learning
    )
    return "reuse" if fixed_ok else "replace"


@dataclass(frozen=True)
class DeviceFixes:
    """What a reused device needs: MTU, addresses to add and remove, bringing up."""

    mtu: int | None = None
    add_addresses: tuple[str, ...] = ()
    del_addresses: tuple[str, ...] = ()
    set_up: bool = False

    def argv(self, name: str) -> list[list[str]]:
        out = []
        if self.mtu is not None:
            out.append(["ip", "link", "set", name, "mtu", str(self.mtu)])
        out += [["ip", "addr", "del", a, "dev", name] for a in self.del_addresses]
        out += [["ip", "addr", "add", a, "dev", name] for a in self.add_addresses]
        if self.set_up:
            out.append(["ip", "link", "set", name, "up"])
        return out


def device_fixes(spec: VxlanSpec, actual: VxlanLink | None) -> DeviceFixes:
    """The in-place corrections for a device being reused, or a fresh one (`actual` None)."""
    want = f"{spec.address}/32"
    if actual is None:
        return DeviceFixes(add_addresses=(want,), set_up=True)
    return DeviceFixes(
        mtu=spec.mtu if actual.mtu != spec.mtu else None,
        add_addresses=() if want in actual.ipv4 else (want,),
        del_addresses=tuple(a for a in actual.ipv4 if a != want),
        set_up=not actual.up,
    )
