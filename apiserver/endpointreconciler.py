"""The `kubernetes` Service's Endpoints: the API servers alive now (the lease endpoint reconciler).

Inside the cluster the API is `https://kubernetes.default.svc` (10.96.0.1:443):
a Service without a selector whose Endpoints kube-apiserver itself writes.
With several API servers, each must add its own address there and a dead
one must drop out, with nobody in charge. Kubernetes' answer
(--endpoint-reconciler-type=lease, pkg/controlplane/reconcilers/lease.go):
every API server keeps a lease of its own alive and rewrites the Endpoints
to the addresses of the leases that have not expired.

Here the leases are coordination.k8s.io Leases in kube-system, one per API
server, as kube-apiserver's identity leases are:

    kind: Lease
    metadata:
      name: apiserver-3f2a9c0d51e4b7a6          # sha256 of the advertised IP:port
      namespace: kube-system
      labels: {apiserver.kubernetes.io/identity: kube-apiserver,
               kubernetes.io/hostname: node1}
      annotations: {tinykube.io/advertise-address: "10.0.0.11:6443"}
    spec: {holderIdentity: apiserver-3f2a9c0d51e4b7a6, leaseDurationSeconds: 15,
           renewTime: ...}

The name follows the address, so a restarted server takes up its own Lease
again instead of leaving a stale one behind. Every 10 s (Kubernetes'
interval; the lease lasts 15 s, its TTL), each server runs one round:

    1. renew its Lease (create it if missing)
    2. list the Leases labelled kube-apiserver; alive = renewTime + 15 s > now;
       delete the expired ones (guarded by their resourceVersion)
    3. ensure the Service default/kubernetes (ClusterIP 10.96.0.1, the address
       the service CIDR reserves for it; port 443 -> the servers' port, "https")
    4. write Endpoints default/kubernetes = the live addresses, sorted, one
       subset per port, if they differ from what is stored

Worked example: servers at 10.0.0.11 and .12 (port 6443) renew at :00, :10,
:20... The Endpoints list both. .12 is killed at :23 after renewing at :20;
its Lease expires at :35, and .11's round at :40 drops it: the Service points
at the live server at most interval + TTL (25 s) after a death. A server
stopped on purpose deletes its Lease and removes itself at once.

Expiry compares the Lease's renewTime, written by another server's wall
clock, with this server's: their clocks must agree to within a few seconds
(NTP), as Kubernetes' lease-based reconciler and identity-lease collection
assume too. The reconciler writes through the server's loopback client, so
its writes are validated and admitted like any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import logging
import socket
from collections.abc import Iterable

from google.protobuf import timestamp_pb2

from apimachinery import errors
from apimachinery.client import Client
from apimachinery.clock import Clock
from apimachinery.resourcelock import LEASE_API_VERSION, micros
from protos import coordination_pb2, core_pb2

log = logging.getLogger(__name__)

NAMESPACE = "kube-system"
SERVICE_NAME = "kubernetes"
SERVICE_IP = "10.96.0.1"  # the service CIDR's first address (apiserver/allocators.py)
SERVICE_PORT = 443
IDENTITY_LABEL = "apiserver.kubernetes.io/identity"
IDENTITY = "kube-apiserver"
ADDRESS_ANNOTATION = "tinykube.io/advertise-address"
INTERVAL = 10.0  # Kubernetes' DefaultEndpointReconcilerInterval
LEASE_SECONDS = 15  # and its DefaultEndpointReconcilerTTL


def lease_name(address: str, port: int) -> str:
    """`apiserver-<16 hex>`: stable for one advertised address."""
    return "apiserver-" + hashlib.sha256(f"{address}:{port}".encode()).hexdigest()[:16]


def endpoint_subsets(addresses: Iterable[tuple[str, int]]) -> list[core_pb2.EndpointSubset]:
    """The Endpoints' subsets for (ip, port) pairs: one per port, addresses sorted."""
    by_port: dict[int, set[str]] = {}
    for ip, port in addresses:
        by_port.setdefault(port, set()).add(ip)
    subsets = []
    for port in sorted(by_port):
        subset = core_pb2.EndpointSubset()
        for ip in sorted(by_port[port], key=ipaddress.ip_address):
            subset.addresses.add(ip=ip)
        subset.ports.add(name="https", port=port, protocol="TCP")
        subsets.append(subset)
    return subsets


def _address(lease: coordination_pb2.Lease) -> tuple[str, int] | None:
    """The (ip, port) a Lease advertises; None when it has no valid one."""
    text = lease.metadata.annotations.get(ADDRESS_ANNOTATION, "")
    ip, _, port = text.rpartition(":")
    try:
        ipaddress.ip_address(ip.strip("[]"))
    except ValueError:
        return None
    return (ip.strip("[]"), int(port)) if port.isdigit() else None


def advertised_endpoint(address: str, listen: Iterable[str]) -> tuple[str, int]:
    """kube-apiserver's --advertise-address (an IP) with the port of the first TCP
    address served (its --secure-port); ValueError naming what is wrong."""
    try:
        ip = str(ipaddress.ip_address(address))
    except ValueError:
        raise ValueError(f"--advertise-address {address!r} is not an IP address") from None
    for item in listen:
        if item.startswith("unix:"):
            continue
        port = item.rpartition(":")[2]
        if port.isdigit():
            return ip, int(port)
    raise ValueError("--advertise-address needs a TCP --listen address (its port is advertised)")


class EndpointReconciler:
    """Keeps this server's Lease and the `kubernetes` Endpoints (module docstring)."""

    def __init__(
        self,
        client: Client,
        address: str,
        port: int,
        *,
        interval: float = INTERVAL,
        lease_seconds: int = LEASE_SECONDS,
        clock: Clock | None = None,
    ) -> None:
        ipaddress.ip_address(address)  # ValueError for anything but an IP
        if not 0 < port < 65536:
            raise ValueError(f"advertised port {port} is not a TCP port")
        self.client = client
        self.address = address
        self.port = port
        self.interval = interval
        self.lease_seconds = lease_seconds
        self.clock = clock or Clock()
        self.name = lease_name(address, port)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name=self.name)

    async def _loop(self) -> None:
        while True:
            try:
                await self.reconcile()
            except errors.StatusError as err:
                log.warning("endpoint reconcile failed", extra={"error": str(err)})
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        """Stop renewing, delete our Lease and take our address out of the Endpoints."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        try:
            with contextlib.suppress(errors.NotFound):
                await self.client.delete(coordination_pb2.Lease, self.name, NAMESPACE)
            await self._write_endpoints(await self._live(include_self=False))
        except errors.StatusError as err:
            log.warning("could not remove this server's endpoint", extra={"error": str(err)})

    async def reconcile(self) -> None:
        """One round: renew, collect the live servers, ensure the Service and Endpoints."""
        await self._renew()
        live = await self._live(include_self=True)
        await self._ensure_service()
        await self._write_endpoints(live)

    async def _renew(self) -> None:
        now = self._now()
        try:
            lease = await self.client.get(coordination_pb2.Lease, self.name, NAMESPACE)
        except errors.NotFound:
            lease = coordination_pb2.Lease(api_version=LEASE_API_VERSION, kind="Lease")
            lease.metadata.name, lease.metadata.namespace = self.name, NAMESPACE
            lease.metadata.labels[IDENTITY_LABEL] = IDENTITY
            lease.metadata.labels["kubernetes.io/hostname"] = socket.gethostname()[:63]
            lease.metadata.annotations[ADDRESS_ANNOTATION] = self._advertised()
            lease.spec.holder_identity = self.name
            lease.spec.lease_duration_seconds = self.lease_seconds
            lease.spec.acquire_time.CopyFrom(now)
            lease.spec.renew_time.CopyFrom(now)
            await self.client.create(lease)
            return
        lease.spec.renew_time.CopyFrom(now)
        lease.spec.lease_duration_seconds = self.lease_seconds
        lease.metadata.annotations[ADDRESS_ANNOTATION] = self._advertised()
        await self.client.update(lease)

    async def _live(self, *, include_self: bool) -> list[tuple[str, int]]:
        """The addresses of the unexpired Leases (deleting the expired ones)."""
        leases, _ = await self.client.list(
            coordination_pb2.Lease, NAMESPACE, label_selector=f"{IDENTITY_LABEL}={IDENTITY}"
        )
        now = micros(self.clock.time())
        live: set[tuple[str, int]] = set()
        for lease in leases:
            address = _address(lease)
            if lease.metadata.name == self.name:
                continue
            expires = lease.spec.renew_time.ToMicroseconds()
            expires += int(lease.spec.lease_duration_seconds) * 1_000_000
            if expires > now and address is not None:
                live.add(address)
            elif expires <= now:
                await self._collect(lease)
        if include_self:
            live.add((self.address, self.port))
        return sorted(live)

    async def _collect(self, lease: coordination_pb2.Lease) -> None:
        """Delete an expired Lease, unless its server renewed it meanwhile."""
        with contextlib.suppress(errors.NotFound, errors.Conflict):
            await self.client.delete(
                coordination_pb2.Lease,
                lease.metadata.name,
                NAMESPACE,
                precondition_resource_version=lease.metadata.resource_version,
            )
            log.info("expired API server lease deleted", extra={"lease": lease.metadata.name})

    async def _ensure_service(self) -> None:
        try:
            await self.client.get(core_pb2.Service, SERVICE_NAME, "default")
            return
        except errors.NotFound:
            pass
        service = core_pb2.Service(api_version="v1", kind="Service")
        service.metadata.name, service.metadata.namespace = SERVICE_NAME, "default"
        service.metadata.labels.update({"component": "apiserver", "provider": "kubernetes"})
        service.spec.type = "ClusterIP"
        service.spec.cluster_ip = SERVICE_IP
        port = service.spec.ports.add(name="https", protocol="TCP", port=SERVICE_PORT)
        port.target_port.int_val = self.port
        with contextlib.suppress(errors.AlreadyExists):  # another server was faster
            await self.client.create(service)
            log.info("created the kubernetes Service", extra={"clusterIP": SERVICE_IP})

    async def _write_endpoints(self, live: list[tuple[str, int]]) -> None:
        subsets = endpoint_subsets(live)
        try:
            current = await self.client.get(core_pb2.Endpoints, SERVICE_NAME, "default")
        except errors.NotFound:
            endpoints = core_pb2.Endpoints(api_version="v1", kind="Endpoints")
            endpoints.metadata.name, endpoints.metadata.namespace = SERVICE_NAME, "default"
            endpoints.metadata.labels["endpointslice.kubernetes.io/skip-mirror"] = "true"
            endpoints.subsets.extend(subsets)
            with contextlib.suppress(errors.AlreadyExists):
                await self.client.create(endpoints)
            return
        if list(current.subsets) == subsets:
            return
        del current.subsets[:]
        current.subsets.extend(subsets)
        with contextlib.suppress(errors.Conflict):  # another server wrote: next round
            await self.client.update(current)
            log.info("kubernetes endpoints updated", extra={"addresses": _describe(live)})

    def _advertised(self) -> str:
        ip = f"[{self.address}]" if ":" in self.address else self.address
        return f"{ip}:{self.port}"

    def _now(self) -> timestamp_pb2.Timestamp:
        us = micros(self.clock.time())
        return timestamp_pb2.Timestamp(seconds=us // 1_000_000, nanos=(us % 1_000_000) * 1000)


def _describe(live: list[tuple[str, int]]) -> str:
    return ",".join(f"{ip}:{port}" for ip, port in live)
