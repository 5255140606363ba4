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

from collections.abc import Callable, Sequence

from scheduler.framework import MAX_NODE_SCORE, CycleState
from scheduler.types import NodeInfo, PodInfo

NAME = "NodeResourcesLeastAllocated"


def least_requested(requested: int, capacity: int) -> int:
    """leastRequestedScore: (capacity - requested) * 100 / capacity, 0 when over."""
    if capacity == 0 or requested > capacity:
        return 0
    return (capacity - requested) * MAX_NODE_SCORE // capacity


MEMO_LIMIT = 8192  # scores remembered per plugin before the memo starts afresh


class ScoreMemo:
    """Scores by (pod shape, node `res_key`): a pure function's results, never stale.

    Nodes in the same resource state (a fresh cluster's identical nodes, or nodes that
    each hold one pod like this one) score alike, and a node keeps its state until a pod
    comes or goes; so most of the 500 nodes a cycle scores hit an entry computed in an
    earlier cycle, and the per-node cost is one dictionary read instead of the arithmetic.
    """

    def __init__(self) -> None:
        self._by_shape: dict[tuple[int, int], dict[str, int]] = {}
        self._size = 0

    def scores(
        self, shape: tuple[int, int], nodes: Sequence[NodeInfo], compute: Callable[[NodeInfo], int]
    ) -> list[int]:
        memo = self._by_shape.get(shape)
        if memo is None:
            memo = self._by_shape[shape] = {}
        get = memo.get
        out = [get(n.res_key, -1) for n in nodes]
        if -1 in out:  # scores are 0..100: -1 marks a node whose state is new
            for i, s in enumerate(out):
                if s < 0:
                    n = nodes[i]
                    s = memo.get(n.res_key, -1)
                    if s < 0:
                        s = memo[n.res_key] = compute(n)
                        self._size += 1
                    out[i] = s
            if self._size > MEMO_LIMIT:
                self._by_shape.clear()
                self._size = 0
        return out


class NodeResourcesLeastAllocated:
    """Score: prefer the node with the most cpu and memory left after placing the pod."""

    name = NAME

    def __init__(self) -> None:
        self._memo = ScoreMemo()

    def score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> list[int]:
        pc, pm = pod.nz_cpu, pod.nz_memory

        def one(n: NodeInfo) -> int:
            # least_requested() for cpu and memory, inlined. Memory is in bytes (beyond
            # 2**30), where Python's integer arithmetic slows down, so it goes through the
            # float 1/allocatable; the epsilon keeps exact quotients (50.0 computed as
            # 49.999...) on the integer they are in Kubernetes.
            cpu = (
                (n.free_nz_cpu - pc) * 100 // n.alloc_cpu
                if n.free_nz_cpu >= pc and n.alloc_cpu
                else 0
            )
            memory = (
                int((n.free_nz_memory - pm) * n.inv_memory * 100 + 1e-9)
                if n.free_nz_memory >= pm
                else 0
            )
            return (cpu + memory) >> 1

        return self._memo.scores((pc, pm), nodes, one)
