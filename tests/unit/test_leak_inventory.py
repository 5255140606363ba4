"""The leak inventory's rules (localcluster/leaks.py), on inventories built by hand."""

from __future__ import annotations

from localcluster.leaks import ContainerInfo, NodeInventory, SandboxInfo


def _stopped_pod(uid: str) -> NodeInventory:
    """A node holding one stopped sandbox (its IP released) and its exited container."""
    sandbox = SandboxInfo(id=f"sb-{uid}", pod_uid=uid, pod=f"default/{uid}", ready=False, attempt=0)
    container = ContainerInfo(
        id=f"c-{uid}", sandbox_id=sandbox.id, pod_uid=uid, name="main", attempt=0, state="exited"
    )
    return NodeInventory("node1", sandboxes=[sandbox], containers=[container])


def test_a_stopped_sandbox_of_no_finished_pod_is_left_behind() -> None:
    inv = _stopped_pod("u1")
    assert inv.problems() == ["sandbox sb-u1 of default/u1 (attempt 0) is NOTREADY and left behind"]


def test_a_finished_pod_keeps_its_stopped_sandbox_for_its_logs() -> None:
    inv = _stopped_pod("u1")
    inv.finished = {"u1"}
    assert inv.problems() == []
    inv.finished = {"someone-else"}
    assert len(inv.problems()) == 1


def test_a_finished_pods_sandbox_still_holding_an_address_is_a_leak() -> None:
    inv = _stopped_pod("u1")
    inv.finished = {"u1"}
    inv.reservations = {"10.244.1.5": "sb-u1"}  # stopping should have released it
    assert inv.problems() == ["address 10.244.1.5 is reserved for sb-u1, no live sandbox"]
