"""The ReplicaSet controller: keep exactly `spec.replicas` pods (Kubernetes' replica_set.go).

A ReplicaSet owns the active pods that carry its controller reference. Each
sync of a ReplicaSet key:

1. reads the ReplicaSet and the pods of its namespace from the informer caches;
2. claims its pods (claim.py's ControllerRefManager): pods it controls whose
   labels still match stay; pods it controls that no longer match are
   released (their ownerReference removed); orphans that match the selector
   are adopted (an ownerReference added) -- so a pod created by hand with the
   right labels counts, and relabelling a pod takes it out of service;
3. if the expectations of its previous sync have been observed (see
   controller_utils.ControllerExpectations), compares active pods with the
   desired count and takes one step:

       diff = active - desired
       diff < 0  create -diff pods, in slow-start batches 1, 2, 4, 8, ...
       diff > 0  delete the diff cheapest pods (controller_utils.pods_to_delete)

4. writes the status (replicas, fullyLabeledReplicas, readyReplicas,
   availableReplicas, observedGeneration) -- only if it changed, so a quiet
   cluster causes no writes.

Slow start, worked example: 20 pods to create while a quota (or a broken
admission hook) rejects every create. Batches of 1, 2, 4, 8, 5: the first
create fails, the batch stops there, and the sync reports one error after a
single request instead of twenty. When creates succeed the batches grow
exponentially, so a healthy scale-up still needs only log2(N) round trips.

Status after deletions: the status is computed from the pods that remain
after this sync's own deletions. The deployment controller reads
`availableReplicas` to decide how many more old pods it may remove; a
status still counting pods this sync just deleted would let it remove too
many, and the rollout would dip below its availability floor.

Availability: a pod is available once Ready for minReadySeconds. No event
marks that moment, so when some pods are ready but not yet available the
key is requeued after minReadySeconds to count them again.

Events: SuccessfulCreate "Created pod: web-abc12", SuccessfulDelete
"Deleted pod: web-abc12", FailedCreate / FailedDelete with the error.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from apimachinery import errors, labels, tracing
from apimachinery.cache import meta_namespace_key
from controllers import register
from controllers.base import Controller, ControllerContext
from controllers.claim import ControllerRefManager
from controllers.controller_utils import (
    CONTROLLER_UID_INDEX,
    NAMESPACE_INDEX,
    ControllerExpectations,
    controller_ref,
    controller_uid_index,
    ensure_index,
    is_pod_active,
    is_pod_available,
    is_pod_ready,
    namespace_index,
    owner_reference,
    pod_key,
    pods_to_delete,
    resolve_controller_ref,
    selecting,
)
from protos import apps_pb2, core_pb2

log = logging.getLogger(__name__)

COMPONENT = "replicaset-controller"  # its spans' component (apimachinery/tracing.py)

BURST_REPLICAS = 500  # at most this many creates or deletes per sync (Kubernetes' burstReplicas)
SLOW_START_INITIAL_BATCH = 1


async def slow_start_batch(
    count: int, initial: int, fn: Callable[[], Awaitable[None]]
) -> tuple[int, BaseException | None]:
    """Call `fn` `count` times in growing concurrent batches; stop at the first failing batch.

    Returns (successes, first error). Calls not made because an earlier batch
    failed count as neither.
    """
    remaining = count
    successes = 0
    batch = min(remaining, initial)
    while batch > 0:
        results = await asyncio.gather(*(fn() for _ in range(batch)), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        successes += batch - len(failures)
        if failures:
            return successes, failures[0]
        remaining -= batch
        batch = min(2 * batch, remaining)
    return successes, None


def calculate_status(
    rs: apps_pb2.ReplicaSet, active: list[core_pb2.Pod], now: float
) -> apps_pb2.ReplicaSetStatus:
    """calculateStatus: the counts a ReplicaSet reports for its active pods."""
    template_labels = dict(rs.spec.template.metadata.labels)
    status = apps_pb2.ReplicaSetStatus()
    status.CopyFrom(rs.status)
    status.replicas = len(active)
    status.fully_labeled_replicas = sum(
        1 for p in active if all(p.metadata.labels.get(k) == v for k, v in template_labels.items())
    )
    status.ready_replicas = sum(1 for p in active if is_pod_ready(p))
    status.available_replicas = sum(
        1 for p in active if is_pod_available(p, rs.spec.min_ready_seconds, now)
    )
    status.observed_generation = rs.metadata.generation
    return status


@register("replicaset")
class ReplicaSetController(Controller):
    """Keeps each ReplicaSet's count of active pods at spec.replicas, one step per sync."""

    name = "replicaset-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.rs_informer = ctx.factory.informer(apps_pb2.ReplicaSet)
        self.pod_informer = ctx.factory.informer(core_pb2.Pod)
        self.rs_store = self.rs_informer.store
        self.pod_store = self.pod_informer.store
        ensure_index(self.rs_store, NAMESPACE_INDEX, namespace_index)
        ensure_index(self.pod_store, NAMESPACE_INDEX, namespace_index)
        ensure_index(self.pod_store, CONTROLLER_UID_INDEX, controller_uid_index)
        self.expectations = ControllerExpectations()
        self.rs_informer.add_handlers(
            on_add=self.enqueue_obj,
            on_update=self._update_rs,
            on_delete=self._delete_rs,
        )
        self.pod_informer.add_handlers(
            on_add=self._add_pod, on_update=self._update_pod, on_delete=self._delete_pod
        )

    # ---- handlers: observe expectations, enqueue the owning ReplicaSet ---------------------

    def _update_rs(self, old: apps_pb2.ReplicaSet, new: apps_pb2.ReplicaSet) -> None:
        self.enqueue_obj(new)

    def _delete_rs(self, rs: apps_pb2.ReplicaSet) -> None:
        self.expectations.forget(meta_namespace_key(rs))

    def _owner(self, pod: core_pb2.Pod) -> apps_pb2.ReplicaSet | None:
        return resolve_controller_ref(self.rs_store, pod, "ReplicaSet")

    def _enqueue_matching(self, pod: core_pb2.Pod) -> None:
        """An orphan appeared or changed: every ReplicaSet that could adopt it takes a look."""
        for rs in selecting(self.rs_store, pod):
            self.enqueue_obj(rs)

    def _add_pod(self, pod: core_pb2.Pod) -> None:
        if pod.metadata.HasField("deletion_timestamp"):
            self._delete_pod(pod)  # first seen already terminating (e.g. after a restart)
            return
        if controller_ref(pod) is None:
            self._enqueue_matching(pod)
            return
        rs = self._owner(pod)
        if rs is not None:
            key = meta_namespace_key(rs)
            self.expectations.creation_observed(key)
            self.enqueue(key)

    def _update_pod(self, old: core_pb2.Pod, new: core_pb2.Pod) -> None:
        if old.metadata.resource_version == new.metadata.resource_version:
            return  # periodic resync: nothing changed
        labels_changed = dict(old.metadata.labels) != dict(new.metadata.labels)
        if new.metadata.HasField("deletion_timestamp"):
            self._delete_pod(new)
            if labels_changed:
                self._delete_pod(old)
            return
        old_rs, new_rs = self._owner(old), self._owner(new)
        if old_rs is not None and (new_rs is None or old_rs.metadata.uid != new_rs.metadata.uid):
            self.enqueue_obj(old_rs)
        if new_rs is not None:
            self.enqueue_obj(new_rs)
            min_ready = new_rs.spec.min_ready_seconds
            if min_ready > 0 and not is_pod_ready(old) and is_pod_ready(new):
                self.queue.add_after(meta_namespace_key(new_rs), min_ready + 0.5)
        elif controller_ref(new) is None and (labels_changed or controller_ref(old) is not None):
            self._enqueue_matching(new)

    def _delete_pod(self, pod: core_pb2.Pod) -> None:
        rs = self._owner(pod)
        if rs is None:
            return
        key = meta_namespace_key(rs)
        self.expectations.deletion_observed(key, pod_key(pod))
        self.enqueue(key)

    # ---- sync ------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        started = time.monotonic()
        rs = self.rs_store.get(key)
        if rs is None:
            self.expectations.forget(key)
            return
        needs_sync = self.expectations.satisfied(key) and not rs.metadata.HasField(
            "deletion_timestamp"
        )
        pods = await self._claim_pods(rs)
        active = [p for p in pods if is_pod_active(p)]
        deleted: set[str] = set()
        failure: BaseException | None = None
        if needs_sync:
            deleted, failure = await self._manage_replicas(key, rs, active)
        remaining = [p for p in active if pod_key(p) not in deleted]
        now = time.time()
        status = calculate_status(rs, remaining, now)
        await self._update_status(rs, status)
        min_ready = rs.spec.min_ready_seconds
        if min_ready > 0 and status.ready_replicas != status.available_replicas:
            self.queue.add_after(key, min_ready)
        log.debug(
            "synced replicaset",
            extra={
                "key": key,
                "active": len(active),
                "desired": rs.spec.replicas,
                "took": round(time.monotonic() - started, 4),
            },
        )
        if failure is not None:
            raise failure

    async def _claim_pods(self, rs: apps_pb2.ReplicaSet) -> list[core_pb2.Pod]:
        """ClaimPods: owned matching pods, after adopting matching orphans and releasing others."""
        manager: ControllerRefManager[core_pb2.Pod] = ControllerRefManager(
            self.client, rs, labels.from_label_selector(rs.spec.selector)
        )
        return await manager.claim(self.pod_store.by_index(NAMESPACE_INDEX, rs.metadata.namespace))

    async def _manage_replicas(
        self, key: str, rs: apps_pb2.ReplicaSet, active: list[core_pb2.Pod]
    ) -> tuple[set[str], BaseException | None]:
        """One step toward spec.replicas; returns (keys of pods deleted, first error)."""
        desired = rs.spec.replicas
        diff = len(active) - desired
        if diff < 0:
            count = min(-diff, BURST_REPLICAS)
            self.expectations.expect_creations(key, count)
            log.info(
                "creating pods",
                extra={"replicaset": key, "count": count, "active": len(active), "want": desired},
            )
            why = f"{rs.metadata.name} has {len(active)} active pods, wants {desired}"
            successes, error = await slow_start_batch(
                count, SLOW_START_INITIAL_BATCH, lambda: self._create_pod(rs, why)
            )
            for _ in range(count - successes):
                self.expectations.creation_observed(key)  # no event will come for these
            return set(), error
        if diff > 0:
            count = min(diff, BURST_REPLICAS)
            related = self._related_pods(rs)
            victims = pods_to_delete(active, related, count)
            self.expectations.expect_deletions(key, [pod_key(p) for p in victims])
            log.info(
                "deleting pods",
                extra={"replicaset": key, "count": count, "active": len(active), "want": desired},
            )
            results = await asyncio.gather(
                *(self._delete_one(rs, p) for p in victims), return_exceptions=True
            )
            deleted: set[str] = set()
            first: BaseException | None = None
            for pod, result in zip(victims, results, strict=True):
                if isinstance(result, BaseException):
                    self.expectations.deletion_observed(key, pod_key(pod))
                    if not isinstance(result, errors.NotFound):
                        first = first or result
                        continue
                deleted.add(pod_key(pod))
            return deleted, first
        return set(), None

    def _related_pods(self, rs: apps_pb2.ReplicaSet) -> list[core_pb2.Pod]:
        """Pods of this ReplicaSet and of its siblings (same controlling Deployment)."""
        owner = controller_ref(rs)
        siblings = [rs]
        if owner is not None:
            siblings = [
                other
                for other in self.rs_store.by_index(NAMESPACE_INDEX, rs.metadata.namespace)
                if (ref := controller_ref(other)) is not None and ref.uid == owner.uid
            ] or [rs]
        pods: list[core_pb2.Pod] = []
        for sibling in siblings:
            pods.extend(self.pod_store.by_index(CONTROLLER_UID_INDEX, sibling.metadata.uid))
        return pods

    async def _create_pod(self, rs: apps_pb2.ReplicaSet, why: str = "") -> None:
        template = rs.spec.template
        pod = core_pb2.Pod(api_version="v1", kind="Pod")
        pod.metadata.generate_name = f"{rs.metadata.name}-"
        pod.metadata.namespace = rs.metadata.namespace
        pod.metadata.labels.update(template.metadata.labels)
        pod.metadata.annotations.update(template.metadata.annotations)
        pod.metadata.owner_references.append(owner_reference(rs))
        pod.spec.CopyFrom(template.spec)
        try:
            with tracing.step("CreatePod", parent=rs, component=COMPONENT, why=why) as span:
                created = await self.client.create(pod)
                if span is not None:  # the server chose the name
                    span.set_attribute(tracing.OBJECT, f"pods/{pod_key(created)}")
        except errors.StatusError as err:
            self.recorder.event(rs, "Warning", "FailedCreate", f"Error creating: {err.message}")
            raise
        self.recorder.event(
            rs, "Normal", "SuccessfulCreate", f"Created pod: {created.metadata.name}"
        )

    async def _delete_one(self, rs: apps_pb2.ReplicaSet, pod: core_pb2.Pod) -> None:
        try:
            with tracing.step(
                "DeletePod",
                parent=rs,
                component=COMPONENT,
                obj=f"pods/{pod_key(pod)}",
                why=f"{rs.metadata.name} wants {rs.spec.replicas} replicas: one too many",
            ):
                await self.client.delete(
                    core_pb2.Pod,
                    pod.metadata.name,
                    pod.metadata.namespace,
                    precondition_uid=pod.metadata.uid,
                )
        except errors.StatusError as err:
            if isinstance(err, errors.NotFound):
                raise  # already gone: counts as deleted, no event
            self.recorder.event(
                rs,
                "Warning",
                "FailedDelete",
                f"Error deleting: pod {pod.metadata.name}: {err.message}",
            )
            raise
        self.recorder.event(rs, "Normal", "SuccessfulDelete", f"Deleted pod: {pod.metadata.name}")

    async def _update_status(
        self, rs: apps_pb2.ReplicaSet, status: apps_pb2.ReplicaSetStatus
    ) -> None:
        """updateReplicaSetStatus: write only a changed status (conflicts requeue the key)."""
        if status == rs.status:
            return
        new = apps_pb2.ReplicaSet()
        new.CopyFrom(rs)
        new.status.CopyFrom(status)
        try:
            await self.client.update_status(new)
        except errors.NotFound:
            return
        log.debug(
            "replicaset status updated",
            extra={
                "replicaset": meta_namespace_key(rs),
                "replicas": status.replicas,
                "ready": status.ready_replicas,
                "available": status.available_replicas,
            },
        )
