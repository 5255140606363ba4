"""Taint-based eviction: pods leave nodes whose NoExecute taints they do not tolerate.

Kubernetes' taint_eviction_controller (the NoExecuteTaintManager). A NoExecute
taint on a node means "pods must not run here": the node lifecycle
controller puts `node.kubernetes.io/unreachable:NoExecute` on a node whose
kubelet stopped renewing its Lease, and this controller then evicts the
pods bound to it -- at once if a pod does not tolerate the taint, or after
the `tolerationSeconds` of its toleration. Every pod gets 300 s tolerations
for not-ready and unreachable by default (DefaultTolerationSeconds
admission), which is why a node that blips for a minute loses no pods, and
a node that is gone for good loses them after five minutes.

Per pod on a tainted node (queue keys are pod keys):

    for each NoExecute taint of the node:
        no toleration matches                       -> evict now
        matching tolerations, none with seconds     -> tolerated forever
        else                                        -> deadline = timeAdded + min(seconds)
    evict at the earliest deadline

Worked example: node2 goes unreachable, the taint's timeAdded is 10:00:00;
pod a tolerates it for 300 s (the default), pod b for 1 s, pod c has no
toleration for it (it was created with explicit tolerations):

    c: evicted at once
    b: deadline 10:00:01 -> queued with add_after(1 s) -> evicted at 10:00:01
    a: deadline 10:05:00 -> queued; if the node comes back at 10:02 the
       taint is removed, the node's update re-queues a, sync finds no taint
       and the pending eviction is cancelled (Event "Cancelling deletion")

The deadline counts from the taint's timeAdded, not from when this
controller noticed it, so a restarted controller does not restart the
clock. Timers are the work queue's `add_after`: the sync at the deadline
re-reads the pod and node from the caches and evicts only if the taint is
still there and still not tolerated longer -- cancelling a timer is just
finding nothing to do when it fires.

Eviction is a normal, graceful delete. A pod on an unreachable node keeps
its deletionTimestamp and stays Terminating until its kubelet comes back
and finishes the deletion (a node that is partitioned away may still be
running it, so the API must not pretend it stopped). Its ReplicaSet counts
a terminating pod as gone and creates a replacement, which the scheduler
places on a node without the taint: that is how a lost node's pods are
recreated elsewhere, and why a node that comes back does not run a pod
twice -- its kubelet sees the deletionTimestamp and stops the old one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from google.protobuf import timestamp_pb2

from apimachinery import errors
from apimachinery.cache import meta_namespace_key, split_key
from apimachinery.clock import Clock
from controllers.base import Controller, ControllerContext
from controllers.endpoints import ensure_index
from protos import core_pb2

log = logging.getLogger(__name__)

NODE_NAME_INDEX = "spec.nodeName"
NO_EXECUTE = "NoExecute"


def pod_node_name(pod: core_pb2.Pod) -> str:
    """The pods' NODE_NAME_INDEX: the node a pod is bound to."""
    return pod.spec.node_name


def tolerates(toleration: core_pb2.Toleration, taint: core_pb2.Taint) -> bool:
    """Kubernetes' Toleration.ToleratesTaint."""
    if toleration.effect and toleration.effect != taint.effect:
        return False
    if toleration.operator == "Exists":
        return not toleration.key or toleration.key == taint.key
    return toleration.key == taint.key and toleration.value == taint.value


def timestamp_seconds(ts: timestamp_pb2.Timestamp) -> float:
    """A protobuf Timestamp as seconds since the epoch."""
    return float(ts.seconds) + float(ts.nanos) / 1e9


def no_execute_taints(node: core_pb2.Node) -> list[core_pb2.Taint]:
    return [t for t in node.spec.taints if t.effect == NO_EXECUTE]


def eviction_deadline(
    pod: core_pb2.Pod, taints: list[core_pb2.Taint], start_of: Callable[[core_pb2.Taint], float]
) -> float | None:
    """When `pod` must go because of `taints` (0.0: now); None if it tolerates them forever.

    `start_of(taint)` is when the taint's clock started, on the caller's
    clock: its timeAdded, or when it was first observed if it has none.
    """
    deadline: float | None = None
    for taint in taints:
        matching = [t for t in pod.spec.tolerations if tolerates(t, taint)]
        if not matching:
            return 0.0
        limits = [t.toleration_seconds for t in matching if t.HasField("toleration_seconds")]
        if len(limits) < len(matching):
            continue  # one toleration without seconds tolerates this taint forever
        due = start_of(taint) + max(0, min(limits))
        deadline = due if deadline is None else min(deadline, due)
    return deadline


class TaintEvictionController(Controller):
    """Deletes pods from nodes with NoExecute taints they do not tolerate (long enough)."""

    name = "taint-eviction-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.nodes = ctx.factory.informer(core_pb2.Node)
        self.pods = ctx.factory.informer(core_pb2.Pod)
        ensure_index(self.pods.store, NODE_NAME_INDEX, pod_node_name)
        self.clock = Clock()
        self.scheduled: dict[str, float] = {}  # pod key -> eviction deadline (monotonic)
        self._first_seen: dict[str, dict[str, float]] = {}  # node -> taint -> start (monotonic)
        self.nodes.add_handlers(
            on_add=self._node_changed,
            on_update=lambda old, new: self._node_changed(new, old),
        )
        self.pods.add_handlers(
            on_add=self._pod_changed,
            on_update=lambda old, new: self._pod_changed(new),
            on_delete=self._pod_deleted,
        )

    def _node_changed(self, node: core_pb2.Node, old: core_pb2.Node | None = None) -> None:
        taints = [(t.key, t.value, t.effect) for t in no_execute_taints(node)]
        if old is not None:
            before = [(t.key, t.value, t.effect) for t in no_execute_taints(old)]
            if before == taints:
                return
        elif not taints:
            return
        for pod in self.pods.store.by_index(NODE_NAME_INDEX, node.metadata.name):
            self.enqueue_obj(pod)

    def _pod_changed(self, pod: core_pb2.Pod) -> None:
        if pod.spec.node_name:
            self.enqueue_obj(pod)

    def _pod_deleted(self, pod: core_pb2.Pod) -> None:
        self.scheduled.pop(meta_namespace_key(pod), None)

    async def sync(self, key: str) -> None:
        pod = self.pods.store.get(key)
        if pod is None or not pod.spec.node_name or pod.metadata.HasField("deletion_timestamp"):
            self.scheduled.pop(key, None)
            return
        node = self.nodes.store.get(pod.spec.node_name)
        taints = no_execute_taints(node) if node is not None else []
        if not taints:
            self._first_seen.pop(pod.spec.node_name, None)
            self._cancel(pod, key)
            return
        first_seen = self._first_seen.setdefault(pod.spec.node_name, {})
        deadline = eviction_deadline(pod, taints, lambda t: self._start_of(t, first_seen))
        if deadline is None:
            self._cancel(pod, key)
            return
        now = self.clock.monotonic()
        if deadline > now:
            if self.scheduled.get(key) != deadline:
                log.info(
                    "pod eviction scheduled",
                    extra={"pod": key, "node": pod.spec.node_name, "in": round(deadline - now, 3)},
                )
            self.scheduled[key] = deadline
            self.queue.add_after(key, deadline - now)
            return
        await self._evict(pod, key)

    def _start_of(self, taint: core_pb2.Taint, first_seen: dict[str, float]) -> float:
        """The taint's start on the monotonic clock, fixed when the taint is first seen.

        A taint's timeAdded is wall time; it is turned into a monotonic
        reading once ("added 12 s ago"), so a later wall-clock jump moves no
        deadline."""
        stamp = timestamp_seconds(taint.time_added) if taint.HasField("time_added") else None
        seen = f"{taint.key}:{taint.effect}:{stamp}"
        if seen not in first_seen:
            now = self.clock.monotonic()
            first_seen[seen] = now if stamp is None else self.clock.wall_to_monotonic(stamp)
        return first_seen[seen]

    def _cancel(self, pod: core_pb2.Pod, key: str) -> None:
        if self.scheduled.pop(key, None) is not None:
            self.recorder.event(
                pod, "Normal", "TaintManagerEviction", f"Cancelling deletion of Pod {key}"
            )
            log.info("pod eviction cancelled", extra={"pod": key})

    async def _evict(self, pod: core_pb2.Pod, key: str) -> None:
        self.scheduled.pop(key, None)
        self.recorder.event(
            pod, "Normal", "TaintManagerEviction", f"Marking for deletion Pod {key}"
        )
        namespace, name = split_key(key)
        log.info("evicting pod", extra={"pod": key, "node": pod.spec.node_name})
        try:
            await self.client.delete(
                core_pb2.Pod, name, namespace, precondition_uid=pod.metadata.uid
            )
        except (errors.NotFound, errors.Conflict):
            return  # already gone, or a new pod took the name
