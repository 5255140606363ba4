"""ReplicaSet controller: pure pieces (slow start, ranking, expectations, status) and live syncs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from apimachinery import errors
from apimachinery.client import Client
from controllers.controller_utils import (
    ControllerExpectations,
    is_pod_active,
    is_pod_available,
    pods_to_delete,
)
from controllers.replicaset import calculate_status, slow_start_batch
from protos import apps_pb2, core_pb2
from tests.unit.controllers.workloads import Manager, PodRunner, api_server, wait_for

pytestmark = pytest.mark.timeout(60)


# ------------------------------------------------------------------ pure pieces


async def test_slow_start_batches_double_and_stop_at_first_failure() -> None:
    calls: list[int] = []

    async def ok() -> None:
        calls.append(1)

    assert await slow_start_batch(20, 1, ok) == (20, None)
    assert len(calls) == 20
    attempts = 0

    async def failing() -> None:
        nonlocal attempts
        attempts += 1
        if attempts > 3:
            raise errors.Forbidden("quota exceeded")

    successes, err = await slow_start_batch(20, 1, failing)
    # batches 1, 2 succeed; the batch of 4 has failures and stops the run
    assert (successes, attempts) == (3, 7)
    assert isinstance(err, errors.Forbidden)


def _pod(
    name: str,
    *,
    node: str = "",
    phase: str = "Running",
    ready: bool = True,
    created: int = 0,
    ready_at: int = 0,
    restarts: int = 0,
) -> core_pb2.Pod:
    pod = core_pb2.Pod()
    pod.metadata.name = name
    pod.metadata.creation_timestamp.seconds = created
    pod.spec.node_name = node
    pod.status.phase = phase
    if ready:
        cond = pod.status.conditions.add(type="Ready", status="True")
        cond.last_transition_time.seconds = ready_at
    pod.status.container_statuses.add(name="c", restart_count=restarts)
    return pod


def test_pods_to_delete_prefers_the_cheapest_pods() -> None:
    pods = [
        _pod("running-old", node="n1", created=1, ready_at=2),
        _pod("unscheduled", phase="Pending", ready=False, created=5),
        _pod("pending", node="n1", phase="Pending", ready=False, created=5),
        _pod("not-ready", node="n1", ready=False, created=5),
        _pod("running-new", node="n1", created=3, ready_at=4),
        _pod("crowded", node="n2", created=1, ready_at=2),
        _pod("restarts", node="n1", created=1, ready_at=2, restarts=5),
    ]
    related = [
        *pods,
        _pod("sibling-1", node="n2"),
        _pod("sibling-2", node="n2"),
        _pod("sibling-3", node="n2"),
        _pod("sibling-4", node="n2"),
        _pod("sibling-5", node="n2"),
    ]
    order = [p.metadata.name for p in pods_to_delete(pods, related, len(pods))]
    assert order == [
        "unscheduled",  # not even scheduled
        "pending",  # scheduled, not running
        "not-ready",  # running, not ready
        "crowded",  # its node holds 6 related pods, n1 only 5
        "running-new",  # became ready most recently
        "restarts",  # more restarts
        "running-old",
    ]
    assert [p.metadata.name for p in pods_to_delete(pods, related, 2)] == order[:2]


def test_expectations_block_until_observed() -> None:
    exp = ControllerExpectations()
    assert exp.satisfied("ns/rs")  # nothing expected: trust the cache (e.g. after a restart)
    exp.expect_creations("ns/rs", 2)
    assert not exp.satisfied("ns/rs")
    exp.creation_observed("ns/rs")
    assert not exp.satisfied("ns/rs")
    exp.creation_observed("ns/rs")
    assert exp.satisfied("ns/rs")
    exp.expect_deletions("ns/rs", ["ns/a", "ns/b"])
    exp.deletion_observed("ns/rs", "ns/a")
    exp.deletion_observed("ns/rs", "ns/a")  # seen terminating, then gone: counts once
    assert exp.pending("ns/rs") == (0, 1)
    exp.deletion_observed("ns/rs", "ns/b")
    assert exp.satisfied("ns/rs")
    stale = ControllerExpectations(ttl=0.0)
    stale.expect_creations("ns/rs", 5)
    assert stale.satisfied("ns/rs")  # a lost event must not wedge the controller


def test_status_counts_ready_available_and_labels() -> None:
    rs = apps_pb2.ReplicaSet()
    rs.metadata.generation = 4
    rs.spec.min_ready_seconds = 10
    rs.spec.template.metadata.labels["app"] = "web"
    a = _pod("a", ready_at=100)
    a.metadata.labels["app"] = "web"
    b = _pod("b", ready_at=195)
    b.metadata.labels["app"] = "web"
    c = _pod("c", ready=False)
    status = calculate_status(rs, [a, b, c], now=200.0)
    assert (status.replicas, status.fully_labeled_replicas) == (3, 2)
    assert (status.ready_replicas, status.available_replicas) == (2, 1)
    assert status.observed_generation == 4
    assert is_pod_available(b, 10, 206.0)
    terminating = _pod("d")
    terminating.metadata.deletion_timestamp.seconds = 1
    assert not is_pod_active(terminating)
    assert not is_pod_active(_pod("e", phase="Succeeded"))


# ------------------------------------------------------------------ live


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[Client]:
    async with api_server(tmp_path) as c:
        runner = PodRunner(c)
        manager = Manager(c.server)
        runner.start()
        manager.start()
        try:
            yield c
        finally:
            await manager.stop()
            await runner.stop()


def _replica_set(name: str, replicas: int) -> apps_pb2.ReplicaSet:
    rs = apps_pb2.ReplicaSet(api_version="apps/v1", kind="ReplicaSet")
    rs.metadata.name = name
    rs.metadata.namespace = "default"
    rs.spec.replicas = replicas
    rs.spec.selector.match_labels["app"] = name
    rs.spec.template.metadata.labels["app"] = name
    rs.spec.template.spec.containers.add(name="c", image="nginx")
    return rs


async def _pods(client: Client, app: str) -> list[Any]:
    pods, _ = await client.list("pods", "default", label_selector=f"app={app}")
    return [p for p in pods if is_pod_active(p)]


async def _status_is(client: Client, name: str, replicas: int) -> bool:
    rs = await client.get("replicasets", name)
    s = rs.status
    return (s.replicas, s.ready_replicas, s.available_replicas, s.observed_generation) == (
        replicas,
        replicas,
        replicas,
        rs.metadata.generation,
    )


async def test_replicaset_creates_scales_and_reports(client: Client) -> None:
    await client.create(_replica_set("web", 5))
    await wait_for(lambda: _status_is(client, "web", 5), what="5 ready pods")
    pods = await _pods(client, "web")
    assert len(pods) == 5
    rs = await client.get("replicasets", "web")
    for pod in pods:
        assert pod.metadata.generate_name == "web-"
        (ref,) = pod.metadata.owner_references
        assert (ref.kind, ref.uid, ref.controller, ref.block_owner_deletion) == (
            "ReplicaSet",
            rs.metadata.uid,
            True,
            True,
        )
    rs.spec.replicas = 2
    await client.update(rs)
    await wait_for(lambda: _status_is(client, "web", 2), what="scale down to 2")
    assert len(await _pods(client, "web")) == 2

    async def events() -> bool:
        evs, _ = await client.list("events", "default")
        reasons = [e.reason for e in evs if e.involved_object.name == "web"]
        return reasons.count("SuccessfulCreate") == 5 and reasons.count("SuccessfulDelete") == 3

    await wait_for(events, what="SuccessfulCreate x5, SuccessfulDelete x3")


async def test_replicaset_replaces_a_deleted_pod_and_adopts_orphans(client: Client) -> None:
    await client.create(_replica_set("web", 3))
    await wait_for(lambda: _status_is(client, "web", 3), what="3 ready pods")
    victim = (await _pods(client, "web"))[0]
    await client.delete("pods", victim.metadata.name, grace_period_seconds=0)

    async def replaced() -> bool:
        names = {p.metadata.name for p in await _pods(client, "web")}
        return victim.metadata.name not in names and len(names) == 3

    await wait_for(replaced, what="a replacement pod")
    await wait_for(lambda: _status_is(client, "web", 3), what="3 ready pods again")

    # a hand-made pod with matching labels is adopted and counted: one pod too many -> deleted
    orphan = core_pb2.Pod(api_version="v1", kind="Pod")
    orphan.metadata.name = "handmade"
    orphan.metadata.namespace = "default"
    orphan.metadata.labels["app"] = "web"
    orphan.spec.containers.add(name="c", image="nginx")
    await client.create(orphan)

    async def settled() -> bool:
        pods = await _pods(client, "web")
        owned = all(p.metadata.owner_references for p in pods)
        return len(pods) == 3 and owned

    await wait_for(settled, what="adoption and scale back to 3")
    await asyncio.sleep(0.2)
    assert len(await _pods(client, "web")) == 3
