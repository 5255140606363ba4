"""The Service strategy: ClusterIPs and NodePorts around Service writes.

Kubernetes' Service REST storage (pkg/registry/core/service/storage) wraps
the generic store with an allocator transaction; tinykube's ServiceStrategy
does the same through the strategy hooks, all under one lock so that the
in-memory allocators (apiserver/allocators.py) and the store never disagree:

* `start` rebuilds the allocators from the stored Services: they are memory,
  the stored Services are the truth (so a crash can never leak an address).
* `prepare_for_update` carries allocated values over, as Kubernetes'
  patchAllocatedValues does: a manifest applied again carries no clusterIP
  or nodePort (the server chose them), and that must mean "keep them", not
  "change them" (which validation would refuse: clusterIP is immutable).
* `begin_create` / `begin_update` take an IP for a Service that needs one
  and has none, and a node port for every port of a NodePort / LoadBalancer
  Service that has none; a value the user asked for is checked (in range,
  free). The finish function gives everything taken back if the write then
  fails (or was a dry run), so a failed create never leaks an address; after
  an update that landed it frees what the old version held and the new one
  no longer does (a NodePort Service turned ClusterIP).
* `after_delete` frees everything the Service held.

Worked example: create `web` (ClusterIP) -> begin_create takes 10.96.3.7,
the write lands, finish(True) keeps it. Create `db` asking for 10.96.3.7 ->
begin_create refuses (Invalid: already allocated), nothing is written. Delete
`web` -> after_delete frees 10.96.3.7, and `db` may now have it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from apimachinery import errors, scheme
from apimachinery.scheme import KindInfo
from apiserver.allocators import AllocationError, ClusterIPAllocator, NodePortAllocator
from apiserver.registry.strategy import FinishFunc, ObjectRegistry, RESTStrategy, kind_group


def needs_cluster_ip(svc: Any) -> bool:
    return bool(svc.spec.type != "ExternalName" and svc.spec.cluster_ip != "None")


def needs_node_ports(svc: Any) -> bool:
    return bool(svc.spec.type in ("NodePort", "LoadBalancer"))


def _ips(svc: Any) -> set[str]:
    found = {svc.spec.cluster_ip, *svc.spec.cluster_ips}
    return {ip for ip in found if ip and ip != "None"}


def _ports(svc: Any) -> set[int]:
    return {p.node_port for p in svc.spec.ports if p.node_port}


class ServiceAllocations:
    """The ClusterIP and NodePort allocators and what each Service write takes or frees."""

    def __init__(self) -> None:
        self.cluster_ips = ClusterIPAllocator()
        self.node_ports = NodePortAllocator()

    def rebuild(self, services: list[Any]) -> None:
        for svc in services:
            for ip in _ips(svc):
                self.cluster_ips.mark(ip)
            for port in _ports(svc):
                self.node_ports.mark(port)

    def carry_allocated(self, new: Any, old: Any) -> None:
        self._drop_type_dependent_fields(new, old)
        if needs_cluster_ip(old) and needs_cluster_ip(new) and not new.spec.cluster_ip:
            new.spec.cluster_ip = old.spec.cluster_ip
            del new.spec.cluster_ips[:]
            new.spec.cluster_ips.extend(old.spec.cluster_ips)
        if needs_node_ports(old) and needs_node_ports(new):
            previous = {(p.port, p.protocol or "TCP"): p.node_port for p in old.spec.ports}
            for port in new.spec.ports:
                if not port.node_port:
                    port.node_port = previous.get((port.port, port.protocol or "TCP"), 0)

    @staticmethod
    def _drop_type_dependent_fields(new: Any, old: Any) -> None:
        """A type change drops what only the old type allowed, unless the user changed it too.

        Kubernetes does the same (dropTypeDependentFields): turning a NodePort
        Service into ClusterIP must not fail because the stored object still
        carries the node ports and externalTrafficPolicy the server filled in.
        """
        if new.spec.type == old.spec.type:
            return
        if needs_node_ports(old) and not needs_node_ports(new):
            previous = {(p.port, p.protocol or "TCP"): p.node_port for p in old.spec.ports}
            for port in new.spec.ports:
                if port.node_port == previous.get((port.port, port.protocol or "TCP")):
                    port.node_port = 0
            if new.spec.external_traffic_policy == old.spec.external_traffic_policy:
                new.spec.external_traffic_policy = ""

    def allocate(self, new: Any, old: Any | None, kind_group: str) -> Callable[[], None]:
        """Fill in and take what `new` needs beyond what `old` holds; Invalid on a clash."""
        taken_ips: list[str] = []
        taken_ports: list[int] = []

        def undo() -> None:
            for ip in taken_ips:
                self.cluster_ips.release(ip)
            for port in taken_ports:
                self.node_ports.release(port)

        held_ips = _ips(old) if old is not None else set()
        held_ports = _ports(old) if old is not None else set()
        try:
            if needs_cluster_ip(new) and new.spec.cluster_ip not in held_ips:
                requested = new.spec.cluster_ip or (
                    new.spec.cluster_ips[0] if new.spec.cluster_ips else ""
                )
                path = (
                    "spec.clusterIPs" if not new.spec.cluster_ip and requested else "spec.clusterIP"
                )
                ip = self.cluster_ips.allocate(path, requested)
                taken_ips.append(ip)
                new.spec.cluster_ip = ip
                del new.spec.cluster_ips[:]
                new.spec.cluster_ips.append(ip)
            elif needs_cluster_ip(new) and not new.spec.cluster_ips:
                new.spec.cluster_ips.append(new.spec.cluster_ip)
            if needs_node_ports(new):
                seen: set[int] = set()
                for i, port in enumerate(new.spec.ports):
                    path = f"spec.ports[{i}].nodePort"
                    if port.node_port and port.node_port in seen:
                        raise AllocationError(errors.duplicate(path, port.node_port))
                    if port.node_port in held_ports:
                        seen.add(port.node_port)
                        continue
                    port.node_port = self.node_ports.allocate(path, port.node_port)
                    taken_ports.append(port.node_port)
                    seen.add(port.node_port)
        except AllocationError as err:
            undo()
            raise errors.Invalid.for_object(kind_group, new.metadata.name, [err.cause]) from None
        return undo

    def release_replaced(self, new: Any, old: Any) -> None:
        for ip in _ips(old) - _ips(new):
            self.cluster_ips.release(ip)
        for port in _ports(old) - _ports(new):
            self.node_ports.release(port)

    def release_all(self, svc: Any) -> None:
        for ip in _ips(svc):
            self.cluster_ips.release(ip)
        for port in _ports(svc):
            self.node_ports.release(port)


class ServiceStrategy(RESTStrategy):
    """Services: allocations taken before each write, given back on failure and delete."""

    def __init__(self) -> None:
        super().__init__("Service", reset_status_on_create=True)
        self.info = scheme.for_resource("services")
        self.allocations = ServiceAllocations()
        # Held from begin_* until the finish function runs, i.e. across the write.
        self._lock = asyncio.Lock()

    async def start(self, registry: ObjectRegistry) -> None:
        services, _ = await registry.list_objects(self.info)
        self.allocations.rebuild(services)

    def prepare_for_update(self, info: KindInfo, new: Any, old: Any) -> None:
        super().prepare_for_update(info, new, old)
        self.allocations.carry_allocated(new, old)

    async def begin_create(self, obj: Any) -> FinishFunc:
        return await self._begin(obj, None)

    async def begin_update(self, new: Any, old: Any) -> FinishFunc:
        return await self._begin(new, old)

    async def _begin(self, new: Any, old: Any | None) -> FinishFunc:
        await self._lock.acquire()
        try:
            undo = self.allocations.allocate(new, old, kind_group(self.info))
        except BaseException:
            self._lock.release()
            raise

        def finish(success: bool) -> None:
            try:
                if not success:
                    undo()
                elif old is not None:
                    self.allocations.release_replaced(new, old)
            finally:
                self._lock.release()

        return finish

    async def after_delete(self, obj: Any) -> None:
        async with self._lock:
            self.allocations.release_all(obj)
