"""postStart and preStop hooks on the fake runtime: when they run, what a failure does, the words.

The httpGet hooks go to a server of the test's own on 127.0.0.1 (the hook's
`host`), or to a port on 127.0.0.1 that nothing listens on.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from kubelet.kuberuntime_manager import KubeRuntimeManager
from kubelet.runtime.fake import FakeRuntime
from kubelet.runtime.interface import Container, ContainerState, ExecResult
from kubelet.status import generate_pod_status
from protos import core_pb2
from tests.unit.kubelet.conftest import pod
from tests.unit.kubelet.test_sidecars import Events

POD_TEXT = '"app_default(uid-app)"'


def _pod() -> core_pb2.Pod:
    p = pod("app", "node1", "web")
    p.metadata.uid = "uid-app"
    p.spec.termination_grace_period_seconds = 5
    return p


def _node() -> tuple[FakeRuntime, Events, KubeRuntimeManager]:
    runtime = FakeRuntime("10.244.3.0/24")
    events = Events()
    return runtime, events, KubeRuntimeManager(runtime, events)


def _post_start(p: core_pb2.Pod) -> core_pb2.LifecycleHandler:
    return p.spec.containers[0].lifecycle.post_start


@pytest.fixture
async def http_server() -> AsyncIterator[tuple[int, list[str]]]:
    """A server on 127.0.0.1 answering 500 to everything; the request lines it got."""
    seen: list[str] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        seen.append(head.decode().split("\r\n")[0])
        writer.write(b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], seen
    finally:
        server.close()
        await server.wait_closed()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_post_start_runs_right_after_the_start_and_its_effect_is_seen() -> None:
    runtime, events, manager = _node()
    p = _pod()
    _post_start(p).exec.command.extend(["sh", "-c", "echo hooked > /tmp/hook"])

    def hook(container: Container, cmd: tuple[str, ...]) -> ExecResult | None:
        if cmd[:2] == ("sh", "-c"):
            runtime.files[(container.name, "/tmp/hook")] = b"hooked\n"
            return ExecResult(0)
        return None

    runtime.exec_handler = hook
    result = await manager.sync_pod(p)
    assert result.error is None
    calls = [c[0] for c in runtime.calls if c[0] in ("start_container", "exec_sync")]
    assert calls == ["start_container", "exec_sync"]
    cid = runtime.running()[0].id
    assert (await runtime.exec_sync(cid, ["cat", "/tmp/hook"], 1)).stdout == b"hooked\n"
    assert not [e for e in events.seen if e[0] == "Warning"]


async def test_a_failing_post_start_kills_the_container_with_kubernetes_words() -> None:
    runtime, events, manager = _node()
    p = _pod()
    _post_start(p).exec.command.extend(["sh", "-c", "exit 3"])
    runtime.execs[("sh", "-c", "exit 3")] = ExecResult(3, b"", b"no config\n")
    result = await manager.sync_pod(p)

    message = (
        f'Exec lifecycle hook ([sh -c exit 3]) for Container "web" in Pod {POD_TEXT} failed - '
        "error: command 'sh -c exit 3' exited with 3: no config\n, "
        'message: "no config\\n"'
    )
    assert ("Warning", "FailedPostStartHook", message) in events.seen
    assert ("Normal", "Killing", "FailedPostStartHook") in events.seen
    assert not [e for e in events.seen if e[1] == "Failed"]  # no "Error: ..." event as well
    (container,) = await runtime.list_containers()
    assert container.state == ContainerState.EXITED
    assert result.waiting["web"].reason == "PostStartHookError"
    assert result.error is not None
    status = generate_pod_status(
        p,
        p.status,
        node_ip="10.0.0.1",
        sandbox=result.sandbox,
        containers=result.containers,
        runtime_name="fake",
        waiting=result.waiting,
    )
    web = status.container_statuses[0]
    assert web.state.waiting.reason == "PostStartHookError"
    assert web.last_state.HasField("terminated")
    await manager.sync_pod(p)  # restarted as after a crash (the first restart is at once)
    assert runtime.count("create_container") == 2


async def test_http_hooks_fail_only_when_nothing_answers(
    http_server: tuple[int, list[str]],
) -> None:
    port, seen = http_server
    _, events, manager = _node()
    p = _pod()
    action = _post_start(p).http_get
    action.host, action.path = "127.0.0.1", "/hook"
    action.port.int_val = port
    assert (await manager.sync_pod(p)).error is None  # a 500 is an answer: Kubernetes' rule
    assert seen == ["GET /hook HTTP/1.1"]

    closed = _free_port()
    action.port.int_val = closed
    p.metadata.uid = "uid-2"
    result = await manager.sync_pod(p)
    assert result.waiting["web"].reason == "PostStartHookError"
    message = (
        'HTTP lifecycle hook (/hook) for Container "web" in Pod "app_default(uid-2)" failed - '
        f'error: Get "http://127.0.0.1:{closed}/hook": dial tcp 127.0.0.1:{closed}: connect: '
        "connection refused"
    )
    assert ("Warning", "FailedPostStartHook", message) in events.seen


async def test_a_tcp_socket_hook_is_never_run() -> None:
    _, events, manager = _node()
    p = _pod()
    _post_start(p).tcp_socket.port.int_val = 80
    result = await manager.sync_pod(p)
    assert result.waiting["web"].reason == "PostStartHookError"
    failed = [e[2] for e in events.seen if e[1] == "FailedPostStartHook"]
    assert failed and failed[0].startswith("Cannot run handler: invalid handler")


async def test_a_failing_pre_stop_is_an_event_and_the_stop_goes_on() -> None:
    runtime, events, manager = _node()
    p = _pod()
    p.spec.containers[0].lifecycle.pre_stop.exec.command.append("missing-binary")
    await manager.sync_pod(p)
    await manager.kill_pod(p, await runtime.list_pod_sandboxes(pod_uid="uid-app"), grace=5)
    failed = [e[2] for e in events.seen if e[1] == "FailedPreStopHook"]
    assert len(failed) == 1
    assert failed[0].startswith(
        f'Exec lifecycle hook ([missing-binary]) for Container "web" in Pod {POD_TEXT} failed'
    )
    assert "exited with 127" in failed[0]
    assert await runtime.list_pod_sandboxes(pod_uid="uid-app") == []


async def test_a_sidecars_post_start_runs_before_the_next_init_container() -> None:
    runtime, _, manager = _node()
    p = _pod()
    proxy = p.spec.init_containers.add(name="proxy", image="busybox:1.36", restart_policy="Always")
    proxy.lifecycle.post_start.exec.command.extend(["echo", "ready"])
    await manager.sync_pod(p)
    await manager.sync_pod(p)
    order = [
        c[0] if c[0] != "create_container" else c[1]
        for c in runtime.calls
        if c[0] in ("create_container", "exec_sync")
    ]
    assert order == ["proxy", "exec_sync", "web"]
