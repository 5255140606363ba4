"""The resource scores remembered by node state equal the scores computed afresh."""

from __future__ import annotations

import random

from scheduler.framework import CycleState
from scheduler.plugins.balanced_allocation import NodeResourcesBalancedAllocation
from scheduler.plugins.least_allocated import (
    NodeResourcesLeastAllocated,
    least_requested,
)
from scheduler.types import NodeInfo, PodInfo

from .objects import node, node_info, pod


def _least(n: NodeInfo, p: PodInfo) -> int:
    cpu = least_requested(n.nz_cpu + p.nz_cpu, n.alloc_cpu)
    memory = least_requested(n.nz_memory + p.nz_memory, n.alloc_memory)
    return (cpu + memory) // 2


def _balanced(n: NodeInfo, p: PodInfo) -> int:
    fc = min((n.req_cpu + p.cpu) / n.alloc_cpu, 1.0)
    fm = min((n.req_memory + p.memory) / n.alloc_memory, 1.0)
    return int(100.0 - 50.0 * abs(fc - fm))


def test_memoized_scores_equal_fresh_ones_as_nodes_fill() -> None:
    rng = random.Random(5)
    nodes = [
        node_info(node(f"n{i}", cpu=rng.choice(("2", "4", "8")), memory=rng.choice(("4Gi", "8Gi"))))
        for i in range(30)
    ]
    least, balanced, state = (
        NodeResourcesLeastAllocated(),
        NodeResourcesBalancedAllocation(),
        CycleState(),
    )
    shapes = [("100m", "500Mi"), ("", ""), ("1", "1Gi")]  # "": the non-zero defaults
    for step in range(200):
        cpu, memory = rng.choice(shapes)
        p = PodInfo.of(pod(f"p{step}", cpu=cpu, memory=memory))
        assert least.score(state, p, nodes) == [_least(n, p) for n in nodes]
        assert balanced.score(state, p, nodes) == [_balanced(n, p) for n in nodes]
        target = rng.choice(nodes)  # the state of one node changes, as a placement does
        if target.pods and rng.random() < 0.3:
            target.remove_pod(rng.choice(sorted(target.pods)))
        else:
            target.add_pod(p)
