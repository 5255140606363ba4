"""SelectorSpread: spread the pods of one ReplicaSet (or Service) across nodes.

The seed's Deployment asks for two nginx replicas; a user expects them on
two nodes, so one node failing leaves one replica serving. Kubernetes'
SelectorSpread (now folded into PodTopologySpread's system defaults) scores
a node by how many *sibling* pods already run there: pods in the same
namespace that the pod's controller (its controller ownerReference) owns,
or that a Service selecting this pod also selects. Fewer is better:

    siblings: node1 1, node2 0, node3 0
    normalised: 100 * (max - count) / max  ->  (0, 100, 100)

With weight 2 that is 200 points against at most 100 from LeastAllocated,
so replicas of one owner land on different nodes whenever the nodes are
otherwise alike. Assumed pods count: the second replica, scheduled before
the first one's Binding returns, already sees the first on its node.

Counting by owner is O(1) per node (NodeInfo keeps a count per owner uid);
Service selectors need a look at the node's pods, so they are only
evaluated when some Service in the namespace selects the pod. A pod with
neither an owner nor a selecting Service is left alone (PreScore Skip).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from apimachinery import labels
from protos import core_pb2
from scheduler.framework import MAX_NODE_SCORE, SKIP, CycleState, StateKey, Status
from scheduler.snapshot import Snapshot
from scheduler.types import NodeInfo, PodInfo

NAME = "SelectorSpread"
_SELECTORS: StateKey[list[labels.Selector]] = StateKey("SelectorSpread/selectors")

# The Services the plugin may consult (the scheduler passes its informer's store.list).
ServiceLister = Callable[[], Iterable[core_pb2.Service]]


def _no_services() -> Iterable[core_pb2.Service]:
    return ()


class SelectorSpread:
    """Score: prefer nodes with fewer sibling pods (same owner or selecting Service)."""

    name = NAME

    def __init__(self, services: ServiceLister = _no_services) -> None:
        self.services = services

    def pre_score(
        self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo], snapshot: Snapshot
    ) -> Status | None:
        selectors = [
            labels.from_set(svc.spec.selector)
            for svc in self.services()
            if svc.metadata.namespace == pod.namespace
            and svc.spec.selector
            and labels.from_set(svc.spec.selector).matches(pod.labels)
        ]
        if not selectors and not pod.owner_uid:
            return SKIP
        state.write(_SELECTORS, selectors)
        return None

    def score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> list[int]:
        selectors = state.read(_SELECTORS) or []
        owner = pod.owner_uid
        if not selectors:
            return [n.owners.get(owner, 0) for n in nodes]
        ns = pod.namespace
        return [
            sum(
                1
                for p in n.pods.values()
                if p.namespace == ns
                and p.key != pod.key
                and (
                    (owner and p.owner_uid == owner) or any(s.matches(p.labels) for s in selectors)
                )
            )
            for n in nodes
        ]

    def normalize(self, state: CycleState, pod: PodInfo, scores: list[int]) -> None:
        top = max(scores, default=0)
        if top == 0:
            scores[:] = [MAX_NODE_SCORE] * len(scores)
            return
        for i, count in enumerate(scores):
            scores[i] = MAX_NODE_SCORE * (top - count) // top
