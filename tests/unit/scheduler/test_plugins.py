"""Each plugin's Filter and Score on hand-built nodes and pods."""

from __future__ import annotations

from protos import core_pb2, meta_pb2
from scheduler.framework import SKIP, Code, CycleState
from scheduler.plugins.balanced_allocation import NodeResourcesBalancedAllocation
from scheduler.plugins.least_allocated import NodeResourcesLeastAllocated
from scheduler.plugins.node_affinity import NodeAffinity
from scheduler.plugins.node_name import NodeName
from scheduler.plugins.node_resources_fit import NodeResourcesFit
from scheduler.plugins.node_unschedulable import NodeUnschedulable
from scheduler.plugins.pod_topology_spread import PodTopologySpread
from scheduler.plugins.selector_spread import SelectorSpread
from scheduler.plugins.taint_toleration import TaintToleration
from scheduler.types import PodInfo

from .objects import node, node_info, pod, snapshot


def test_node_unschedulable_rejects_cordoned_node_unless_tolerated() -> None:
    plugin, state = NodeUnschedulable(), CycleState()
    p = PodInfo.of(pod("web"))
    assert plugin.pre_filter(state, p, snapshot([])) is None
    st = plugin.filter(state, p, node_info(node("n1", unschedulable=True)))
    assert st is not None and st.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE
    assert st.reasons == ("node(s) were unschedulable",)
    assert plugin.filter(state, p, node_info(node("n2"))) is None
    tolerant = PodInfo.of(
        pod("ds", tolerations=[("node.kubernetes.io/unschedulable", "Exists", "", "NoSchedule")])
    )
    assert plugin.pre_filter(state, tolerant, snapshot([])) is SKIP


def test_node_name_only_the_named_node() -> None:
    plugin, state = NodeName(), CycleState()
    assert plugin.pre_filter(state, PodInfo.of(pod("a")), snapshot([])) is SKIP
    p = PodInfo.of(pod("a", node_name="n2"))
    assert plugin.pre_filter(state, p, snapshot([])) is None
    assert plugin.filter(state, p, node_info(node("n2"))) is None
    st = plugin.filter(state, p, node_info(node("n1")))
    assert st is not None and st.message == "node(s) didn't match the requested node name"


def test_taint_toleration_filter_and_prefer_no_schedule_score() -> None:
    plugin, state = TaintToleration(), CycleState()
    not_ready_node = node("n1", taints=[("node.kubernetes.io/not-ready", "", "NoSchedule")])
    not_ready = node_info(not_ready_node)
    plain = PodInfo.of(pod("web"))
    st = plugin.filter(state, plain, not_ready)
    assert st is not None and st.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE
    assert st.message == "node(s) had untolerated taint {node.kubernetes.io/not-ready: }"
    tolerant = PodInfo.of(
        pod("t", tolerations=[("node.kubernetes.io/not-ready", "Exists", "", "NoSchedule")])
    )
    assert plugin.filter(state, tolerant, not_ready) is None
    # NoExecute tolerations (the defaults every pod gets) do not cover NoSchedule
    noexec = PodInfo.of(
        pod("d", tolerations=[("node.kubernetes.io/not-ready", "Exists", "", "NoExecute")])
    )
    assert plugin.filter(state, noexec, not_ready) is not None
    # Equal operator compares the value
    gpu = node_info(node("g", taints=[("gpu", "yes", "NoSchedule")]))
    assert plugin.filter(state, PodInfo.of(pod("x", tolerations=[("gpu", "Equal", "no", "")])), gpu)
    assert (
        plugin.filter(state, PodInfo.of(pod("y", tolerations=[("gpu", "Equal", "yes", "")])), gpu)
        is None
    )
    raw = [
        node("a"),
        node("b", taints=[("x", "", "PreferNoSchedule")]),
        node("c", taints=[("x", "", "PreferNoSchedule"), ("y", "", "PreferNoSchedule")]),
    ]
    nodes = [node_info(n) for n in raw]
    snap = snapshot(raw)
    assert snap.prefer_no_schedule == 2
    assert plugin.pre_score(state, plain, nodes, snap) is None
    scores = plugin.score(state, plain, nodes)
    assert scores == [0, 1, 2]
    plugin.normalize(state, plain, scores)
    assert scores == [100, 50, 0]
    assert plugin.pre_score(state, plain, nodes[:1], snap) is SKIP
    assert plugin.pre_score(state, plain, nodes, snapshot([])) is SKIP
    # PreFilter: nothing to check when no node has a NoSchedule/NoExecute taint
    assert plugin.pre_filter(state, plain, snapshot([node("clean")])) is SKIP
    assert plugin.pre_filter(state, plain, snapshot([not_ready_node])) is None


def _affinity_pod() -> core_pb2.Pod:
    p = pod("aff", node_selector={"disk": "ssd"})
    na = p.spec.affinity.node_affinity
    term = na.required_during_scheduling_ignored_during_execution.node_selector_terms.add()
    term.match_expressions.add(key="zone", operator="In", values=["a", "b"])
    pref = na.preferred_during_scheduling_ignored_during_execution.add(weight=80)
    pref.preference.match_expressions.add(key="fast", operator="Exists")
    pref2 = na.preferred_during_scheduling_ignored_during_execution.add(weight=20)
    pref2.preference.match_expressions.add(key="zone", operator="In", values=["a"])
    return p


def test_node_affinity_required_and_preferred() -> None:
    plugin, state = NodeAffinity(), CycleState()
    p = PodInfo.of(_affinity_pod())
    assert plugin.pre_filter(state, p, snapshot([])) is None
    ok = node_info(node("n1", labels={"disk": "ssd", "zone": "a", "fast": "1"}))
    wrong_zone = node_info(node("n2", labels={"disk": "ssd", "zone": "c"}))
    no_disk = node_info(node("n3", labels={"zone": "a"}))
    assert plugin.filter(state, p, ok) is None
    for bad in (wrong_zone, no_disk):
        st = plugin.filter(state, p, bad)
        assert st is not None and st.message == "node(s) didn't match Pod's node affinity/selector"
    nodes = [ok, node_info(node("n4", labels={"zone": "b", "fast": "y"})), wrong_zone]
    assert plugin.pre_score(state, p, nodes, snapshot([])) is None
    scores = plugin.score(state, p, nodes)
    assert scores == [100, 80, 0]
    plugin.normalize(state, p, scores)
    assert scores == [100, 80, 0]
    assert plugin.pre_filter(state, PodInfo.of(pod("plain")), snapshot([])) is SKIP


def test_node_affinity_gt_lt_and_match_fields() -> None:
    p = pod("f")
    term = p.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution
    t = term.node_selector_terms.add()
    t.match_expressions.add(key="cores", operator="Gt", values=["4"])
    t.match_fields.add(key="metadata.name", operator="In", values=["big"])
    plugin, state, info = NodeAffinity(), CycleState(), PodInfo.of(p)
    plugin.pre_filter(state, info, snapshot([]))
    assert plugin.filter(state, info, node_info(node("big", labels={"cores": "8"}))) is None
    assert plugin.filter(state, info, node_info(node("big", labels={"cores": "2"}))) is not None
    assert plugin.filter(state, info, node_info(node("other", labels={"cores": "8"}))) is not None


def test_node_resources_fit_reasons() -> None:
    plugin, state = NodeResourcesFit(), CycleState()
    n = node_info(
        node("n1", cpu="2", memory="1Gi", pods="2"), pod("x", cpu="1500m", node_name="n1")
    )
    fits = PodInfo.of(pod("small", cpu="500m", memory="512Mi"))
    assert plugin.filter(state, fits, n) is None
    st = plugin.filter(state, PodInfo.of(pod("big", cpu="600m", memory="2Gi")), n)
    assert st is not None and st.code == Code.UNSCHEDULABLE
    assert st.reasons == ("Insufficient cpu", "Insufficient memory")
    full = node_info(node("n2", pods="1"), pod("y", node_name="n2"))
    st = plugin.filter(state, PodInfo.of(pod("z")), full)
    assert st is not None and st.reasons == ("Too many pods",)
    ext = pod("e")
    ext.spec.containers[0].resources.requests["ephemeral-storage"] = "10Gi"
    st = plugin.filter(state, PodInfo.of(ext), node_info(node("n3")))
    assert st is not None and st.reasons == ("Insufficient ephemeral-storage",)
    # the batch form agrees with the per-node form
    nodes = [n, full, node_info(node("n4"))]
    passed, rejected = plugin.filter_nodes(state, fits, nodes)
    assert [x.name for x in passed] == ["n1", "n4"]
    assert [(x.name, s.reasons) for x, s in rejected] == [("n2", ("Too many pods",))]


def test_init_containers_count_as_the_max() -> None:
    p = pod("i", cpu="250m")
    p.spec.containers.add(name="d", image="x").resources.requests["cpu"] = "250m"
    p.spec.init_containers.add(name="init", image="x").resources.requests["cpu"] = "1"
    info = PodInfo.of(p)
    assert info.cpu == 1000
    assert info.nz_memory == 2 * 200 * 1024 * 1024  # non-zero default per container


def test_least_allocated_worked_example() -> None:
    plugin = NodeResourcesLeastAllocated()
    n = node_info(
        node("n1", cpu="4", memory="8Gi"), pod("x", cpu="1", memory="2Gi", node_name="n1")
    )
    p = PodInfo.of(pod("p", cpu="1", memory="2Gi"))
    assert plugin.score(CycleState(), p, [n]) == [50]
    over = node_info(node("n2", cpu="1", memory="1Gi"))
    assert plugin.score(CycleState(), PodInfo.of(pod("q", cpu="2", memory="2Gi")), [over]) == [0]


def test_balanced_allocation_worked_example() -> None:
    plugin = NodeResourcesBalancedAllocation()
    n = node_info(
        node("n1", cpu="4", memory="8Gi"), pod("x", cpu="2", memory="2Gi", node_name="n1")
    )
    p = PodInfo.of(pod("p", cpu="1", memory="2Gi"))  # cpu 3/4, memory 4/8
    assert plugin.score(CycleState(), p, [n]) == [87]
    even = node_info(node("n2", cpu="4", memory="8Gi"))
    assert plugin.score(CycleState(), PodInfo.of(pod("q", cpu="2", memory="4Gi")), [even]) == [100]


def test_selector_spread_by_owner_and_service() -> None:
    sibling = pod("web-1", owner="rs", labels={"app": "web"}, node_name="n1")
    nodes = [node_info(node("n1"), sibling), node_info(node("n2")), node_info(node("n3"))]
    plugin, state = SelectorSpread(), CycleState()
    p = PodInfo.of(pod("web-2", owner="rs", labels={"app": "web"}))
    assert plugin.pre_score(state, p, nodes, snapshot([])) is None
    scores = plugin.score(state, p, nodes)
    assert scores == [1, 0, 0]
    plugin.normalize(state, p, scores)
    assert scores == [0, 100, 100]
    assert plugin.pre_score(CycleState(), PodInfo.of(pod("lonely")), nodes, snapshot([])) is SKIP
    svc = core_pb2.Service()
    svc.metadata.name, svc.metadata.namespace = "web", "default"
    svc.spec.selector["app"] = "web"
    other = pod("other", labels={"app": "web"}, node_name="n2")
    nodes[1].add_pod(PodInfo.of(other))
    with_svc, state = SelectorSpread(lambda: [svc]), CycleState()
    lonely = PodInfo.of(pod("new", labels={"app": "web"}))
    assert with_svc.pre_score(state, lonely, nodes, snapshot([])) is None
    assert with_svc.score(state, lonely, nodes) == [1, 1, 0]


def _spread_pod(name: str, mode: str = "DoNotSchedule", node_name: str = "") -> core_pb2.Pod:
    p = pod(name, labels={"app": "web"}, node_name=node_name)
    p.spec.topology_spread_constraints.add(
        max_skew=1,
        topology_key="zone",
        when_unsatisfiable=mode,
        label_selector=meta_pb2.LabelSelector(match_labels={"app": "web"}),
    )
    return p


def test_pod_topology_spread_filter_worked_example() -> None:
    nodes = [
        node("a1", labels={"zone": "a"}),
        node("b1", labels={"zone": "b"}),
        node("c1", labels={"zone": "c"}),
        node("nozone"),
    ]
    placed = [
        pod("w1", labels={"app": "web"}, node_name="a1"),
        pod("w2", labels={"app": "web"}, node_name="a1"),
        pod("w3", labels={"app": "web"}, node_name="b1"),
        pod("w4", labels={"app": "web"}, node_name="c1"),
    ]
    snap = snapshot(nodes, placed)
    plugin, state = PodTopologySpread(), CycleState()
    p = PodInfo.of(_spread_pod("new"))
    assert plugin.pre_filter(state, p, snap) is None
    st = plugin.filter(state, p, snap.get("a1"))  # type: ignore[arg-type]
    assert st is not None and st.message == "node(s) didn't match pod topology spread constraints"
    assert plugin.filter(state, p, snap.get("b1")) is None  # type: ignore[arg-type]
    st = plugin.filter(state, p, snap.get("nozone"))  # type: ignore[arg-type]
    assert st is not None and st.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE
    assert plugin.pre_filter(CycleState(), PodInfo.of(pod("x")), snap) is SKIP


def test_pod_topology_spread_score_prefers_emptier_domains() -> None:
    nodes = [node("a1", labels={"zone": "a"}), node("b1", labels={"zone": "b"}), node("x")]
    placed = [pod(f"w{i}", labels={"app": "web"}, node_name="a1") for i in range(2)]
    snap = snapshot(nodes, placed)
    plugin, state = PodTopologySpread(), CycleState()
    p = PodInfo.of(_spread_pod("new", mode="ScheduleAnyway"))
    assert plugin.pre_filter(state, p, snap) is SKIP  # no hard constraint
    infos = list(snap)
    assert plugin.pre_score(state, p, infos, snap) is None
    scores = plugin.score(state, p, infos)
    plugin.normalize(state, p, scores)
    assert scores == [0, 100, 0]  # zone b empty; node x has no zone label
