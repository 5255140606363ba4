"""The rolling update against a real API server, watched pod event by pod event.

10 replicas, maxSurge 3, maxUnavailable 2, nginx:latest -> nginx:1.25: after
every pod event there are at most 13 non-terminated pods and at least 8
available ones, and the rollout ends with 10 pods on nginx:1.25.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from apimachinery.client import Client
from tests.unit.controllers.workloads import (
    Manager,
    PodCensus,
    PodRunner,
    api_server,
    deployment,
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
async def cluster(client: Client) -> AsyncIterator[tuple[Client, Manager, PodCensus]]:
    runner = PodRunner(client)
    census = PodCensus(client)
    manager = Manager(client.server)
    runner.start()
    census.start()
    manager.start()
    try:
        yield client, manager, census
    finally:
        await manager.stop()
        await census.stop()
        await runner.stop()


async def _rolled_out_from_scratch(client: Client, census: PodCensus, name: str) -> None:
    await client.create(deployment(name, 10, "nginx:latest", max_surge=3, max_unavailable=2))
    await wait_for(lambda: rollout_done(client, name, "nginx:latest"), what="initial rollout")
    await wait_for(_quiet(census, 10), what="census sees 10 ready pods")


def _quiet(census: PodCensus, count: int):  # type: ignore[no-untyped-def]
    async def check() -> bool:
        return len(census.active()) == count and len(census.available()) == count

    return check


async def test_rolling_update_keeps_surge_and_availability_bounds(
    cluster: tuple[Client, Manager, PodCensus],
) -> None:
    client, _, census = cluster
    await _rolled_out_from_scratch(client, census, "web-app")
    census.checking = True
    census.max_active, census.min_available = 10, 10
    events_before = census.events
    await set_image(client, "web-app", "nginx:1.25")
    await wait_for(lambda: rollout_done(client, "web-app", "nginx:1.25"), what="rollout")
    await wait_for(_quiet(census, 10), what="census sees 10 ready pods")
    census.checking = False
    assert census.events - events_before > 30  # every pod was replaced, event by event
    assert census.max_active <= 13, census.max_active
    assert census.min_available >= 8, census.min_available
    assert census.max_active > 10  # the surge was used
    assert len(census.images_seen["nginx:1.25"]) == 10  # no pod created twice
    images = {p.spec.containers[0].image for p in census.active()}
    assert images == {"nginx:1.25"}
    rss, _ = await client.list("replicasets", "default")
    by_image = {rs.spec.template.spec.containers[0].image: rs for rs in rss}
    assert by_image["nginx:latest"].spec.replicas == 0
    assert by_image["nginx:1.25"].spec.replicas == 10
    assert by_image["nginx:1.25"].metadata.annotations["deployment.kubernetes.io/revision"] == "2"
    d = await client.get("deployments", "web-app")
    assert d.metadata.annotations["deployment.kubernetes.io/revision"] == "2"
    conditions = {c.type: (c.status, c.reason) for c in d.status.conditions}
    assert conditions["Available"] == ("True", "MinimumReplicasAvailable")
    assert conditions["Progressing"] == ("True", "NewReplicaSetAvailable")


async def test_restarting_the_controller_manager_mid_rollout_creates_no_extra_replica(
    cluster: tuple[Client, Manager, PodCensus],
) -> None:
    client, manager, census = cluster
    await _rolled_out_from_scratch(client, census, "web-app")
    census.checking = True
    census.max_active, census.min_available = 10, 10
    await set_image(client, "web-app", "nginx:1.25")

    async def some_new_pods() -> bool:
        return len(census.images_seen.get("nginx:1.25", ())) >= 4

    await wait_for(some_new_pods, what="the rollout to be under way")
    await manager.stop()  # killed mid-rollout
    await asyncio.sleep(0.3)
    assert not await rollout_done(client, "web-app", "nginx:1.25")
    manager.start()
    await wait_for(lambda: rollout_done(client, "web-app", "nginx:1.25"), what="rollout")
    await wait_for(_quiet(census, 10), what="census sees 10 ready pods")
    assert len(census.images_seen["nginx:1.25"]) == 10  # exactly one pod per new replica
    assert census.max_active <= 13
    assert census.min_available >= 8
