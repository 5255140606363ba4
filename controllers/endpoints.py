"""The endpoints controller: which pod addresses stand behind each Service.

Kubernetes' endpoints_controller.go, for the Endpoints kind. A Service names
its pods only by a label selector; something has to turn that into the list
of addresses a proxy can send traffic to, and keep it current as pods come,
go, become ready or stop being ready. That is this controller. The
netplugin's service proxy (nftables) reads nothing but the Endpoints.

Level-triggered on Service keys. Pod events are translated into the keys of
the Services whose selectors match the pod (its old labels and its new ones,
so a pod relabelled out of a Service is removed from it); `sync(key)`
recomputes the whole Endpoints object from the caches and writes it only if
it differs from what is stored.

Tracing: a write is one span (UpdateEndpoints), caused by the pods whose
entries it changed -- the most recently written of them is its parent, the
others are links -- or by the Service when no pod entry changed (the first,
empty Endpoints). So a trace runs pod Ready -> Endpoints -> each node's proxy.

What goes in, per pod matching the selector (ShouldPodBeInEndpoints):

* a pod without `status.podIP` is skipped (nothing to route to yet);
* a pod that has finished (Succeeded/Failed) is skipped;
* a terminating pod (deletionTimestamp set) is skipped, unless the Service
  sets `publishNotReadyAddresses` (then it is kept as Kubernetes does);
* a pod whose condition Ready is True goes in `addresses`, any other in
  `notReadyAddresses` -- unless `publishNotReadyAddresses`, which puts
  every pod in `addresses` (headless Services for StatefulSet peers).

Ports are resolved per pod, because a named `targetPort` may mean a
different number in different pods (FindPort):

* an int targetPort is used as is; an absent one means the Service port;
* a named targetPort ("http") is looked up in the pod's containers' ports
  by name and protocol; a pod that has no such port is left out *for that
  port only* (it may still serve the Service's other ports).

Grouping (RepackSubsets). An Endpoints object is a list of subsets, each a
set of addresses that all serve the same set of ports. Worked example: a
Service with ports web (targetPort "http") and metrics (targetPort 9100),
and three pods:

    pod a 10.244.1.5  ready    containers name http -> 8080
    pod b 10.244.2.7  ready    containers name http -> 8080
    pod c 10.244.1.9  unready  containers name http -> 80

    (address, port) pairs: a:web/8080 a:metrics/9100 b:web/8080
                           b:metrics/9100 c:web/80 c:metrics/9100
    grouped by each address's port set:
      subset 1  addresses [10.244.1.5, 10.244.2.7]  ports [metrics 9100, web 8080]
      subset 2  notReadyAddresses [10.244.1.9]      ports [metrics 9100, web 80]

Addresses are sorted by IP (then pod uid), ports by (name, port, protocol)
and subsets by their port sets, so the same cluster state always produces
the same bytes and an unchanged Service causes no write (and no watch event
for every proxy in the cluster).

A headless Service (clusterIP None) with no ports still gets its addresses,
in a subset without ports (for DNS). A Service without a selector is left
alone: its Endpoints are written by hand. When the Service is deleted its
Endpoints go too.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TypeVar

from apimachinery import errors, tracecontext, tracing
from apimachinery.cache import Indexer, IndexFunc, meta_namespace_key, split_key
from controllers import register
from controllers.base import Controller, ControllerContext
from protos import core_pb2, meta_pb2

log = logging.getLogger(__name__)

COMPONENT = "endpoint-controller"  # its spans' component (apimachinery/tracing.py)

HEADLESS_LABEL = "service.kubernetes.io/headless"
T = TypeVar("T")


def by_namespace(obj: core_pb2.Service | core_pb2.Pod) -> str:
    """The "namespace" index of the Service and Pod stores."""
    return obj.metadata.namespace


def ensure_index(store: Indexer[T], name: str, fn: IndexFunc) -> None:
    """Add an index to a shared informer's store unless another controller already did."""
    # Same name, same meaning: controllers sharing an informer share its indices.
    with contextlib.suppress(ValueError):
        store.add_index(name, fn)


def pod_is_ready(pod: core_pb2.Pod) -> bool:
    """The pod's condition Ready is True."""
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)


def selector_matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """A Service selector (a plain map) matches when every pair is among the labels."""
    return all(labels.get(k) == v for k, v in selector.items())


def find_port(pod: core_pb2.Pod, port: core_pb2.ServicePort) -> int | None:
    """The container port a Service port means in `pod` (Kubernetes' FindPort); None if absent."""
    target = port.target_port
    which = target.WhichOneof("value")
    if which == "str_val":
        protocol = port.protocol or "TCP"
        for container in pod.spec.containers:
            for cport in container.ports:
                if cport.name == target.str_val and (cport.protocol or "TCP") == protocol:
                    return int(cport.container_port)
        return None
    if which == "int_val" and target.int_val:
        return int(target.int_val)
    return int(port.port)


@dataclass(frozen=True)
class _Address:
    """One pod address of an Endpoints subset, hashable so ports can be grouped by it."""

    ip: str
    uid: str
    name: str
    namespace: str
    node_name: str
    hostname: str
    ready: bool

    def to_proto(self) -> core_pb2.EndpointAddress:
        addr = core_pb2.EndpointAddress(ip=self.ip, hostname=self.hostname)
        if self.node_name:
            addr.node_name = self.node_name
        addr.target_ref.CopyFrom(
            meta_pb2.ObjectReference(
                kind="Pod", namespace=self.namespace, name=self.name, uid=self.uid
            )
        )
        return addr


_PortKey = tuple[str, int, str, str]  # name, port, protocol, appProtocol


def compute_subsets(
    service: core_pb2.Service, pods: list[core_pb2.Pod]
) -> list[core_pb2.EndpointSubset]:
    """The Endpoints subsets for `service` over the candidate `pods` (already selector-matched)."""
    publish_all = bool(service.spec.publish_not_ready_addresses)
    headless_no_ports = service.spec.cluster_ip == "None" and not service.spec.ports
    ports_of: dict[_Address, set[_PortKey]] = {}
    for pod in pods:
        if not pod.status.pod_ip or pod.status.phase in ("Succeeded", "Failed"):
            continue
        if pod.metadata.HasField("deletion_timestamp") and not publish_all:
            continue
        hostname = ""
        if pod.spec.hostname and pod.spec.subdomain == service.metadata.name:
            hostname = pod.spec.hostname
        address = _Address(
            ip=pod.status.pod_ip,
            uid=pod.metadata.uid,
            name=pod.metadata.name,
            namespace=pod.metadata.namespace,
            node_name=pod.spec.node_name,
            hostname=hostname,
            ready=publish_all or pod_is_ready(pod),
        )
        if headless_no_ports:
            ports_of.setdefault(address, set())
            continue
        for sport in service.spec.ports:
            number = find_port(pod, sport)
            if number is None:
                log.debug(
                    "pod has no port for the service's targetPort",
                    extra={
                        "service": meta_namespace_key(service),
                        "pod": pod.metadata.name,
                        "port": sport.name,
                    },
                )
                continue
            key = (sport.name, number, sport.protocol or "TCP", sport.app_protocol)
            ports_of.setdefault(address, set()).add(key)
    groups: dict[tuple[_PortKey, ...], list[_Address]] = {}
    for address, ports in ports_of.items():
        if not ports and not headless_no_ports:
            continue
        groups.setdefault(tuple(sorted(ports)), []).append(address)
    subsets = []
    for ports_key in sorted(groups):
        subset = core_pb2.EndpointSubset()
        for addr in sorted(groups[ports_key], key=lambda a: (a.ip, a.uid)):
            target = subset.addresses if addr.ready else subset.not_ready_addresses
            target.append(addr.to_proto())
        for name, number, protocol, app_protocol in ports_key:
            port = subset.ports.add(name=name, port=number, protocol=protocol)
            if app_protocol:
                port.app_protocol = app_protocol
        subsets.append(subset)
    return subsets


@register("endpoints")
class EndpointsController(Controller):
    """Keeps one Endpoints object per selector-bearing Service (Service keys on the queue)."""

    name = "endpoint-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.services = ctx.factory.informer(core_pb2.Service)
        self.pods = ctx.factory.informer(core_pb2.Pod)
        self.endpoints = ctx.factory.informer(core_pb2.Endpoints)
        ensure_index(self.services.store, "namespace", by_namespace)
        ensure_index(self.pods.store, "namespace", by_namespace)
        self.services.add_handlers(
            on_add=self.enqueue_obj,
            on_update=lambda _old, new: self.enqueue_obj(new),
            on_delete=self.enqueue_obj,
        )
        self.pods.add_handlers(
            on_add=self._pod_changed,
            on_update=self._pod_updated,
            on_delete=self._pod_changed,
        )
        # An Endpoints object changed or deleted by someone else is repaired.
        self.endpoints.add_handlers(
            on_update=lambda _old, new: self._endpoints_changed(new),
            on_delete=self._endpoints_changed,
        )

    # ---- handlers ----------------------------------------------------------------------------

    def _services_for(self, pod: core_pb2.Pod) -> list[str]:
        keys = []
        for svc in self.services.store.by_index("namespace", pod.metadata.namespace):
            if svc.spec.selector and selector_matches(svc.spec.selector, pod.metadata.labels):
                keys.append(meta_namespace_key(svc))
        return keys

    def _pod_changed(self, pod: core_pb2.Pod) -> None:
        for key in self._services_for(pod):
            self.enqueue(key)

    def _pod_updated(self, old: core_pb2.Pod, new: core_pb2.Pod) -> None:
        keys = set(self._services_for(new))
        if dict(old.metadata.labels) != dict(new.metadata.labels):
            keys.update(self._services_for(old))
        for key in keys:
            self.enqueue(key)

    def _endpoints_changed(self, ep: core_pb2.Endpoints) -> None:
        if meta_namespace_key(ep) in self.services.store:
            self.enqueue_obj(ep)

    # ---- sync --------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        namespace, name = split_key(key)
        service = self.services.store.get(key)
        if service is None:
            await self._delete_endpoints(namespace, name)
            return
        if not service.spec.selector:
            return  # Endpoints of a selector-less Service are managed by hand
        pods = [
            p
            for p in self.pods.store.by_index("namespace", namespace)
            if selector_matches(service.spec.selector, p.metadata.labels)
        ]
        subsets = compute_subsets(service, pods)
        labels = dict(service.metadata.labels)
        if service.spec.cluster_ip == "None":
            labels[HEADLESS_LABEL] = ""
        current = self.endpoints.store.get(key)
        if current is None:
            ep = core_pb2.Endpoints(api_version="v1", kind="Endpoints")
            ep.metadata.name = name
            ep.metadata.namespace = namespace
            ep.metadata.labels.update(labels)
            ep.subsets.extend(subsets)
            try:
                with self._traced(key, service, pods, [], subsets):
                    await self.client.create(ep)
            except errors.AlreadyExists:
                # Our cache is behind: retry once the informer has caught up.
                raise errors.Conflict(f'endpoints "{name}" already exists') from None
            log.info(
                "endpoints created",
                extra={"service": key, "addresses": _count(subsets)},
            )
            return
        if list(current.subsets) == subsets and dict(current.metadata.labels) == labels:
            return
        ep = core_pb2.Endpoints()
        ep.CopyFrom(current)
        ep.metadata.labels.clear()
        ep.metadata.labels.update(labels)
        del ep.subsets[:]
        ep.subsets.extend(subsets)
        with self._traced(key, service, pods, list(current.subsets), subsets):
            await self.client.update(ep)  # carries the cached resourceVersion: Conflict if stale
        log.info("endpoints updated", extra={"service": key, "addresses": _count(subsets)})

    def _traced(
        self,
        key: str,
        service: core_pb2.Service,
        pods: list[core_pb2.Pod],
        before: list[core_pb2.EndpointSubset],
        after: list[core_pb2.EndpointSubset],
    ) -> AbstractContextManager[object]:
        """The write's span: caused by the pods whose entries changed (the newest write
        among them the parent, the others links), else by the Service."""
        old, new = _entries(before), _entries(after)
        changed = {uid for uid, _ in old ^ new}
        causes = sorted(
            (p for p in pods if p.metadata.uid in changed and tracecontext.of_object(p)),
            key=lambda p: int(p.metadata.resource_version or 0),
            reverse=True,
        )
        parent: object = causes[0] if causes else service
        ready = sum(len(s.addresses) for s in after)
        moved = sorted(f"{ip} {'ready' if ok else 'not ready'}" for _, (ip, ok) in new - old)
        gone = sorted({ip for _, (ip, _ok) in old - new} - {ip for _, (ip, _ok) in new})
        why = ", ".join([*moved, *(f"{ip} removed" for ip in gone)])
        if not why:
            why = "no pod has an address yet" if not new else "the same addresses"
        return tracing.step(
            "UpdateEndpoints",
            parent=parent,
            links=causes[1:],
            component=COMPONENT,
            obj=f"endpoints/{key}",
            why=f"{why}: {ready} ready address(es) behind {service.metadata.name}",
        )

    async def _delete_endpoints(self, namespace: str, name: str) -> None:
        if f"{namespace}/{name}" not in self.endpoints.store:
            return
        try:
            await self.client.delete(core_pb2.Endpoints, name, namespace)
        except errors.NotFound:
            return
        log.info("endpoints deleted", extra={"service": f"{namespace}/{name}"})


def _entries(subsets: list[core_pb2.EndpointSubset]) -> set[tuple[str, tuple[str, bool]]]:
    """(pod uid, (ip, ready)) of every address, for what changed between two versions."""
    out: set[tuple[str, tuple[str, bool]]] = set()
    for subset in subsets:
        for ready, addresses in ((True, subset.addresses), (False, subset.not_ready_addresses)):
            out.update((a.target_ref.uid, (a.ip, ready)) for a in addresses)
    return out


def _count(subsets: list[core_pb2.EndpointSubset]) -> int:
    return sum(len(s.addresses) for s in subsets)
