"""A pod's inter-pod affinity terms, parsed once from its spec.

Kubernetes' scheduler turns each PodAffinityTerm into an AffinityTerm (its
namespaces resolved, its labelSelector compiled) when it builds a PodInfo
(framework/types.go), so Filter and Score never parse a selector again. This
module holds those parsed forms; scheduler/topology.py counts pods with them
and scheduler/plugins/inter_pod_affinity.py decides with the counts.

    spec.affinity.podAntiAffinity.required...[0]
        -> AffinityTerm(namespaces={default}, selector=app=web, topology_key=hostname)
        -> PodAffinityInfo.required_anti = (that term,)
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from apimachinery import errors, labels
from protos import core_pb2


@dataclass(frozen=True)
class AffinityTerm:
    """A PodAffinityTerm: pods in `namespaces` matching `selector`, domains of `topology_key`."""

    namespaces: frozenset[str]
    selector: labels.Selector
    topology_key: str

    @classmethod
    def of(cls, term: core_pb2.PodAffinityTerm, namespace: str) -> AffinityTerm:
        """The term of a pod in `namespace` (no namespaces listed: the pod's own)."""
        selector = labels.nothing()  # an absent labelSelector selects no pod
        if term.HasField("label_selector"):
            # validation refuses bad operators; never crash the scheduler on one
            with contextlib.suppress(errors.BadRequest):
                selector = labels.from_label_selector(term.label_selector)
        namespaces = frozenset(term.namespaces) or frozenset((namespace,))
        return cls(namespaces, selector, term.topology_key)

    def matches(self, namespace: str, pod_labels: Mapping[str, str]) -> bool:
        return namespace in self.namespaces and self.selector.matches(pod_labels)


def combine(terms: Iterable[AffinityTerm]) -> tuple[frozenset[str], labels.Selector]:
    """The namespaces and selector of pods matching *every* term (required affinity counts
    only the pods that match all of the pod's terms, as Kubernetes does)."""
    terms = list(terms)
    namespaces = frozenset.intersection(*(t.namespaces for t in terms))
    if any(not t.selector.empty() and not t.selector.requirements for t in terms):
        return namespaces, labels.nothing()
    return namespaces, labels.Selector(r for t in terms for r in t.selector.requirements)


class Kind(enum.Enum):
    """Which list of a pod's affinity a term comes from."""

    REQUIRED_AFFINITY = "requiredAffinity"
    REQUIRED_ANTI_AFFINITY = "requiredAntiAffinity"
    PREFERRED_AFFINITY = "preferredAffinity"
    PREFERRED_ANTI_AFFINITY = "preferredAntiAffinity"


TermKey = tuple[Kind, int, AffinityTerm]  # (kind, weight: 0 for required terms, term)


@dataclass(frozen=True)
class PodAffinityInfo:
    """A pod's podAffinity and podAntiAffinity, parsed once (framework.PodInfo's terms)."""

    required: tuple[AffinityTerm, ...]
    required_anti: tuple[AffinityTerm, ...]
    preferred: tuple[tuple[int, AffinityTerm], ...]
    preferred_anti: tuple[tuple[int, AffinityTerm], ...]

    @classmethod
    def of(cls, pod: core_pb2.Pod) -> PodAffinityInfo | None:
        """None when the pod has no inter-pod (anti-)affinity at all."""
        affinity = pod.spec.affinity
        if not (affinity.HasField("pod_affinity") or affinity.HasField("pod_anti_affinity")):
            return None
        ns = pod.metadata.namespace
        near, away = affinity.pod_affinity, affinity.pod_anti_affinity
        info = cls(
            required=tuple(
                AffinityTerm.of(t, ns)
                for t in near.required_during_scheduling_ignored_during_execution
            ),
            required_anti=tuple(
                AffinityTerm.of(t, ns)
                for t in away.required_during_scheduling_ignored_during_execution
            ),
            preferred=tuple(
                (w.weight, AffinityTerm.of(w.pod_affinity_term, ns))
                for w in near.preferred_during_scheduling_ignored_during_execution
            ),
            preferred_anti=tuple(
                (w.weight, AffinityTerm.of(w.pod_affinity_term, ns))
                for w in away.preferred_during_scheduling_ignored_during_execution
            ),
        )
        return info if info.term_keys() else None

    def term_keys(self) -> list[TermKey]:
        """Every term with its kind and weight: what the index groups existing pods by."""
        return [
            *((Kind.REQUIRED_AFFINITY, 0, t) for t in self.required),
            *((Kind.REQUIRED_ANTI_AFFINITY, 0, t) for t in self.required_anti),
            *((Kind.PREFERRED_AFFINITY, w, t) for w, t in self.preferred),
            *((Kind.PREFERRED_ANTI_AFFINITY, w, t) for w, t in self.preferred_anti),
        ]
