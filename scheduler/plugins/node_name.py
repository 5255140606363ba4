"""NodeName: a pod that names its node (spec.nodeName set by its author) goes there or nowhere.

Pods created with `spec.nodeName` never reach the scheduler (they are
already assigned). This plugin covers the rest of Kubernetes' contract: a
pod that asks for a node by name through the scheduler is refused
everywhere else with `node(s) didn't match the requested node name`.
Most pods do not name a node, so PreFilter Skips the plugin for them.
"""

from __future__ import annotations

from scheduler.framework import SKIP, CycleState, Status, unschedulable
from scheduler.snapshot import Snapshot
from scheduler.types import NodeInfo, PodInfo

NAME = "NodeName"
REASON = "node(s) didn't match the requested node name"
_REJECT = unschedulable(NAME, REASON, resolvable=False)


class NodeName:
    """Filter: a pod that names a node may go only there."""

    name = NAME

    def pre_filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Status | None:
        return None if pod.node_name else SKIP

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        return None if node.name == pod.node_name else _REJECT
