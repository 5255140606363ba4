"""The framework and the decision: weights, normalisation, sampling, ties, the record."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence

import pytest

from scheduler import record
from scheduler.framework import (
    Code,
    CycleState,
    Framework,
    Status,
    default_normalize,
    unschedulable,
)
from scheduler.plugins import new_framework
from scheduler.schedule_one import (
    Algorithm,
    FitError,
    fit_error_message,
    num_feasible_nodes_to_find,
)
from scheduler.snapshot import Snapshot
from scheduler.types import NodeInfo, PodInfo

from .objects import cache, node, pod, snapshot


class Fixed:
    """A score plugin returning preset raw scores by node name."""

    def __init__(self, name: str, raw: dict[str, int], reverse: bool = False) -> None:
        self.name = name
        self.raw = raw
        self.reverse = reverse

    def score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> list[int]:
        return [self.raw[n.name] for n in nodes]

    def normalize(self, state: CycleState, pod: PodInfo, scores: list[int]) -> None:
        default_normalize(scores, reverse=self.reverse)


class RejectNamed:
    name = "RejectNamed"

    def __init__(self, names: set[str]) -> None:
        self.names = names

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        return unschedulable(self.name, "node(s) were named") if node.name in self.names else None


def test_default_normalize() -> None:
    s = [2, 1, 0]
    default_normalize(s)
    assert s == [100, 50, 0]
    s = [2, 1, 0]
    default_normalize(s, reverse=True)
    assert s == [0, 50, 100]
    s = [0, 0]
    default_normalize(s, reverse=True)
    assert s == [100, 100]


def test_weights_and_normalisation_add_up() -> None:
    fwk = Framework(
        [Fixed("A", {"n1": 50, "n2": 100}), Fixed("B", {"n1": 1, "n2": 0}, reverse=True)],
        {"A": 1, "B": 2},
    )
    snap = snapshot([node("n1"), node("n2")])
    scores = fwk.run_score(CycleState(), PodInfo.of(pod("p")), list(snap), snap)
    assert scores.by_plugin == {"A": [50, 100], "B": [0, 200]}
    assert scores.totals == [50, 300]


def test_num_feasible_nodes_to_find_is_adaptive() -> None:
    assert num_feasible_nodes_to_find(0, 50) == 50
    assert num_feasible_nodes_to_find(0, 100) == 100
    assert num_feasible_nodes_to_find(0, 1000) == 420
    assert num_feasible_nodes_to_find(0, 5000) == 500
    assert num_feasible_nodes_to_find(0, 20000) == 1000
    assert num_feasible_nodes_to_find(10, 500) == 100  # never fewer than 100
    assert num_feasible_nodes_to_find(100, 5000) == 5000


def test_sampling_stops_early_and_rotates_the_start() -> None:
    nodes = [node(f"n{i:03d}") for i in range(1000)]
    algo = Algorithm(new_framework(), rng=random.Random(0))
    snap = snapshot(nodes)
    result = algo.schedule(PodInfo.of(pod("p")), snap)
    assert result.evaluated == 420 and result.feasible == 420
    assert algo.next_start_index == 420
    algo.schedule(PodInfo.of(pod("q")), snap)
    assert algo.next_start_index == 840
    algo.schedule(PodInfo.of(pod("r")), snap)
    assert algo.next_start_index == (840 + 420) % 1000


def test_fit_error_message_counts_and_sorts() -> None:
    statuses = [
        unschedulable("NodeUnschedulable", "node(s) were unschedulable", resolvable=False),
        unschedulable("NodeResourcesFit", "Insufficient cpu"),
        unschedulable("NodeResourcesFit", "Insufficient cpu"),
    ]
    assert fit_error_message(3, statuses) == (
        "0/3 nodes are available: 1 node(s) were unschedulable, 2 Insufficient cpu."
    )
    assert fit_error_message(0, []) == "no nodes available to schedule pods"


def test_no_fit_raises_fit_error_with_a_record() -> None:
    nodes = [node("n1", unschedulable=True), node("n2", cpu="1"), node("n3", cpu="1")]
    algo = Algorithm(new_framework())
    with pytest.raises(FitError) as info:
        algo.schedule(PodInfo.of(pod("big", cpu="2")), snapshot(nodes))
    err = info.value
    assert err.message == (
        "0/3 nodes are available: 1 node(s) were unschedulable, 2 Insufficient cpu."
    )
    assert err.plugins == ["NodeResourcesFit", "NodeUnschedulable"]
    assert err.record.chosen == "" and err.record.feasible == 0
    assert [(r.node, r.plugin) for r in err.record.rejected] == [
        ("n1", "NodeUnschedulable"),
        ("n2", "NodeResourcesFit"),
        ("n3", "NodeResourcesFit"),
    ]


def test_ties_are_broken_deterministically_given_a_seed() -> None:
    nodes = [node(f"n{i}") for i in range(8)]
    picks = []
    for _ in range(2):
        algo = Algorithm(new_framework(), rng=random.Random(42))
        picks.append(
            [algo.schedule(PodInfo.of(pod(f"p{i}")), snapshot(nodes)).node for i in range(5)]
        )
    assert picks[0] == picks[1]
    spread = {
        Algorithm(new_framework(), rng=random.Random(seed))
        .schedule(PodInfo.of(pod("p")), snapshot(nodes))
        .node
        for seed in range(40)
    }
    assert len(spread) > 1  # different seeds do pick different equal nodes


def test_record_contents_and_describe_lines() -> None:
    nodes = [node("node1"), node("node2"), node("node3", unschedulable=True)]
    sibling = pod("web-1", owner="rs", labels={"app": "web"}, node_name="node1")
    algo = Algorithm(new_framework(), rng=random.Random(1))
    result = algo.schedule(PodInfo.of(pod("web-2", owner="rs")), snapshot(nodes, [sibling]))
    assert result.node == "node2"
    rec = result.record
    assert (rec.total, rec.evaluated, rec.feasible) == (3, 3, 2)
    assert [s.node for s in rec.scored] == ["node2", "node1"]
    best = rec.scored[0]
    assert best.total == sum(best.scores.values())
    assert best.scores["SelectorSpread"] == 200 and rec.scored[1].scores["SelectorSpread"] == 0
    assert rec.weights["SelectorSpread"] == 2
    assert [(r.node, r.plugin, r.reason) for r in rec.rejected] == [
        ("node3", "NodeUnschedulable", "node(s) were unschedulable")
    ]
    data = json.loads(rec.to_json())
    assert data["chosen"] == "node2" and data["nodes"] == {
        "total": 3,
        "evaluated": 3,
        "feasible": 2,
    }
    assert "tieBreak" not in data
    bound = pod("web-2")
    bound.metadata.annotations[record.ANNOTATION] = rec.to_json()
    lines = record.describe_lines(bound)
    assert lines[0] == "chosen node2: 2 of 3 nodes feasible, 3 evaluated"
    assert lines[1].startswith("node2: score ") and lines[1].endswith("<- chosen")
    assert "Spread 200" in lines[1]
    assert lines[-1] == "node3: rejected by NodeUnschedulable: node(s) were unschedulable"
    assert record.describe_lines(pod("none")) == []


def test_record_notes_a_tie_and_is_capped() -> None:
    nodes = [node(f"n{i:02d}") for i in range(30)]
    algo = Algorithm(new_framework(), rng=random.Random(3), record_limit=5)
    rec = algo.schedule(PodInfo.of(pod("p")), snapshot(nodes)).record
    assert len(rec.scored) == 5 and rec.scored_omitted == 25
    assert rec.scored[0].node == rec.chosen
    assert rec.tie_count == 30 and len(rec.tie_candidates) == 5
    assert rec.chosen in [s.node for s in rec.scored]
    again = record.PlacementRecord.from_json(rec.to_json())
    assert again == rec
    tie_line = next(line for line in again.lines() if line.startswith("tie between"))
    assert tie_line.endswith(f"and 25 more broken at random: {rec.chosen}")


def test_prefilter_rejection_rejects_every_node() -> None:
    fwk = Framework([RejectAll()])
    with pytest.raises(FitError) as info:
        Algorithm(fwk).schedule(PodInfo.of(pod("p")), snapshot([node("a"), node("b")]))
    assert info.value.message == "0/2 nodes are available: 2 pod is refused."


class RejectAll:
    name = "RejectAll"

    def pre_filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Status | None:
        return Status(Code.UNSCHEDULABLE, ("pod is refused",))


def test_custom_filter_plugin_runs_one_by_one() -> None:
    fwk = Framework([RejectNamed({"a"})])
    result = Algorithm(fwk).schedule(PodInfo.of(pod("p")), snapshot([node("a"), node("b")]))
    assert result.node == "b"
    assert result.record.rejected[0].reason == "node(s) were named"


def test_cache_assume_confirm_and_forget() -> None:
    c = cache([node("n1", cpu="1")])
    info = PodInfo.of(pod("p", cpu="600m"))
    c.assume_pod(info, "n1")
    n1 = c.snapshot().get("n1")
    assert n1 is not None and n1.req_cpu == 600 and c.is_assumed("default/p")
    c.forget_pod("default/p")
    assert n1.req_cpu == 0 and n1.pod_count == 0
    c.assume_pod(info, "n1")
    c.add_pod(pod("p", cpu="600m", node_name="n1"))  # the informer confirms
    assert not c.is_assumed("default/p") and n1.req_cpu == 600
    c.forget_pod("default/p")  # a confirmed pod is not forgotten
    assert n1.req_cpu == 600
    done = pod("p", cpu="600m", node_name="n1")
    done.status.phase = "Succeeded"
    c.update_pod(done)
    assert n1.req_cpu == 0


def test_cache_placeholder_node_until_the_node_arrives() -> None:
    c = cache([])
    c.add_pod(pod("early", cpu="1", node_name="late"))
    assert len(c.snapshot()) == 0
    c.add_node(node("late"))
    late = c.snapshot().get("late")
    assert late is not None and late.req_cpu == 1000
    c.remove_node("late")
    assert c.snapshot().get("late") is None
