"""The node lease: the kubelet's heartbeat (Kubernetes' nodelease controller).

Every node owns a coordination.k8s.io Lease named after it in the namespace
`kube-node-lease`. The kubelet renews it -- sets spec.renewTime to now --
every `renew_interval` (10 s); the node lifecycle controller in the control
plane reads renewTime, and a node whose Lease is older than the node monitor
grace period (40 s) is marked Ready=Unknown and, after the pods'
tolerations, has its pods evicted. A Lease write is tiny compared with a
full NodeStatus, which is why Kubernetes moved the heartbeat there: the
status itself is written only when it changes.

Lease shape:

    metadata: {name: node1, namespace: kube-node-lease,
               ownerReferences: [{apiVersion: v1, kind: Node, name: node1, uid: ...}]}
    spec: {holderIdentity: node1, leaseDurationSeconds: 40, renewTime: <now, microseconds>}

The owner reference lets the garbage collector delete the Lease with its Node.

Renewal and failures: the controller keeps the Lease it last wrote and
updates that copy (compare-and-swap on its resourceVersion). A Conflict
(someone else wrote it, e.g. an operator) or NotFound (deleted) makes it
read the Lease again, or create it, and retry at once. Any other failure --
the API server is down -- is retried after 200 ms, doubling to 7 s, so a
node that loses the API server for a while renews within seconds of its
return; the Lease is long enough (40 s) for several attempts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from google.protobuf import timestamp_pb2

from apimachinery import errors
from apimachinery.client import Client
from protos import coordination_pb2, meta_pb2

log = logging.getLogger(__name__)

NODE_LEASE_NAMESPACE = "kube-node-lease"

_RETRY_INITIAL = 0.2
_RETRY_MAX = 7.0


def micro_now() -> timestamp_pb2.Timestamp:
    """Kubernetes' MicroTime: now, to the microsecond."""
    now = time.time_ns()
    return timestamp_pb2.Timestamp(seconds=now // 10**9, nanos=(now % 10**9) // 1000 * 1000)


class NodeLeaseController:
    """Create and renew one node's Lease until cancelled."""

    def __init__(
        self,
        client: Client,
        node_name: str,
        *,
        lease_duration_seconds: int = 40,
        renew_interval: float = 10.0,
        node_uid: Callable[[], str] | None = None,
    ) -> None:
        self.client = client
        self.node_name = node_name
        self.lease_duration_seconds = lease_duration_seconds
        self.renew_interval = renew_interval
        self._node_uid = node_uid or (lambda: "")
        self._latest: coordination_pb2.Lease | None = None
        self.renewals = 0  # successful writes, for tests and logs

    async def run(self) -> None:
        delay = _RETRY_INITIAL
        while True:
            try:
                await self.renew_once()
            except errors.StatusError as exc:
                log.warning(
                    "failed to renew lease",
                    extra={"node": self.node_name, "error": str(exc), "retry_in": delay},
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX)
                continue
            delay = _RETRY_INITIAL
            await asyncio.sleep(self.renew_interval)

    async def renew_once(self) -> coordination_pb2.Lease:
        """Write renewTime = now: update the known Lease, else read or create it."""
        for _ in range(5):
            lease = self._latest
            if lease is None:
                lease = await self._get_or_create()
                if lease is self._latest:
                    return lease  # just created with renewTime = now
            renewed = self._renewed(lease)
            try:
                self._latest = await self.client.update(renewed)
            except (errors.Conflict, errors.NotFound):
                self._latest = None
                continue
            self.renewals += 1
            return self._latest
        raise errors.Conflict("the node lease kept changing while being renewed")

    async def _get_or_create(self) -> coordination_pb2.Lease:
        try:
            lease: coordination_pb2.Lease = await self.client.get(
                "leases", self.node_name, NODE_LEASE_NAMESPACE
            )
            return lease
        except errors.NotFound:
            pass
        fresh = self._renewed(self._new_lease())
        fresh.spec.acquire_time.CopyFrom(fresh.spec.renew_time)
        try:
            self._latest = await self.client.create(fresh)
        except errors.AlreadyExists:
            lease = await self.client.get("leases", self.node_name, NODE_LEASE_NAMESPACE)
            return lease
        self.renewals += 1
        log.info("created node lease", extra={"node": self.node_name})
        return self._latest

    def _new_lease(self) -> coordination_pb2.Lease:
        lease = coordination_pb2.Lease(api_version="coordination.k8s.io/v1", kind="Lease")
        lease.metadata.name = self.node_name
        lease.metadata.namespace = NODE_LEASE_NAMESPACE
        return lease

    def _renewed(self, lease: coordination_pb2.Lease) -> coordination_pb2.Lease:
        out = coordination_pb2.Lease()
        out.CopyFrom(lease)
        out.spec.holder_identity = self.node_name
        out.spec.lease_duration_seconds = self.lease_duration_seconds
        out.spec.renew_time.CopyFrom(micro_now())
        uid = self._node_uid()
        if uid and not any(ref.uid == uid for ref in out.metadata.owner_references):
            del out.metadata.owner_references[:]
            out.metadata.owner_references.append(
                meta_pb2.OwnerReference(api_version="v1", kind="Node", name=self.node_name, uid=uid)
            )
        return out
