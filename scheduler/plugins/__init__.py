"""The in-tree plugins and the default profile (pkg/scheduler/framework/plugins).

Plugins are registered by name, as Kubernetes' in-tree registry: a profile
is a list of names plus score weights, so a test (or a future config file)
can build a framework with a different set.

The default profile, filters in the order Kubernetes runs them (cheap and
decisive first, so most rejections cost one check):

    NodeUnschedulable, NodeName, TaintToleration, NodeAffinity,
    NodeResourcesFit, PodTopologySpread, InterPodAffinity

and score weights (Kubernetes' defaults; SelectorSpread stands in for the
system-default topology spreading Kubernetes applies to every ReplicaSet):

    TaintToleration 3, NodeAffinity 2, PodTopologySpread 2, InterPodAffinity 2,
    SelectorSpread 2, NodeResourcesLeastAllocated 1, NodeResourcesBalancedAllocation 1
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from protos import core_pb2
from scheduler.framework import Framework, Plugin
from scheduler.plugins.balanced_allocation import NodeResourcesBalancedAllocation
from scheduler.plugins.inter_pod_affinity import InterPodAffinity
from scheduler.plugins.least_allocated import NodeResourcesLeastAllocated
from scheduler.plugins.node_affinity import NodeAffinity
from scheduler.plugins.node_name import NodeName
from scheduler.plugins.node_resources_fit import NodeResourcesFit
from scheduler.plugins.node_unschedulable import NodeUnschedulable
from scheduler.plugins.pod_topology_spread import PodTopologySpread
from scheduler.plugins.selector_spread import SelectorSpread, ServiceLister
from scheduler.plugins.taint_toleration import TaintToleration

PluginFactory = Callable[[ServiceLister], Plugin]


def _no_services() -> Iterable[core_pb2.Service]:
    return ()


REGISTRY: dict[str, PluginFactory] = {
    "NodeUnschedulable": lambda _: NodeUnschedulable(),
    "NodeName": lambda _: NodeName(),
    "TaintToleration": lambda _: TaintToleration(),
    "NodeAffinity": lambda _: NodeAffinity(),
    "NodeResourcesFit": lambda _: NodeResourcesFit(),
    "PodTopologySpread": lambda _: PodTopologySpread(),
    "InterPodAffinity": lambda _: InterPodAffinity(),
    "NodeResourcesLeastAllocated": lambda _: NodeResourcesLeastAllocated(),
    "NodeResourcesBalancedAllocation": lambda _: NodeResourcesBalancedAllocation(),
    "SelectorSpread": lambda services: SelectorSpread(services),
}

DEFAULT_PLUGINS: tuple[str, ...] = tuple(REGISTRY)

DEFAULT_WEIGHTS: dict[str, int] = {
    "TaintToleration": 3,
    "NodeAffinity": 2,
    "PodTopologySpread": 2,
    "InterPodAffinity": 2,
    "SelectorSpread": 2,
    "NodeResourcesLeastAllocated": 1,
    "NodeResourcesBalancedAllocation": 1,
}


def new_framework(
    services: ServiceLister = _no_services,
    plugins: Sequence[str] = DEFAULT_PLUGINS,
    weights: Mapping[str, int] | None = None,
) -> Framework:
    """A framework with the named plugins (default profile unless told otherwise)."""
    unknown = [p for p in plugins if p not in REGISTRY]
    if unknown:
        raise ValueError(f"unknown scheduler plugins: {', '.join(unknown)}")
    return Framework(
        [REGISTRY[name](services) for name in plugins],
        {**DEFAULT_WEIGHTS, **(weights or {})},
    )
