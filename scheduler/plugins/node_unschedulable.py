"""NodeUnschedulable: a cordoned node takes no new pods.

`tinykube cordon node2` sets `spec.unschedulable: true`. Pods already there
keep running; new pods are refused with `node(s) were unschedulable`, the
reason `FailedScheduling` counts. The refusal is UnschedulableAndUnresolvable:
evicting other pods (preemption) would not make a cordoned node usable.

A pod that tolerates the `node.kubernetes.io/unschedulable:NoSchedule` taint
(DaemonSet pods do) may still go there, which is why the check is a
PreFilter Skip rather than part of the node's state.
"""

from __future__ import annotations

from scheduler.framework import SKIP, CycleState, Status, Verdicts, unschedulable
from scheduler.snapshot import Snapshot
from scheduler.types import NO_SCHEDULE, TAINT_UNSCHEDULABLE, NodeInfo, PodInfo, tolerates

NAME = "NodeUnschedulable"
REASON = "node(s) were unschedulable"
_REJECT = unschedulable(NAME, REASON, resolvable=False)


class NodeUnschedulable:
    """Filter: cordoned nodes take no new pods (unless the pod tolerates the taint)."""

    name = NAME

    def pre_filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Status | None:
        if tolerates(pod.tolerations, TAINT_UNSCHEDULABLE, "", NO_SCHEDULE):
            return SKIP
        return None

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        return _REJECT if node.unschedulable else None

    def filter_nodes(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> Verdicts:
        passed = [n for n in nodes if not n.unschedulable]
        if len(passed) == len(nodes):
            return passed, []
        return passed, [(n, _REJECT) for n in nodes if n.unschedulable]
