"""The scheduler against a real API server on loopback (SQLite in a temporary directory)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from apimachinery.client import Client
from apimachinery.factory import SharedInformerFactory
from apiserver.server import APIServer
from apiserver.storage import open_storage
from cli import describers
from cli.describe import Related
from scheduler import record
from scheduler.explain import explain
from scheduler.scheduler import Scheduler

from .objects import node, pod

UNSCHEDULABLE_MESSAGE = "0/3 nodes are available: 1 node(s) were unschedulable, 2 Insufficient cpu."


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[Client]:
    storage = await open_storage("sqlite", str(tmp_path))
    server = APIServer(storage, f"unix:{tmp_path}/api.sock")
    await server.start()
    c = Client(server.local_address, timeout=10)
    try:
        yield c
    finally:
        await c.close()
        await server.stop(grace=0)


class Running:
    """A Scheduler with its own informers, running as a task."""

    def __init__(self, client: Client, *, seed: int | None = None) -> None:
        self.factory = SharedInformerFactory(client)
        self.scheduler = Scheduler(
            client, self.factory, seed=seed, initial_backoff=0.1, max_backoff=0.5
        )
        self.task = asyncio.ensure_future(self.scheduler.run())

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.factory.stop()


@pytest.fixture
async def start(client: Client) -> AsyncIterator[Callable[..., Running]]:
    running: list[Running] = []

    def make(seed: int | None = None) -> Running:
        r = Running(client, seed=seed)
        running.append(r)
        return r

    try:
        yield make
    finally:
        for r in running:
            await r.stop()


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 10.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def bound_nodes(client: Client, names: list[str], namespace: str = "default") -> Any:
    pods = [await client.get("pods", n, namespace) for n in names]
    return pods if all(p.spec.node_name for p in pods) else None


async def test_seed_replicas_land_on_different_nodes(
    client: Client, start: Callable[..., Running]
) -> None:
    for n in ("node1", "node2"):
        await client.create(node(n))
    for seed in range(10):
        names = [f"web-{seed}-{i}" for i in range(2)]
        for name in names:
            await client.create(pod(name, owner=f"web-rs-{seed}", labels={"app": "web"}))
        running = start(seed=seed)
        pods = await eventually(lambda names=names: bound_nodes(client, names))  # type: ignore[misc]
        assert {p.spec.node_name for p in pods} == {"node1", "node2"}, f"seed {seed}"
        for p in pods:
            rec = json.loads(p.metadata.annotations[record.ANNOTATION])
            assert rec["chosen"] == p.spec.node_name
            assert rec["nodes"]["feasible"] == 2
            assert any(c.type == "PodScheduled" and c.status == "True" for c in p.status.conditions)
        await running.stop()
        for name in names:
            await client.delete("pods", name, grace_period_seconds=0)


async def _events(client: Client, name: str, reason: str) -> list[Any]:
    events, _ = await client.list("events", "default")
    return [e for e in events if e.involved_object.name == name and e.reason == reason]


async def test_pod_that_fits_nowhere_stays_pending_then_fits_a_new_node(
    client: Client, start: Callable[..., Running]
) -> None:
    await client.create(node("node1", unschedulable=True))
    await client.create(node("node2", cpu="1"))
    await client.create(node("node3", cpu="1"))
    await client.create(pod("big", cpu="2"))
    start(seed=1)
    events = await eventually(lambda: _events(client, "big", "FailedScheduling"))
    assert events[0].message == UNSCHEDULABLE_MESSAGE
    assert events[0].type == "Warning"

    async def condition() -> Any:
        p = await client.get("pods", "big")
        return [c for c in p.status.conditions if c.type == "PodScheduled" and c.status == "False"]

    (cond,) = await eventually(condition)
    assert (cond.reason, cond.message) == ("Unschedulable", UNSCHEDULABLE_MESSAGE)
    await asyncio.sleep(0.5)  # retries (if any) do not place it
    assert not (await client.get("pods", "big")).spec.node_name

    await client.create(node("node4", cpu="4"))  # a cluster event: the pod is retried
    (p,) = await eventually(lambda: bound_nodes(client, ["big"]))
    assert p.spec.node_name == "node4"
    scheduled = await eventually(lambda: _events(client, "big", "Scheduled"))
    assert scheduled[0].message == "Successfully assigned default/big to node4"
    lines = record.describe_lines(p)
    assert lines[0] == "chosen node4: 1 of 4 nodes feasible, 4 evaluated"
    assert "node1: rejected by NodeUnschedulable: node(s) were unschedulable" in lines
    assert "node2: rejected by NodeResourcesFit: Insufficient cpu" in lines
    page = describers.describe_pod(p, Related(), now=0.0)
    assert "Scheduling:" in page and "node4: not scored <- chosen" in page
    assert record.ANNOTATION not in page


async def test_not_ready_tainted_node_is_avoided(
    client: Client, start: Callable[..., Running]
) -> None:
    await client.create(
        node("sick", ready=False, taints=[("node.kubernetes.io/not-ready", "", "NoSchedule")])
    )
    await client.create(node("well"))
    for i in range(3):
        await client.create(pod(f"p{i}"))
    start(seed=3)
    pods = await eventually(lambda: bound_nodes(client, ["p0", "p1", "p2"]))
    assert {p.spec.node_name for p in pods} == {"well"}


async def test_other_schedulers_pods_are_left_alone(
    client: Client, start: Callable[..., Running]
) -> None:
    await client.create(node("node1"))
    mine = pod("mine")
    theirs = pod("theirs")
    theirs.spec.scheduler_name = "other-scheduler"
    await client.create(theirs)
    await client.create(mine)
    start()
    await eventually(lambda: bound_nodes(client, ["mine"]))
    assert not (await client.get("pods", "theirs")).spec.node_name


async def test_explain_on_todays_state(client: Client, start: Callable[..., Running]) -> None:
    await client.create(node("node1"))
    await client.create(node("node2"))
    await client.create(pod("web-1", owner="rs", labels={"app": "web"}))
    start(seed=5)
    (p,) = await eventually(lambda: bound_nodes(client, ["web-1"]))
    other = "node2" if p.spec.node_name == "node1" else "node1"
    cordoned = await client.get("nodes", other)
    cordoned.spec.unschedulable = True
    await client.update(cordoned)
    nodes, _ = await client.list("nodes")
    pods, _ = await client.list("pods")
    lines = explain(p, nodes, pods, other)
    assert lines[0] == f"pod default/web-1 (bound to {p.spec.node_name}), on 2 nodes now"
    assert lines[1] == f"{other}: rejected"
    assert (
        "  Filter NodeUnschedulable: rejected (UnschedulableAndUnresolvable): "
        "node(s) were unschedulable"
    ) in lines
    assert "  Filter NodeResourcesFit: passed" in lines
    everywhere = explain(p, nodes, pods)
    assert f"{p.spec.node_name}: feasible, total" in "\n".join(everywhere)
    assert explain(p, nodes, pods, "nope")[-1] == 'node "nope" not found'
