"""TaintToleration: taints keep pods away unless the pod tolerates them.

Filter: a node's NoSchedule and NoExecute taints must each be tolerated, or
the node is rejected with `node(s) had untolerated taint {key: value}`
(UnschedulableAndUnresolvable). This is how a NotReady node is avoided: the
node lifecycle controller taints it `node.kubernetes.io/not-ready:NoSchedule`
(and NoExecute), and ordinary pods do not tolerate the NoSchedule one. The
NoExecute tolerations every pod gets by default (tolerationSeconds 300) are
for *staying* on a node that goes bad, and they do let a pod land there.

Score: PreferNoSchedule taints are soft. A node's raw score is the number of
its PreferNoSchedule taints the pod does not tolerate; normalisation
reverses it, so fewer such taints score higher:

    raw (node1 0, node2 1, node3 2)  ->  (100, 50, 0)

When no candidate node has a PreferNoSchedule taint every node would score
the same, which cannot change the ranking, so PreScore Skips the plugin;
likewise PreFilter Skips the Filter when no node in the snapshot has a
NoSchedule/NoExecute taint (the snapshot counts them).
"""

from __future__ import annotations

from collections.abc import Sequence

from scheduler.framework import (
    SKIP,
    CycleState,
    Status,
    Verdicts,
    default_normalize,
    filter_each,
    unschedulable,
)
from scheduler.snapshot import Snapshot
from scheduler.types import NodeInfo, PodInfo

NAME = "TaintToleration"


class TaintToleration:
    """Filter untolerated NoSchedule/NoExecute taints; score PreferNoSchedule ones."""

    name = NAME

    def pre_filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Status | None:
        return None if snapshot.tainted else SKIP

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        if not node.taints:
            return None
        tolerations = pod.tolerations
        for taint in node.taints:
            if not any(t.tolerates(taint.key, taint.value, taint.effect) for t in tolerations):
                return unschedulable(
                    NAME, f"node(s) had untolerated taint {taint}", resolvable=False
                )
        return None

    def filter_nodes(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> Verdicts:
        if any(n.taints for n in nodes):
            return filter_each(self.filter, state, pod, nodes)
        return nodes, []

    def pre_score(
        self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo], snapshot: Snapshot
    ) -> Status | None:
        if not snapshot.prefer_no_schedule:
            return SKIP
        return None if any(n.prefer_no_schedule for n in nodes) else SKIP

    def score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> list[int]:
        tolerations = [t for t in pod.tolerations if t.effect in ("", "PreferNoSchedule")]
        return [
            sum(
                1
                for taint in n.prefer_no_schedule
                if not any(t.tolerates(taint.key, taint.value, taint.effect) for t in tolerations)
            )
            for n in nodes
        ]

    def normalize(self, state: CycleState, pod: PodInfo, scores: list[int]) -> None:
        default_normalize(scores, reverse=True)
