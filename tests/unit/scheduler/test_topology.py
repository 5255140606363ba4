"""The cache's TopologyIndex equals a brute-force count, whatever happens to pods and nodes."""

from __future__ import annotations

import random

from apimachinery import labels
from protos import core_pb2, meta_pb2
from scheduler.affinity_terms import AffinityTerm, Kind, PodAffinityInfo, combine
from scheduler.plugins.node_affinity import RequiredAffinity
from scheduler.plugins.pod_topology_spread import _constraints, _count, count_by_walking
from scheduler.snapshot import Cache
from scheduler.topology import count_matching, terms_by_domain
from scheduler.types import PodInfo

from .objects import node, pod

ZONES = ("a", "b", "c")
COLORS = ("red", "green", "blue")


def anti_pod(name: str, color: str, node_name: str = "", key: str = "zone") -> core_pb2.Pod:
    """A pod labelled color=<color> that refuses pods of its colour in its `key` domain."""
    p = pod(name, labels={"color": color}, node_name=node_name)
    term = (
        p.spec.affinity.pod_anti_affinity.required_during_scheduling_ignored_during_execution.add()
    )
    term.label_selector.match_labels["color"] = color
    term.topology_key = key
    pref = p.spec.affinity.pod_affinity.preferred_during_scheduling_ignored_during_execution.add()
    pref.weight = 5
    pref.pod_affinity_term.label_selector.match_labels["color"] = "red"
    pref.pod_affinity_term.topology_key = "kubernetes.io/hostname"
    return p


def _queries() -> list[tuple[frozenset[str], labels.Selector, str]]:
    default = frozenset({"default"})
    return [
        (default, labels.from_set({"color": c}), key)
        for c in COLORS
        for key in ("zone", "kubernetes.io/hostname")
    ] + [(frozenset({"other"}), labels.everything(), "zone"), (default, labels.nothing(), "zone")]


def _assert_index_is_brute_force(cache: Cache) -> None:
    index, nodes = cache.topology, cache.nodes.values()
    for namespaces, selector, key in _queries():
        assert index.match_counts(namespaces, selector, key) == count_matching(
            nodes, namespaces, selector, key
        ), (namespaces, selector, key)
    assert index.term_groups() == terms_by_domain(nodes)
    real = [n for n in nodes if n.node is not None]
    assert index.domain_count("zone") == len({n.labels["zone"] for n in real if "zone" in n.labels})


def test_index_equals_brute_force_after_random_changes() -> None:
    rng = random.Random(7)
    cache = Cache()
    for i in range(8):
        cache.add_node(node(f"n{i}", labels={"zone": ZONES[i % 3]}))
    _assert_index_is_brute_force(cache)  # every answer built once: from now on, kept current
    placed: dict[str, core_pb2.Pod] = {}
    for step in range(400):
        action = rng.random()
        name = f"p{rng.randrange(40)}"
        target = f"n{rng.randrange(10)}"  # n8, n9: placeholders until their Node arrives
        if action < 0.35:
            color = rng.choice(COLORS)
            ns = rng.choice(("default", "default", "other"))
            if rng.random() < 0.5:
                p = anti_pod(name, color, target)
            else:
                p = pod(name, labels={"color": color}, node_name=target, namespace=ns)
            placed[name] = p
            cache.add_pod(p)
        elif action < 0.5:
            info = PodInfo.of(anti_pod(name, rng.choice(COLORS)))
            cache.assume_pod(info, target)
            if rng.random() < 0.5:
                cache.forget_pod(info.key)
        elif action < 0.75 and placed:
            victim = placed.pop(rng.choice(sorted(placed)))
            cache.remove_pod(victim)
        elif action < 0.85:
            zone = rng.choice((*ZONES, None))
            extra = {"zone": zone} if zone else {}
            cache.update_node(node(target, labels=extra))  # relabel, or the Node arrives
        elif action < 0.9:
            cache.remove_node(target)
        else:
            cache.update_node(node(target, labels={"zone": "a"}, cpu="8"))  # also a heartbeat
        if step % 10 == 0:
            _assert_index_is_brute_force(cache)
    cache.update_node(node("n0", labels={"zone": "a"}))
    _assert_index_is_brute_force(cache)
    # Pods alone coming and going (no node changes) never rebuild an answer: kept current.
    builds = cache.topology.builds
    for i in range(50):
        cache.add_pod(anti_pod(f"q{i}", rng.choice(COLORS), f"n{i % 8}"))
        if i % 3 == 0:
            cache.remove_pod(pod(f"q{i // 2}"))
    cache.update_node(node("n0", labels={"zone": "a"}, cpu="8"))  # heartbeat-like: same labels
    _assert_index_is_brute_force(cache)
    assert cache.topology.builds == builds


def test_spread_counts_from_the_index_equal_the_walk() -> None:
    rng = random.Random(3)
    cache = Cache()
    for i in range(9):
        cache.add_node(node(f"n{i}", labels={"zone": ZONES[i % 3]} if i != 8 else None))
    spread = pod("new", labels={"color": "red"})
    spread.spec.topology_spread_constraints.add(
        max_skew=1,
        topology_key="zone",
        when_unsatisfiable="DoNotSchedule",
        label_selector=meta_pb2.LabelSelector(match_labels={"color": "red"}),
    )
    incoming = PodInfo.of(spread)
    for i in range(60):
        p = pod(f"p{i}", labels={"color": rng.choice(COLORS)}, node_name=f"n{rng.randrange(9)}")
        cache.add_pod(p)
        if rng.random() < 0.3:
            cache.remove_pod(pod(f"p{rng.randrange(i + 1)}"))
        fast = _constraints(incoming, "DoNotSchedule")
        _count(incoming, fast, cache.snapshot())
        slow = _constraints(incoming, "DoNotSchedule")
        count_by_walking(incoming, slow, cache.snapshot(), RequiredAffinity.of(spread))
        for f, s in zip(fast, slow, strict=True):
            assert (dict(f.counts), f.domains, f.min_match) == (
                dict(s.counts),
                s.domains,
                s.global_min(),
            )


def test_affinity_terms_parse_with_kubernetes_defaults() -> None:
    p = anti_pod("x", "green")
    other = p.spec.affinity.pod_anti_affinity.required_during_scheduling_ignored_during_execution
    other.add(topology_key="zone", namespaces=["a", "b"])  # no selector: matches nothing
    info = PodAffinityInfo.of(p)
    assert info is not None
    first, second = info.required_anti
    assert first.namespaces == frozenset({"default"})  # none listed: the pod's own
    assert first.matches("default", {"color": "green"})
    assert not first.matches("kube-system", {"color": "green"})
    assert not second.matches("a", {"color": "green"})
    assert [k for k, _, _ in info.term_keys()] == [
        Kind.REQUIRED_ANTI_AFFINITY,
        Kind.REQUIRED_ANTI_AFFINITY,
        Kind.PREFERRED_AFFINITY,
    ]
    assert PodAffinityInfo.of(pod("plain")) is None


def test_combined_terms_match_pods_matching_every_term() -> None:
    t1 = AffinityTerm(frozenset({"x", "y"}), labels.from_set({"app": "web"}), "zone")
    t2 = AffinityTerm(frozenset({"y"}), labels.from_set({"tier": "fe"}), "host")
    namespaces, selector = combine([t1, t2])
    assert namespaces == frozenset({"y"})
    assert selector.matches({"app": "web", "tier": "fe"})
    assert not selector.matches({"app": "web"})
    _, none = combine([t1, AffinityTerm(frozenset({"x"}), labels.nothing(), "zone")])
    assert not none.matches({"app": "web"})


def test_confirming_an_assumed_pod_reuses_its_digest() -> None:
    c = Cache()
    for name in ("n1", "n2"):
        c.add_node(node(name))
    info = PodInfo.of(pod("p", cpu="100m", labels={"color": "red"}))
    c.assume_pod(info, "n1")
    bound = pod("p", cpu="100m", labels={"color": "red"}, node_name="n1")
    c.add_pod(bound)  # the informer reports the Binding
    n1, n2 = c.nodes["n1"], c.nodes["n2"]
    assert not c.is_assumed("default/p")
    assert n1.pods["default/p"] is info and info.pod is bound and info.node_name == "n1"
    assert n1.req_cpu == 100 and n1.pod_count == 1
    # labels changed since: digested again, and the topology counts follow
    blue = (frozenset({"default"}), labels.from_set({"color": "blue"}), "kubernetes.io/hostname")
    assert c.topology.match_counts(*blue) == {}
    c.update_pod(pod("p", cpu="100m", labels={"color": "blue"}, node_name="n1"))
    assert n1.pods["default/p"] is not info and c.topology.match_counts(*blue) == {"n1": 1}
    # assumed on n1 but bound to n2 (another scheduler won): moved, counted once
    other = PodInfo.of(pod("q", cpu="200m"))
    c.assume_pod(other, "n1")
    c.add_pod(pod("q", cpu="200m", node_name="n2"))
    assert "default/q" not in n1.pods and n2.pods["default/q"] is not other
    assert (n1.req_cpu, n2.req_cpu) == (100, 200)
