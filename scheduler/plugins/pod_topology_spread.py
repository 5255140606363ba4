"""PodTopologySpread: honour `topologySpreadConstraints` (maxSkew per topology domain).

A constraint says: among the domains of `topologyKey` (each distinct value
of that node label: a zone, or a hostname), the number of pods matching
`labelSelector` may differ by at most `maxSkew`. `whenUnsatisfiable:
DoNotSchedule` makes it a Filter; `ScheduleAnyway` only a Score.

Filter, worked example: maxSkew 1, topologyKey zone, selector app=web;
matching pods per zone: a 2, b 1, c 1 (min 1); the new pod matches its own
selector, so placing it in zone X gives skew = count[X] + 1 - min:

    zone a: 2 + 1 - 1 = 2 > 1  -> rejected "node(s) didn't match pod topology spread constraints"
    zone b: 1 + 1 - 1 = 1      -> fine

A node without the topologyKey label cannot be placed in any domain:
rejected as unresolvable ("(missing required label)"). Only nodes that pass
the pod's nodeSelector/required affinity count as domains (Kubernetes'
default nodeAffinityPolicy: Honor). With `minDomains` set and fewer domains
than that, the global minimum is taken as 0.

Score (ScheduleAnyway): a node's raw score is the sum over soft
constraints of the matching pods in its domain; fewer is better, so it is
normalised as Kubernetes does, 100 * (max + min - s) / max; nodes without
the label score 0.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import compress

from apimachinery import labels
from protos import core_pb2
from scheduler.framework import (
    MAX_NODE_SCORE,
    SKIP,
    CycleState,
    StateKey,
    Status,
    Verdicts,
    filter_each,
    unschedulable,
)
from scheduler.plugins.node_affinity import RequiredAffinity
from scheduler.snapshot import Snapshot
from scheduler.types import NodeInfo, PodInfo

NAME = "PodTopologySpread"
REASON = "node(s) didn't match pod topology spread constraints"
REASON_MISSING = "node(s) didn't match pod topology spread constraints (missing required label)"
_REJECT = unschedulable(NAME, REASON)
_REJECT_MISSING = unschedulable(NAME, REASON_MISSING, resolvable=False)
_FILTER: StateKey[list[Constraint]] = StateKey("PodTopologySpread/filter")
_SCORE: StateKey[list[Constraint]] = StateKey("PodTopologySpread/score")


@dataclass
class Constraint:
    """One topologySpreadConstraint of the pod, with the matching pods counted per domain.

    `counts` holds the domains with at least one matching pod (from the cache's index, or
    counted here); `domains` is how many eligible domains there are in all, so a domain
    missing from `counts` has 0 and the global minimum is 0 when some domain is empty.
    """

    max_skew: int
    key: str
    selector: labels.Selector
    min_domains: int
    self_match: int
    counts: Mapping[str, int] = field(default_factory=dict)
    domains: int = 0
    min_match: int = 0  # global_min(), computed once per cycle in pre_filter/pre_score

    def global_min(self) -> int:
        if self.domains < self.min_domains or len(self.counts) < self.domains:
            return 0
        return min(self.counts.values(), default=0)


def _constraints(pod: PodInfo, mode: str) -> list[Constraint]:
    """The pod's constraints whose whenUnsatisfiable is `mode`, not counted yet."""
    out = []
    for c in pod.pod.spec.topology_spread_constraints:
        if (c.when_unsatisfiable or "DoNotSchedule") != mode:
            continue
        selector = labels.from_label_selector(c.label_selector)
        out.append(
            Constraint(
                max_skew=c.max_skew or 1,
                key=c.topology_key,
                selector=selector,
                min_domains=c.min_domains if c.HasField("min_domains") else 1,
                self_match=1 if selector.matches(pod.labels) else 0,
            )
        )
    return out


def _count(pod: PodInfo, constraints: list[Constraint], snapshot: Snapshot) -> None:
    """Matching pods per domain for each constraint, then each one's global minimum.

    The common case (every constraint on one key, no nodeSelector or required node
    affinity, the pod not placed yet) reads the cache's incremental counts
    (topology.py): O(1) per cycle instead of a walk over every pod.
    """
    keys = {c.key for c in constraints}
    required = RequiredAffinity.of(pod.pod)
    if (
        len(keys) == 1
        and not required.selector
        and required.terms is None
        and not snapshot.is_placed(pod.key)
    ):
        index = snapshot.topology
        ns = frozenset((pod.namespace,))
        for c in constraints:
            c.counts = index.match_counts(ns, c.selector, c.key)
            c.domains = index.domain_count(c.key)
    else:
        count_by_walking(pod, constraints, snapshot, required)
    for c in constraints:
        c.min_match = c.global_min()


def count_by_walking(
    pod: PodInfo,
    constraints: list[Constraint],
    nodes: Iterable[NodeInfo],
    required: RequiredAffinity,
) -> None:
    """Matching pods per domain, over the nodes that carry every constraint's key and pass
    the pod's required node affinity (Kubernetes' PreFilter walk; the index's reference)."""
    counted: list[Counter[str]] = [Counter() for _ in constraints]
    domains: list[set[str]] = [set() for _ in constraints]
    for node in nodes:
        if any(c.key not in node.labels for c in constraints) or not required.matches(node):
            continue
        for c, counts, seen in zip(constraints, counted, domains, strict=True):
            domain = node.labels[c.key]
            seen.add(domain)
            n = sum(
                1
                for p in node.pods.values()
                if p.namespace == pod.namespace
                and p.key != pod.key
                and c.selector.matches(p.labels)
            )
            if n:
                counts[domain] += n
    for c, counts, seen in zip(constraints, counted, domains, strict=True):
        c.counts, c.domains = counts, len(seen)


class PodTopologySpread:
    """Filter and score by topologySpreadConstraints (maxSkew per topology domain)."""

    name = NAME

    def pre_filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Status | None:
        if not pod.has_spread_constraints:
            return SKIP
        hard = _constraints(pod, "DoNotSchedule")
        if not hard:
            return SKIP
        _count(pod, hard, snapshot)
        state.write(_FILTER, hard)
        return None

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        hard = state.read(_FILTER)
        if hard is None:
            return None
        for c in hard:
            domain = node.labels.get(c.key)
            if domain is None:
                return _REJECT_MISSING
            if c.counts.get(domain, 0) + c.self_match - c.min_match > c.max_skew:
                return _REJECT
        return None

    def filter_nodes(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> Verdicts:
        hard = state.read(_FILTER)
        if hard is None:
            return nodes, []
        if len(hard) != 1:
            return filter_each(self.filter, state, pod, nodes)
        # filter() for one constraint, as comprehensions: count <= maxSkew - self + min
        c = hard[0]
        key, get, limit = c.key, c.counts.get, c.max_skew - c.self_match + c.min_match
        domains = [n.labels.get(key) for n in nodes]
        ok = [d is not None and get(d, 0) <= limit for d in domains]
        passed = list(compress(nodes, ok))
        if len(passed) == len(nodes):
            return passed, []
        rejected = [
            (n, _REJECT if d is not None else _REJECT_MISSING)
            for n, d, good in zip(nodes, domains, ok, strict=True)
            if not good
        ]
        return passed, rejected

    def pre_score(
        self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo], snapshot: Snapshot
    ) -> Status | None:
        if not pod.has_spread_constraints:
            return SKIP
        soft = _constraints(pod, "ScheduleAnyway")
        if not soft:
            return SKIP
        _count(pod, soft, snapshot)
        state.write(_SCORE, soft)
        return None

    def score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> list[int]:
        soft = state.read(_SCORE) or []
        out = []
        for n in nodes:
            if any(c.key not in n.labels for c in soft):
                out.append(-1)  # ignored: no domain
            else:
                out.append(sum(c.counts.get(n.labels[c.key], 0) for c in soft))
        return out

    def normalize(self, state: CycleState, pod: PodInfo, scores: list[int]) -> None:
        valid = [s for s in scores if s >= 0]
        top, low = max(valid, default=0), min(valid, default=0)
        for i, s in enumerate(scores):
            if s < 0:
                scores[i] = 0
            elif top == 0:
                scores[i] = MAX_NODE_SCORE
            else:
                scores[i] = MAX_NODE_SCORE * (top + low - s) // top


def describe(pod: core_pb2.Pod) -> list[str]:
    """The pod's constraints in one line each (explain-placement)."""
    return [
        f"maxSkew={c.max_skew} topologyKey={c.topology_key} "
        f"whenUnsatisfiable={c.when_unsatisfiable or 'DoNotSchedule'}"
        for c in pod.spec.topology_spread_constraints
    ]
