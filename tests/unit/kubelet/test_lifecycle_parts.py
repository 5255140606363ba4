"""Pod lifecycle parts without an API server: PLEG, backoff, restart policy, probes, termination."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from apimachinery.client import Client
from apimachinery.clock import FakeClock
from kubelet.backoff import Backoff
from kubelet.config import KubeletConfig
from kubelet.kubelet import Kubelet
from kubelet.kuberuntime_container import (
    ContainerKiller,
    go_duration,
    policy_restarts,
    restart_decision,
)
from kubelet.kuberuntime_manager import KubeRuntimeManager
from kubelet.nodestatus import machine_capacity
from kubelet.pleg import EventType, GenericPLEG, PLEGState, PodLifecycleEvent, compute_events
from kubelet.prober.manager import ProberManager
from kubelet.prober.prober import ProbeTarget, Result, http_get, run_probe, tcp_socket
from kubelet.prober.worker import ProbeKind, ProbeWorker
from kubelet.runtime.fake import FakeRuntime
from kubelet.runtime.interface import Container, ContainerState, ExecResult
from protos import core_pb2
from tests.unit.kubelet.conftest import pod

R, X, U = PLEGState.RUNNING, PLEGState.EXITED, PLEGState.UNKNOWN


# ---- PLEG --------------------------------------------------------------------------------


def test_pleg_events_are_a_function_of_old_and_new() -> None:
    old = {"u1": {"sb1": R, "c1": R, "c2": X, "c3": R}, "gone": {"c9": X}}
    new = {"u1": {"sb1": R, "c1": X, "c2": X, "c4": R, "c5": U}, "u2": {"sb2": R}}
    assert compute_events(old, new) == [
        PodLifecycleEvent("gone", EventType.CONTAINER_REMOVED, "c9"),
        PodLifecycleEvent("u1", EventType.CONTAINER_DIED, "c1"),
        # c3 vanished while running: died, then removed
        PodLifecycleEvent("u1", EventType.CONTAINER_DIED, "c3"),
        PodLifecycleEvent("u1", EventType.CONTAINER_REMOVED, "c3"),
        PodLifecycleEvent("u1", EventType.CONTAINER_STARTED, "c4"),
        PodLifecycleEvent("u1", EventType.CONTAINER_CHANGED, "c5"),
        PodLifecycleEvent("u2", EventType.CONTAINER_STARTED, "sb2"),
    ]
    assert compute_events(new, new) == []
    assert compute_events({}, {}) == []


async def test_pleg_relist_reports_exits_per_pod() -> None:
    runtime = FakeRuntime("10.244.3.0/24")
    manager = KubeRuntimeManager(runtime)
    p = pod("p", "node1", "web")
    p.metadata.uid = "u1"
    await manager.sync_pod(p)
    seen: list[tuple[str, list[EventType]]] = []
    pleg = GenericPLEG(runtime, lambda uid, evs: seen.append((uid, [e.type for e in evs])))
    await pleg.relist()
    assert seen == [("u1", [EventType.CONTAINER_STARTED, EventType.CONTAINER_STARTED])]
    seen.clear()
    assert await pleg.relist() == []  # nothing changed
    runtime.kill(next(iter(runtime.containers)), 1)
    await pleg.relist()
    assert seen == [("u1", [EventType.CONTAINER_DIED])]
    assert pleg.healthy() and pleg.relists == 3


# ---- backoff and restart policy ------------------------------------------------------------


def test_crash_loop_backoff_doubles_to_five_minutes_and_resets() -> None:
    clock = FakeClock(wall=1000.0)
    backoff = Backoff(10, 300, clock=clock)
    delays = []
    for _ in range(8):
        delays.append(backoff.next("u/web", clock.time()))
        assert backoff.in_backoff_since("u/web", clock.time())
        clock.step(delays[-1] - 0.5)
        assert backoff.in_backoff_since("u/web", clock.time() - delays[-1] + 0.5)
        clock.step(1.0)  # the wait is over: restarted, and it crashes again at once
        assert not backoff.in_backoff_since("u/web", clock.time() - delays[-1] - 0.5)
    assert delays == [10, 20, 40, 80, 160, 300, 300, 300]
    clock.step(601)  # ran for more than ten minutes, then crashed
    assert backoff.next("u/web", clock.time()) == 10
    assert backoff.get("other") == 0 and not backoff.in_backoff_since("other", clock.time())
    clock.step(1000)
    backoff.gc()
    assert len(backoff) == 0
    assert [go_duration(s) for s in (0.2, 10, 80, 160, 300, 3725)] == [
        "200ms",
        "10s",
        "1m20s",
        "2m40s",
        "5m0s",
        "1h2m5s",
    ]


@pytest.mark.parametrize(
    ("policy", "code", "restarts"),
    [
        ("Always", 0, True),
        ("Always", 1, True),
        ("", 0, True),
        ("OnFailure", 0, False),
        ("OnFailure", 2, True),
        ("Never", 0, False),
        ("Never", 1, False),
    ],
)
def test_restart_policy_table(policy: str, code: int, restarts: bool) -> None:
    assert policy_restarts(policy, code) is restarts


def _exited(name: str, code: int, finished: float, attempt: int = 0) -> Container:
    return Container(
        id=f"c{attempt}",
        sandbox_id="sb",
        name=name,
        attempt=attempt,
        image="busybox",
        image_ref="busybox@sha256:x",
        state=ContainerState.EXITED,
        created_at=finished - 1,
        finished_at=finished,
        exit_code=code,
    )


def test_restart_decision_waits_out_the_backoff() -> None:
    clock = FakeClock(wall=100.0)
    backoff = Backoff(10, 300, clock=clock)
    p = pod("web-app", "node1", "web-app")
    p.metadata.uid = "uid1"
    assert restart_decision(p, _exited("web-app", 1, 100.0), backoff).restart  # first: at once
    clock.step(1.0)
    decision = restart_decision(p, _exited("web-app", 1, 101.0, 1), backoff)
    assert not decision.restart and decision.retry_after == pytest.approx(10.0)
    assert decision.waiting is not None and decision.waiting.reason == "CrashLoopBackOff"
    assert decision.waiting.message == (
        "back-off 10s restarting failed container=web-app pod=web-app_default(uid1)"
    )
    clock.step(10.5)
    assert restart_decision(p, _exited("web-app", 1, 101.0, 1), backoff).restart
    clock.step(0.5)
    decision = restart_decision(p, _exited("web-app", 1, 112.0, 2), backoff)
    assert decision.waiting is not None and "back-off 20s" in decision.waiting.message
    p.spec.restart_policy = "OnFailure"
    assert restart_decision(p, _exited("web-app", 0, 112.0, 2), backoff).waiting is None


# ---- graceful termination ---------------------------------------------------------------------


async def test_graceful_termination_prestop_then_term_then_kill() -> None:
    runtime = FakeRuntime("10.244.3.0/24")
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        runtime.calls.append(("sleep", seconds))

    runtime.sleep = fake_sleep
    runtime.behave("stubborn", term_after=None)  # ignores SIGTERM
    p = pod("p", "node1", "stubborn")
    p.metadata.uid = "u1"
    p.spec.containers[0].lifecycle.pre_stop.exec.command.extend(["nginx", "-s", "quit"])
    runtime.execs[("nginx", "-s", "quit")] = ExecResult(0)
    manager = KubeRuntimeManager(runtime)
    await manager.sync_pod(p)
    cid = runtime.running()[0].id
    await manager.kill_pod(p, await runtime.list_pod_sandboxes(pod_uid="u1"), grace=20)
    order = [c for c in runtime.calls if c[0] in ("exec_sync", "stop_container", "signal", "sleep")]
    assert order == [
        ("exec_sync", cid, ("nginx", "-s", "quit")),
        ("stop_container", cid, 20.0),
        ("signal", cid, "SIGTERM"),
        ("sleep", 20.0),
        ("signal", cid, "SIGKILL"),
    ]
    assert slept == [20.0]


async def test_stop_honoured_within_grace_exits_zero() -> None:
    runtime = FakeRuntime("10.244.3.0/24")
    runtime.sleep = lambda s: asyncio.sleep(0)
    runtime.behave("web", term_after=1.0)
    p = pod("p", "node1", "web")
    p.metadata.uid = "u1"
    p.spec.containers[0].lifecycle.pre_stop.exec.command.append("missing-binary")
    await KubeRuntimeManager(runtime).sync_pod(p)
    container = runtime.running()[0]
    killer = ContainerKiller(runtime)
    await killer.kill_container(p, container, 5.0)
    after = await runtime.container_status(container.id)
    assert (after.state, after.exit_code) == (ContainerState.EXITED, 0)
    assert ("signal", container.id, "SIGKILL") not in runtime.calls


# ---- probes -------------------------------------------------------------------------------


@pytest.fixture
async def http_server() -> AsyncIterator[tuple[int, dict[str, Any]]]:
    state: dict[str, Any] = {"status": 200, "requests": []}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        state["requests"].append(head.decode())
        code = state["status"]
        writer.write(f"HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n".encode())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield port, state
    finally:
        server.close()
        await server.wait_closed()


async def test_http_and_tcp_probes(http_server: tuple[int, dict[str, Any]]) -> None:
    port, state = http_server
    ok = await http_get("127.0.0.1", port, "/healthz", headers=[("X-Probe", "1")])
    assert ok.result == Result.SUCCESS
    request = state["requests"][0]
    assert request.startswith("GET /healthz HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{port}" in request and "X-Probe: 1" in request
    assert "User-Agent: kube-probe/" in request
    state["status"] = 500
    bad = await http_get("127.0.0.1", port, "/healthz")
    assert (bad.result, bad.output) == (Result.FAILURE, "HTTP probe failed with statuscode: 500")
    state["status"] = 302
    assert (await http_get("127.0.0.1", port)).result == Result.SUCCESS
    assert (await tcp_socket("127.0.0.1", port)).result == Result.SUCCESS
    closed = await tcp_socket("127.0.0.1", 1)
    assert closed.result == Result.FAILURE and "connection refused" in closed.output
    refused = await http_get("127.0.0.1", 1, "/")
    assert refused.output.startswith('Get "http://127.0.0.1:1/": dial tcp 127.0.0.1:1: connect:')


async def test_named_port_and_exec_probe(http_server: tuple[int, dict[str, Any]]) -> None:
    port, _ = http_server
    runtime = FakeRuntime("10.244.3.0/24")
    spec = core_pb2.Container(name="web", image="nginx")
    spec.ports.add(name="http", container_port=port)
    probe = core_pb2.Probe(timeout_seconds=1)
    probe.http_get.path = "/"
    probe.http_get.port.str_val = "http"
    probe.http_get.host = "127.0.0.1"
    outcome = await run_probe(probe, ProbeTarget("10.9.9.9", "", spec), runtime)
    assert outcome.result == Result.SUCCESS

    p = pod("p", "node1", "web")
    p.metadata.uid = "u1"
    await KubeRuntimeManager(runtime).sync_pod(p)
    cid = runtime.running()[0].id
    exec_probe = core_pb2.Probe(timeout_seconds=1)
    exec_probe.exec.command.extend(["cat", "/tmp/healthy"])
    target = ProbeTarget("", cid, spec)
    failed = await run_probe(exec_probe, target, runtime)
    assert (failed.result, failed.output) == (
        Result.FAILURE,
        "cat: /tmp/healthy: No such file or directory",
    )
    runtime.files[("web", "/tmp/healthy")] = b"ok"
    assert (await run_probe(exec_probe, target, runtime)).result == Result.SUCCESS


async def test_probe_worker_thresholds() -> None:
    answers: list[Result] = []
    changes: list[Result] = []

    async def scripted(probe: Any, target: ProbeTarget) -> Any:
        from kubelet.prober.prober import ProbeOutcome

        return ProbeOutcome(answers.pop(0), "scripted")

    probe = core_pb2.Probe(period_seconds=1, failure_threshold=3, success_threshold=2)
    p = pod("p", "node1", "web")
    worker = ProbeWorker(
        ProbeKind.READINESS,
        p,
        p.spec.containers[0],
        probe,
        run_probe=scripted,
        may_probe=lambda w: True,
        on_result=lambda w, o: None,
        on_change=lambda w: changes.append(w.result),
    )
    assert not await worker.probe_once()  # no container yet
    worker.set_container("c1", 0.0, "10.0.0.2")
    assert worker.result == Result.FAILURE  # readiness starts unready
    answers.extend([Result.SUCCESS, Result.SUCCESS, Result.FAILURE, Result.FAILURE])
    answers.extend([Result.FAILURE])
    for _ in range(5):
        assert await worker.probe_once()
    assert changes == [Result.SUCCESS, Result.FAILURE]  # after 2 successes, after 3 failures
    worker.set_container("c2", 0.0, "10.0.0.2")  # a new instance starts over
    assert worker.result == Result.FAILURE and worker.probes == 5


# ---- node status from the host ------------------------------------------------------------


def test_machine_capacity_reads_proc(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       16303948 kB\nMemFree:         1000 kB\n")
    got = machine_capacity(str(meminfo))
    assert got["memory"] == "16303948Ki"
    assert int(got["cpu"]) >= 1
    assert "memory" not in machine_capacity(str(tmp_path / "missing"))


async def test_real_runtime_reports_the_host_capacity() -> None:
    class HostRuntime(FakeRuntime):
        name = "host"  # anything but the hollow `fake`

    client = Client("127.0.0.1:1")
    try:
        hollow = Kubelet(client, KubeletConfig("n1"), FakeRuntime())
        real = Kubelet(client, KubeletConfig("n2"), HostRuntime())
    finally:
        await client.close()
    assert hollow.config.capacity == {"cpu": "4", "memory": "8Gi", "pods": "110"}
    assert real.config.capacity == {**machine_capacity(), "pods": "110"}


async def test_startup_probe_gates_liveness_and_started() -> None:
    runtime = FakeRuntime("10.244.3.0/24")
    p = pod("p", "node1", "web")
    p.metadata.uid = "u1"
    spec = p.spec.containers[0]
    spec.startup_probe.exec.command.append("started")
    spec.startup_probe.period_seconds = 1
    spec.startup_probe.failure_threshold = 100
    spec.liveness_probe.exec.command.append("alive")
    spec.liveness_probe.period_seconds = 1
    up = {"started": False}
    runtime.exec_handler = lambda c, cmd: (
        ExecResult(0 if up["started"] else 1)
        if cmd == ("started",)
        else (ExecResult(0) if cmd == ("alive",) else None)
    )
    await KubeRuntimeManager(runtime).sync_pod(p)
    container = runtime.running()[0]
    woken: list[str] = []
    manager = ProberManager(runtime, None, woken.append, time_unit=0.02)
    try:
        manager.update_pod(p, [container], "10.244.3.2")
        await asyncio.sleep(0.15)
        assert not manager.is_started(p, container) and not manager.is_ready(p, container)
        assert not any(call[0] == "exec_sync" and call[2] == ("alive",) for call in runtime.calls)
        up["started"] = True
        for _ in range(50):
            if manager.is_started(p, container):
                break
            await asyncio.sleep(0.02)
        assert manager.is_started(p, container) and manager.is_ready(p, container)
        assert woken == ["u1"]
        await asyncio.sleep(0.1)
        assert any(call[0] == "exec_sync" and call[2] == ("alive",) for call in runtime.calls)
        assert manager.failed_probe(p, container) == ""
    finally:
        await manager.stop()
    assert manager.workers == {}
