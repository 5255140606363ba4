"""Node IPAM: one pod CIDR per node, cut from the cluster CIDR (the range allocator).

Kubernetes' nodeipam controller with its RangeAllocator. Every node needs a
range of pod addresses that no other node uses: the kubelet (through the
CNI plugin's host-local IPAM) hands pod IPs out of `spec.podCIDR`, and the
netplugin routes each node's range to that node over VXLAN. The controller
owns the split: the cluster CIDR (10.244.0.0/16 by default) is cut into
subnets of `node_cidr_mask_size` bits (/24: 256 nodes of 254 pods), and each
node gets the lowest free one.

The CIDR set (cidr_set.go) is a bitmap over the subnet indices:

    cluster 10.244.0.0/16, mask /24  ->  256 subnets; index i = 10.244.i.0/24
    node1 added         -> lowest free index 0  -> 10.244.0.0/24
    node2 added         -> index 1              -> 10.244.1.0/24
    node1 deleted       -> index 0 released
    node3 added         -> index 0 again        -> 10.244.0.0/24

Where the state lives. Only in the Node objects: the bitmap is memory,
rebuilt when the controller starts from every node that already has a
podCIDR (before any allocation, since the workers only start after the
informer caches have synced), so a restarted controller never hands out a
range that is in use. A node whose podCIDR someone else set (or that is
outside the cluster CIDR) is simply recorded; podCIDR is immutable once set
(validation refuses a change), so an allocation never moves.

Failure modes:

* the write conflicts (the kubelet updated the node meanwhile): re-read and
  retry; if the fresh node already has a podCIDR, ours is released;
* the write fails otherwise: the reserved range is released and the key is
  retried with backoff;
* the range is full: a Warning Event `CIDRAssignmentFailed` on the node, and
  the node waits; every release re-queues the nodes still waiting.
"""

from __future__ import annotations

import ipaddress
import logging

from apimachinery import errors
from apimachinery.client import retry_on_conflict
from controllers import register
from controllers.base import Controller, ControllerContext
from protos import core_pb2

log = logging.getLogger(__name__)


class CIDRRangeFull(Exception):
    """No free subnet is left in the cluster CIDR."""


class CIDRSet:
    """The subnets of one cluster CIDR and which are taken (Kubernetes' cidrset)."""

    def __init__(self, cluster_cidr: str, mask_size: int) -> None:
        self.network = ipaddress.ip_network(cluster_cidr, strict=True)
        if not self.network.prefixlen <= mask_size <= self.network.max_prefixlen:
            raise ValueError(
                f"node CIDR mask /{mask_size} does not fit in the cluster CIDR {cluster_cidr}"
            )
        self.mask_size = mask_size
        self.size = 1 << (mask_size - self.network.prefixlen)
        self._step = 1 << (self.network.max_prefixlen - mask_size)
        self._used: set[int] = set()

    def __len__(self) -> int:
        return len(self._used)

    def subnet(self, index: int) -> str:
        base = int(self.network.network_address) + index * self._step
        return f"{ipaddress.ip_address(base)}/{self.mask_size}"

    def index_of(self, cidr: str) -> int | None:
        """The index of `cidr` if it is exactly one of our subnets, else None."""
        try:
            net = ipaddress.ip_network(cidr, strict=True)
        except ValueError:
            return None
        if net.version != self.network.version or net.prefixlen != self.mask_size:
            return None
        if not net.subnet_of(self.network):  # type: ignore[arg-type]
            return None
        return (int(net.network_address) - int(self.network.network_address)) // self._step

    def allocate_next(self) -> str:
        """The lowest free subnet, now taken; CIDRRangeFull when none is left."""
        for index in range(self.size):
            if index not in self._used:
                self._used.add(index)
                return self.subnet(index)
        raise CIDRRangeFull(f"the cluster CIDR {self.network} has no free /{self.mask_size} left")

    def occupy(self, cidr: str) -> bool:
        """Mark `cidr` taken; False if it is not one of our subnets."""
        index = self.index_of(cidr)
        if index is None:
            return False
        self._used.add(index)
        return True

    def release(self, cidr: str) -> None:
        index = self.index_of(cidr)
        if index is not None:
            self._used.discard(index)


@register("nodeipam")
class NodeIPAMController(Controller):
    """Gives each node a spec.podCIDR; node names are the queue keys."""

    name = "node-ipam-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        opts = ctx.options
        self.cidrs = CIDRSet(opts.cluster_cidr, opts.node_cidr_mask_size)
        # node name -> (node uid, the podCIDR we know it holds); the uid tells a node
        # deleted and re-created under the same name from the one we allocated for.
        self.allocated: dict[str, tuple[str, str]] = {}
        self.nodes = ctx.factory.informer(core_pb2.Node)
        self.nodes.add_handlers(
            on_add=self.enqueue_obj,
            on_update=self._node_updated,
            on_delete=self.enqueue_obj,
        )

    def _node_updated(self, old: core_pb2.Node, new: core_pb2.Node) -> None:
        if old.spec.pod_cidr != new.spec.pod_cidr or not new.spec.pod_cidr:
            self.enqueue_obj(new)

    async def run(self, workers: int | None = None) -> None:
        self.rebuild()
        await super().run(workers)

    def rebuild(self) -> None:
        """Occupy every podCIDR the cached nodes hold (the manager runs us after cache sync)."""
        for node in self.nodes.store.list():
            self._record(node.metadata.name, node.metadata.uid, node.spec.pod_cidr)
        log.info(
            "pod CIDRs rebuilt from nodes",
            extra={"cluster_cidr": str(self.cidrs.network), "in_use": len(self.cidrs)},
        )

    def _record(self, node: str, uid: str, cidr: str) -> None:
        if not cidr:
            return
        if not self.cidrs.occupy(cidr):
            log.info(
                "node pod CIDR is outside the cluster CIDR",
                extra={"node": node, "pod_cidr": cidr, "cluster_cidr": str(self.cidrs.network)},
            )
        self.allocated[node] = (uid, cidr)

    def _release(self, node: str) -> None:
        _, cidr = self.allocated.pop(node, ("", ""))
        if not cidr:
            return
        self.cidrs.release(cidr)
        log.info("pod CIDR released", extra={"node": node, "pod_cidr": cidr})
        # Nodes that found the range full may fit now.
        for other in self.nodes.store.list():
            if not other.spec.pod_cidr:
                self.enqueue_obj(other)

    async def sync(self, key: str) -> None:
        node = self.nodes.store.get(key)
        if node is None or node.metadata.HasField("deletion_timestamp"):
            self._release(key)
            return
        uid = node.metadata.uid
        known = self.allocated.get(key)
        if known is not None and known[0] != uid:
            self._release(key)  # a new node under an old name
            known = None
        if node.spec.pod_cidr:
            if known != (uid, node.spec.pod_cidr):
                if known is not None:
                    self.cidrs.release(known[1])
                self._record(key, uid, node.spec.pod_cidr)
            return
        if known is not None:
            return  # our write is on its way back through the informer
        try:
            cidr = self.cidrs.allocate_next()
        except CIDRRangeFull as err:
            self.recorder.event(
                node,
                "Warning",
                "CIDRAssignmentFailed",
                f"Node {key} status is now: CIDRNotAvailable ({err})",
            )
            log.warning("no pod CIDR left", extra={"node": key, "error": str(err)})
            return
        try:
            held = await retry_on_conflict(lambda: self._write(key, uid, cidr))
        except errors.NotFound:
            self.cidrs.release(cidr)
            return
        except BaseException:
            self.cidrs.release(cidr)
            raise
        if held != cidr:
            self.cidrs.release(cidr)
        self._record(key, uid, held)

    async def _write(self, name: str, uid: str, cidr: str) -> str:
        """Set the node's podCIDR unless it has one; returns the podCIDR the node holds."""
        node = await self.client.get(core_pb2.Node, name)
        if node.metadata.uid != uid:
            raise errors.NotFound.for_object("nodes", name)  # replaced: its own sync follows
        if node.spec.pod_cidr:
            return node.spec.pod_cidr
        node.spec.pod_cidr = cidr
        del node.spec.pod_cidrs[:]
        node.spec.pod_cidrs.append(cidr)
        await self.client.update(node)
        log.info("pod CIDR allocated", extra={"node": name, "pod_cidr": cidr})
        return cidr
