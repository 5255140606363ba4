"""The lock a leader election is held on: a coordination.k8s.io Lease (client-go's resourcelock).

Leader election needs one shared record that every candidate can read and
that only one of them can change at a time. Kubernetes keeps it in a Lease
(client-go's `resourcelock.LeaseLock`; Endpoints and ConfigMap locks are
gone since 1.24), named after the component, in kube-system:

    apiVersion: coordination.k8s.io/v1
    kind: Lease
    metadata: {name: kube-scheduler, namespace: kube-system, resourceVersion: "812"}
    spec:
      holderIdentity: node1_5f0c3c1e-6a8e-4c5e-9d55-0c2d2f4f6b11
      leaseDurationSeconds: 15
      acquireTime: "2024-05-01T10:00:00.000000Z"
      renewTime:   "2024-05-01T10:03:12.000000Z"
      leaseTransitions: 3

The record is what the spec says (`LeaderElectionRecord`); the lock adds
the one thing that makes it safe: every update is a compare-and-swap on the
resourceVersion the lock last read or wrote. Two candidates that both read
version 812 and both try to take the lease send two updates carrying 812;
the API server applies the first and answers the second with 409 Conflict,
so exactly one of them holds the lease afterwards.

    get()     GET the Lease, remember it (and its resourceVersion); NotFound if absent
    create()  POST a new Lease holding `record`; AlreadyExists if someone was faster
    update()  PUT the remembered Lease with `record` as its spec; Conflict if it changed

Times are kept in whole microseconds (Kubernetes' MicroTime), so a record
read back compares equal to the one written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from google.protobuf import timestamp_pb2

from apimachinery.client import Client
from protos import coordination_pb2

LEASE_API_VERSION = "coordination.k8s.io/v1"


@dataclass(frozen=True)
class LeaderElectionRecord:
    """client-go's LeaderElectionRecord: who leads, for how long, since and until when.

    `acquire_time` and `renew_time` are wall-clock microseconds since the epoch;
    `holder_identity` is empty when nobody holds the lease (it was released).
    """

    holder_identity: str
    lease_duration_seconds: int
    acquire_time: int
    renew_time: int
    leader_transitions: int = 0


def micros(seconds: float) -> int:
    """Wall-clock seconds as whole microseconds (MicroTime's precision)."""
    return round(seconds * 1_000_000)


def _timestamp(us: int) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=us // 1_000_000, nanos=(us % 1_000_000) * 1000)


def _us(ts: timestamp_pb2.Timestamp) -> int:
    return int(ts.seconds) * 1_000_000 + int(ts.nanos) // 1000


def record_from_lease(lease: coordination_pb2.Lease) -> LeaderElectionRecord:
    spec = lease.spec
    return LeaderElectionRecord(
        holder_identity=spec.holder_identity,
        lease_duration_seconds=int(spec.lease_duration_seconds),
        acquire_time=_us(spec.acquire_time),
        renew_time=_us(spec.renew_time),
        leader_transitions=int(spec.lease_transitions),
    )


def lease_spec(record: LeaderElectionRecord) -> coordination_pb2.LeaseSpec:
    spec = coordination_pb2.LeaseSpec(
        holder_identity=record.holder_identity,
        lease_transitions=record.leader_transitions,
    )
    if record.lease_duration_seconds > 0:
        spec.lease_duration_seconds = record.lease_duration_seconds
    spec.acquire_time.CopyFrom(_timestamp(record.acquire_time))
    spec.renew_time.CopyFrom(_timestamp(record.renew_time))
    return spec


class ResourceLock(Protocol):
    """What the elector needs of a lock (client-go's resourcelock.Interface)."""

    async def get(self) -> LeaderElectionRecord:
        """The current record; raises errors.NotFound when there is no lock yet."""
        ...

    async def create(self, record: LeaderElectionRecord) -> None:
        """Create the lock holding `record`; raises errors.AlreadyExists if it exists."""
        ...

    async def update(self, record: LeaderElectionRecord) -> None:
        """Replace the record, guarded by the version last read; raises errors.Conflict."""
        ...

    def describe(self) -> str:
        """`namespace/name`, for logs."""
        ...


class LeaseLock:
    """A ResourceLock on the Lease `namespace/name`, through the API client."""

    def __init__(self, client: Client, namespace: str, name: str) -> None:
        self.client = client
        self.namespace = namespace
        self.name = name
        self._lease: coordination_pb2.Lease | None = None  # as last read or written

    def describe(self) -> str:
        return f"{self.namespace}/{self.name}"

    async def get(self) -> LeaderElectionRecord:
        self._lease = await self.client.get(coordination_pb2.Lease, self.name, self.namespace)
        return record_from_lease(self._lease)

    async def create(self, record: LeaderElectionRecord) -> None:
        lease = coordination_pb2.Lease(api_version=LEASE_API_VERSION, kind="Lease")
        lease.metadata.name = self.name
        lease.metadata.namespace = self.namespace
        lease.spec.CopyFrom(lease_spec(record))
        self._lease = await self.client.create(lease)

    async def update(self, record: LeaderElectionRecord) -> None:
        if self._lease is None:
            raise RuntimeError(f"lease {self.describe()} updated before it was read")
        lease = coordination_pb2.Lease()
        lease.CopyFrom(self._lease)  # keeps metadata.resourceVersion: the compare-and-swap
        lease.spec.CopyFrom(lease_spec(record))
        self._lease = await self.client.update(lease)
