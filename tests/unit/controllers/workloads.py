"""Fixtures for the workload controller tests: a real API server, a pod runner, a watcher.

The scheduler and hollow kubelets are separate components; these tests need
neither. `PodRunner` plays both, minimally: it binds every new pod to a fake
node and marks it Running + Ready a few random milliseconds later (so pods
become ready in a shuffled order), and it finishes graceful deletions the
way a kubelet does (deleting the pod object with grace 0).

`PodCensus` watches pods and, after every single event, counts the pods
that are not terminated and those that are available; the rollout tests
assert on the extremes it saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import timestamp_pb2

from apimachinery import errors
from apimachinery.client import Client, retry_on_conflict
from apiserver.server import APIServer
from apiserver.storage import open_storage
from controllers.base import ControllerOptions
from controllers.controller_utils import is_pod_active, is_pod_ready
from controllers.manager import run_controller_manager
from protos import apps_pb2, core_pb2, meta_pb2

WORKLOAD_CONTROLLERS = ["replicaset", "deployment"]


@contextlib.asynccontextmanager
async def api_server(tmp_path: Path) -> AsyncIterator[Client]:
    storage = await open_storage("sqlite", str(tmp_path))
    server = APIServer(storage, f"unix:{tmp_path}/api.sock")
    await server.start()
    client = Client(server.local_address, timeout=10)
    try:
        yield client
    finally:
        await client.close()
        await server.stop(grace=0)


class Manager:
    """The controller manager as a task that a test can kill and start again."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.task: asyncio.Task[None] | None = None
        self.client: Client | None = None

    def start(self) -> None:
        self.client = Client(self.address, timeout=10)
        self.task = asyncio.ensure_future(
            run_controller_manager(
                self.client, ControllerOptions(workers=2), only=WORKLOAD_CONTROLLERS
            )
        )

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
            self.task = None
        if self.client is not None:
            await self.client.close()
            self.client = None


def _now() -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.GetCurrentTime()
    return ts


class PodRunner:
    """Bind new pods to a fake node, make them Ready, finish their deletions."""

    def __init__(self, client: Client, nodes: tuple[str, ...] = ("node-a", "node-b")) -> None:
        self.client = client
        self.nodes = nodes
        self.max_delay = 0.03
        self.ready = True  # False: pods are bound and Running but never Ready
        self._task: asyncio.Task[None] | None = None
        self._work: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        for task in [self._task, *self._work]:
            if task is not None:
                task.cancel()
        await asyncio.gather(
            *(t for t in [self._task, *self._work] if t is not None), return_exceptions=True
        )

    async def _run(self) -> None:
        async for ev in self.client.watch(core_pb2.Pod):
            pod = ev.object
            if ev.type == "DELETED":
                continue
            if pod.metadata.HasField("deletion_timestamp"):
                self._spawn(self._finish_deletion(pod))
            elif not pod.spec.node_name:
                self._spawn(self._bind_and_run(pod))

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._work.add(task)
        task.add_done_callback(self._work.discard)

    async def _bind_and_run(self, pod: core_pb2.Pod) -> None:
        await asyncio.sleep(random.uniform(0, self.max_delay))
        node = random.choice(self.nodes)
        try:
            await self.client.bind(
                pod.metadata.name, node, pod.metadata.namespace, uid=pod.metadata.uid
            )
            await asyncio.sleep(random.uniform(0, self.max_delay))
            current = await self.client.get(core_pb2.Pod, pod.metadata.name, pod.metadata.namespace)
            if current.metadata.HasField("deletion_timestamp"):
                return
            current.status.phase = "Running"
            current.status.start_time.CopyFrom(_now())
            if self.ready:
                current.status.conditions.append(
                    core_pb2.PodCondition(type="Ready", status="True", last_transition_time=_now())
                )
            await self.client.update_status(current)
        except (errors.Conflict, errors.NotFound):
            return

    async def _finish_deletion(self, pod: core_pb2.Pod) -> None:
        await asyncio.sleep(random.uniform(0, self.max_delay))
        with contextlib.suppress(errors.NotFound, errors.Conflict):
            await self.client.delete(
                core_pb2.Pod, pod.metadata.name, pod.metadata.namespace, grace_period_seconds=0
            )


@dataclass
class PodCensus:
    """Watches pods; after every event records how many are active and available."""

    client: Client
    pods: dict[str, core_pb2.Pod] = field(default_factory=dict)
    max_active: int = 0
    min_available: int = 10**9
    checking: bool = False  # extremes are recorded only while True
    images_seen: dict[str, set[str]] = field(default_factory=dict)  # image -> pod uids
    events: int = 0
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def active(self) -> list[core_pb2.Pod]:
        return [p for p in self.pods.values() if is_pod_active(p)]

    def available(self) -> list[core_pb2.Pod]:
        return [p for p in self.active() if is_pod_ready(p)]

    async def _run(self) -> None:
        async for ev in self.client.watch(core_pb2.Pod):
            pod = ev.object
            self.events += 1
            if ev.type == "DELETED":
                self.pods.pop(pod.metadata.uid, None)
            else:
                self.pods[pod.metadata.uid] = pod
                image = pod.spec.containers[0].image
                self.images_seen.setdefault(image, set()).add(pod.metadata.uid)
            if self.checking:
                self.max_active = max(self.max_active, len(self.active()))
                self.min_available = min(self.min_available, len(self.available()))


async def wait_for(
    check: Callable[[], Awaitable[bool]], timeout: float = 15.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def deployment(
    name: str,
    replicas: int,
    image: str = "nginx:latest",
    *,
    strategy: str = "RollingUpdate",
    max_surge: int | str | None = None,
    max_unavailable: int | str | None = None,
    revision_history_limit: int | None = None,
    progress_deadline_seconds: int | None = None,
    paused: bool = False,
) -> apps_pb2.Deployment:
    d = apps_pb2.Deployment(api_version="apps/v1", kind="Deployment")
    d.metadata.name = name
    d.metadata.namespace = "default"
    d.spec.replicas = replicas
    d.spec.selector.match_labels["app"] = name
    d.spec.template.metadata.labels["app"] = name
    d.spec.template.spec.containers.add(name=name, image=image)
    d.spec.strategy.type = strategy
    d.spec.paused = paused
    if max_surge is not None:
        d.spec.strategy.rolling_update.max_surge.CopyFrom(_int_or_string(max_surge))
    if max_unavailable is not None:
        d.spec.strategy.rolling_update.max_unavailable.CopyFrom(_int_or_string(max_unavailable))
    if revision_history_limit is not None:
        d.spec.revision_history_limit = revision_history_limit
    if progress_deadline_seconds is not None:
        d.spec.progress_deadline_seconds = progress_deadline_seconds
    return d


def _int_or_string(value: int | str) -> meta_pb2.IntOrString:
    if isinstance(value, int):
        return meta_pb2.IntOrString(int_val=value)
    return meta_pb2.IntOrString(str_val=value)


async def mutate(client: Client, name: str, fn: Callable[[apps_pb2.Deployment], None]) -> None:
    """Get the Deployment, change it with `fn`, update; retried on Conflict."""

    async def change() -> None:
        d = await client.get(apps_pb2.Deployment, name)
        fn(d)
        await client.update(d)

    await retry_on_conflict(change)


async def set_image(client: Client, name: str, image: str) -> None:
    def change(d: apps_pb2.Deployment) -> None:
        d.spec.template.spec.containers[0].image = image

    await mutate(client, name, change)


async def rollout_done(client: Client, name: str, image: str) -> bool:
    """Like `rollout status` success, plus: every active pod runs `image`."""
    d = await client.get(apps_pb2.Deployment, name)
    s = d.status
    want = d.spec.replicas
    if d.metadata.generation > s.observed_generation:
        return False
    if not (s.updated_replicas == want and s.replicas == want and s.available_replicas == want):
        return False
    pods, _ = await client.list(core_pb2.Pod, "default", label_selector=f"app={name}")
    active = [p for p in pods if is_pod_active(p)]
    return len(active) == want and all(p.spec.containers[0].image == image for p in active)
