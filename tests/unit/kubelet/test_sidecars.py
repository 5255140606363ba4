"""Native sidecars on the fake runtime: start order, restarts, status, READY column, stop order.

As in test_init_containers.py, each step is one sync (kuberuntime_manager.
sync_pod) followed by the status the kubelet would write, kept as the pod's
status. The prober is a stand-in whose verdicts the test sets.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from apimachinery.events import EventRecorder
from cli.cells import PrintContext
from cli.pod_columns import pod_ready, pod_restarts, pod_status
from kubelet.backoff import Backoff
from kubelet.kuberuntime_manager import KubeRuntimeManager
from kubelet.runtime.fake import FakeRuntime
from kubelet.runtime.interface import Container, ContainerState
from kubelet.status import generate_pod_status
from protos import core_pb2
from tests.unit.kubelet.conftest import pod


class Events(EventRecorder):
    """Keeps the events instead of sending them (no API server here)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []

    def event(self, obj: Any, type_: str, reason: str, message: str) -> None:
        self.seen.append((type_, reason, message))


class Probes:
    """The prober's verdicts, as the test sets them (by container name)."""

    def __init__(self) -> None:
        self.not_started: set[str] = set()
        self.not_ready: set[str] = set()
        self.failed: dict[str, str] = {}

    def failed_probe(self, pod: core_pb2.Pod, container: Container) -> str:
        return self.failed.get(container.name, "")

    def is_started(self, pod: core_pb2.Pod, container: Container) -> bool:
        return container.name not in self.not_started

    def is_ready(self, pod: core_pb2.Pod, container: Container) -> bool:
        return self.is_started(pod, container) and container.name not in self.not_ready


def _pod(*init: str, sidecars: tuple[str, ...] = (), policy: str = "Always") -> core_pb2.Pod:
    """App container `web`; init containers in the order given, those in `sidecars` restartable."""
    p = pod("app", "node1", "web")
    p.metadata.uid = "uid-app"
    p.spec.restart_policy = policy
    for name in init:
        c = p.spec.init_containers.add(name=name, image="busybox:1.36")
        if name in sidecars:
            c.restart_policy = "Always"
    return p


class Node:
    def __init__(self) -> None:
        self.runtime = FakeRuntime("10.244.3.0/24")
        self.probes = Probes()
        self.events = Events()
        self.manager = KubeRuntimeManager(
            self.runtime, self.events, crash_backoff=Backoff(10, 300), probes=self.probes
        )

    async def sync(self, p: core_pb2.Pod) -> core_pb2.PodStatus:
        result = await self.manager.sync_pod(p)
        status = generate_pod_status(
            p,
            p.status,
            node_ip="10.0.0.1",
            sandbox=result.sandbox,
            containers=result.containers,
            runtime_name="fake",
            waiting=result.waiting,
            is_ready=lambda c: self.probes.is_ready(p, c),
            is_started=lambda c: self.probes.is_started(p, c),
        )
        p.status.CopyFrom(status)
        return status

    def created(self) -> list[str]:
        return [call[1] for call in self.runtime.calls if call[0] == "create_container"]

    def current(self, name: str) -> Container:
        mine = [c for c in self.runtime.containers.values() if c.name == name]
        return max(mine, key=lambda c: c.attempt)


def _condition(status: core_pb2.PodStatus, type_: str) -> core_pb2.PodCondition:
    return next(c for c in status.conditions if c.type == type_)


def _columns(p: core_pb2.Pod) -> tuple[str, str, str]:
    ctx = PrintContext(now=time.time())
    return pod_ready(p, ctx), pod_status(p), pod_restarts(p, ctx).split(" ")[0]


async def test_a_sidecar_starts_first_and_keeps_running_beside_the_app() -> None:
    node, p = Node(), _pod("proxy", "seed", sidecars=("proxy",))
    node.runtime.behave("seed", exit_code=0)

    status = await node.sync(p)
    assert node.created() == ["proxy"]
    assert status.phase == "Pending"
    assert _condition(status, "Initialized").message == (
        "containers with incomplete status: [seed]"
    )
    assert _columns(p) == ("1/2", "Init:1/2", "0")

    await node.sync(p)  # proxy started: the next init container
    assert node.created() == ["proxy", "seed"]
    status = await node.sync(p)  # seed succeeded: the app
    assert node.created() == ["proxy", "seed", "web"]
    assert status.phase == "Running"
    assert [_condition(status, t).status for t in ("Initialized", "Ready")] == ["True", "True"]
    proxy, seed = status.init_container_statuses
    assert proxy.state.HasField("running") and proxy.started and proxy.ready
    assert seed.state.terminated.reason == "Completed"
    assert _columns(p) == ("2/2", "Running", "0")

    await node.sync(p)  # nothing more to start: proxy keeps running
    assert node.created() == ["proxy", "seed", "web"]
    assert node.current("proxy").state == ContainerState.RUNNING


async def test_the_next_init_container_waits_for_the_sidecars_startup_probe() -> None:
    node, p = Node(), _pod("proxy", "seed", sidecars=("proxy",))
    node.probes.not_started.add("proxy")
    await node.sync(p)
    status = await node.sync(p)
    assert node.created() == ["proxy"]  # running, not started: seed waits
    proxy = status.init_container_statuses[0]
    assert proxy.state.HasField("running") and not proxy.started and not proxy.ready
    assert _condition(status, "Initialized").message == (
        "containers with incomplete status: [proxy seed]"
    )
    assert _columns(p)[:2] == ("0/2", "Init:0/2")
    node.probes.not_started.clear()
    await node.sync(p)
    assert node.created() == ["proxy", "seed"]


async def test_an_exited_sidecar_is_restarted_with_backoff_whatever_the_restart_policy() -> None:
    node, p = Node(), _pod("proxy", sidecars=("proxy",), policy="Never")
    await node.sync(p)
    await node.sync(p)
    web = node.current("web").id
    node.runtime.kill(node.current("proxy").id, exit_code=0)
    status = await node.sync(p)  # first restart: at once
    assert node.created() == ["proxy", "web", "proxy"]
    assert status.init_container_statuses[0].restart_count == 1
    node.runtime.kill(node.current("proxy").id, exit_code=1)
    status = await node.sync(p)  # second: after a 10 s backoff
    proxy = status.init_container_statuses[0]
    assert proxy.state.waiting.reason == "CrashLoopBackOff"
    assert proxy.last_state.terminated.exit_code == 1
    assert node.current("web").id == web and node.current("web").state == ContainerState.RUNNING
    assert status.phase == "Running"
    assert _condition(status, "Initialized").status == "True"  # initialized once is enough
    assert _condition(status, "Ready").message == "containers with unready status: [proxy]"
    assert _columns(p) == ("1/2", "Init:CrashLoopBackOff", "1")  # as kubectl shows it


async def test_a_sidecar_failing_its_liveness_probe_is_killed_and_restarted() -> None:
    node, p = Node(), _pod("proxy", sidecars=("proxy",))
    await node.sync(p)
    await node.sync(p)
    node.probes.failed["proxy"] = "liveness"
    await node.sync(p)
    node.probes.failed.clear()
    assert node.created() == ["proxy", "web", "proxy"]
    assert ("Normal", "Killing", "Init container proxy failed liveness probe") in node.events.seen


async def test_a_finished_pod_stops_its_sidecars_and_ends_succeeded() -> None:
    node, p = Node(), _pod("proxy", sidecars=("proxy",), policy="Never")
    node.runtime.behave("web", exit_code=0, exit_after=0.05)
    await node.sync(p)
    await node.sync(p)
    await asyncio.sleep(0.1)
    status = await node.sync(p)
    assert node.current("proxy").state == ContainerState.EXITED
    assert ("Normal", "Killing", "Stopping container proxy") in node.events.seen
    assert status.phase == "Succeeded"
    await node.sync(p)
    assert node.created() == ["proxy", "web"]  # and never again


async def test_pod_termination_stops_the_apps_then_the_sidecars_last_declared_first() -> None:
    node, p = Node(), _pod("logs", "proxy", sidecars=("logs", "proxy"))
    node.runtime.behave("web", term_after=0.2)  # web takes a while to stop
    for _ in range(3):
        await node.sync(p)
    assert node.created() == ["logs", "proxy", "web"]
    names = {c.id: c.name for c in node.runtime.containers.values()}
    sandboxes = await node.runtime.list_pod_sandboxes(pod_uid="uid-app")
    await node.manager.kill_pod(p, sandboxes, grace=30)
    stops = [call for call in node.runtime.calls if call[0] == "stop_container"]
    assert [names[call[1]] for call in stops[:3]] == ["web", "proxy", "logs"]
    assert stops[0][2] == 30.0 and stops[1][2] == 30.0  # under a second of waiting
