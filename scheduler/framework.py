"""The scheduling framework: plugins at extension points, and the Status they return.

Kubernetes' scheduler is a pipeline of small plugins (pkg/scheduler/framework).
For each pod, one *scheduling cycle* runs:

    PreFilter(pod)          once per pod: compute what Filter needs; may Skip the plugin
    Filter(pod, node)       per node: can the pod run here? the first "no" rejects the node
    PreScore(pod, nodes)    once, over the feasible nodes; may Skip the plugin
    Score(pod, nodes)       per plugin: 0..100 for every feasible node
    NormalizeScore          per plugin: rescale its raw scores to 0..100
    total = sum(weight[plugin] * score[plugin])      the highest total wins

A plugin implements any subset of these methods (`pre_filter`, `filter`,
`pre_score`, `score`, `normalize`); each extension point is a Protocol below
(PreFilterPlugin, FilterPlugin, ...), as each is a Go interface in Kubernetes,
and the framework sorts the plugins it is given by the ones they satisfy.
Plugins pass data from PreFilter to Filter through the CycleState, under a
`StateKey` that also names the type stored (Kubernetes' StateKey/StateData).

Status. A plugin answers with a `Status` whose `Code` says how bad the
answer is, as Kubernetes' framework.Code:

    Success                        (returned as None: the hot path allocates nothing)
    Unschedulable                  "not now": may change when the cluster changes
                                   (Insufficient cpu: another pod may go away)
    UnschedulableAndUnresolvable   "not here, whatever happens": preemption
                                   would not help (a node selector mismatch)
    Error                          the plugin failed; the pod is retried
    Skip                           (PreFilter/PreScore only) this plugin has
                                   nothing to say about this pod: do not call it

Skip is what keeps the cycle cheap: a pod without a nodeSelector or affinity
never pays for NodeAffinity's Filter on 5000 nodes.

Deviations from Kubernetes, for Python's sake: `score` is called once per
plugin with the whole list of feasible nodes and returns a list of scores,
instead of once per (plugin, node); and a Filter plugin may also offer
`filter_nodes(state, pod, nodes) -> (passed, rejected)` for a batch of nodes,
which the algorithm prefers. A list comprehension over 500 nodes costs a
fraction of 500 method calls; the verdicts are the same (`filter` stays the
reference, and explain-placement calls it node by node).

Worked example of weights and normalisation. Two feasible nodes, three
score plugins:

    plugin               weight   raw (n1, n2)     normalised      weighted
    LeastAllocated          1     (50, 40)         (50, 40)        (50, 40)
    BalancedAllocation      1     (98, 99)         (98, 99)        (98, 99)
    SelectorSpread          2     (1 pod, 0 pods)  (0, 100)        (0, 200)
    total                                                          (148, 339) -> n2

SelectorSpread's raw score is a count of sibling pods, so its normalisation
turns "fewer is better" into 0..100: 100 * (max - count) / max.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar, cast, runtime_checkable

if TYPE_CHECKING:
    from scheduler.snapshot import Snapshot
    from scheduler.types import NodeInfo, PodInfo

MAX_NODE_SCORE = 100
T = TypeVar("T")


class Code(enum.IntEnum):
    """How bad a plugin's answer is (framework.Code); see the module notes."""

    SUCCESS = 0
    ERROR = 1
    UNSCHEDULABLE = 2
    UNSCHEDULABLE_AND_UNRESOLVABLE = 3
    SKIP = 4

    @property
    def title(self) -> str:
        return _CODE_TITLES[self]


_CODE_TITLES = {
    Code.SUCCESS: "Success",
    Code.ERROR: "Error",
    Code.UNSCHEDULABLE: "Unschedulable",
    Code.UNSCHEDULABLE_AND_UNRESOLVABLE: "UnschedulableAndUnresolvable",
    Code.SKIP: "Skip",
}


@dataclass(frozen=True)
class Status:
    """A plugin's answer other than plain success (framework.Status)."""

    code: Code
    reasons: tuple[str, ...] = ()
    plugin: str = ""

    @property
    def message(self) -> str:
        return ", ".join(self.reasons)

    def is_rejection(self) -> bool:
        return self.code in (Code.UNSCHEDULABLE, Code.UNSCHEDULABLE_AND_UNRESOLVABLE)


SKIP = Status(Code.SKIP)


def unschedulable(plugin: str, *reasons: str, resolvable: bool = True) -> Status:
    code = Code.UNSCHEDULABLE if resolvable else Code.UNSCHEDULABLE_AND_UNRESOLVABLE
    return Status(code, reasons, plugin)


@dataclass(frozen=True)
class StateKey(Generic[T]):
    """The name of one entry in a CycleState, and the type stored under it."""

    name: str


@dataclass
class CycleState:
    """Scratch space for one pod's cycle (framework.CycleState): plugins share data here."""

    data: dict[str, object] = field(default_factory=dict)
    skip_filter: set[str] = field(default_factory=set)
    skip_score: set[str] = field(default_factory=set)

    def write(self, key: StateKey[T], value: T) -> None:
        self.data[key.name] = value

    def read(self, key: StateKey[T]) -> T | None:
        """What was written under `key` in this cycle, or None."""
        return cast("T | None", self.data.get(key.name))


FilterFn = Callable[[CycleState, "PodInfo", "NodeInfo"], "Status | None"]
Verdicts = tuple[list["NodeInfo"], list[tuple["NodeInfo", "Status"]]]
BatchFilterFn = Callable[[CycleState, "PodInfo", list["NodeInfo"]], Verdicts]
NormalizeFn = Callable[[CycleState, "PodInfo", list[int]], None]


# ---- the extension points (framework/interface.go), one Protocol each -----------------------


@runtime_checkable
class Plugin(Protocol):
    """Every plugin has a name: the registry's key, the record's and the weights' label."""

    name: str


@runtime_checkable
class PreFilterPlugin(Plugin, Protocol):
    """Once per pod before Filter: prepare CycleState, reject the pod outright, or Skip."""

    def pre_filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Status | None: ...


@runtime_checkable
class FilterPlugin(Plugin, Protocol):
    """Per node: None if the pod may run there, else the rejection."""

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None: ...


@runtime_checkable
class BatchFilterPlugin(FilterPlugin, Protocol):
    """A Filter that also judges a list of nodes at once (same verdicts as `filter`)."""

    def filter_nodes(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> Verdicts: ...


@runtime_checkable
class PreScorePlugin(Plugin, Protocol):
    """Once per pod over the feasible nodes, before Score; may Skip the plugin's Score."""

    def pre_score(
        self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo], snapshot: Snapshot
    ) -> Status | None: ...


@runtime_checkable
class ScorePlugin(Plugin, Protocol):
    """A raw score for each of the feasible nodes, in their order."""

    def score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> list[int]: ...


@runtime_checkable
class NormalizeScorePlugin(ScorePlugin, Protocol):
    """A Score plugin that rescales its raw scores to 0..100 in place (ScoreExtensions)."""

    def normalize(self, state: CycleState, pod: PodInfo, scores: list[int]) -> None: ...


def _one_by_one(fn: FilterFn) -> BatchFilterFn:
    def batch(state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> Verdicts:
        return filter_each(fn, state, pod, nodes)

    return batch


def filter_each(fn: FilterFn, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> Verdicts:
    """Run a per-node Filter over `nodes`: (passed, rejected with their Status)."""
    passed: list[NodeInfo] = []
    rejected: list[tuple[NodeInfo, Status]] = []
    for n in nodes:
        st = fn(state, pod, n)
        if st is None:
            passed.append(n)
        else:
            rejected.append((n, st))
    return passed, rejected


@dataclass
class Scores:
    """Weighted, normalised scores of the feasible nodes, per plugin and in total."""

    nodes: Sequence[NodeInfo]
    by_plugin: dict[str, list[int]]  # plugin -> weighted score per node (same order as nodes)
    totals: list[int]


class Framework:
    """One scheduling profile: the plugins, in order, and the score weights."""

    def __init__(self, plugins: Sequence[Plugin], weights: Mapping[str, int] | None = None) -> None:
        self.plugins = list(plugins)
        self.pre_filter_plugins = [p for p in self.plugins if isinstance(p, PreFilterPlugin)]
        self.filter_plugins = [p for p in self.plugins if isinstance(p, FilterPlugin)]
        self.pre_score_plugins = [p for p in self.plugins if isinstance(p, PreScorePlugin)]
        self.score_plugins = [p for p in self.plugins if isinstance(p, ScorePlugin)]
        self.weights = {p.name: 1 for p in self.score_plugins}
        self.weights.update(weights or {})
        # Looked up once here, not per cycle: each filter as a batch function, and the
        # score plugins' normalisers.
        self._batch_filters: dict[str, BatchFilterFn] = {
            p.name: p.filter_nodes if isinstance(p, BatchFilterPlugin) else _one_by_one(p.filter)
            for p in self.filter_plugins
        }
        self._normalizers: dict[str, NormalizeFn] = {
            p.name: p.normalize for p in self.score_plugins if isinstance(p, NormalizeScorePlugin)
        }

    def plugin(self, name: str) -> Plugin:
        return next(p for p in self.plugins if p.name == name)

    # ---- filtering --------------------------------------------------------------------------

    def run_pre_filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Status | None:
        """PreFilter of every plugin; the first rejection stops (it rejects every node)."""
        for p in self.pre_filter_plugins:
            st = p.pre_filter(state, pod, snapshot)
            if st is None:
                continue
            if st.code == Code.SKIP:
                state.skip_filter.add(p.name)
                continue
            return st if st.plugin else Status(st.code, st.reasons, p.name)
        return None

    def filters(self, state: CycleState) -> list[FilterFn]:
        """The Filter functions this pod needs, in order (Skip-ped plugins left out)."""
        return [p.filter for p in self.filter_plugins if p.name not in state.skip_filter]

    def batch_filters(self, state: CycleState) -> list[BatchFilterFn]:
        """Like `filters`, each as a function over a list of nodes (see the module notes)."""
        return [
            self._batch_filters[p.name]
            for p in self.filter_plugins
            if p.name not in state.skip_filter
        ]

    def run_filters(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        """The first rejection of `node`, or None if every filter passes."""
        for fn in self.filters(state):
            st = fn(state, pod, node)
            if st is not None:
                return st
        return None

    def run_each_filter(
        self, state: CycleState, pod: PodInfo, node: NodeInfo
    ) -> list[tuple[str, Status | None]]:
        """Every filter's verdict on `node` (explain-placement: not just the first "no")."""
        return [
            (p.name, None if p.name in state.skip_filter else p.filter(state, pod, node))
            for p in self.filter_plugins
        ]

    # ---- scoring ----------------------------------------------------------------------------

    def run_score(
        self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo], snapshot: Snapshot
    ) -> Scores:
        """PreScore, Score, NormalizeScore and weights for every score plugin."""
        for pre in self.pre_score_plugins:
            st = pre.pre_score(state, pod, nodes, snapshot)
            if st is not None and st.code == Code.SKIP:
                state.skip_score.add(pre.name)
        by_plugin: dict[str, list[int]] = {}
        totals = [0] * len(nodes)
        for p in self.score_plugins:
            if p.name in state.skip_score:
                continue
            weight = self.weights.get(p.name, 1)
            if weight == 0:
                continue
            raw = p.score(state, pod, nodes)
            normalize = self._normalizers.get(p.name)
            if normalize is not None:
                normalize(state, pod, raw)
            weighted = raw if weight == 1 else [s * weight for s in raw]
            if by_plugin:
                totals = [a + b for a, b in zip(totals, weighted, strict=True)]
            else:
                totals = list(weighted)
            by_plugin[p.name] = weighted
        return Scores(nodes, by_plugin, totals)


def default_normalize(scores: list[int], reverse: bool = False) -> None:
    """helper.DefaultNormalizeScore: scale to 0..100 by the maximum, optionally reversed.

    Worked example: (2, 1, 0) -> (100, 50, 0); reversed -> (0, 50, 100).
    All zero: (0, 0) -> (0, 0), reversed -> (100, 100).
    """
    top = max(scores, default=0)
    if top == 0:
        if reverse:
            scores[:] = [MAX_NODE_SCORE] * len(scores)
        return
    for i, s in enumerate(scores):
        v = MAX_NODE_SCORE * s // top
        scores[i] = MAX_NODE_SCORE - v if reverse else v
