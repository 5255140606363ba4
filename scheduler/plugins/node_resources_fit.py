"""NodeResourcesFit: the pod's requests must fit in what the node has left.

For each resource the pod requests, the node's allocatable minus what its
pods already request (assumed pods included) must cover the request; and
one more pod must not exceed allocatable `pods`. Each shortfall is a reason
of its own, worded as Kubernetes words them, and `FailedScheduling` counts
them per reason across nodes:

    node allocatable cpu 2, pods 110; pods there request 1800m
    new pod requests 500m cpu, 64Mi memory
    -> 1800m + 500m > 2000m  -> "Insufficient cpu"      (Unschedulable)

Only requests count, never limits, and never actual usage: the scheduler
promises what was asked for. A resource the pod does not request is not
checked (a pod with no requests fits anywhere there is room for a pod).
The code is Unschedulable, not Unresolvable: a pod going away frees room.
"""

from __future__ import annotations

from scheduler.framework import CycleState, Status, Verdicts, filter_each, unschedulable
from scheduler.types import NodeInfo, PodInfo

NAME = "NodeResourcesFit"
TOO_MANY_PODS = "Too many pods"
INSUFFICIENT_CPU = "Insufficient cpu"
INSUFFICIENT_MEMORY = "Insufficient memory"


class NodeResourcesFit:
    """Filter: the pod's requests must fit in what the node has left."""

    name = NAME

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        reasons: list[str] = []
        if node.pod_count + 1 > node.alloc_pods:
            reasons.append(TOO_MANY_PODS)
        if pod.cpu and node.req_cpu + pod.cpu > node.alloc_cpu:
            reasons.append(INSUFFICIENT_CPU)
        if pod.memory and node.req_memory + pod.memory > node.alloc_memory:
            reasons.append(INSUFFICIENT_MEMORY)
        for resource, want in pod.extended:
            if node.requested.get(resource, 0) + want > node.allocatable.get(resource, 0):
                reasons.append(f"Insufficient {resource}")
        return unschedulable(NAME, *reasons) if reasons else None

    def filter_nodes(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> Verdicts:
        if pod.extended:
            return filter_each(self.filter, state, pod, nodes)
        cpu, mem = pod.cpu, pod.memory
        passed = [
            n
            for n in nodes
            if n.pod_count < n.alloc_pods
            and n.req_cpu + cpu <= n.alloc_cpu
            and n.req_memory + mem <= n.alloc_memory
        ]
        if len(passed) == len(nodes):
            return passed, []
        return filter_each(self.filter, state, pod, nodes)
