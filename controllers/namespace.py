"""The namespace controller: empties a deleted namespace, then lets the server remove it.

Kubernetes' pkg/controller/namespace (namespace_controller.go and
deletion/namespaced_resources_deleter.go), in kube-controller-manager.
Deleting a namespace in the API server only marks it: deletionTimestamp
set, phase Terminating, no new content admitted. The namespace carries the
`kubernetes` finalizer in spec.finalizers (the server put it there on
create), and while it does the server will not remove it. This controller
is what that finalizer waits for:

1. a namespace is marked and still holds `kubernetes` in spec.finalizers;
2. for every namespaced resource the server offers (asked by discovery,
   ServerResources, as Kubernetes asks its discovery API), list what is in
   the namespace and delete it through the client, like any other client.
   Pods are deleted without a grace period of our own, so each gets its
   terminationGracePeriodSeconds: a pod on a node stays (Terminating) until
   its kubelet has stopped it and deleted it for good;
3. while anything is left (a pod its kubelet is stopping, an object with
   finalizers of its own), come back later: when a pod of the namespace is
   deleted (the pod informer says so), or after `recheck_seconds` at the
   latest (Kubernetes requeues after an estimate of the longest grace period);
4. once nothing is left, finalize: an Update of the namespace without
   `kubernetes` in spec.finalizers (Kubernetes' `finalize` subresource; see
   apiserver/registry/namespaces.py). With no finalizer of any kind left, the
   server removes the namespace in that same write, after checking that
   storage holds nothing under it; if something slipped in meanwhile (an
   Event may still be created in a terminating namespace) it answers
   Conflict and this controller goes round again.

Level-triggered: the namespace's name is the key; `sync` re-reads the
namespace from the cache and the contents from the server every time, and
acts only on what it sees. Nothing is remembered between syncs, so a
controller restarted halfway (or the whole control plane) simply finds the
terminating namespaces in its first list and carries on: deleting what is
already being deleted is skipped, a finalizer already gone is not ours to
wait for.

    delete ns scratch  (holds configmap cm, pod web on node1)
      sync: delete cm (gone), delete pod web (marked: grace 30 s) -> 1 left, wait
      kubelet on node1 stops web, deletes it with grace 0
      pod informer: web deleted in terminating scratch -> sync
      sync: nothing left -> update spec.finalizers [] -> the server removes scratch

Kubernetes also records the deletion's progress as namespace status
conditions (NamespaceContentRemaining, ...); tinykube's NamespaceStatus has
only a phase, so progress goes to the log.
"""

from __future__ import annotations

import contextlib
import logging

from apimachinery import errors
from controllers import register
from controllers.base import Controller, ControllerContext
from protos import core_pb2

log = logging.getLogger(__name__)

FINALIZER = "kubernetes"  # Kubernetes' FinalizerKubernetes, this controller's own
RECHECK_SECONDS = 2.0


def waiting_for_us(ns: core_pb2.Namespace) -> bool:
    """Marked for deletion and still held by our finalizer."""
    return ns.metadata.HasField("deletion_timestamp") and FINALIZER in ns.spec.finalizers


@register("namespace")
class NamespaceController(Controller):
    """Deletes a terminating namespace's contents, then removes its `kubernetes` finalizer."""

    name = "namespace-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        extra = ctx.options.extra.get("namespace_recheck_seconds", RECHECK_SECONDS)
        self.recheck_seconds = float(extra)
        self.namespaces = ctx.factory.informer(core_pb2.Namespace)
        self.namespaces.add_handlers(
            on_add=self._namespace_changed,
            on_update=lambda _old, new: self._namespace_changed(new),
        )
        # The usual wait is for kubelets to stop pods: each pod's deletion is news.
        self.pods = ctx.factory.informer(core_pb2.Pod)
        self.pods.add_handlers(on_delete=self._pod_deleted)

    # ---- handlers: only enqueue ------------------------------------------------------------

    def _namespace_changed(self, ns: core_pb2.Namespace) -> None:
        if waiting_for_us(ns):
            self.enqueue(ns.metadata.name)

    def _pod_deleted(self, pod: core_pb2.Pod) -> None:
        ns = self.namespaces.store.get(pod.metadata.namespace)
        if ns is not None and waiting_for_us(ns):
            self.enqueue(ns.metadata.name)

    # ---- sync ------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        ns = self.namespaces.store.get(key)
        if ns is None or not waiting_for_us(ns):
            return
        remaining = await self.delete_contents(key)
        if remaining:
            log.info(
                "namespace content remaining",
                extra={"namespace": key, "remaining": remaining},
            )
            self.queue.add_after(key, self.recheck_seconds)
            return
        await self.finalize(key)

    async def namespaced_resources(self) -> list[str]:
        """Every namespaced resource that can be listed and deleted, as `name.group`."""
        words = []
        for resource in await self.client.server_resources():
            if not resource.namespaced or not {"list", "delete"} <= set(resource.verbs):
                continue
            group = resource.group_version.rpartition("/")[0]
            words.append(f"{resource.name}.{group}" if group else resource.name)
        return words

    async def delete_contents(self, namespace: str) -> int:
        """Delete everything in the namespace; how many objects are still there."""
        remaining = 0
        for resource in await self.namespaced_resources():
            items, _ = await self.client.list(resource, namespace)
            for obj in items:
                if obj.metadata.HasField("deletion_timestamp"):
                    remaining += 1  # on its way out already
                    continue
                with contextlib.suppress(errors.NotFound):
                    gone = await self.client.delete(resource, obj.metadata.name, namespace)
                    if gone.metadata.HasField("deletion_timestamp"):
                        remaining += 1  # marked, not removed: graceful, or finalizers
        return remaining

    async def finalize(self, name: str) -> None:
        """Take our finalizer away; the server removes the namespace if none is left."""
        try:
            ns = await self.client.get(core_pb2.Namespace, name)  # the cache may lag
        except errors.NotFound:
            return
        if not waiting_for_us(ns):
            return
        kept = [f for f in ns.spec.finalizers if f != FINALIZER]
        del ns.spec.finalizers[:]
        ns.spec.finalizers.extend(kept)
        await self.client.update(ns)  # Conflict (changed, or not empty): synced again
        log.info("namespace finalized", extra={"namespace": name})
