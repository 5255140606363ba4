"""Pods counted per topology domain, kept current as pods come and go.

Two plugins ask "how many pods matching S sit in each domain of key K?":
PodTopologySpread (S = a constraint's selector, K = its topologyKey) and
InterPodAffinity (S = an affinity term's selector and namespaces, K = its
topologyKey). Kubernetes answers in PreFilter, once per pod, by walking every
pod on every node of the snapshot (podtopologyspread/filtering.go,
interpodaffinity/filtering.go), then each Filter call is a map lookup. In
Python that walk is the whole cost of the cycle: 2000 bound pods on 5000
nodes take milliseconds per pod.

So the cache keeps the answers instead, and keeps them current:

    match_counts(ns={default}, selector=color=blue, key=zone)
        first call: one walk over the nodes and their pods -> {moon-1: 4, moon-2: 3}
        kept in the index; every later pod placed or removed on a node adds or
        subtracts 1 in its domain if it matches (Cache._place/_unplace call
        pod_added/pod_removed), so the next cycle reads it in O(1)

A domain is absent from a result when no matching pod is there (never a 0
entry), so `domain in counts` is "some matching pod is there".

Existing pods' terms work the other way round: the incoming pod must respect
the anti-affinity of pods already placed (and the scorer honours their
preferred terms). The index groups the placed pods' terms by identical term
and kind (`TermKey`): the 2000 replicas of one Deployment share one term, so
the incoming pod is matched against one group, not 2000 pods, and the group
holds how many pods carry the term per domain of its key.

What invalidates. Counts depend on node labels (the domains) and on which
nodes are in the snapshot (placeholders are not). A node added, removed, or
relabelled, or a placeholder getting its Node, calls `nodes_changed`: every
cached answer is dropped and rebuilt on its next use. Heartbeats and status
updates leave labels alone and keep the answers.

Only the most recently used `MAX_QUERIES` answers are kept: each pod placed
costs one selector match per kept answer.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from apimachinery import labels
from scheduler.affinity_terms import TermKey

if TYPE_CHECKING:
    from scheduler.types import NodeInfo, PodInfo

MAX_QUERIES = 64


MatchKey = tuple[frozenset[str], labels.Selector, str]


def _bump(counts: Counter[str], domain: str, delta: int) -> None:
    n = counts.get(domain, 0) + delta
    if n > 0:
        counts[domain] = n
    else:
        counts.pop(domain, None)


class TopologyIndex:
    """Matching pods per topology domain, and placed pods' affinity terms per domain."""

    def __init__(self, nodes: Mapping[str, NodeInfo]) -> None:
        self._nodes = nodes  # the cache's NodeInfos (a live view)
        self._matches: OrderedDict[MatchKey, Counter[str]] = OrderedDict()
        self._domains: dict[str, int] = {}  # topology key -> how many domains
        self._terms: dict[TermKey, Counter[str]] | None = None
        self.hits = 0  # answers served from the index (tests, benchmarks)
        self.builds = 0  # answers built by a walk over the nodes

    # ---- kept current by the cache ------------------------------------------------------------

    def pod_added(self, info: PodInfo, node: NodeInfo) -> None:
        self._update(info, node, 1)

    def pod_removed(self, info: PodInfo, node: NodeInfo) -> None:
        self._update(info, node, -1)

    def _update(self, info: PodInfo, node: NodeInfo, delta: int) -> None:
        if node.node is None:
            return  # a placeholder's pods count once its Node arrives (nodes_changed)
        node_labels = node.labels
        for (namespaces, selector, key), counts in self._matches.items():
            domain = node_labels.get(key)
            if (
                domain is not None
                and info.namespace in namespaces
                and selector.matches(info.labels)
            ):
                _bump(counts, domain, delta)
        if self._terms is not None and info.affinity is not None:
            for term_key in info.affinity.term_keys():
                domain = node_labels.get(term_key[2].topology_key)
                if domain is not None:
                    group = self._terms.setdefault(term_key, Counter())
                    _bump(group, domain, delta)
                    if not group:
                        del self._terms[term_key]

    def nodes_changed(self) -> None:
        """A node came, went, or changed labels: every answer is rebuilt on its next use."""
        self._matches.clear()
        self._domains.clear()
        self._terms = None

    # ---- read by the plugins ------------------------------------------------------------------

    def match_counts(
        self, namespaces: frozenset[str], selector: labels.Selector, key: str
    ) -> Counter[str]:
        """Placed pods in `namespaces` matching `selector`, per value of node label `key`.

        The Counter is the index's own: read it, never change it.
        """
        mk = (namespaces, selector, key)
        counts = self._matches.get(mk)
        if counts is not None:
            self._matches.move_to_end(mk)
            self.hits += 1
            return counts
        self.builds += 1
        counts = count_matching(self._nodes.values(), namespaces, selector, key)
        self._matches[mk] = counts
        if len(self._matches) > MAX_QUERIES:
            self._matches.popitem(last=False)
        return counts

    def domain_count(self, key: str) -> int:
        """How many distinct values of label `key` the (non-placeholder) nodes carry."""
        n = self._domains.get(key)
        if n is None:
            n = self._domains[key] = len(
                {
                    ni.labels[key]
                    for ni in self._nodes.values()
                    if ni.node is not None and key in ni.labels
                }
            )
        return n

    def term_groups(self) -> dict[TermKey, Counter[str]]:
        """Placed pods' affinity terms: per (kind, weight, term), the carrying pods per domain."""
        if self._terms is None:
            self._terms = terms_by_domain(self._nodes.values())
        return self._terms


def count_matching(
    nodes: Iterable[NodeInfo], namespaces: frozenset[str], selector: labels.Selector, key: str
) -> Counter[str]:
    """The brute-force count (what Kubernetes' PreFilter walks): the reference for the index."""
    counts: Counter[str] = Counter()
    for ni in nodes:
        domain = ni.labels.get(key)
        if ni.node is None or domain is None:
            continue
        n = sum(
            1 for p in ni.pods.values() if p.namespace in namespaces and selector.matches(p.labels)
        )
        if n:
            counts[domain] += n
    return counts


def terms_by_domain(nodes: Iterable[NodeInfo]) -> dict[TermKey, Counter[str]]:
    """The brute-force grouping of placed pods' affinity terms by domain."""
    groups: dict[TermKey, Counter[str]] = {}
    for ni in nodes:
        if ni.node is None:
            continue
        for p in ni.pods.values():
            if p.affinity is None:
                continue
            for term_key in p.affinity.term_keys():
                domain = ni.labels.get(term_key[2].topology_key)
                if domain is not None:
                    groups.setdefault(term_key, Counter())[domain] += 1
    return {k: v for k, v in groups.items() if v}
