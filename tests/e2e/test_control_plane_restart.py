"""kill -9 of the controller-manager and the scheduler mid-rollout: no extra replica, no lost step.

The scheduler and controllers run as their own processes against an API server
and three hollow kubelets. A Deployment of 10 replicas (maxSurge 3,
maxUnavailable 2) rolls from nginx:latest to nginx:1.25; once the rollout is
under way both processes are SIGKILLed, then started again. Every pod event is
watched: the bounds hold throughout (at most 13 pods, at least 8 available),
the rollout completes, and exactly 10 nginx:1.25 pods were ever created —
the restarted controllers continued from the cluster's state instead of
repeating what their predecessors had done.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from apimachinery.client import Client
from tests.e2e.hollow import HollowCluster, hollow_cluster
from tests.unit.controllers.workloads import (
    PodCensus,
    deployment,
    rollout_done,
    set_image,
    wait_for,
)

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[HollowCluster]:
    with hollow_cluster(tmp_path, nodes=3, separate_control_plane=True) as c:
        yield c


async def test_kill9_mid_rollout(cluster: HollowCluster) -> None:
    async with Client(cluster.server) as client:
        census = PodCensus(client)
        census.start()
        try:
            await client.create(
                deployment("web", 10, "nginx:latest", max_surge=3, max_unavailable=2)
            )
            await wait_for(lambda: rollout_done(client, "web", "nginx:latest"), 60, "first rollout")

            async def settled() -> bool:
                return len(census.active()) == 10 and len(census.available()) == 10

            await wait_for(settled, 30, "10 ready pods")
            census.checking = True
            census.max_active, census.min_available = 10, 10
            await set_image(client, "web", "nginx:1.25")

            async def under_way() -> bool:
                return len(census.images_seen.get("nginx:1.25", ())) >= 3

            await wait_for(under_way, 30, "the rollout to be under way")
            for part in cluster.control_plane.values():
                part.kill9()
            killed_at = len(census.images_seen["nginx:1.25"])
            assert killed_at < 10, "the kill must land mid-rollout"
            await asyncio.sleep(1.0)
            for part in cluster.control_plane.values():
                part.spawn()
            await wait_for(lambda: rollout_done(client, "web", "nginx:1.25"), 90, "rollout")
            await wait_for(settled, 30, "10 ready pods after the rollout")
            assert census.max_active <= 13, census.max_active
            assert census.min_available >= 8, census.min_available
            new_pods = census.images_seen["nginx:1.25"]
            assert len(new_pods) == 10, f"{len(new_pods)} nginx:1.25 pods were created"
        finally:
            await census.stop()
