"""One scheduling decision: filter, score, pick (pkg/scheduler/schedule_one.go).

    schedule(pod):
      PreFilter                        a rejection here rejects every node
      Filter nodes, round-robin from where the last cycle stopped,
        until `num_feasible_nodes_to_find` feasible nodes are found
      no feasible node   -> FitError   "0/3 nodes are available: ..."
      one feasible node  -> it (scoring could not change the answer)
      else Score them, pick the highest total; ties broken at random

Adaptive sampling (percentageOfNodesToScore). Filtering and scoring every
node of a 5000-node cluster for every pod would make scheduling cost grow
with cluster size. Kubernetes stops filtering once it has found "enough"
feasible nodes: all of them below 100 nodes; otherwise a percentage that
shrinks as the cluster grows, 50% - nodes/125, never under 5% and never
fewer than 100 nodes:

    nodes    percentage          nodes to find
      100    all                 100
     1000    50 - 8  = 42%       420
     5000    50 - 40 = 10%       500
    20000    50 - 160 -> 5%      1000

The search starts where the previous cycle stopped (`next_start_index`), so
over many pods every node gets its turn to be considered.

Ties. Several nodes can share the best total (identical empty nodes do).
Kubernetes picks one uniformly at random (reservoir sampling); so does this,
with its own `random.Random`, so a seeded scheduler is reproducible.

The failure message counts each reason over the nodes and sorts the
"<count> <reason>" strings, exactly as Kubernetes' FitError does:

    node1 unschedulable; node2, node3 short of cpu
    -> "0/3 nodes are available: 1 node(s) were unschedulable, 2 Insufficient cpu."
"""

from __future__ import annotations

import heapq
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NoReturn

from scheduler.framework import Code, CycleState, Framework, Scores, Status
from scheduler.record import DEFAULT_LIMIT, NodeScore, PlacementRecord, Rejection
from scheduler.snapshot import Snapshot
from scheduler.types import NodeInfo, PodInfo

MIN_FEASIBLE_NODES_TO_FIND = 100
MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND = 5
DEFAULT_PERCENTAGE_BASE = 50
NO_NODES_MESSAGE = "no nodes available to schedule pods"


def num_feasible_nodes_to_find(percentage: int, num_all_nodes: int) -> int:
    """How many feasible nodes to look for before scoring (see the module notes)."""
    if num_all_nodes < MIN_FEASIBLE_NODES_TO_FIND or percentage >= 100:
        return num_all_nodes
    adaptive = percentage
    if adaptive <= 0:
        adaptive = DEFAULT_PERCENTAGE_BASE - num_all_nodes // 125
        adaptive = max(adaptive, MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND)
    n = num_all_nodes * adaptive // 100
    return max(n, MIN_FEASIBLE_NODES_TO_FIND)


def fit_error_message(num_all_nodes: int, statuses: Sequence[Status]) -> str:
    """Kubernetes' FitError text: reasons counted over nodes, "<n> <reason>" sorted."""
    if num_all_nodes == 0:
        return NO_NODES_MESSAGE
    counts = Counter(reason for st in statuses for reason in st.reasons)
    parts = sorted(f"{n} {reason}" for reason, n in counts.items())
    return f"0/{num_all_nodes} nodes are available: {', '.join(parts)}."


class FitError(Exception):
    """No node fits the pod; `message` is what FailedScheduling says."""

    def __init__(self, message: str, record: PlacementRecord, statuses: Sequence[Status]) -> None:
        super().__init__(message)
        self.message = message
        self.record = record
        self.statuses = list(statuses)
        self.plugins = sorted({st.plugin for st in statuses if st.plugin})


class SchedulingError(Exception):
    """A plugin failed (Code Error): the pod is retried after backoff."""


@dataclass
class ScheduleResult:
    """The node chosen for a pod, the record of why, and how many nodes were looked at."""

    node: str
    record: PlacementRecord
    evaluated: int
    feasible: int


class Algorithm:
    """Filter + score + select for one framework (schedulePod in Kubernetes)."""

    def __init__(
        self,
        framework: Framework,
        *,
        scheduler_name: str = "default-scheduler",
        percentage_of_nodes_to_score: int = 0,
        rng: random.Random | None = None,
        record_limit: int = DEFAULT_LIMIT,
    ) -> None:
        self.framework = framework
        self.scheduler_name = scheduler_name
        self.percentage = percentage_of_nodes_to_score
        self.rng = rng or random.Random()
        self.record_limit = record_limit
        self.next_start_index = 0

    def schedule(self, pod: PodInfo, snapshot: Snapshot) -> ScheduleResult:
        nodes = snapshot.node_infos
        total = len(nodes)
        fwk = self.framework
        state = CycleState()
        if total == 0:
            record = PlacementRecord(self.scheduler_name, "", 0, 0, 0, note=NO_NODES_MESSAGE)
            raise FitError(NO_NODES_MESSAGE, record, [])
        pre = fwk.run_pre_filter(state, pod, snapshot)
        if pre is not None:
            if pre.code == Code.ERROR:
                raise SchedulingError(f"{pre.plugin}: {pre.message}")
            self._fail(total, total, [(n, pre) for n in nodes])
        filters = fwk.batch_filters(state)
        want = num_feasible_nodes_to_find(self.percentage, total)
        start = self.next_start_index % total
        order = nodes[start:] + nodes[:start] if start else nodes
        feasible: list[NodeInfo] = []
        rejected: list[tuple[NodeInfo, Status]] = []
        evaluated = 0
        # Filter in batches just big enough to reach `want` if every node passes, so
        # exactly the nodes Kubernetes' sequential search would visit are visited.
        while evaluated < total and len(feasible) < want:
            batch = order[evaluated : evaluated + want - len(feasible)]
            evaluated += len(batch)
            for f in filters:
                batch, out = f(state, pod, batch)
                if out:
                    for _, st in out:
                        if st.code == Code.ERROR:
                            raise SchedulingError(f"{st.plugin}: {st.message}")
                    rejected.extend(out)
                if not batch:
                    break
            feasible.extend(batch)
        self.next_start_index = (start + evaluated) % total
        if not feasible:
            self._fail(total, evaluated, rejected)
        if len(feasible) == 1:
            record = self._record(0, total, evaluated, feasible, rejected, None, [])
            record.note = "only one feasible node: scoring skipped"
            return ScheduleResult(feasible[0].name, record, evaluated, 1)
        scores = fwk.run_score(state, pod, feasible, snapshot)
        index, ties = self.select_host(scores)
        record = self._record(index, total, evaluated, feasible, rejected, scores, ties)
        return ScheduleResult(feasible[index].name, record, evaluated, len(feasible))

    def select_host(self, scores: Scores) -> tuple[int, list[int]]:
        """Index of the best total, and of all that share it (a tie is broken uniformly at
        random, as selectHost's reservoir sampling does)."""
        totals = scores.totals
        best = max(totals)
        if totals.count(best) == 1:
            return totals.index(best), []
        ties = [i for i, t in enumerate(totals) if t == best]
        return self.rng.choice(ties), ties

    # ---- the record -------------------------------------------------------------------------

    def _rejections(
        self, rejected: Sequence[tuple[NodeInfo, Status]]
    ) -> tuple[list[Rejection], dict[str, int]]:
        limit = self.record_limit
        listed = [Rejection(n.name, st.plugin, st.message) for n, st in rejected[:limit]]
        # Plugins reuse one Status object per reason, so count objects (C speed), then words.
        by_id = Counter(id(st) for _, st in rejected[limit:])
        statuses = {id(st): st for _, st in rejected[limit:]} if by_id else {}
        omitted: Counter[str] = Counter()
        for sid, n in by_id.items():
            st = statuses[sid]
            omitted[f"{st.plugin}: {st.message}"] += n
        return listed, dict(omitted)

    def _fail(
        self, total: int, evaluated: int, rejected: Sequence[tuple[NodeInfo, Status]]
    ) -> NoReturn:
        statuses = [st for _, st in rejected]
        listed, omitted = self._rejections(rejected)
        record = PlacementRecord(
            self.scheduler_name,
            "",
            total,
            evaluated,
            0,
            weights=dict(self.framework.weights),
            rejected=listed,
            rejected_omitted=omitted,
        )
        raise FitError(fit_error_message(total, statuses), record, statuses)

    def _record(
        self,
        chosen_index: int,
        total: int,
        evaluated: int,
        feasible: Sequence[NodeInfo],
        rejected: Sequence[tuple[NodeInfo, Status]],
        scores: Scores | None,
        ties: list[int],
    ) -> PlacementRecord:
        chosen = feasible[chosen_index].name
        listed, omitted = self._rejections(rejected)
        scored: list[NodeScore] = []
        scored_omitted = 0
        if scores is not None:
            totals = scores.totals
            top = heapq.nlargest(self.record_limit, range(len(totals)), key=totals.__getitem__)
            # the chosen node is always listed, first among its equals
            if chosen_index in top:
                top.remove(chosen_index)
            else:
                top = top[: self.record_limit - 1]
            top.insert(0, chosen_index)
            top.sort(key=lambda i: (-totals[i], i != chosen_index))
            scored = [
                NodeScore(
                    feasible[i].name,
                    totals[i],
                    {name: values[i] for name, values in scores.by_plugin.items()},
                )
                for i in top
            ]
            scored_omitted = len(totals) - len(scored)
        return PlacementRecord(
            self.scheduler_name,
            chosen,
            total,
            evaluated,
            len(feasible),
            weights=dict(self.framework.weights),
            scored=scored,
            scored_omitted=scored_omitted,
            rejected=listed,
            rejected_omitted=omitted,
            tie_candidates=[feasible[i].name for i in ties[: self.record_limit]],
            tie_count=len(ties),
        )
