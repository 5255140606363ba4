"""NodeResourcesBalancedAllocation: prefer nodes whose cpu and memory fill evenly.

A node with all of its memory requested and its CPU idle is wasted: nothing
memory-hungry fits any more, and the CPU goes unused. This plugin scores
how even the requested fractions are after placing the pod: one minus the
standard deviation of the fractions, times 100. For two resources the
standard deviation is half their difference:

    cpu 3/4 requested = 0.75, memory 4/8 = 0.5
    std = |0.75 - 0.5| / 2 = 0.125            -> score (1 - 0.125) * 100 = 87

Actual requests are used here (not the non-zero defaults), as in
Kubernetes; fractions are capped at 1.
"""

from __future__ import annotations

from collections.abc import Sequence

from scheduler.framework import CycleState
from scheduler.plugins.least_allocated import ScoreMemo
from scheduler.types import NodeInfo, PodInfo

NAME = "NodeResourcesBalancedAllocation"


class NodeResourcesBalancedAllocation:
    """Score: prefer nodes whose requested cpu and memory fractions end up even."""

    name = NAME

    def __init__(self) -> None:
        self._memo = ScoreMemo()  # equal res_key, equal score (least_allocated.py)

    def score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> list[int]:
        pc, pm = pod.cpu, pod.memory

        def one(n: NodeInfo) -> int:
            fc = min((n.req_cpu + pc) * n.inv_cpu, 1.0)
            fm = min((n.req_memory + pm) * n.inv_memory, 1.0)
            # 1 - std of two fractions = 1 - |fc - fm| / 2, as a 0..100 score
            return int(100.0 - 50.0 * abs(fc - fm))

        return self._memo.scores((pc, pm), nodes, one)
