"""The node lifecycle controller: notice lost nodes, taint them, evict their pods.

Kubernetes' node_lifecycle_controller.go, lease-based. A kubelet proves it
is alive by renewing its Lease (`kube-node-lease/<node>`, every 10 s); the
API server cannot tell a dead node from a busy one, so this controller
decides, and writes its conclusion where everyone can read it:

1. Health (monitorNodeHealth, every `node_monitor_period` seconds). For each
   node the controller keeps a probe time: the moment *it* last saw the
   Lease's renewTime (or the Ready condition's heartbeat) change. Its own
   clock, not the kubelet's: a node whose clock runs ahead cannot look
   alive forever. And its monotonic clock, not wall time
   (apimachinery/clock.py): a wall-clock step of +5 minutes must not make
   every node look five minutes silent. A node seen for the first time starts from its
   creationTimestamp, so a node whose kubelet never renews is caught too.
   When now > probe + `node_monitor_grace_period` (40 s), the kubelet has
   stopped posting status: the node's Ready condition (and MemoryPressure,
   DiskPressure, PIDPressure if present) become Unknown, reason
   NodeStatusUnknown, "Kubelet stopped posting node status." -- written with
   UpdateStatus carrying the cached resourceVersion, so a kubelet that came
   back a moment ago and wrote Ready=True wins (Conflict) and nothing is
   overwritten. The pods on the node are marked Ready=False (MarkPodsNotReady)
   so the endpoints controller stops sending traffic to them.

       t=0    lease renewed (probe=0)         Ready=True
       t=10   lease renewed (probe=10)        Ready=True
       t=15   kubelet dies
       t=50   check: 50 - 10 = 40, not past   Ready=True
       t=55   check: 55 - 10 = 45 > 40        Ready=Unknown  -> Event NodeNotReady
              taint sync: + unreachable:NoExecute (timeAdded t=55), + unreachable:NoSchedule
              taint eviction: pods tolerating 300 s are evicted at t=355

2. Taints (level-triggered on node keys; TaintNodesByCondition and the
   NoExecute tainting pass). The controller owns a fixed set of taint keys
   and computes which of them the node should carry from its conditions and
   spec:

       Ready False          node.kubernetes.io/not-ready:NoExecute + :NoSchedule
       Ready Unknown        node.kubernetes.io/unreachable:NoExecute + :NoSchedule
       MemoryPressure True  node.kubernetes.io/memory-pressure:NoSchedule
       DiskPressure True    node.kubernetes.io/disk-pressure:NoSchedule
       PIDPressure True     node.kubernetes.io/pid-pressure:NoSchedule
       NetworkUnavailable   node.kubernetes.io/network-unavailable:NoSchedule
       spec.unschedulable   node.kubernetes.io/unschedulable:NoSchedule

   Taints it does not own are left alone; taints it owns that should not be
   there are removed (the node is Ready again: the taints go, and pending
   evictions are cancelled). A NoExecute taint gets `timeAdded`, which the
   eviction deadline counts from; a taint that stays keeps its timeAdded.
   A node without any Ready condition yet keeps whatever not-ready taint
   its kubelet registered it with.

3. Eviction: the taint eviction controller (taint_eviction.py), run by this
   one, deletes the pods whose tolerations of the NoExecute taints ran out.

4. Orphaned pods: pods bound to a Node object that has been deleted are
   force-deleted (Kubernetes' pod GC does this): no kubelet will ever
   finish their deletion.

Events: RegisteredNode when a node is first seen, NodeNotReady and NodeReady
when its Ready status changes between two checks, NodeNotReady on each pod
marked not ready, TaintManagerEviction for evictions.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from google.protobuf import timestamp_pb2

from apimachinery import errors
from apimachinery.clock import Clock
from controllers import register
from controllers.base import Controller, ControllerContext
from controllers.taint_eviction import (
    NODE_NAME_INDEX,
    TaintEvictionController,
    timestamp_seconds,
)
from protos import coordination_pb2, core_pb2

log = logging.getLogger(__name__)

LEASE_NAMESPACE = "kube-node-lease"
NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"
UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
# condition type and the status that calls for a NoSchedule taint (TaintNodesByCondition)
PRESSURE_TAINTS = {
    ("MemoryPressure", "True"): "node.kubernetes.io/memory-pressure",
    ("DiskPressure", "True"): "node.kubernetes.io/disk-pressure",
    ("PIDPressure", "True"): "node.kubernetes.io/pid-pressure",
    ("NetworkUnavailable", "True"): "node.kubernetes.io/network-unavailable",
}
MANAGED_KEYS = frozenset({NOT_READY, UNREACHABLE, UNSCHEDULABLE, *PRESSURE_TAINTS.values()})
UNKNOWN_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")


def condition(node: core_pb2.Node, type_: str) -> core_pb2.NodeCondition | None:
    """The node's condition of type `type_`, if the kubelet has posted one."""
    for cond in node.status.conditions:
        if cond.type == type_:
            return cond
    return None


def ready_status(node: core_pb2.Node) -> str:
    """True, False, Unknown, or "" when the kubelet never posted a Ready condition."""
    cond = condition(node, "Ready")
    return cond.status if cond is not None else ""


def desired_taints(node: core_pb2.Node) -> set[tuple[str, str]]:
    """The (key, effect) pairs of the controller-owned taints `node` should carry."""
    out: set[tuple[str, str]] = set()
    ready = ready_status(node)
    if ready == "False":
        out |= {(NOT_READY, "NoExecute"), (NOT_READY, "NoSchedule")}
    elif ready == "Unknown":
        out |= {(UNREACHABLE, "NoExecute"), (UNREACHABLE, "NoSchedule")}
    elif ready == "":
        # Never reported: keep the not-ready taint a kubelet registers its node with.
        out |= {(t.key, t.effect) for t in node.spec.taints if t.key == NOT_READY}
    for cond in node.status.conditions:
        key = PRESSURE_TAINTS.get((cond.type, cond.status))
        if key is not None:
            out.add((key, "NoSchedule"))
    if node.spec.unschedulable:
        out.add((UNSCHEDULABLE, "NoSchedule"))
    return out


def reconcile_taints(
    node: core_pb2.Node, now: timestamp_pb2.Timestamp
) -> list[core_pb2.Taint] | None:
    """The node's new taint list, or None when it already carries the right ones."""
    want = desired_taints(node)
    have = {(t.key, t.effect) for t in node.spec.taints if t.key in MANAGED_KEYS}
    if want == have:
        return None
    taints = [t for t in node.spec.taints if t.key not in MANAGED_KEYS or (t.key, t.effect) in want]
    for key, effect in sorted(want - have):
        taint = core_pb2.Taint(key=key, effect=effect)
        if effect == "NoExecute":
            taint.time_added.CopyFrom(now)
        taints.append(taint)
    return taints


@dataclass
class NodeHealth:
    """What the controller last saw of a node, on its own clock (Kubernetes' nodeHealthData)."""

    probe: float  # when a sign of life was last observed (the controller's monotonic clock)
    lease_renew: float | None
    heartbeat: float | None
    ready: str


@register("nodelifecycle")
class NodeLifecycleController(Controller):
    """Lease-based node health, condition taints, and (through its helper) eviction."""

    name = "node-lifecycle-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.nodes = ctx.factory.informer(core_pb2.Node)
        self.leases = ctx.factory.informer(coordination_pb2.Lease, LEASE_NAMESPACE)
        self.pods = ctx.factory.informer(core_pb2.Pod)
        self.eviction = TaintEvictionController(ctx)  # also adds the pods' node-name index
        self.health: dict[str, NodeHealth] = {}
        self.clock: Clock = self.eviction.clock  # one seam for both (tests pass a FakeClock)
        self.nodes.add_handlers(
            on_add=self.enqueue_obj,
            on_update=lambda _old, new: self.enqueue_obj(new),
            on_delete=self.enqueue_obj,
        )

    async def run(self, workers: int | None = None) -> None:
        monitor = asyncio.ensure_future(self._monitor_forever())
        try:
            await asyncio.gather(super().run(workers), self.eviction.run())
        finally:
            monitor.cancel()
            await asyncio.gather(monitor, return_exceptions=True)

    # ---- 1. health -----------------------------------------------------------------------------

    async def _monitor_forever(self) -> None:
        while True:
            try:
                await self.monitor_node_health()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("node health check failed", extra={"error": repr(exc)})
            await asyncio.sleep(self.ctx.options.node_monitor_period)

    async def monitor_node_health(self) -> None:
        """One pass over every node (Kubernetes' monitorNodeHealth)."""
        seen = set()
        for node in self.nodes.store.list():
            name = node.metadata.name
            seen.add(name)
            await self._check(node, self.clock.monotonic())
        for gone in set(self.health) - seen:
            del self.health[gone]

    async def _check(self, node: core_pb2.Node, now: float) -> None:
        name = node.metadata.name
        ready = condition(node, "Ready")
        heartbeat = timestamp_seconds(ready.last_heartbeat_time) if ready is not None else None
        status = ready_status(node)
        lease = self.leases.store.get(f"{LEASE_NAMESPACE}/{name}")
        renew = None
        if lease is not None and lease.spec.HasField("renew_time"):
            renew = timestamp_seconds(lease.spec.renew_time)
        health = self.health.get(name)
        if health is None:
            created = timestamp_seconds(node.metadata.creation_timestamp)
            probe = self.clock.wall_to_monotonic(created)
            health = NodeHealth(probe=probe, lease_renew=None, heartbeat=heartbeat, ready=status)
            self.health[name] = health
            self.recorder.event(
                node,
                "Normal",
                "RegisteredNode",
                f"Node {name} event: Registered Node {name} in Controller",
            )
        if renew is not None and renew != health.lease_renew:
            health.lease_renew = renew
            health.probe = now
        if heartbeat != health.heartbeat:
            health.heartbeat = heartbeat
            health.probe = now
        grace = self.ctx.options.node_monitor_grace_period
        if now > health.probe + grace:
            written = await self._mark_unknown(node)
            if written is not None:
                status = ready_status(written)
        if status != health.ready:
            if status != "True" and health.ready == "True":
                self.recorder.event(
                    node, "Normal", "NodeNotReady", f"Node {name} status is now: NodeNotReady"
                )
            elif status == "True":
                self.recorder.event(
                    node, "Normal", "NodeReady", f"Node {name} status is now: NodeReady"
                )
            health.ready = status
        if status == "Unknown":
            await self._mark_pods_not_ready(name)

    async def _mark_unknown(self, node: core_pb2.Node) -> core_pb2.Node | None:
        """Ready (and pressure conditions) -> Unknown; the node written, or None if unchanged."""
        new = core_pb2.Node()
        new.CopyFrom(node)
        now = timestamp_pb2.Timestamp(seconds=int(self.clock.time()))
        changed = False
        for type_ in UNKNOWN_CONDITIONS:
            cond = condition(new, type_)
            if cond is None and type_ == "Ready":
                cond = new.status.conditions.add(
                    type="Ready",
                    status="Unknown",
                    reason="NodeStatusNeverUpdated",
                    message="Kubelet never posted node status.",
                )
                cond.last_transition_time.CopyFrom(now)
                changed = True
            elif cond is not None and cond.status != "Unknown":
                cond.status = "Unknown"
                cond.reason = "NodeStatusUnknown"
                cond.message = "Kubelet stopped posting node status."
                cond.last_transition_time.CopyFrom(now)
                changed = True
        if not changed:
            return None
        try:
            written = await self.client.update_status(new)
        except (errors.Conflict, errors.NotFound):
            return None  # the kubelet (or a delete) got there first: look again next pass
        log.info("node status unknown", extra={"node": node.metadata.name})
        return written

    async def _mark_pods_not_ready(self, node_name: str) -> None:
        """MarkPodsNotReady: pods on a lost node stop claiming Ready (endpoints drop them)."""
        for pod in self.pods.store.by_index(NODE_NAME_INDEX, node_name):
            cond = next((c for c in pod.status.conditions if c.type == "Ready"), None)
            if cond is None or cond.status != "True":
                continue
            new = core_pb2.Pod()
            new.CopyFrom(pod)
            for c in new.status.conditions:
                if c.type == "Ready":
                    c.status = "False"
                    c.last_transition_time.CopyFrom(
                        timestamp_pb2.Timestamp(seconds=int(self.clock.time()))
                    )
            try:
                await self.client.update_status(new)
            except (errors.Conflict, errors.NotFound):
                continue
            self.recorder.event(pod, "Warning", "NodeNotReady", "Node is not ready")

    # ---- 2. taints, 4. orphaned pods -------------------------------------------------------------

    async def sync(self, key: str) -> None:
        node = self.nodes.store.get(key)
        if node is None:
            await self._delete_orphaned_pods(key)
            return
        now = timestamp_pb2.Timestamp()
        # timeAdded starts eviction clocks: keep it exact
        now.FromNanoseconds(int(self.clock.time() * 1e9))
        taints = reconcile_taints(node, now)
        if taints is None:
            return
        new = core_pb2.Node()
        new.CopyFrom(node)
        del new.spec.taints[:]
        new.spec.taints.extend(taints)
        await self.client.update(new)  # cached resourceVersion: Conflict -> requeue, re-read
        log.info(
            "node taints updated",
            extra={"node": key, "taints": ",".join(f"{t.key}:{t.effect}" for t in taints)},
        )

    async def _delete_orphaned_pods(self, node_name: str) -> None:
        for pod in self.pods.store.by_index(NODE_NAME_INDEX, node_name):
            log.info(
                "deleting pod of a deleted node",
                extra={"pod": f"{pod.metadata.namespace}/{pod.metadata.name}", "node": node_name},
            )
            try:
                await self.client.delete(
                    core_pb2.Pod,
                    pod.metadata.name,
                    pod.metadata.namespace,
                    grace_period_seconds=0,
                    precondition_uid=pod.metadata.uid,
                )
            except (errors.NotFound, errors.Conflict):
                continue
