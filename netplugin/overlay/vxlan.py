"""The VXLAN backend: one node's device plus the entries for every other node.

flannel's backend/vxlan splits into device.go (the device), vxlan_network.go
(subnet events -> routes, neighbours, FDB) and vxlan.go (the backend that
holds them together). Here:

    overlay/device.py    the device's desired shape; reuse or replace   (pure)
    overlay/network.py   leases -> desired entries -> plan of changes    (pure)
    overlay/kernel.py    netlink reads and writes, each change logged
    overlay/vxlan.py     VXLANBackend: the three in the order the agent needs

`VXLANBackend.reconcile(nodes)` is one level-triggered step: ensure the device
(recreating it if someone deleted it), read the kernel's entries, compute the
plan, apply it, and return it (empty when everything is already right, which
is the common case and the restart case). All methods block (netlink); the
agent calls them through asyncio.to_thread, one at a time.

Example: node1 (10.201.0.11, podCIDR 10.244.0.0/24) starts while node2
(10.201.0.12, 10.244.1.0/24, VTEP MAC 02:..:02) already runs:

    backend = VXLANBackend(VxlanSpec.for_node("10.201.0.11", "eth1", 1500, "10.244.0.0"), cmds)
    backend.ensure_device()     # ip link add tinykube.1 mtu 1450 type vxlan id 1 ...
    backend.reconcile(nodes, "node1", "10.244.0.0/24")
        # ip neigh add 10.244.1.0 lladdr 02:..:02 dev tinykube.1 nud permanent
        # bridge fdb add 02:..:02 dev tinykube.1 dst 10.201.0.12 self permanent
        # ip route add 10.244.1.0/24 via 10.244.1.0 dev tinykube.1 onlink
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import netplugin.overlay.kernel as kernel  # the module, not the package: __init__ imports us
from netplugin.commands import CommandLog
from netplugin.constants import VXLAN_DEVICE
from netplugin.overlay.device import VxlanLink, VxlanSpec
from netplugin.overlay.network import Change, desired_state, leases_from_nodes, plan

log = logging.getLogger(__name__)


class VXLANBackend:
    """The overlay on this node: its VXLAN device and the entries toward every other node."""

    def __init__(self, spec: VxlanSpec, cmds: CommandLog) -> None:
        self.spec = spec
        self.cmds = cmds
        self.device: VxlanLink | None = None

    @property
    def mac(self) -> str:
        """The device's MAC (the VTEP MAC other nodes need); "" before it exists."""
        return self.device.mac if self.device is not None else ""

    def ensure_device(self) -> VxlanLink | None:
        self.device = kernel.ensure_device(self.spec, self.cmds)
        return self.device

    def plan(self, nodes: Iterable[Any], self_name: str, own_pod_cidr: str) -> list[Change]:
        """The changes that would bring the kernel's entries to what `nodes` say."""
        desired = desired_state(leases_from_nodes(nodes, self_name), own_pod_cidr)
        return plan(desired, kernel.read_state(self.spec.name))

    def reconcile(self, nodes: Iterable[Any], self_name: str, own_pod_cidr: str) -> list[Change]:
        """Ensure the device, then apply desired minus actual; the changes made."""
        self.ensure_device()
        changes = self.plan(nodes, self_name, own_pod_cidr)
        if changes:
            kernel.apply(self.spec.name, changes, self.cmds)
            log.info("overlay reconciled", extra={"changes": len(changes)})
        return changes


def cleanup(cmds: CommandLog, device: str | None = None) -> bool:
    """Delete the VXLAN device; its routes, neighbours and FDB entries go with it."""
    return kernel.delete_link(device or VXLAN_DEVICE, cmds)
