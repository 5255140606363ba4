"""The Deployment controller (Kubernetes' deployment_controller.go).

A Deployment does not manage pods; it manages ReplicaSets -- one per pod
template it has had -- and lets the ReplicaSet controller manage pods. A
rollout is a sequence of resizes of those sets (rolling.py, recreate.py);
a rollback is a template change like any other (history.py).

Informers: deployments, replicasets, pods (all shared with the other
controllers). Handlers only enqueue the affected Deployment's key:

    Deployment added/changed/deleted      that Deployment
    ReplicaSet added/changed/deleted      its controlling Deployment; an orphan
                                          ReplicaSet: every Deployment whose
                                          selector matches it (one may adopt it)
    Pod terminating or deleted            the Deployment of the pod's set
                                          (Recreate waits for old pods to go, and
                                          the rolling update counts surplus pods)

`sync(key)`, as syncDeployment:

    1. read the Deployment from the cache (gone: nothing to do)
    2. claim its ReplicaSets: controlled ones that still match, adopt matching
       orphans, release controlled ones that no longer match
    3. being deleted       -> write the status only
    4. paused conditions   -> Progressing=Unknown DeploymentPaused / Resumed
    5. paused or a scaling event -> sync.sync_paused: resize, never roll
    6. otherwise the strategy: Recreate or RollingUpdate

Every write uses the resourceVersion the cache showed; if the cache was
stale the server answers Conflict and the key is retried with a fresh view.
That is what keeps two syncs of a stale view from both scaling the same set.
"""

from __future__ import annotations

import logging

import controllers.deployment.progress as progress
import controllers.deployment.recreate as recreate
import controllers.deployment.rolling as rolling
import controllers.deployment.sync as sync
from apimachinery import labels
from apimachinery.cache import meta_namespace_key
from controllers import register
from controllers.base import Controller, ControllerContext
from controllers.claim import ControllerRefManager
from controllers.controller_utils import (
    CONTROLLER_UID_INDEX,
    NAMESPACE_INDEX,
    HasMetadata,
    controller_ref,
    controller_uid_index,
    ensure_index,
    is_pod_active,
    namespace_index,
    resolve_controller_ref,
    selecting,
)
from controllers.deployment.util import RECREATE
from protos import apps_pb2, core_pb2

log = logging.getLogger(__name__)


@register("deployment")
class DeploymentController(Controller):
    """Rolls each Deployment's pod template out through its ReplicaSets, one step per sync."""

    name = "deployment-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.d_informer = ctx.factory.informer(apps_pb2.Deployment)
        self.rs_informer = ctx.factory.informer(apps_pb2.ReplicaSet)
        self.pod_informer = ctx.factory.informer(core_pb2.Pod)
        self.d_store = self.d_informer.store
        self.rs_store = self.rs_informer.store
        self.pod_store = self.pod_informer.store
        ensure_index(self.d_store, NAMESPACE_INDEX, namespace_index)
        ensure_index(self.rs_store, NAMESPACE_INDEX, namespace_index)
        ensure_index(self.rs_store, CONTROLLER_UID_INDEX, controller_uid_index)
        ensure_index(self.pod_store, CONTROLLER_UID_INDEX, controller_uid_index)
        self.d_informer.add_handlers(
            on_add=self.enqueue_obj,
            on_update=lambda old, new: self.enqueue_obj(new),
            on_delete=self.enqueue_obj,
        )
        self.rs_informer.add_handlers(
            on_add=self._add_rs, on_update=self._update_rs, on_delete=self._delete_rs
        )
        self.pod_informer.add_handlers(on_update=self._update_pod, on_delete=self._delete_pod)

    # ---- handlers --------------------------------------------------------------------------

    def _deployment_for(self, obj: HasMetadata) -> apps_pb2.Deployment | None:
        return resolve_controller_ref(self.d_store, obj, "Deployment")

    def _enqueue_matching(self, rs: apps_pb2.ReplicaSet) -> None:
        for d in selecting(self.d_store, rs):
            self.enqueue_obj(d)

    def _add_rs(self, rs: apps_pb2.ReplicaSet) -> None:
        d = self._deployment_for(rs)
        if d is not None:
            self.enqueue_obj(d)
        elif controller_ref(rs) is None:
            self._enqueue_matching(rs)

    def _update_rs(self, old: apps_pb2.ReplicaSet, new: apps_pb2.ReplicaSet) -> None:
        if old.metadata.resource_version == new.metadata.resource_version:
            return
        old_d, new_d = self._deployment_for(old), self._deployment_for(new)
        if old_d is not None and (new_d is None or old_d.metadata.uid != new_d.metadata.uid):
            self.enqueue_obj(old_d)
        if new_d is not None:
            self.enqueue_obj(new_d)
        elif controller_ref(new) is None:
            self._enqueue_matching(new)

    def _delete_rs(self, rs: apps_pb2.ReplicaSet) -> None:
        d = self._deployment_for(rs)
        if d is not None:
            self.enqueue_obj(d)

    def _deployment_of_pod(self, pod: core_pb2.Pod) -> apps_pb2.Deployment | None:
        ref = controller_ref(pod)
        if ref is None or ref.kind != "ReplicaSet":
            return None
        rs = self.rs_store.get(f"{pod.metadata.namespace}/{ref.name}")
        if rs is None or rs.metadata.uid != ref.uid:
            return None
        return self._deployment_for(rs)

    def _update_pod(self, old: core_pb2.Pod, new: core_pb2.Pod) -> None:
        if is_pod_active(old) and not is_pod_active(new):
            d = self._deployment_of_pod(new)
            if d is not None:
                self.enqueue_obj(d)

    def _delete_pod(self, pod: core_pb2.Pod) -> None:
        d = self._deployment_of_pod(pod)
        if d is not None:
            self.enqueue_obj(d)

    # ---- what the strategies read ----------------------------------------------------------

    def pods_of(self, rs: apps_pb2.ReplicaSet) -> list[core_pb2.Pod]:
        """Every cached pod the set controls (terminating ones included)."""
        return self.pod_store.by_index(CONTROLLER_UID_INDEX, rs.metadata.uid)

    def active_pod_count(self, rs: apps_pb2.ReplicaSet) -> int:
        return sum(1 for p in self.pods_of(rs) if is_pod_active(p))

    def enqueue_after(self, d: apps_pb2.Deployment, delay: float) -> None:
        self.queue.add_after(meta_namespace_key(d), delay)

    # ---- sync ------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        cached = self.d_store.get(key)
        if cached is None:
            log.debug("deployment gone", extra={"key": key})
            return
        d = apps_pb2.Deployment()
        d.CopyFrom(cached)
        selector = labels.from_label_selector(d.spec.selector)
        if selector.empty():
            self.recorder.event(
                d, "Warning", "SelectingAll", "This deployment is selecting all pods."
            )
            return
        rss = await self.claim_replica_sets(d, selector)
        if d.metadata.HasField("deletion_timestamp"):
            new_rs, old_rss = await sync.get_all_replica_sets_and_sync_revision(
                self, d, rss, create=False
            )
            all_rss = [rs for rs in [new_rs, *old_rss] if rs is not None]
            await sync.sync_deployment_status(self, all_rss, new_rs, d)
            return
        await progress.check_paused_conditions(self, d)
        if d.spec.paused or sync.is_scaling_event(d, rss):
            await sync.sync_paused(self, d, rss)
            return
        if d.spec.strategy.type == RECREATE:
            await recreate.rollout_recreate(self, d, rss)
        else:
            await rolling.rollout_rolling(self, d, rss)

    async def claim_replica_sets(
        self, d: apps_pb2.Deployment, selector: labels.Selector
    ) -> list[apps_pb2.ReplicaSet]:
        """ClaimReplicaSets: controlled + adopted sets, minus those released (claim.py)."""
        manager: ControllerRefManager[apps_pb2.ReplicaSet] = ControllerRefManager(
            self.client, d, selector
        )
        return await manager.claim(self.rs_store.by_index(NAMESPACE_INDEX, d.metadata.namespace))
