"""The VXLAN overlay between nodes, as flannel's VXLAN backend builds it.

Every node has one VXLAN device, tinykube.1 (VNI 1, UDP 8472, nolearning,
bound to the node IP on the underlay interface, MTU = underlay - 50), holding
its podCIDR's network address as /32. For every other node it holds three
static entries, written from that node's Node object (spec.podCIDR and the
annotations the other node's agent published: VTEP MAC and node IP):

    ip route add 10.244.1.0/24 via 10.244.1.0 dev tinykube.1 onlink
    ip neigh add 10.244.1.0 lladdr 02:..:02 dev tinykube.1 nud permanent
    bridge fdb add 02:..:02 dev tinykube.1 dst 10.201.0.12 self permanent

A packet from a pod on node1 (10.244.0.5) to a pod on node2 (10.244.1.7):
tk0 -> node1's routing table -> route via 10.244.1.0 on tinykube.1 ->
neighbour gives node2's VTEP MAC -> FDB gives node2's IP -> the VXLAN driver
wraps the frame in UDP to 10.201.0.12:8472 -> node2's tinykube.1 unwraps it ->
node2's routing table -> tk0 -> the pod.

Modules: device.py (the device, pure), network.py (desired entries and the
plan, pure), kernel.py (netlink), vxlan.py (VXLANBackend, what the agent uses).
"""

from netplugin.overlay.device import VxlanLink, VxlanSpec, device_action
from netplugin.overlay.network import (
    Change,
    FdbEntry,
    Lease,
    NeighEntry,
    OverlayState,
    RouteEntry,
    desired_state,
    lease_from_node,
    leases_from_nodes,
    plan,
)
from netplugin.overlay.vxlan import VXLANBackend, cleanup

__all__ = [
    "Change",
    "FdbEntry",
    "Lease",
    "NeighEntry",
    "OverlayState",
    "RouteEntry",
    "VXLANBackend",
    "VxlanLink",
    "VxlanSpec",
    "cleanup",
    "desired_state",
    "device_action",
    "lease_from_node",
    "leases_from_nodes",
    "plan",
]
