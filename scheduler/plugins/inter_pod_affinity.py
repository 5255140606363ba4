"""InterPodAffinity: podAffinity and podAntiAffinity, required and preferred.

A term names pods (a label selector, in some namespaces: the pod's own when
none are listed) and a node label, the topology key, whose values are the
domains: `kubernetes.io/hostname` makes each node a domain, a zone label each
zone. Kubernetes' plugin of the same name (framework/plugins/interpodaffinity).

Filter, three checks, in Kubernetes' order:

1. required podAffinity: in the node's domain of every term there must be a
   pod matching all of the pod's terms. Exception, so a Deployment whose pods
   want to be near each other can start: when no such pod exists anywhere and
   the pod matches its own terms, any node carrying the keys will do.
   Otherwise "node(s) didn't match pod affinity rules" (unresolvable).
2. required podAntiAffinity: no pod matching a term in the node's domain of
   that term, else "node(s) didn't match pod anti-affinity rules".
3. symmetry: no pod already placed may have a required anti-affinity term
   that matches the new pod and whose domain holds the node, else "node(s)
   didn't satisfy existing pods anti-affinity rules".

Worked example (scheduler_perf's anti-affinity pods): every pod is labelled
color=green with an anti-affinity term against color=green on hostname.
node-7 holds one such pod: check 2 rejects node-7 for the new pod (it would
sit beside a green pod), and so would check 3 (the pod there refuses green
neighbours). Each replica lands on a node of its own.

Score: per domain, the weights of the pod's preferred terms times the pods
matching them (anti-affinity terms subtract), plus the placed pods' terms
that match the new pod: their preferred terms by weight, their required
affinity terms by hardPodAffinityWeight (1). A node's raw score is the sum
over the domains it is in; normalised to 0..100 between the lowest and
highest raw score (all equal: 0).

Cost. Kubernetes walks every pod on every node in PreFilter and PreScore.
Here the counts come from the cache's TopologyIndex (topology.py), kept
current as pods come and go: a PreFilter is a few dictionary reads and each
node's Filter is one lookup per term.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import compress

from scheduler.affinity_terms import Kind, combine
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
from scheduler.snapshot import Snapshot
from scheduler.topology import TopologyIndex
from scheduler.types import NodeInfo, PodInfo

NAME = "InterPodAffinity"
REASON_AFFINITY = "node(s) didn't match pod affinity rules"
REASON_ANTI_AFFINITY = "node(s) didn't match pod anti-affinity rules"
REASON_EXISTING_ANTI_AFFINITY = "node(s) didn't satisfy existing pods anti-affinity rules"
HARD_POD_AFFINITY_WEIGHT = 1  # InterPodAffinityArgs.hardPodAffinityWeight's default
_REJECT_AFFINITY = unschedulable(NAME, REASON_AFFINITY, resolvable=False)
_REJECT_ANTI = unschedulable(NAME, REASON_ANTI_AFFINITY)
_REJECT_EXISTING = unschedulable(NAME, REASON_EXISTING_ANTI_AFFINITY)

Domains = Mapping[str, int]  # domain (a value of the topology key) -> count


@dataclass
class _FilterState:
    """What Filter needs, computed once per pod in PreFilter."""

    affinity: list[tuple[str, Domains]] = field(default_factory=list)  # (key, matching pods)
    affinity_anywhere: bool = False  # some pod matches all the required affinity terms
    self_match: bool = False  # the pod matches its own required affinity terms
    anti: list[tuple[str, Domains]] = field(default_factory=list)  # the pod's anti terms
    existing_anti: list[tuple[str, Domains]] = field(default_factory=list)  # placed pods'


_FILTER: StateKey[_FilterState] = StateKey("InterPodAffinity/filter")
_SCORE: StateKey[dict[str, dict[str, int]]] = StateKey("InterPodAffinity/score")


def filter_state(pod: PodInfo, index: TopologyIndex) -> _FilterState | None:
    """The PreFilter state, or None when there is nothing to check for this pod."""
    st = _FilterState()
    terms = pod.affinity
    if terms is not None and terms.required:
        namespaces, selector = combine(terms.required)
        st.affinity = [
            (t.topology_key, index.match_counts(namespaces, selector, t.topology_key))
            for t in terms.required
        ]
        st.affinity_anywhere = any(counts for _, counts in st.affinity)
        st.self_match = all(t.matches(pod.namespace, pod.labels) for t in terms.required)
    if terms is not None:
        st.anti = [
            (t.topology_key, index.match_counts(t.namespaces, t.selector, t.topology_key))
            for t in terms.required_anti
        ]
    own = dict(st.anti)
    for (kind, _, term), counts in index.term_groups().items():
        if kind is not Kind.REQUIRED_ANTI_AFFINITY or not term.matches(pod.namespace, pod.labels):
            continue
        mine = own.get(term.topology_key)
        if mine is not None and counts.keys() <= mine.keys():
            continue  # every domain it blocks, the pod's own anti-affinity blocks first
        st.existing_anti.append((term.topology_key, counts))
    if not (st.affinity or st.anti or st.existing_anti):
        return None
    return st


def check(st: _FilterState, node: NodeInfo) -> Status | None:
    """Filter's three checks on one node (see the module notes)."""
    node_labels = node.labels
    if st.affinity:
        pods_exist = True
        for key, counts in st.affinity:
            domain = node_labels.get(key)
            if domain is None:
                return _REJECT_AFFINITY  # every topology key must be on the node
            if domain not in counts:
                pods_exist = False
        if not pods_exist and (st.affinity_anywhere or not st.self_match):
            return _REJECT_AFFINITY
    for key, counts in st.anti:
        if node_labels.get(key) in counts:
            return _REJECT_ANTI
    for key, counts in st.existing_anti:
        if node_labels.get(key) in counts:
            return _REJECT_EXISTING
    return None


class InterPodAffinity:
    """Filter by required pod (anti-)affinity; score by preferred terms (both directions)."""

    name = NAME

    def pre_filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Status | None:
        st = filter_state(pod, snapshot.topology)
        if st is None:
            return SKIP
        state.write(_FILTER, st)
        return None

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        st = state.read(_FILTER)
        return None if st is None else check(st, node)

    def filter_nodes(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> Verdicts:
        st = state.read(_FILTER)
        if st is None:
            return nodes, []
        if st.affinity:
            return filter_each(self.filter, state, pod, nodes)
        # anti-affinity only (the common case): one lookup per term and node, check by
        # check; a node failing both is rejected by the first, as check() does
        passed = nodes
        rejected: list[tuple[NodeInfo, Status]] = []
        for checks, status in ((st.anti, _REJECT_ANTI), (st.existing_anti, _REJECT_EXISTING)):
            for key, counts in checks:
                keep = [n.labels.get(key) not in counts for n in passed]
                if all(keep):
                    continue
                rejected.extend((n, status) for n, k in zip(passed, keep, strict=True) if not k)
                passed = list(compress(passed, keep))
        return passed, rejected

    def pre_score(
        self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo], snapshot: Snapshot
    ) -> Status | None:
        scores = topology_scores(pod, snapshot.topology)
        if not scores:
            return SKIP
        state.write(_SCORE, scores)
        return None

    def score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> list[int]:
        scores = state.read(_SCORE) or {}
        out = []
        for n in nodes:
            total = 0
            for key, by_domain in scores.items():
                domain = n.labels.get(key)
                if domain is not None:
                    total += by_domain.get(domain, 0)
            out.append(total)
        return out

    def normalize(self, state: CycleState, pod: PodInfo, scores: list[int]) -> None:
        low, top = min(scores, default=0), max(scores, default=0)
        spread = top - low
        for i, s in enumerate(scores):
            scores[i] = MAX_NODE_SCORE * (s - low) // spread if spread > 0 else 0


def topology_scores(pod: PodInfo, index: TopologyIndex) -> dict[str, dict[str, int]]:
    """Per topology key and domain, the summed weights (see the module notes); {} if none."""
    out: defaultdict[str, Counter[str]] = defaultdict(Counter)

    def add(key: str, counts: Domains, weight: int) -> None:
        bucket = out[key]
        for domain, n in counts.items():
            bucket[domain] += weight * n

    terms = pod.affinity
    if terms is not None:
        for weight, t in terms.preferred:
            add(
                t.topology_key, index.match_counts(t.namespaces, t.selector, t.topology_key), weight
            )
        for weight, t in terms.preferred_anti:
            add(
                t.topology_key,
                index.match_counts(t.namespaces, t.selector, t.topology_key),
                -weight,
            )
    for (kind, weight, term), counts in index.term_groups().items():
        if kind is Kind.REQUIRED_ANTI_AFFINITY or not term.matches(pod.namespace, pod.labels):
            continue
        if kind is Kind.REQUIRED_AFFINITY:
            weight = HARD_POD_AFFINITY_WEIGHT
        elif kind is Kind.PREFERRED_ANTI_AFFINITY:
            weight = -weight
        add(term.topology_key, counts, weight)
    return {
        key: {d: v for d, v in bucket.items() if v}
        for key, bucket in out.items()
        if any(bucket.values())
    }
