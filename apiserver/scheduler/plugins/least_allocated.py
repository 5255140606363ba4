"""NodeResourcesLeastAllocated: prefer the emptiest node (spread load).

Per resource (cpu and memory, equal weights), the share left free after the
pod is placed, as a 0..100 score; the node's score is their mean:

    node: allocatable 4 CPU / 8Gi; pods there (non-zero) 1 CPU / 2Gi
    pod (non-zero): 1 CPU / 2Gi
    cpu    (4 - 2) / 4 * 100 = 50
    memory (8 - 4) / 8 * 100 = 50        -> score 50

It counts *non-zero* requests (types.py): a container asking for nothing is
taken as 100m CPU and 200Mi memory, so best-effort pods still spread.
A node with nothing allocatable for a resource scores 0 for it.
"""

from __future__ import annotations

from collections.abc import Sequence

from apiserver.scheduler.framework import MAX_NODE_SCORE, CycleState
from apiserver.scheduler.types import NodeInfo, PodInfo

NAME = "NodeResourcesLeastAllocated"


def least_requested(requested: int, capacity: int) -> int:
    """leastRequestedScore: (capacity - requested) * 100 / capacity, 0 when over."""
    if capacity == 0 or requested > capacity:
        return 0
    return (capacity - requested) * MAX_NODE_SCORE // capacity


class NodeResourcesLeastAllocated:
    name = NAME

    def score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> list[int]:
        pc, pm = pod.nz_cpu, pod.nz_memory
        out: list[int] = []
        append = out.append
        for n in nodes:
            ac, am = n.alloc_cpu, n.alloc_memory
            rc, rm = n.nz_cpu + pc, n.nz_memory + pm
            c = (ac - rc) * 100 // ac if ac > 0 and rc <= ac else 0
            m = (am - rm) * 100 // am if am > 0 and rm <= am else 0
            append((c + m) // 2)
        return out
