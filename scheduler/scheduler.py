"""The scheduler: watch pending pods, place each on a node, bind, explain (kube-scheduler).

Everything it knows comes from informers (pods, nodes, services) and
everything it does goes through the client, so it runs the same inside the
API server process or as `tinykube scheduler --server ADDR`.

    pod informer ──► unassigned pods for "default-scheduler" ──► SchedulingQueue
               └──► assigned pods ──► Cache (NodeInfo totals)
    node informer ─► Cache; node added/changed ──► retry unschedulable pods

    loop: pop ─► snapshot ─► Filter/Score (schedule_one.Algorithm)
            ├─ fit:    assume pod on node in the Cache ─► bind in the background
            │            ok:   Event Scheduled "Successfully assigned default/web-x to node1"
            │            fail: forget the assumption, back off, retry
            └─ no fit: PodScheduled=False/Unschedulable + Event FailedScheduling
                       "0/3 nodes are available: 1 node(s) were unschedulable, 2 Insufficient cpu."
                       ─► unschedulable queue until a cluster event

One cycle at a time. The decision is synchronous code, so the cache cannot
change under it (snapshot.py). The Binding write is not: it runs as its own
task while the next pod is being scheduled, which is why the pod is
*assumed* on its node first: the next cycle must see the node's new load.
At most `max_binds_in_flight` Bindings are outstanding; beyond that the loop
waits, so a slow API server slows the scheduler instead of queueing
unbounded work.

Failure modes. A Binding refused because the pod is already bound, being
deleted, or gone is dropped silently (the informer will say what happened).
Any other failure puts the pod back with backoff. Restarting the scheduler
loses nothing: pending pods are still pending in the API server, and a
Binding is refused for a pod that already has a node, so no pod is placed
twice. Pods being deleted are never scheduled.

The placement record (record.py) travels in the Binding's annotations, so
the record lands in the same write as the decision. A pod whose creation was
traced gets a Bind span (apimachinery/tracing.py) from its cycle's start to
the Binding's write, the record's lines in its attributes; the Binding
carries the span onto the pod, where the kubelet continues.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Mapping, Sequence

from opentelemetry.trace import Span

from apimachinery import errors, tracecontext, tracing
from apimachinery.client import Client, retry_on_conflict
from apimachinery.events import EventRecorder
from apimachinery.factory import SharedInformerFactory
from protos import core_pb2
from scheduler import queue as q
from scheduler.plugins import DEFAULT_PLUGINS, new_framework
from scheduler.record import ANNOTATION, DEFAULT_LIMIT
from scheduler.schedule_one import Algorithm, FitError, ScheduleResult
from scheduler.snapshot import Cache, is_terminal
from scheduler.types import PodInfo

log = logging.getLogger(__name__)

DEFAULT_SCHEDULER_NAME = "default-scheduler"


def pod_ref(pod: core_pb2.Pod) -> core_pb2.Pod:
    """A small Pod carrying only what an Event's involvedObject needs."""
    ref = core_pb2.Pod(api_version="v1", kind="Pod")
    meta = pod.metadata
    ref.metadata.name = meta.name
    ref.metadata.namespace = meta.namespace
    ref.metadata.uid = meta.uid
    ref.metadata.resource_version = meta.resource_version
    return ref


def _scheduling_view(node: core_pb2.Node) -> tuple[object, ...]:
    """What about a Node can change a scheduling decision (not heartbeats)."""
    return (
        sorted(node.metadata.labels.items()),
        node.spec.unschedulable,
        [(t.key, t.value, t.effect) for t in node.spec.taints],
        sorted(node.status.allocatable.items()),
        sorted(node.status.capacity.items()),
        [(c.type, c.status) for c in node.status.conditions],
    )


class Scheduler:
    """kube-scheduler: feeds the queue and cache from informers, decides, binds, reports."""

    def __init__(
        self,
        client: Client,
        factory: SharedInformerFactory,
        *,
        scheduler_name: str = DEFAULT_SCHEDULER_NAME,
        percentage_of_nodes_to_score: int = 0,
        seed: int | None = None,
        initial_backoff: float = q.DEFAULT_INITIAL_BACKOFF,
        max_backoff: float = q.DEFAULT_MAX_BACKOFF,
        max_unschedulable_seconds: float = q.DEFAULT_MAX_UNSCHEDULABLE_SECONDS,
        max_binds_in_flight: int = 256,
        record_limit: int = DEFAULT_LIMIT,
        plugins: Sequence[str] = DEFAULT_PLUGINS,
        weights: Mapping[str, int] | None = None,
        events: bool = True,
    ) -> None:
        self.client = client
        self.factory = factory
        self.scheduler_name = scheduler_name
        self.max_binds_in_flight = max_binds_in_flight
        self.events = events
        self.cache = Cache()
        self.queue = q.SchedulingQueue(
            initial_backoff=initial_backoff,
            max_backoff=max_backoff,
            max_unschedulable_seconds=max_unschedulable_seconds,
        )
        self.pods = factory.informer(core_pb2.Pod)
        self.nodes = factory.informer(core_pb2.Node)
        self.services = factory.informer(core_pb2.Service)
        self.framework = new_framework(self.services.store.list, plugins, weights)
        self.algorithm = Algorithm(
            self.framework,
            scheduler_name=scheduler_name,
            percentage_of_nodes_to_score=percentage_of_nodes_to_score,
            rng=random.Random(seed),
            record_limit=record_limit,
        )
        self.recorder = EventRecorder(client, scheduler_name)
        tracing.configure(client, "kube-scheduler")  # Bind spans go to the API server
        self.scheduled = 0  # pods bound by this scheduler (benchmarks, tests)
        self.cycles = 0  # scheduling decisions taken, and the time spent taking them
        self.cycle_seconds = 0.0
        self._binds: set[asyncio.Task[None]] = set()
        self._slots: asyncio.Semaphore | None = None
        self.pods.add_handlers(self._on_pod_add, self._on_pod_update, self._on_pod_delete)
        self.nodes.add_handlers(self._on_node_add, self._on_node_update, self._on_node_delete)

    # ---- informer handlers: only cache and queue bookkeeping ---------------------------------

    def _responsible(self, pod: core_pb2.Pod) -> bool:
        return (pod.spec.scheduler_name or DEFAULT_SCHEDULER_NAME) == self.scheduler_name

    def _on_pod_add(self, pod: core_pb2.Pod) -> None:
        if pod.spec.node_name:
            self.cache.add_pod(pod)
        elif self._responsible(pod) and not pod.metadata.HasField("deletion_timestamp"):
            self.queue.add(PodInfo.of(pod))

    def _on_pod_update(self, old: core_pb2.Pod, new: core_pb2.Pod) -> None:
        key = f"{new.metadata.namespace}/{new.metadata.name}"
        if new.spec.node_name:
            if not old.spec.node_name:
                self.queue.delete(key)
            if is_terminal(new):
                self.cache.remove_pod(new)
                if not is_terminal(old):
                    self.queue.move_all_to_active_or_backoff(q.ASSIGNED_POD_DELETE)
            else:
                self.cache.update_pod(new)
            return
        if not self._responsible(new) or new.metadata.HasField("deletion_timestamp"):
            self.queue.delete(key)
            return
        if self.cache.is_assumed(key):
            return  # being bound: this is our own status write, or a label change
        changed = old.spec != new.spec or old.metadata.labels != new.metadata.labels
        self.queue.update(PodInfo.of(new), spec_changed=changed)

    def _on_pod_delete(self, pod: core_pb2.Pod) -> None:
        key = f"{pod.metadata.namespace}/{pod.metadata.name}"
        self.queue.delete(key)
        if pod.spec.node_name:
            self.cache.remove_pod(pod)
            self.queue.move_all_to_active_or_backoff(q.ASSIGNED_POD_DELETE)
        else:
            self.cache.forget_pod(key)

    def _on_node_add(self, node: core_pb2.Node) -> None:
        self.cache.add_node(node)
        self.queue.move_all_to_active_or_backoff(q.NODE_ADD)

    def _on_node_update(self, old: core_pb2.Node, new: core_pb2.Node) -> None:
        self.cache.update_node(new)
        if _scheduling_view(old) != _scheduling_view(new):
            self.queue.move_all_to_active_or_backoff(q.NODE_UPDATE)

    def _on_node_delete(self, node: core_pb2.Node) -> None:
        self.cache.remove_node(node.metadata.name)

    # ---- the loop ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Schedule until cancelled."""
        self._slots = asyncio.Semaphore(self.max_binds_in_flight)
        self.factory.start()
        while not await self.factory.wait_for_sync(timeout=5.0):
            log.info("waiting for informers to sync", extra={"scheduler": self.scheduler_name})
        log.info(
            "scheduler started",
            extra={"scheduler": self.scheduler_name, "nodes": len(self.cache.snapshot())},
        )
        flusher = asyncio.ensure_future(self.queue.run_flushers())
        try:
            while True:
                qpi = await self.queue.pop()
                await self.schedule_one(qpi, self.queue.scheduling_cycle)
                await asyncio.sleep(0)  # let informers and bindings run between cycles
        finally:
            self.queue.close()
            flusher.cancel()
            for task in list(self._binds):
                task.cancel()
            await asyncio.gather(flusher, *self._binds, return_exceptions=True)
            await self.recorder.close()

    async def schedule_one(self, qpi: q.QueuedPodInfo, cycle: int) -> None:
        info = qpi.pod_info
        pod = self.pods.store.get(info.key)
        if (
            pod is None
            or pod.spec.node_name
            or pod.metadata.uid != info.uid
            or pod.metadata.HasField("deletion_timestamp")
            or self.cache.is_assumed(info.key)
        ):
            return  # gone, bound meanwhile, replaced, or being deleted
        started = time.perf_counter()
        started_ns = time.time_ns()
        try:
            result = self.algorithm.schedule(info, self.cache.snapshot())
        except FitError as err:
            self._handle_unschedulable(qpi, pod, err, cycle)
            return
        except Exception as exc:
            log.exception("scheduling cycle failed", extra={"pod": info.key, "error": repr(exc)})
            self.queue.add_backoff(qpi)
            return
        finally:
            self.cycles += 1
            self.cycle_seconds += time.perf_counter() - started
        self.cache.assume_pod(info, result.node)
        log.debug(
            "pod assumed",
            extra={
                "pod": info.key,
                "node": result.node,
                "feasible": result.feasible,
                "evaluated": result.evaluated,
                "ms": round((time.perf_counter() - started) * 1000, 3),
            },
        )
        assert self._slots is not None, "schedule_one runs inside run()"
        await self._slots.acquire()
        span = None
        if tracecontext.of_object(pod) is not None:  # a traced pod: the record goes in its span
            lines = result.record.lines()
            span = tracing.start(  # from the cycle's start until the Binding is written
                "Bind",
                parent=pod,
                component=self.scheduler_name,
                obj=f"pods/{info.key}",
                why=lines[0],
                attributes={"tinykube.placement": lines, "tinykube.node": result.node},
                start_time=started_ns,
            )
        task = asyncio.get_running_loop().create_task(self._bind(qpi, pod, result, span))
        self._binds.add(task)
        task.add_done_callback(self._binds.discard)

    # ---- binding (in the background) ----------------------------------------------------------

    async def _bind(
        self, qpi: q.QueuedPodInfo, pod: core_pb2.Pod, result: ScheduleResult, span: Span | None
    ) -> None:
        info = qpi.pod_info
        try:
            with tracing.within(span):  # the Binding carries the span onto the pod
                await self.client.bind(
                    info.name,
                    result.node,
                    info.namespace,
                    uid=info.uid,
                    annotations={ANNOTATION: result.record.to_json()},
                )
        except errors.StatusError as err:
            self._handle_bind_failure(qpi, pod, result.node, err)
        else:
            self.scheduled += 1
            if self.events:
                self.recorder.event(
                    pod_ref(pod),
                    "Normal",
                    "Scheduled",
                    f"Successfully assigned {info.namespace}/{info.name} to {result.node}",
                )
        finally:
            if self._slots is not None:
                self._slots.release()

    def _handle_bind_failure(
        self, qpi: q.QueuedPodInfo, pod: core_pb2.Pod, node: str, err: errors.StatusError
    ) -> None:
        key = qpi.key
        self.cache.forget_pod(key)
        self.queue.move_all_to_active_or_backoff(q.ASSIGNED_POD_DELETE)  # the room is free again
        if isinstance(err, (errors.NotFound, errors.Conflict)):
            # Already bound (another scheduler, or ours before a restart), being deleted,
            # or gone: the informer reports the outcome; nothing to retry.
            log.info("binding refused", extra={"pod": key, "node": node, "error": err.message})
            return
        log.warning("binding failed", extra={"pod": key, "node": node, "error": str(err)})
        if self.events:
            self.recorder.event(
                pod_ref(pod), "Warning", "FailedScheduling", f"Binding rejected: {err.message}"
            )
        self.queue.add_backoff(qpi)

    # ---- no fit -----------------------------------------------------------------------------

    def _handle_unschedulable(
        self, qpi: q.QueuedPodInfo, pod: core_pb2.Pod, err: FitError, cycle: int
    ) -> None:
        self.queue.add_unschedulable_if_not_present(qpi, cycle, set(err.plugins))
        log.info("pod unschedulable", extra={"pod": qpi.key, "reason": err.message})
        if self.events:
            self.recorder.event(pod_ref(pod), "Warning", "FailedScheduling", err.message)
        if _has_condition(pod, err.message):
            return
        task = asyncio.get_running_loop().create_task(self._set_unschedulable(pod, err.message))
        self._binds.add(task)
        task.add_done_callback(self._binds.discard)

    async def _set_unschedulable(self, cached: core_pb2.Pod, message: str) -> None:
        """PodScheduled=False, reason Unschedulable (re-read on conflict)."""
        meta = cached.metadata

        async def write() -> None:
            pod = await self.client.get(core_pb2.Pod, meta.name, meta.namespace)
            if pod.metadata.uid != meta.uid or pod.spec.node_name or _has_condition(pod, message):
                return
            set_pod_scheduled_false(pod, message)
            await self.client.update_status(pod)

        try:
            await retry_on_conflict(write, attempts=5)
        except errors.StatusError as exc:
            log.info("pod condition not updated", extra={"pod": meta.name, "error": str(exc)})


def _has_condition(pod: core_pb2.Pod, message: str) -> bool:
    return any(
        c.type == "PodScheduled"
        and c.status == "False"
        and c.reason == "Unschedulable"
        and c.message == message
        for c in pod.status.conditions
    )


def set_pod_scheduled_false(pod: core_pb2.Pod, message: str) -> None:
    """Set (or add) the condition PodScheduled=False, reason Unschedulable, with `message`."""
    now = time.time()
    for c in pod.status.conditions:
        if c.type == "PodScheduled":
            if c.status != "False":
                c.last_transition_time.FromSeconds(int(now))
            c.status, c.reason, c.message = "False", "Unschedulable", message
            c.last_probe_time.FromSeconds(int(now))
            return
    cond = pod.status.conditions.add(
        type="PodScheduled", status="False", reason="Unschedulable", message=message
    )
    cond.last_transition_time.FromSeconds(int(now))
    cond.last_probe_time.FromSeconds(int(now))
    if not pod.status.phase:
        pod.status.phase = "Pending"
