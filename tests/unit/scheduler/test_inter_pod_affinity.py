"""InterPodAffinity: required (anti-)affinity filters, symmetry, preferred scores."""

from __future__ import annotations

import random

from protos import core_pb2
from scheduler.framework import SKIP, Code, CycleState
from scheduler.plugins import new_framework
from scheduler.plugins.inter_pod_affinity import (
    REASON_AFFINITY,
    REASON_ANTI_AFFINITY,
    REASON_EXISTING_ANTI_AFFINITY,
    InterPodAffinity,
)
from scheduler.schedule_one import Algorithm, FitError
from scheduler.snapshot import Snapshot
from scheduler.types import NodeInfo, PodInfo

from .objects import cache, node, pod, snapshot

HOST = "kubernetes.io/hostname"


def _term(p: core_pb2.Pod, kind: str, selector: dict[str, str], key: str, weight: int = 0) -> None:
    """Add a podAffinity ("near") or podAntiAffinity ("away") term; weight > 0: preferred."""
    side = p.spec.affinity.pod_affinity if kind == "near" else p.spec.affinity.pod_anti_affinity
    if weight:
        w = side.preferred_during_scheduling_ignored_during_execution.add(weight=weight)
        term = w.pod_affinity_term
    else:
        term = side.required_during_scheduling_ignored_during_execution.add()
    term.label_selector.match_labels.update(selector)
    term.topology_key = key


def _verdicts(p: core_pb2.Pod, snap: Snapshot) -> dict[str, str]:
    plugin, state, info = InterPodAffinity(), CycleState(), PodInfo.of(p)
    assert plugin.pre_filter(state, info, snap) is None
    out = {}
    for n in snap:
        st = plugin.filter(state, info, n)
        out[n.name] = "" if st is None else st.message
    passed, rejected = plugin.filter_nodes(state, info, list(snap))
    assert [n.name for n in passed] == [k for k, v in out.items() if not v]  # batch == one by one
    assert {n.name: st.message for n, st in rejected} == {k: v for k, v in out.items() if v}
    return out


def _zones() -> list[core_pb2.Node]:
    return [node(f"{z}{i}", labels={"zone": z}) for z in "ab" for i in (1, 2)]


def test_required_anti_affinity_keeps_green_pods_apart() -> None:
    green = pod("g1", labels={"color": "green"}, node_name="a1")
    _term(green, "away", {"color": "green"}, HOST)
    snap = snapshot(_zones(), [green])
    new = pod("g2", labels={"color": "green"})
    _term(new, "away", {"color": "green"}, HOST)
    assert _verdicts(new, snap) == {"a1": REASON_ANTI_AFFINITY, "a2": "", "b1": "", "b2": ""}


def test_existing_pods_anti_affinity_is_symmetric() -> None:
    # the placed pod refuses blue pods in its zone; the new blue pod says nothing itself
    guard = pod("guard", labels={"app": "db"}, node_name="a1")
    _term(guard, "away", {"color": "blue"}, "zone")
    snap = snapshot(_zones(), [guard])
    verdicts = _verdicts(pod("b", labels={"color": "blue"}), snap)
    assert verdicts == {
        "a1": REASON_EXISTING_ANTI_AFFINITY,
        "a2": REASON_EXISTING_ANTI_AFFINITY,
        "b1": "",
        "b2": "",
    }
    plain = PodInfo.of(pod("red", labels={"color": "red"}))
    assert InterPodAffinity().pre_filter(CycleState(), plain, snap) is SKIP


def test_required_affinity_and_the_first_pod_exception() -> None:
    web = pod("web", labels={"app": "web"})
    _term(web, "near", {"app": "web"}, "zone")
    nodes = [*_zones(), node("nozone")]
    # no web pod anywhere, and the pod matches its own term: any node with a zone will do
    first = _verdicts(web, snapshot(nodes))
    assert first == {"a1": "", "a2": "", "b1": "", "b2": "", "nozone": REASON_AFFINITY}
    # once one runs in zone b, only zone b
    placed = pod("web-0", labels={"app": "web"}, node_name="b2")
    later = _verdicts(web, snapshot(nodes, [placed]))
    assert [k for k, v in later.items() if not v] == ["b1", "b2"]
    # a pod wanting to be near pods that do not exist (and not matching itself) fits nowhere
    lonely = pod("cache", labels={"app": "cache"})
    _term(lonely, "near", {"app": "web"}, "zone")
    assert set(_verdicts(lonely, snapshot(nodes)).values()) == {REASON_AFFINITY}


def test_terms_honour_namespaces() -> None:
    other = pod("g1", namespace="other", labels={"color": "green"}, node_name="a1")
    new = pod("g2", labels={"color": "green"})
    _term(new, "away", {"color": "green"}, HOST)  # the pod's own namespace only
    assert _verdicts(new, snapshot(_zones(), [other]))["a1"] == ""
    new.spec.affinity.pod_anti_affinity.required_during_scheduling_ignored_during_execution[
        0
    ].namespaces.append("other")
    assert _verdicts(new, snapshot(_zones(), [other]))["a1"] == REASON_ANTI_AFFINITY


def _scores(p: core_pb2.Pod, snap: Snapshot) -> dict[str, int]:
    plugin, state, info = InterPodAffinity(), CycleState(), PodInfo.of(p)
    nodes: list[NodeInfo] = list(snap)
    assert plugin.pre_score(state, info, nodes, snap) is None
    scores = plugin.score(state, info, nodes)
    plugin.normalize(state, info, scores)
    return {n.name: s for n, s in zip(nodes, scores, strict=True)}


def test_preferred_terms_score_both_ways() -> None:
    placed = [
        pod("c1", labels={"app": "cache"}, node_name="a1"),
        pod("c2", labels={"app": "cache"}, node_name="a2"),
        pod("x", labels={"app": "noisy"}, node_name="b1"),
    ]
    new = pod("web", labels={"app": "web"})
    _term(new, "near", {"app": "cache"}, "zone", weight=10)  # zone a: 2 caches * 10 = 20
    _term(new, "away", {"app": "noisy"}, HOST, weight=5)  # b1: -5
    assert _scores(new, snapshot(_zones(), placed)) == {"a1": 100, "a2": 100, "b1": 0, "b2": 20}
    # symmetry: a placed pod preferring web pods near it (zone b) pulls the new pod there
    friend = pod("friend", labels={"app": "friend"}, node_name="b2")
    _term(friend, "near", {"app": "web"}, "zone", weight=50)
    assert _scores(pod("web", labels={"app": "web"}), snapshot(_zones(), [friend])) == {
        "a1": 0,
        "a2": 0,
        "b1": 100,
        "b2": 100,
    }
    assert (
        InterPodAffinity().pre_score(CycleState(), PodInfo.of(pod("y")), [], snapshot([])) is SKIP
    )


def test_scheduler_puts_anti_affine_replicas_on_their_own_nodes() -> None:
    nodes = [node(f"n{i}", labels={"zone": "a"}) for i in range(5)]
    c = cache(nodes)
    algo = Algorithm(new_framework(), rng=random.Random(1))
    chosen = []
    for i in range(5):
        p = pod(f"g{i}", labels={"color": "green"}, cpu="100m")
        _term(p, "away", {"color": "green"}, HOST)
        info = PodInfo.of(p)
        result = algo.schedule(info, c.snapshot())
        c.assume_pod(info, result.node)
        chosen.append(result.node)
    assert sorted(chosen) == [f"n{i}" for i in range(5)]
    sixth = pod("g5", labels={"color": "green"})
    _term(sixth, "away", {"color": "green"}, HOST)
    try:
        algo.schedule(PodInfo.of(sixth), c.snapshot())
    except FitError as err:
        assert err.message == f"0/5 nodes are available: 5 {REASON_ANTI_AFFINITY}."
        assert err.plugins == ["InterPodAffinity"]
        assert {st.code for st in err.statuses} == {Code.UNSCHEDULABLE}
    else:
        raise AssertionError("a sixth green pod fit beside another")
