"""The overlay's desired state and plan (netplugin/overlay/network.py): pure, no kernel."""

from __future__ import annotations

import pytest

from netplugin.constants import ANNOTATION_NODE_IP, ANNOTATION_VTEP_MAC
from netplugin.overlay.network import (
    Change,
    FdbEntry,
    Lease,
    NeighEntry,
    OverlayState,
    RouteEntry,
    desired_state,
    lease_from_node,
    leases_from_nodes,
    normalize_mac,
    plan,
)
from protos import core_pb2, meta_pb2

DEV = "tinykube.1"
MAC2, MAC3, MAC4, MAC22 = (f"02:00:00:00:00:{n}" for n in ("02", "03", "04", "22"))


def node(
    name: str,
    cidr: str = "",
    mac: str = "",
    ip: str = "",
    internal_ip: str = "",
) -> core_pb2.Node:
    n = core_pb2.Node(metadata=meta_pb2.ObjectMeta(name=name))
    n.spec.pod_cidr = cidr
    if mac:
        n.metadata.annotations[ANNOTATION_VTEP_MAC] = mac
    if ip:
        n.metadata.annotations[ANNOTATION_NODE_IP] = ip
    if internal_ip:
        n.status.addresses.add(type="InternalIP", address=internal_ip)
    return n


def state(*leases: Lease) -> OverlayState:
    return desired_state(leases)


def commands(changes: list[Change]) -> list[str]:
    return [" ".join(c.argv(DEV)) for c in changes]


L2 = Lease("node2", "10.244.1.0/24", "10.201.0.12", MAC2)
L3 = Lease("node3", "10.244.2.0/24", "10.201.0.13", MAC3)
L4 = Lease("node4", "10.244.3.0/24", "10.201.0.14", MAC4)


def test_three_entries_per_remote_node() -> None:
    assert state(L2) == OverlayState(
        routes=(RouteEntry("10.244.1.0/24", "10.244.1.0"),),
        neighbours=(NeighEntry("10.244.1.0", MAC2),),
        fdb=(FdbEntry(MAC2, "10.201.0.12"),),
    )


def test_from_nothing_adds_neighbour_and_fdb_before_the_route() -> None:
    assert commands(plan(state(L2), OverlayState())) == [
        f"ip neigh add 10.244.1.0 lladdr {MAC2} dev {DEV} nud permanent",
        f"bridge fdb add {MAC2} dev {DEV} dst 10.201.0.12 self permanent",
        f"ip route add 10.244.1.0/24 via 10.244.1.0 dev {DEV} onlink",
    ]


def test_already_right_is_no_change() -> None:
    assert plan(state(L2, L3), state(L3, L2)) == []


def test_the_docstring_example() -> None:
    """node4 deleted, node2 re-IPed with a new MAC, node3 new: exactly the documented plan."""
    node2_now = Lease("node2", "10.244.1.0/24", "10.201.0.22", MAC22)
    assert commands(plan(state(node2_now, L3), state(L2, L4))) == [
        f"ip route del 10.244.3.0/24 via 10.244.3.0 dev {DEV}",
        f"ip neigh del 10.244.3.0 dev {DEV}",
        f"bridge fdb del {MAC2} dev {DEV} dst 10.201.0.12",
        f"bridge fdb del {MAC4} dev {DEV} dst 10.201.0.14",
        f"ip neigh replace 10.244.1.0 lladdr {MAC22} dev {DEV} nud permanent",
        f"ip neigh add 10.244.2.0 lladdr {MAC3} dev {DEV} nud permanent",
        f"bridge fdb add {MAC3} dev {DEV} dst 10.201.0.13 self permanent",
        f"bridge fdb add {MAC22} dev {DEV} dst 10.201.0.22 self permanent",
        f"ip route add 10.244.2.0/24 via 10.244.2.0 dev {DEV} onlink",
    ]


def test_node_ip_changed_replaces_only_the_fdb_entry() -> None:
    moved = Lease("node2", "10.244.1.0/24", "10.201.0.22", MAC2)
    assert commands(plan(state(moved), state(L2))) == [
        f"bridge fdb replace {MAC2} dev {DEV} dst 10.201.0.22 self permanent",
    ]


def test_pod_cidr_changed_deletes_the_old_route_and_neighbour() -> None:
    moved = Lease("node2", "10.244.9.0/24", "10.201.0.12", MAC2)
    assert commands(plan(state(moved), state(L2))) == [
        f"ip route del 10.244.1.0/24 via 10.244.1.0 dev {DEV}",
        f"ip neigh del 10.244.1.0 dev {DEV}",
        f"ip neigh add 10.244.9.0 lladdr {MAC2} dev {DEV} nud permanent",
        f"ip route add 10.244.9.0/24 via 10.244.9.0 dev {DEV} onlink",
    ]


def test_every_node_gone_deletes_everything() -> None:
    changes = plan(OverlayState(), state(L2, L3))
    assert {c.op for c in changes} == {"del"}
    assert len(changes) == 6


def test_duplicate_actual_entries_are_removed_keeping_the_right_one() -> None:
    actual = OverlayState(
        routes=(RouteEntry("10.244.1.0/24", "10.244.1.0"),),
        neighbours=(NeighEntry("10.244.1.0", MAC2),),
        fdb=(FdbEntry(MAC2, "10.201.0.12"), FdbEntry(MAC2, "10.201.0.99")),
    )
    assert commands(plan(state(L2), actual)) == [
        f"bridge fdb del {MAC2} dev {DEV} dst 10.201.0.99",
    ]


def test_duplicate_actual_entries_none_right_replace_one_delete_the_rest() -> None:
    actual = OverlayState(fdb=(FdbEntry(MAC2, "10.201.0.98"), FdbEntry(MAC2, "10.201.0.99")))
    changes = plan(OverlayState(fdb=(FdbEntry(MAC2, "10.201.0.12"),)), actual)
    assert commands(changes) == [
        f"bridge fdb del {MAC2} dev {DEV} dst 10.201.0.99",
        f"bridge fdb replace {MAC2} dev {DEV} dst 10.201.0.12 self permanent",
    ]


def test_no_key_is_ever_planned_twice() -> None:
    changes = plan(state(L2, L3), state(L4))
    keys = [(c.op, type(c.entry).__name__, c.entry.key) for c in changes]
    assert len(keys) == len(set(keys))


def test_a_podcidr_or_mac_claimed_twice_goes_to_the_first_node() -> None:
    clash_cidr = Lease("node9", "10.244.1.0/24", "10.201.0.19", "02:00:00:00:00:09")
    clash_mac = Lease("node8", "10.244.8.0/24", "10.201.0.18", MAC2)
    got = desired_state([clash_cidr, L2, clash_mac])
    assert [r.dst for r in got.routes] == ["10.244.1.0/24"]
    assert got.fdb == (FdbEntry(MAC2, "10.201.0.12"),)


def test_own_pod_cidr_is_never_routed_to_another_node() -> None:
    assert desired_state([L2], own_pod_cidr="10.244.1.0/24") == OverlayState()


def test_leases_from_nodes_skips_self_and_incomplete_nodes() -> None:
    nodes = [
        node("node1", "10.244.0.0/24", "02:00:00:00:00:01", "10.201.0.11"),
        node("node2", "10.244.1.0/24", MAC2.upper(), "10.201.0.12"),
        node("node3", "10.244.2.0/24"),  # its agent has not published yet
        node("node4", "", MAC4, "10.201.0.14"),  # no podCIDR yet
        node("node5", "10.244.4.0/24", "02:00:00:00:00:05", internal_ip="10.201.0.15"),
        node("node6", "10.244.5.0/24", "02:00:00:00:00:06"),  # no IP at all
        node("node7", "10.244.6.0/24", "not-a-mac", "10.201.0.17"),
    ]
    assert leases_from_nodes(nodes, "node1") == [
        L2,
        Lease("node5", "10.244.4.0/24", "10.201.0.15", "02:00:00:00:00:05"),
    ]


def test_annotation_wins_over_internal_ip() -> None:
    lease, _ = lease_from_node(node("n", "10.244.1.0/24", MAC2, "10.201.0.12", "192.168.0.9"))
    assert lease is not None and lease.node_ip == "10.201.0.12"


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        (node("n"), "no podCIDR"),
        (node("n", "10.244.1.0/24"), "no VTEP MAC annotation"),
        (node("n", "10.244.1.0/24", MAC2), "no node IP (annotation or InternalIP)"),
        (node("n", "10.244.1.7/24", MAC2, "10.201.0.12"), "bad value"),
    ],
)
def test_lease_reasons(obj: core_pb2.Node, reason: str) -> None:
    lease, why = lease_from_node(obj)
    assert lease is None and why.startswith(reason)


def test_normalize_mac() -> None:
    assert normalize_mac("AA-BB-CC-DD-EE-0F") == "aa:bb:cc:dd:ee:0f"
    with pytest.raises(ValueError, match="not a MAC"):
        normalize_mac("aa:bb:cc")
    with pytest.raises(ValueError):
        normalize_mac("zz:bb:cc:dd:ee:ff")
