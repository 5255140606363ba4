"""A wall-clock jump moves no deadline: node health and taint eviction use the monotonic clock.

The controller is driven by hand with a FakeClock (apimachinery/clock.py):
`step` is time passing, `jump` is someone setting the wall clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

from apimachinery.client import Client
from apimachinery.clock import FakeClock
from apimachinery.factory import SharedInformerFactory
from controllers.base import ControllerContext, ControllerOptions
from controllers.nodelifecycle import NodeLifecycleController
from controllers.taint_eviction import TaintEvictionController, eviction_deadline
from protos import core_pb2
from tests.unit.controllers.infra import api_server, lease, node, pod

GRACE = 40.0
UNREACHABLE = "node.kubernetes.io/unreachable"


@contextlib.asynccontextmanager
async def lifecycle(client: Client) -> AsyncIterator[tuple[NodeLifecycleController, FakeClock]]:
    """The controller with a fake clock that starts at the real wall time, informers synced."""
    factory = SharedInformerFactory(client)
    options = ControllerOptions(node_monitor_grace_period=GRACE)
    ctl = NodeLifecycleController(ControllerContext(client, factory, options))
    clock = FakeClock(wall=time.time())
    ctl.clock = ctl.eviction.clock = clock
    factory.start()
    await factory.wait_for_sync()
    try:
        yield ctl, clock
    finally:
        await factory.stop()


async def synced(ctl: NodeLifecycleController, client: Client, name: str) -> None:
    """Wait until the informer has the node as the server has it."""
    want = (await client.get(core_pb2.Node, name)).metadata.resource_version
    for _ in range(200):
        got = ctl.nodes.store.get(name)
        if got is not None and got.metadata.resource_version == want:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"informer never caught up with node {name}")


async def test_wall_clock_jump_marks_no_node_unhealthy(tmp_path: Path) -> None:
    async with api_server(tmp_path) as client:
        for name in ("node1", "node2"):
            await client.create(node(name))
            await client.create(lease(name))
        async with lifecycle(client) as (ctl, clock):
            for name in ("node1", "node2"):
                await synced(ctl, client, name)
            await ctl.monitor_node_health()
            clock.jump(300)  # `date -s "+5 minutes"`: no time has passed
            await ctl.monitor_node_health()
            for name in ("node1", "node2"):
                n = await client.get(core_pb2.Node, name)
                assert [c.status for c in n.status.conditions if c.type == "Ready"] == ["True"]
            clock.step(GRACE + 1)  # now time really passes with no renewal: caught as before
            await ctl.monitor_node_health()
            n = await client.get(core_pb2.Node, "node1")
            assert [c.status for c in n.status.conditions if c.type == "Ready"] == ["Unknown"]


def test_eviction_deadline_is_fixed_when_the_taint_is_first_seen() -> None:
    clock = FakeClock(wall=10_000.0, mono=500.0)
    ctl = TaintEvictionController.__new__(TaintEvictionController)
    ctl.clock = clock
    taint = core_pb2.Taint(key=UNREACHABLE, effect="NoExecute")
    taint.time_added.FromSeconds(9_990)  # stamped 10 s ago on the wall clock
    p = pod("p")
    p.spec.tolerations.add(
        key=UNREACHABLE, operator="Exists", effect="NoExecute", toleration_seconds=30
    )
    seen: dict[str, float] = {}
    first = eviction_deadline(p, [taint], lambda t: ctl._start_of(t, seen))
    assert first == 500.0 - 10 + 30  # monotonic: 20 s from now
    clock.jump(3600)  # an hour forward on the wall: the deadline does not move
    assert eviction_deadline(p, [taint], lambda t: ctl._start_of(t, seen)) == first
    clock.step(5)
    assert eviction_deadline(p, [taint], lambda t: ctl._start_of(t, seen)) == first
