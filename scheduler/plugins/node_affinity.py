"""NodeAffinity: nodeSelector and nodeAffinity, required and preferred.

Filter (Kubernetes merged the old NodeSelector plugin into this one): the
node's labels must match every `spec.nodeSelector` entry, and, if
`requiredDuringSchedulingIgnoredDuringExecution` is set, at least one of its
nodeSelectorTerms. A term matches when all of its matchExpressions (on
labels) and matchFields (only `metadata.name`) match. A term with no
requirements matches nothing, as in Kubernetes. Rejection:
`node(s) didn't match Pod's node affinity/selector`, unresolvable.

Score: the sum of the weights of the `preferred...` terms the node matches,
normalised by the best node:

    preferred: (weight 80: disktype=ssd), (weight 20: zone=a)
    node1 ssd, zone a -> 100    node2 ssd -> 80    node3 -> 0
    normalised by 100: (100, 80, 0)

Operators: In, NotIn, Exists, DoesNotExist, Gt, Lt (integers compared).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from protos import core_pb2
from scheduler.framework import (
    SKIP,
    CycleState,
    StateKey,
    Status,
    default_normalize,
    unschedulable,
)
from scheduler.snapshot import Snapshot
from scheduler.types import NodeInfo, PodInfo

NAME = "NodeAffinity"
REASON = "node(s) didn't match Pod's node affinity/selector"
_REJECT = unschedulable(NAME, REASON, resolvable=False)
_REQUIRED: StateKey[RequiredAffinity] = StateKey("NodeAffinity/required")
_PREFERRED: StateKey[list[tuple[int, Term]]] = StateKey("NodeAffinity/preferred")


@dataclass(frozen=True)
class Requirement:
    """One matchExpressions or matchFields entry (v1.NodeSelectorRequirement)."""

    key: str
    operator: str
    values: tuple[str, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        op, present = self.operator, self.key in labels
        if op == "In":
            return present and labels[self.key] in self.values
        if op == "NotIn":
            return not present or labels[self.key] not in self.values
        if op == "Exists":
            return present
        if op == "DoesNotExist":
            return not present
        if op in ("Gt", "Lt") and present and len(self.values) == 1:
            try:
                have, want = int(labels[self.key]), int(self.values[0])
            except ValueError:
                return False
            return have > want if op == "Gt" else have < want
        return False


@dataclass(frozen=True)
class Term:
    """One nodeSelectorTerm: all of its requirements must match (v1.NodeSelectorTerm)."""

    expressions: tuple[Requirement, ...]
    fields: tuple[Requirement, ...]

    @classmethod
    def of(cls, term: core_pb2.NodeSelectorTerm) -> Term:
        def reqs(items: Iterable[core_pb2.NodeSelectorRequirement]) -> tuple[Requirement, ...]:
            return tuple(Requirement(r.key, r.operator, tuple(r.values)) for r in items)

        return cls(reqs(term.match_expressions), reqs(term.match_fields))

    def matches(self, node: NodeInfo) -> bool:
        if not self.expressions and not self.fields:
            return False
        fields = {"metadata.name": node.name}
        return all(r.matches(node.labels) for r in self.expressions) and all(
            r.matches(fields) for r in self.fields
        )


@dataclass(frozen=True)
class RequiredAffinity:
    """nodeSelector + required terms of one pod (nodeaffinity.RequiredNodeAffinity)."""

    selector: tuple[tuple[str, str], ...]
    terms: tuple[Term, ...] | None  # None: no required affinity at all

    @classmethod
    def of(cls, pod: core_pb2.Pod) -> RequiredAffinity:
        spec = pod.spec
        affinity = spec.affinity.node_affinity
        terms = None
        if affinity.HasField("required_during_scheduling_ignored_during_execution"):
            required = affinity.required_during_scheduling_ignored_during_execution
            terms = tuple(Term.of(t) for t in required.node_selector_terms)
        return cls(tuple(sorted(spec.node_selector.items())), terms)

    def matches(self, node: NodeInfo) -> bool:
        labels = node.labels
        for k, v in self.selector:
            if labels.get(k) != v:
                return False
        if self.terms is None:
            return True
        return any(t.matches(node) for t in self.terms)


class NodeAffinity:
    """Filter on nodeSelector and required node affinity; score preferred terms."""

    name = NAME

    def pre_filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Status | None:
        if not pod.has_node_affinity:
            return SKIP
        required = RequiredAffinity.of(pod.pod)
        if not required.selector and required.terms is None:
            return SKIP  # only preferred terms: nothing to filter
        state.write(_REQUIRED, required)
        return None

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        required = state.read(_REQUIRED)
        if required is None:
            required = RequiredAffinity.of(pod.pod)
            state.write(_REQUIRED, required)
        return None if required.matches(node) else _REJECT

    def pre_score(
        self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo], snapshot: Snapshot
    ) -> Status | None:
        if not pod.has_node_affinity:
            return SKIP
        affinity = pod.pod.spec.affinity.node_affinity
        preferred = [
            (p.weight, Term.of(p.preference))
            for p in affinity.preferred_during_scheduling_ignored_during_execution
            if p.weight
        ]
        if not preferred:
            return SKIP
        state.write(_PREFERRED, preferred)
        return None

    def score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> list[int]:
        preferred = state.read(_PREFERRED) or []
        return [sum(w for w, term in preferred if term.matches(n)) for n in nodes]

    def normalize(self, state: CycleState, pod: PodInfo, scores: list[int]) -> None:
        default_normalize(scores)
