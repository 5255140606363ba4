"""Where the kubelet learns what to run and about its own Node (config/apiserver.go).

Kubernetes' kubelet merges pods from several sources (static pod files, an
HTTP URL, the API server); tinykube has the one that matters, the API server:
an informer on pods with the field selector `spec.nodeName=<node>`, so the
server sends this kubelet only the pods bound to it -- the scheduler's Bind
sets spec.nodeName and the pod appears here as an ADDED (or MODIFIED) event.
Pods for other nodes never reach the kubelet at all.

    informer event          ->  pod workers
    add / update (new obj)      update_pod(pod)   sync, or terminate if deleting
    delete                      remove_pod(pod)   the object is gone: stop it if still running

The informer's relist diff (apimachinery/informer.py) means a kubelet that
loses its watch still sees every delete that happened meanwhile.

A second, tiny informer watches the kubelet's own Node (`metadata.name=
<node>`): that is how the kubelet sees the podCIDR the node IPAM controller
assigns, and the node's status as the control plane last left it.

A third watches every Service: containers get the service environment
variables of their namespace (kubelet/envvars.py), as Kubernetes' kubelet
keeps a Service lister for the same purpose.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from apimachinery.client import Client
from apimachinery.informer import Informer
from protos import core_pb2


class PodHandler(Protocol):
    """Where the pod source sends what it sees (the Kubelet, and through it the pod workers)."""

    def update_pod(self, pod: core_pb2.Pod) -> None: ...

    def remove_pod(self, pod: core_pb2.Pod) -> None: ...


class PodSource:
    """The API server pod source: pods bound to one node."""

    def __init__(self, client: Client, node_name: str, handler: PodHandler) -> None:
        self.node_name = node_name
        self.informer = Informer(client, core_pb2.Pod, field_selector=f"spec.nodeName={node_name}")
        self.informer.add_handlers(
            on_add=handler.update_pod,
            on_update=lambda old, new: handler.update_pod(new),
            on_delete=handler.remove_pod,
        )

    def pods(self) -> list[core_pb2.Pod]:
        return self.informer.store.list()

    def uids(self) -> set[str]:
        return {pod.metadata.uid for pod in self.informer.store.list()}

    def has_synced(self) -> bool:
        return self.informer.has_synced()

    async def run(self) -> None:
        await self.informer.run()


class ServiceSource:
    """Every Service, for the containers' service environment variables (kubelet/envvars.py)."""

    def __init__(self, client: Client) -> None:
        self.informer = Informer(client, core_pb2.Service)

    def in_namespace(self, namespace: str) -> list[core_pb2.Service]:
        return [s for s in self.informer.store.list() if s.metadata.namespace == namespace]

    async def run(self) -> None:
        await self.informer.run()


class NodeSource:
    """The kubelet's own Node, as the API server has it."""

    def __init__(
        self, client: Client, node_name: str, on_change: Callable[[core_pb2.Node], None]
    ) -> None:
        self.node_name = node_name
        self.informer = Informer(client, core_pb2.Node, field_selector=f"metadata.name={node_name}")
        self.informer.add_handlers(
            on_add=on_change, on_update=lambda old, new: on_change(new), on_delete=None
        )

    def node(self) -> core_pb2.Node | None:
        return self.informer.store.get(self.node_name)

    async def run(self) -> None:
        await self.informer.run()
