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

from scheduler.framework import MAX_NODE_SCORE, CycleState
from scheduler.types import NodeInfo, PodInfo

NAME = "NodeResourcesLeastAllocated"


def least_requested(requested: int, capacity: int) -> int:
    """leastRequestedScore: (capacity - requested) * 100 / capacity, 0 when over."""
    if capacity == 0 or requested > capacity:
        return 0
    return (capacity - requested) * MAX_NODE_SCORE // capacity


class NodeResourcesLeastAllocated:
    """Score: prefer the node with the most cpu and memory left after placing the pod."""

    name = NAME

    def score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> list[int]:
        # least_requested() for cpu and memory, inlined: this runs for every feasible node.
        # Memory is in bytes (beyond 2**30), where Python's integer arithmetic slows down,
        # so it goes through the float 1/allocatable; the epsilon keeps exact quotients
        # (50.0 computed as 49.999...) on the integer they are in Kubernetes.
        pc, pm = pod.nz_cpu, pod.nz_memory
        return [
            (
                (
                    (n.free_nz_cpu - pc) * 100 // n.alloc_cpu
                    if n.free_nz_cpu >= pc and n.alloc_cpu
                    else 0
                )
                + (
                    int((n.free_nz_memory - pm) * n.inv_memory * 100 + 1e-9)
                    if n.free_nz_memory >= pm
                    else 0
                )
            )
            >> 1
            for n in nodes
        ]
