"""Leader election on a real Lease in a real API server (SQLite, unix socket, the admin).

The compare-and-swap that makes the election safe is the API server's own:
two locks that read the same resourceVersion cannot both update it. Then two
electors with short timings (lease 2 s, renew deadline 1 s, retry 0.3 s)
elect one leader, and the other takes over when it dies, counting the
transition in the Lease.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from apimachinery import errors
from apimachinery.client import Client
from apimachinery.leaderelection import LeaderElectionConfig, LeaderElector
from apimachinery.resourcelock import LeaderElectionRecord, LeaseLock, micros
from protos import coordination_pb2


def record(holder: str, transitions: int = 0) -> LeaderElectionRecord:
    now = micros(time.time())
    return LeaderElectionRecord(holder, 15, now, now, transitions)


async def test_two_locks_that_read_the_same_version_cannot_both_write(client: Client) -> None:
    first = LeaseLock(client, "kube-system", "kube-scheduler")
    await first.create(record("a"))
    with pytest.raises(errors.AlreadyExists):
        await LeaseLock(client, "kube-system", "kube-scheduler").create(record("b"))

    mine, theirs = LeaseLock(client, "kube-system", "kube-scheduler"), first
    assert (await mine.get()).holder_identity == "a"
    assert (await theirs.get()).holder_identity == "a"
    await mine.update(record("b", 1))
    with pytest.raises(errors.Conflict):
        await theirs.update(record("c", 1))
    lease = await client.get(coordination_pb2.Lease, "kube-scheduler", "kube-system")
    assert lease.spec.holder_identity == "b" and lease.spec.lease_transitions == 1
    assert lease.spec.lease_duration_seconds == 15
    assert (await theirs.get()) == (await mine.get())  # times round-trip to the microsecond


async def wait_until(check: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(check) and check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not true within {timeout}s")


async def test_the_survivor_takes_over_a_dead_leaders_lease(client: Client) -> None:
    leading: dict[str, float] = {}

    def elector(name: str) -> LeaderElector:
        config = LeaderElectionConfig(
            "kube-controller-manager",
            identity=name,
            lease_duration=2.0,
            renew_deadline=1.0,
            retry_period=0.3,
            release_on_cancel=False,
        )
        return LeaderElector(config, LeaseLock(client, "kube-system", config.resource_name))

    def lead(name: str) -> asyncio.Task[None]:
        async def loops() -> None:
            leading[name] = time.monotonic()
            await asyncio.Event().wait()

        return asyncio.ensure_future(electors[name].run(loops))

    electors = {"a": elector("a"), "b": elector("b")}
    a = lead("a")
    await wait_until(lambda: "a" in leading, 5)
    b = lead("b")
    try:
        await asyncio.sleep(2.5)  # longer than the lease: a renews, so b must not lead
        assert list(leading) == ["a"] and electors["b"].leader == "a"
        a.cancel()  # as a kill: nothing released
        await asyncio.gather(a, return_exceptions=True)
        died = time.monotonic()
        await wait_until(lambda: "b" in leading, 6)
        assert leading["b"] - died >= 1.0  # it waited the lease out (2 s from its last look)
        lease = await client.get(coordination_pb2.Lease, "kube-controller-manager", "kube-system")
        assert lease.spec.holder_identity == "b"
        assert lease.spec.lease_transitions == 1
        assert lease.spec.lease_duration_seconds == 2
    finally:
        b.cancel()
        await asyncio.gather(b, return_exceptions=True)
    lease = await client.get(coordination_pb2.Lease, "kube-controller-manager", "kube-system")
    assert lease.spec.holder_identity == "b"  # release_on_cancel=False: b did not release
