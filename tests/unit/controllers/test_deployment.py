"""Deployment controller behaviour against a real API server (see workloads.py)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from apimachinery import errors
from apimachinery.client import Client
from controllers.controller_utils import is_pod_active
from controllers.deployment import history
from tests.unit.controllers.workloads import (
    Manager,
    PodCensus,
    PodRunner,
    api_server,
    deployment,
    mutate,
    rollout_done,
    set_image,
    wait_for,
)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[Client]:
    async with api_server(tmp_path) as c:
        yield c


@pytest.fixture
async def running(client: Client) -> AsyncIterator[tuple[Client, PodRunner, PodCensus]]:
    runner = PodRunner(client)
    census = PodCensus(client)
    manager = Manager(client.server)
    runner.start()
    census.start()
    manager.start()
    try:
        yield client, runner, census
    finally:
        await manager.stop()
        await census.stop()
        await runner.stop()


async def _active_pods(client: Client, name: str) -> list[Any]:
    pods, _ = await client.list("pods", "default", label_selector=f"app={name}")
    return [p for p in pods if is_pod_active(p)]


async def _replica_sets(client: Client) -> list[Any]:
    rss, _ = await client.list("replicasets", "default")
    return sorted(rss, key=history.revision)


async def _events(client: Client, reason: str) -> list[str]:
    evs, _ = await client.list("events", "default")
    return [e.message for e in evs if e.reason == reason]


async def test_new_deployment_creates_its_replicaset_and_pods(
    running: tuple[Client, PodRunner, PodCensus],
) -> None:
    client, _, _ = running
    await client.create(deployment("web", 3))
    await wait_for(lambda: rollout_done(client, "web", "nginx:latest"))
    (rs,) = await _replica_sets(client)
    d = await client.get("deployments", "web")
    template_hash = rs.spec.template.metadata.labels["pod-template-hash"]
    assert rs.metadata.name == f"web-{template_hash}"
    assert rs.spec.selector.match_labels["pod-template-hash"] == template_hash
    assert template_hash == history.compute_hash(d.spec.template)
    (ref,) = rs.metadata.owner_references
    assert (ref.kind, ref.name, ref.uid, ref.controller) == (
        "Deployment",
        "web",
        d.metadata.uid,
        True,
    )
    for pod in await _active_pods(client, "web"):
        assert pod.metadata.name.startswith(rs.metadata.name + "-")
        assert pod.metadata.labels["pod-template-hash"] == template_hash
        assert pod.metadata.owner_references[0].uid == rs.metadata.uid
    assert d.status.observed_generation == d.metadata.generation
    assert (d.status.replicas, d.status.ready_replicas, d.status.unavailable_replicas) == (3, 3, 0)

    async def scaled_event() -> bool:
        return f"Scaled up replica set {rs.metadata.name} to 3" in await _events(
            client, "ScalingReplicaSet"
        )

    await wait_for(scaled_event, what="ScalingReplicaSet event")


def _set_replicas(d: Any, want: int) -> None:
    d.spec.replicas = want


async def test_scale_up_and_down(running: tuple[Client, PodRunner, PodCensus]) -> None:
    client, _, _ = running
    await client.create(deployment("web", 2))
    await wait_for(lambda: rollout_done(client, "web", "nginx:latest"))
    for want in (5, 1):
        await mutate(client, "web", functools.partial(_set_replicas, want=want))
        await wait_for(lambda: rollout_done(client, "web", "nginx:latest"), what=f"{want} pods")
        assert len(await _active_pods(client, "web")) == want
        (rs,) = await _replica_sets(client)
        assert rs.spec.replicas == want
        assert rs.metadata.annotations["deployment.kubernetes.io/desired-replicas"] == str(want)


async def test_recreate_never_runs_old_and_new_together(
    running: tuple[Client, PodRunner, PodCensus],
) -> None:
    client, _, census = running
    await client.create(deployment("db", 3, "postgres:15", strategy="Recreate"))
    await wait_for(lambda: rollout_done(client, "db", "postgres:15"))
    seen_mixed = False

    async def watch_mixed() -> None:
        nonlocal seen_mixed
        while True:
            images = {p.spec.containers[0].image for p in census.active()}
            seen_mixed = seen_mixed or len(images) > 1
            await asyncio.sleep(0.005)

    watcher = asyncio.ensure_future(watch_mixed())
    try:
        await set_image(client, "db", "postgres:16")
        await wait_for(lambda: rollout_done(client, "db", "postgres:16"), what="recreate")
    finally:
        watcher.cancel()
    assert not seen_mixed
    old, new = await _replica_sets(client)
    assert (old.spec.replicas, new.spec.replicas) == (0, 3)


async def test_selector_change_is_rejected(client: Client) -> None:
    await client.create(deployment("web", 1))
    d = await client.get("deployments", "web")
    d.spec.selector.match_labels["app"] = "other"
    d.spec.template.metadata.labels["app"] = "other"
    with pytest.raises(errors.Invalid) as err:
        await client.update(d)
    assert "spec.selector" in str(err.value)
    assert "field is immutable" in str(err.value)


async def test_max_surge_and_max_unavailable_both_zero_is_rejected(client: Client) -> None:
    with pytest.raises(errors.Invalid) as err:
        await client.create(deployment("web", 3, max_surge=0, max_unavailable=0))
    assert "spec.strategy.rollingUpdate.maxUnavailable" in str(err.value)
    assert "may not be 0 when `maxSurge` is 0" in str(err.value)
    with pytest.raises(errors.Invalid):
        await client.create(deployment("web", 3, max_surge="0%", max_unavailable="0%"))


async def test_rollback_restores_the_old_template(
    running: tuple[Client, PodRunner, PodCensus],
) -> None:
    client, _, _ = running
    await client.create(deployment("web", 2, "nginx:1.24"))
    await wait_for(lambda: rollout_done(client, "web", "nginx:1.24"))
    await set_image(client, "web", "nginx:1.25")
    await wait_for(lambda: rollout_done(client, "web", "nginx:1.25"))
    # what `rollout undo` does: copy revision 1's template back into the Deployment
    target = history.rollback_target(await _replica_sets(client), 0)
    assert history.revision(target) == 1
    await mutate(
        client, "web", lambda d: d.spec.template.CopyFrom(history.rollback_template(target))
    )
    await wait_for(lambda: rollout_done(client, "web", "nginx:1.24"), what="rollback")
    rss = await _replica_sets(client)
    assert len(rss) == 2  # the old set was reused, not a third one created
    current = rss[-1]
    assert current.metadata.uid == target.metadata.uid
    assert current.metadata.annotations["deployment.kubernetes.io/revision"] == "3"
    assert current.metadata.annotations["deployment.kubernetes.io/revision-history"] == "1"
    d = await client.get("deployments", "web")
    assert d.metadata.annotations["deployment.kubernetes.io/revision"] == "3"


async def test_revision_history_limit_deletes_old_empty_replicasets(
    running: tuple[Client, PodRunner, PodCensus],
) -> None:
    client, _, _ = running
    await client.create(deployment("web", 1, "nginx:1", revision_history_limit=1))
    await wait_for(lambda: rollout_done(client, "web", "nginx:1"))
    for image in ("nginx:2", "nginx:3", "nginx:4"):
        await set_image(client, "web", image)
        await wait_for(functools.partial(rollout_done, client, "web", image), what=image)

    async def two_left() -> bool:
        return len(await _replica_sets(client)) == 2

    await wait_for(two_left, what="cleanup to revisionHistoryLimit")
    rss = await _replica_sets(client)
    assert [history.revision(rs) for rs in rss] == [3, 4]
    assert [rs.spec.template.spec.containers[0].image for rs in rss] == ["nginx:3", "nginx:4"]


async def test_paused_deployment_does_not_roll(
    running: tuple[Client, PodRunner, PodCensus],
) -> None:
    client, _, _ = running
    await client.create(deployment("web", 2, "nginx:1"))
    await wait_for(lambda: rollout_done(client, "web", "nginx:1"))
    await mutate(client, "web", lambda d: setattr(d.spec, "paused", True))

    async def paused_condition() -> bool:
        cur = await client.get("deployments", "web")
        return any(c.reason == "DeploymentPaused" for c in cur.status.conditions)

    await wait_for(paused_condition, what="DeploymentPaused")
    await set_image(client, "web", "nginx:2")
    # scaling still works while paused
    await mutate(client, "web", lambda d: setattr(d.spec, "replicas", 3))

    async def three_old_pods() -> bool:
        pods = await _active_pods(client, "web")
        return len(pods) == 3 and all(p.spec.containers[0].image == "nginx:1" for p in pods)

    await wait_for(three_old_pods, what="scale while paused")
    await asyncio.sleep(0.3)
    assert len(await _replica_sets(client)) == 1  # no new ReplicaSet while paused
    assert {p.spec.containers[0].image for p in await _active_pods(client, "web")} == {"nginx:1"}
    await mutate(client, "web", lambda d: setattr(d.spec, "paused", False))
    await wait_for(lambda: rollout_done(client, "web", "nginx:2"), what="resumed rollout")


async def test_progress_deadline_exceeded(running: tuple[Client, PodRunner, PodCensus]) -> None:
    client, runner, _ = running
    await client.create(deployment("web", 1, "nginx:1", progress_deadline_seconds=1))
    await wait_for(lambda: rollout_done(client, "web", "nginx:1"))
    runner.ready = False  # the new pods never become ready
    await set_image(client, "web", "nginx:broken")

    async def timed_out() -> bool:
        d = await client.get("deployments", "web")
        return any(
            c.type == "Progressing"
            and c.status == "False"
            and c.reason == "ProgressDeadlineExceeded"
            for c in d.status.conditions
        )

    await wait_for(timed_out, timeout=10, what="ProgressDeadlineExceeded")
    # maxUnavailable 25% of 1 rounds down to 0: the old pod keeps serving
    images = [p.spec.containers[0].image for p in await _active_pods(client, "web")]
    assert "nginx:1" in images
