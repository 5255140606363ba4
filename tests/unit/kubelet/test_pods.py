"""Pods bound to a hollow node: start, status, graceful deletion, housekeeping."""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

import pytest

from apimachinery import errors
from apimachinery.client import Client
from kubelet.runtime.fake import FakeRuntime
from kubelet.runtime.interface import ContainerState, SandboxState
from protos import core_pb2
from tests.unit.kubelet.conftest import Harness, eventually, pod, set_pod_cidr

CIDR = "10.244.1.0/24"


async def phase_is(client: Client, name: str, phase: str) -> Any:
    p = await client.get("pods", name)
    return p if p.status.phase == phase else None


def conditions(p: Any) -> dict[str, str]:
    return {c.type: c.status for c in p.status.conditions}


async def test_bound_pod_runs_with_ip_from_pod_cidr(client: Client, harness: Harness) -> None:
    runtime = FakeRuntime()
    await harness.start("node1", runtime)
    await set_pod_cidr(client, "node1", CIDR)
    await client.create(pod("web", "node1", "web", "sidecar"))
    p = await eventually(lambda: phase_is(client, "web", "Running"))

    ip = ipaddress.ip_address(p.status.pod_ip)
    assert ip in ipaddress.ip_network(CIDR)
    assert str(ip) not in ("10.244.1.0", "10.244.1.1", "10.244.1.255")
    assert [i.ip for i in p.status.pod_ips] == [p.status.pod_ip]
    assert p.status.host_ip == "192.168.50.10"
    assert p.status.HasField("start_time")
    assert conditions(p) == {
        "Initialized": "True",
        "Ready": "True",
        "ContainersReady": "True",
        "PodScheduled": "True",
    }
    assert all(c.HasField("last_transition_time") for c in p.status.conditions)
    statuses = p.status.container_statuses
    assert [s.name for s in statuses] == ["web", "sidecar"]
    for s in statuses:
        assert s.state.HasField("running") and s.state.running.HasField("started_at")
        assert s.ready and s.started and s.restart_count == 0
        assert s.image == "nginx:1.25"
        assert s.image_id.startswith("docker.io/library/nginx@sha256:")
        assert s.container_id.startswith("fake://")
    assert len({s.container_id for s in statuses}) == 2
    assert runtime.count("run_pod_sandbox") == 1

    events, _ = await client.list("events", "default")
    reasons = {e.reason for e in events if e.involved_object.name == "web"}
    assert {"Created", "Started"} <= reasons


async def test_two_pods_get_different_ips(client: Client, harness: Harness) -> None:
    await harness.start("node1")
    await set_pod_cidr(client, "node1", CIDR)
    await client.create(pod("a", "node1"))
    await client.create(pod("b", "node1"))
    a = await eventually(lambda: phase_is(client, "a", "Running"))
    b = await eventually(lambda: phase_is(client, "b", "Running"))
    assert a.status.pod_ip != b.status.pod_ip
    network = ipaddress.ip_network(CIDR)
    assert ipaddress.ip_address(a.status.pod_ip) in network
    assert ipaddress.ip_address(b.status.pod_ip) in network


async def test_pod_waits_for_pod_cidr(client: Client, harness: Harness) -> None:
    await harness.start("node1")
    await client.create(pod("early", "node1"))

    async def reported() -> Any:
        p = await client.get("pods", "early")
        return p if p.status.container_statuses else None

    p = await eventually(reported)
    assert p.status.phase == "Pending"
    waiting = p.status.container_statuses[0].state.waiting
    assert waiting.reason == "ContainerCreating"
    await asyncio.sleep(0.3)
    assert (await client.get("pods", "early")).status.pod_ip == ""
    await set_pod_cidr(client, "node1", "10.244.7.0/24")
    p = await eventually(lambda: phase_is(client, "early", "Running"))
    assert p.status.pod_ip.startswith("10.244.7.")


async def test_graceful_deletion_stops_then_removes_the_object(
    client: Client, harness: Harness
) -> None:
    runtime = FakeRuntime()
    await harness.start("node1", runtime)
    await set_pod_cidr(client, "node1", CIDR)
    await client.create(pod("web", "node1", grace=7))
    await eventually(lambda: phase_is(client, "web", "Running"))
    assert runtime.ipam.allocated()

    marked = await client.delete("pods", "web")
    assert marked.metadata.HasField("deletion_timestamp")  # left for the kubelet

    async def gone() -> bool:
        try:
            await client.get("pods", "web")
        except errors.NotFound:
            return True
        return False

    await eventually(gone)
    stops = [call for call in runtime.calls if call[0] == "stop_container"]
    assert [call[2] for call in stops] == [7]  # once, with the pod's grace period
    assert runtime.sandboxes == {} and runtime.containers == {}
    assert runtime.ipam.allocated() == {}  # the IP went back to the pool
    assert runtime.count("remove_pod_sandbox") >= 1


async def test_pods_for_other_nodes_are_ignored(client: Client, harness: Harness) -> None:
    runtime = FakeRuntime()
    kubelet, _ = await harness.start("node1", runtime)
    await set_pod_cidr(client, "node1", CIDR)
    await client.create(pod("elsewhere", "node2"))
    unbound = pod("unbound", "node2")
    unbound.spec.node_name = ""
    await client.create(unbound)
    await client.create(pod("mine", "node1"))
    await eventually(lambda: phase_is(client, "mine", "Running"))
    await asyncio.sleep(0.3)
    assert runtime.count("run_pod_sandbox") == 1
    assert {s.name for s in runtime.sandboxes.values()} == {"mine"}
    assert (await client.get("pods", "elsewhere")).status.phase in ("", "Pending")
    assert not (await client.get("pods", "elsewhere")).status.pod_ip
    assert len(kubelet.pod_workers.known_uids()) == 1


async def test_status_written_only_on_change(
    client: Client, harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes: list[str] = []
    original = client.update_status

    async def counting(obj: Any) -> Any:
        if isinstance(obj, core_pb2.Pod):
            writes.append(obj.status.phase)
        return await original(obj)

    monkeypatch.setattr(client, "update_status", counting)
    await harness.start("node1")  # sync_frequency 0.5 s: several resyncs below
    await set_pod_cidr(client, "node1", CIDR)
    await client.create(pod("web", "node1"))
    await eventually(lambda: phase_is(client, "web", "Running"))
    settled = len(writes)
    assert 1 <= settled <= 2
    await asyncio.sleep(1.6)
    assert len(writes) == settled, writes


async def test_pod_deleted_while_kubelet_down_is_cleaned_up(
    client: Client, harness: Harness
) -> None:
    runtime = FakeRuntime()
    _, task = await harness.start("node1", runtime)
    await set_pod_cidr(client, "node1", CIDR)
    await client.create(pod("gone", "node1"))
    await client.create(pod("deleting", "node1"))
    await eventually(lambda: phase_is(client, "gone", "Running"))
    await eventually(lambda: phase_is(client, "deleting", "Running"))
    await harness.stop(task)

    await client.delete("pods", "gone", grace_period_seconds=0)  # force: the object goes now
    await client.delete("pods", "deleting")  # graceful: waits for the kubelet
    assert len(runtime.sandboxes) == 2

    await harness.start("node1", runtime)

    async def cleaned() -> bool:
        return not runtime.sandboxes

    await eventually(cleaned)
    pods, _ = await client.list("pods", "default")
    assert [p.metadata.name for p in pods] == []
    assert runtime.ipam.allocated() == {}


async def test_pod_deleting_at_start_is_never_started(client: Client, harness: Harness) -> None:
    runtime = FakeRuntime()
    _, task = await harness.start("node1", runtime)
    await set_pod_cidr(client, "node1", CIDR)
    await client.create(pod("old", "node1"))
    await eventually(lambda: phase_is(client, "old", "Running"))
    await harness.stop(task)
    await client.delete("pods", "old")  # graceful: marked, waiting for the kubelet

    fresh = FakeRuntime()  # a hollow kubelet process restart: the runtime forgot everything
    await harness.start("node1", fresh)

    async def gone() -> bool:
        pods, _ = await client.list("pods", "default")
        return not pods

    await eventually(gone)
    assert fresh.count("run_pod_sandbox") == 0  # a deleting pod is stopped, never started


async def test_scripted_exits_give_terminal_phases(client: Client, harness: Harness) -> None:
    runtime = FakeRuntime()
    runtime.behave("ok", exit_code=0, exit_after=0.2)
    runtime.behave("bad", exit_code=3, exit_after=0.2)
    await harness.start("node1", runtime)
    await set_pod_cidr(client, "node1", CIDR)
    for name in ("ok", "bad"):
        p = pod(name, "node1", name)
        p.spec.restart_policy = "Never"
        await client.create(p)
    done = await eventually(lambda: phase_is(client, "ok", "Succeeded"))
    failed = await eventually(lambda: phase_is(client, "bad", "Failed"))
    assert done.status.container_statuses[0].state.terminated.reason == "Completed"
    assert failed.status.container_statuses[0].state.terminated.exit_code == 3
    assert conditions(failed)["Ready"] == "False"
    # Finished, not deleted: the sandboxes stop (network and IP released) but they and the
    # exited containers stay, so `logs` still finds them, as Kubernetes' container GC keeps them.
    await eventually(lambda: _all_stopped(runtime, 2))
    assert sorted(c.exit_code for c in runtime.containers.values()) == [0, 3]
    assert all(c.state == ContainerState.EXITED for c in runtime.containers.values())
    assert (await client.get("pods", "ok")).status.phase == "Succeeded"
    await asyncio.sleep(0.5)  # and they stay: nothing removes them behind the pod's back
    assert len(runtime.sandboxes) == 2 and runtime.count("remove_container") == 0
    # Deleted: what was kept goes, then the object does.
    for name in ("ok", "bad"):
        await client.delete("pods", name)
    await eventually(lambda: _no_sandboxes(runtime))
    assert not runtime.containers


async def _all_stopped(runtime: FakeRuntime, count: int) -> bool:
    sandboxes = list(runtime.sandboxes.values())
    return len(sandboxes) == count and all(s.state == SandboxState.NOTREADY for s in sandboxes)


async def _no_sandboxes(runtime: FakeRuntime) -> bool:
    return not runtime.sandboxes


async def test_image_pull_failure_shows_in_status(client: Client, harness: Harness) -> None:
    runtime = FakeRuntime()
    runtime.image_errors["nginx:1.25"] = "registry unreachable"
    await harness.start("node1", runtime)
    await set_pod_cidr(client, "node1", CIDR)
    await client.create(pod("web", "node1"))

    async def pull_failed() -> bool:
        p = await client.get("pods", "web")
        statuses = p.status.container_statuses
        return bool(statuses) and statuses[0].state.waiting.reason in (
            "ErrImagePull",
            "ImagePullBackOff",  # the retry within the (short) image backoff
        )

    await eventually(pull_failed)
    assert (await client.get("pods", "web")).status.phase == "Pending"
    del runtime.image_errors["nginx:1.25"]
    await eventually(lambda: phase_is(client, "web", "Running"), timeout=15)
