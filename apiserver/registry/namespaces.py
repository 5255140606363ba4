"""Namespaces in the API server: the Namespace strategy.

One piece of Kubernetes lives here, and two moved out on purpose: the
NamespaceLifecycle admission plugin (no new objects in a missing or
terminating namespace) is in apiserver/admission/namespacelifecycle.py, and
the namespace controller is in controllers/namespace.py.

The Namespace strategy (pkg/registry/core/namespace): the built-in
namespaces exist from the start and the first three can not be deleted;
deleting any other marks it `Terminating`, which stops new objects from
arriving. What then empties it is not the server's business: Kubernetes'
namespace controller, in the controller manager, deletes everything inside
(pods gracefully, so kubelets get to stop them) and then "finalizes" the
namespace. tinykube's is controllers/namespace.py. The handshake between the
two is Kubernetes' own:

* on create the strategy puts the `kubernetes` finalizer in spec.finalizers
  (the strategy, not defaulting: the value must be allowed to go away again);
* an Update never changes spec.finalizers, except that of a terminating
  namespace it may remove entries. Kubernetes has a `finalize` subresource
  for that; tinykube's API has no subresource verbs, so an Update of a
  terminating namespace plays its part, and it can only take away;
* once spec.finalizers and metadata.finalizers are both empty the generic
  store removes the namespace, after `before_remove` has checked that
  storage holds nothing under it any more (Conflict otherwise: something was
  created meanwhile, an Event say, and the controller goes round again).
  Kubernetes trusts its controller here; the check is cheap insurance
  against objects surviving their namespace and reappearing in a new
  namespace of the same name.

So with no controller manager running, a deleted namespace stays
Terminating, exactly as in Kubernetes.

    delete ns scratch   -> Terminating, spec.finalizers [kubernetes]
    controller          -> deletes scratch's configmaps, pods (gracefully), ...
                        -> all gone: update with spec.finalizers []
    store               -> both finalizer lists empty, nothing left: removed
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from apimachinery import errors, scheme
from apimachinery.scheme import KindInfo
from apiserver.registry.strategy import ObjectRegistry, RESTStrategy
from apiserver.storage.interface import Storage

log = logging.getLogger(__name__)

BUILTIN = ("default", "kube-system", "kube-public", "kube-node-lease")
PROTECTED = ("default", "kube-system", "kube-public")
FINALIZER = "kubernetes"  # Kubernetes' FinalizerKubernetes: the namespace controller's
TERMINATING = "Terminating"


class NamespaceStrategy(RESTStrategy):
    """Namespaces: built-in ones, the `kubernetes` finalizer, Terminating, removal when empty."""

    def __init__(self, storage: Storage) -> None:
        super().__init__("Namespace", reset_status_on_create=True)
        self.storage = storage
        self.info = scheme.for_resource("namespaces")

    async def start(self, registry: ObjectRegistry) -> None:
        for name in BUILTIN:
            ns = scheme.new_object(self.info)
            ns.metadata.name = name
            with contextlib.suppress(errors.AlreadyExists):
                await registry.create(ns)

    def prepare_for_create(self, info: KindInfo, obj: Any) -> None:
        super().prepare_for_create(info, obj)
        if FINALIZER not in obj.spec.finalizers:
            obj.spec.finalizers.append(FINALIZER)

    def prepare_for_update(self, info: KindInfo, new: Any, old: Any) -> None:
        super().prepare_for_update(info, new, old)
        kept = list(old.spec.finalizers)
        if old.metadata.HasField("deletion_timestamp"):
            wanted = set(new.spec.finalizers)
            kept = [f for f in kept if f in wanted]  # finalize: entries may only go
        del new.spec.finalizers[:]
        new.spec.finalizers.extend(kept)

    async def before_delete(self, obj: Any) -> None:
        name = obj.metadata.name
        if name in PROTECTED:
            raise errors.Forbidden(
                f'namespaces "{name}" is forbidden: this namespace may not be deleted'
            )

    def mark_deleting(self, obj: Any) -> None:
        obj.status.phase = TERMINATING

    def finalized(self, obj: Any) -> bool:
        return not obj.metadata.finalizers and not obj.spec.finalizers

    async def before_remove(self, obj: Any) -> None:
        name = obj.metadata.name
        left = await self.contents(name)
        if left:
            raise errors.Conflict.for_object(
                self.info.full_resource,
                name,
                f"the namespace still holds {left} objects; they must be deleted first",
            )
        log.info("namespace removed", extra={"namespace": name})

    async def contents(self, namespace: str) -> int:
        """How many objects storage holds in `namespace`, of every namespaced kind."""
        count = 0
        for info in scheme.KINDS:
            if info.namespaced:
                kvs, _ = await self.storage.list(scheme.prefix_key(info, namespace))
                count += len(kvs)
        return count
