"""Leader election on fake time: who leads, when a successor takes over, when a leader stops.

The candidates run client-go's protocol (apimachinery/leaderelection.py) on a
clock the test moves (`SteppedClock`) and on an in-memory Lease whose writes
are compare-and-swaps on a resourceVersion, as the API server's are
(`MemoryLock`; the real Lease over a real API server is
test_leaderelection_api.py). Every timing below is the defaults': lease 15 s,
renew deadline 10 s, retry 2 s.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random
from dataclasses import dataclass, field

import pytest

from apimachinery import errors
from apimachinery.clock import FakeClock
from apimachinery.leaderelection import (
    ElectionClock,
    LeaderElectionConfig,
    LeaderElectionLost,
    LeaderElector,
)
from apimachinery.resourcelock import LeaderElectionRecord, micros

RETRY_MAX = 2.0 * 2.2  # an acquire retry waits retryPeriod * (1 + up to 1.2)


class SteppedClock(FakeClock, ElectionClock):
    """Fake clocks whose sleepers wake, in deadline order, as the test advances time."""

    def __init__(self) -> None:
        super().__init__()
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    async def sleep(self, seconds: float) -> None:
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(
            self._sleepers, (self.monotonic() + max(seconds, 0.0), next(self._seq), future)
        )
        await future

    async def advance(self, seconds: float) -> None:
        """Move time forward, waking each sleeper at its deadline and letting it run."""
        target = self.monotonic() + seconds
        await settle()
        while self._sleepers:
            due, _, future = self._sleepers[0]
            if due > target:
                break
            heapq.heappop(self._sleepers)
            if future.done():  # cancelled
                continue
            if due > self.monotonic():
                self.step(due - self.monotonic())
            future.set_result(None)
            await settle()
        self.step(target - self.monotonic())
        await settle()


async def settle() -> None:
    for _ in range(50):
        await asyncio.sleep(0)


@dataclass
class LeaseStore:
    """One Lease: its record and resourceVersion, changed only by compare-and-swap."""

    clock: SteppedClock
    record: LeaderElectionRecord | None = None
    version: int = 0
    history: list[tuple[float, LeaderElectionRecord]] = field(default_factory=list)


class MemoryLock:
    """A candidate's view of the LeaseStore, with the API's answers; `partitioned` hangs it."""

    def __init__(self, store: LeaseStore) -> None:
        self.store = store
        self.seen = 0
        self.partitioned = False

    def describe(self) -> str:
        return "kube-system/kube-scheduler"

    async def _reach(self) -> None:
        if self.partitioned:
            await asyncio.Event().wait()  # a request into a partition: no answer, ever

    async def get(self) -> LeaderElectionRecord:
        await self._reach()
        if self.store.record is None:
            raise errors.NotFound('leases.coordination.k8s.io "kube-scheduler" not found')
        self.seen = self.store.version
        return self.store.record

    async def create(self, record: LeaderElectionRecord) -> None:
        await self._reach()
        if self.store.record is not None:
            raise errors.AlreadyExists('leases.coordination.k8s.io "kube-scheduler" already exists')
        self._store(record)

    async def update(self, record: LeaderElectionRecord) -> None:
        await self._reach()
        if self.seen != self.store.version:
            raise errors.Conflict("the object has been modified; please apply your changes")
        self._store(record)

    def _store(self, record: LeaderElectionRecord) -> None:
        self.store.version += 1
        self.seen = self.store.version
        self.store.record = record
        self.store.history.append((self.store.clock.monotonic(), record))


@dataclass
class Candidate:
    elector: LeaderElector
    lock: MemoryLock
    task: asyncio.Task[None] | None = None
    started: list[float] = field(default_factory=list)
    stopped: list[float] = field(default_factory=list)

    def start(self, clock: SteppedClock) -> None:
        async def lead() -> None:
            self.started.append(clock.monotonic())
            try:
                await asyncio.Event().wait()
            finally:
                self.stopped.append(clock.monotonic())

        self.task = asyncio.ensure_future(self.elector.run(lead))

    async def kill(self) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


def candidate(
    name: str, store: LeaseStore, clock: SteppedClock, *, release: bool = True
) -> Candidate:
    config = LeaderElectionConfig("kube-scheduler", identity=name, release_on_cancel=release)
    lock = MemoryLock(store)
    return Candidate(LeaderElector(config, lock, clock=clock, rng=random.Random(name)), lock)


@pytest.fixture
def clock() -> SteppedClock:
    return SteppedClock()


@pytest.fixture
def store(clock: SteppedClock) -> LeaseStore:
    return LeaseStore(clock)


async def test_one_candidate_leads_and_renews_the_other_waits(
    clock: SteppedClock, store: LeaseStore
) -> None:
    a, b = candidate("a", store, clock), candidate("b", store, clock)
    a.start(clock)
    await clock.advance(0.5)
    b.start(clock)
    await clock.advance(60)
    try:
        assert a.elector.is_leader() and a.started == [1000.0] and not a.stopped
        assert not b.elector.is_leader() and b.elector.leader == "a" and not b.started
        assert store.record is not None and store.record.holder_identity == "a"
        assert store.record.leader_transitions == 0
        assert store.record.lease_duration_seconds == 15
        renewals = [t for t, r in store.history if r.holder_identity == "a"]
        gaps = [later - earlier for earlier, later in itertools.pairwise(renewals)]
        assert len(renewals) >= 25 and max(gaps) == pytest.approx(2.0)
        # the acquire time stays the first one's, the renew time moves on
        assert store.record.acquire_time == 1_700_000_000 * 10**6
        assert store.record.renew_time > store.record.acquire_time + 55 * 10**6
    finally:
        await a.kill()
        await b.kill()


async def test_when_the_leader_dies_the_other_takes_over_after_the_lease_duration(
    clock: SteppedClock, store: LeaseStore
) -> None:
    a = candidate("a", store, clock, release=False)  # a kill -9 releases nothing
    b = candidate("b", store, clock)
    a.start(clock)
    await clock.advance(0.1)
    b.start(clock)
    await clock.advance(20.0)
    await a.kill()
    last_renewal = store.history[-1][0]
    await clock.advance(14.0)
    assert not b.started, "b took over while a's lease could still be valid"
    await clock.advance(30.0)
    try:
        [took_over] = b.started
        assert last_renewal + 15.0 <= took_over <= last_renewal + 15.0 + 2 * RETRY_MAX
        assert store.record is not None and store.record.holder_identity == "b"
        assert store.record.leader_transitions == 1
        # acquireTime is the takeover's wall time (the fake wall clock is 1.7e9 at mono 1000)
        assert store.record.acquire_time == micros(1_700_000_000 + took_over - 1000)
    finally:
        await b.kill()


async def test_a_partitioned_leader_steps_down_before_a_new_one_starts(
    clock: SteppedClock, store: LeaseStore
) -> None:
    a, b = candidate("a", store, clock), candidate("b", store, clock)
    a.start(clock)
    await clock.advance(0.1)
    b.start(clock)
    await clock.advance(10.0)
    a.lock.partitioned = True
    last_renewal = store.history[-1][0]
    await clock.advance(40.0)
    try:
        assert a.task is not None and a.task.done()
        with pytest.raises(LeaderElectionLost):
            a.task.result()
        [a_stopped], [b_started] = a.stopped, b.started
        # a gives up at the end of its first failed round: retry + renewDeadline after
        # its last renewal; b may only start a whole lease duration after seeing it
        assert a_stopped <= last_renewal + 2.0 + 10.0
        assert b_started >= last_renewal + 15.0
        assert a_stopped < b_started
        assert store.record is not None and store.record.holder_identity == "b"
        assert store.record.leader_transitions == 1
    finally:
        await b.kill()


async def test_a_leader_that_stops_on_purpose_releases_the_lease(
    clock: SteppedClock, store: LeaseStore
) -> None:
    a, b = candidate("a", store, clock), candidate("b", store, clock)
    a.start(clock)
    await clock.advance(0.1)
    b.start(clock)
    await clock.advance(10.0)
    await a.kill()
    released_at = clock.monotonic()
    assert store.record is not None and store.record.holder_identity == ""
    assert store.record.lease_duration_seconds == 1
    await clock.advance(10.0)
    try:
        [b_started] = b.started
        assert b_started <= released_at + RETRY_MAX  # its next retry, not after 15 s
        assert store.record.holder_identity == "b" and store.record.leader_transitions == 1
    finally:
        await b.kill()


async def test_a_lease_held_by_another_is_waited_out_from_when_it_was_first_seen(
    clock: SteppedClock, store: LeaseStore
) -> None:
    """A candidate starting next to a stale Lease (its holder died long ago, and the
    renewTime is old) still waits a whole lease duration: it cannot trust wall clocks."""
    store.record = LeaderElectionRecord("gone", 15, 0, 0, leader_transitions=4)
    store.version = 1
    b = candidate("b", store, clock)
    b.start(clock)
    await clock.advance(14.0)
    assert not b.started
    await clock.advance(10.0)
    try:
        [b_started] = b.started
        assert 1015.0 <= b_started <= 1015.0 + RETRY_MAX
        assert store.record.holder_identity == "b" and store.record.leader_transitions == 5
    finally:
        await b.kill()


async def test_lead_returning_ends_the_term_and_its_error_is_raised(
    clock: SteppedClock, store: LeaseStore
) -> None:
    a = candidate("a", store, clock)

    async def crash() -> None:
        await clock.sleep(3.0)
        raise RuntimeError("the scheduler crashed")

    task = asyncio.ensure_future(a.elector.run(crash))
    await clock.advance(5.0)
    assert task.done()
    with pytest.raises(RuntimeError, match="the scheduler crashed"):
        task.result()
    assert store.record is not None and store.record.holder_identity == ""  # released


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lease_duration": 10.0}, "leaseDuration must be greater than renewDeadline"),
        ({"retry_period": 9.0}, "renewDeadline must be greater than retryPeriod\\*JitterFactor"),
        ({"retry_period": 0.0}, "retryperiod must be greater than zero"),
        ({"resource_name": ""}, "lease name"),
    ],
)
def test_bad_configurations_are_refused_as_client_go_refuses_them(
    kwargs: dict[str, object], message: str
) -> None:
    params: dict[str, object] = {"resource_name": "kube-scheduler", **kwargs}
    with pytest.raises(ValueError, match=message):
        LeaderElectionConfig(**params)  # type: ignore[arg-type]


def test_the_identity_is_hostname_underscore_uuid() -> None:
    import socket

    identity = LeaderElectionConfig("kube-scheduler").identity
    host, _, rest = identity.rpartition("_")
    assert host == socket.gethostname() and len(rest) == 36 and rest.count("-") == 4
    assert LeaderElectionConfig("kube-scheduler").identity != identity
