"""Leader election on a Lease: only one scheduler and one controller-manager act at a time.

Kubernetes runs a scheduler and a controller-manager on every control-plane
machine, so that losing one machine loses nothing; but two schedulers binding
the same pods, or two ReplicaSet controllers counting the same replicas,
would fight. client-go's leaderelection package settles it: the candidates
share one Lease (kube-system/kube-scheduler, kube-system/kube-controller-manager;
apimachinery/resourcelock.py), whoever holds it runs its loops, the others
wait, watching the Lease, ready to take over. This module is that package.

Three durations (kube-scheduler's and kube-controller-manager's defaults):

    leaseDuration  15 s   how long a candidate waits, after it last saw the Lease
                          change, before it may take the Lease over
    renewDeadline  10 s   how long the leader keeps trying to renew before it gives up
    retryPeriod     2 s   how often every candidate tries (acquire or renew)

The loop of each candidate (`LeaderElector.run`):

    acquire:  every retryPeriod (jittered up to 2.2x, so candidates spread out)
              tryAcquireOrRenew until it succeeds
    lead:     start the component's loops (`lead()`) and renew:
              every retryPeriod, a renewal round with a deadline of renewDeadline;
              inside a round, tryAcquireOrRenew every retryPeriod until one succeeds
              no success before the deadline -> stop the loops, LeaderElectionLost

    tryAcquireOrRenew (one compare-and-swap):
        GET the Lease (absent: CREATE it holding ourselves -> leader)
        the record differs from the one we saw last -> remember it and the *local*
            monotonic time we saw it (observedTime)
        held by someone else and observedTime + its leaseDurationSeconds > now
            -> not ours (the holder may still be alive)
        UPDATE it, guarded by its resourceVersion, holding ourselves with renewTime now
            (leaseTransitions + 1 when the holder changes; acquireTime kept on renewal)
            409 Conflict -> someone else was faster: not ours

The leader renews with the Lease it wrote last (the fast path: an UPDATE
without the GET); only a conflict sends it back to the GET.

Expiry is judged on each candidate's own monotonic clock, from the moment it
*observed* a change, never by comparing the Lease's renewTime with its own
wall clock: two machines' wall clocks may disagree by minutes, their clocks'
rates do not. The price is that a candidate that just started must wait a
full leaseDuration before taking over a Lease it cannot see renewed.

Why a partitioned leader steps down before anyone takes over. Worked example,
defaults: the leader renews at t=0 and is then cut off from the API server.
Its next round starts at t=2 with a deadline at t=12; every attempt hangs or
fails, so at t=12 it cancels the loops and stops (a process exits). Another
candidate saw the t=0 renewal at some t>=0 and may take over no sooner than
t=15. Between the two, 3 s in which nobody leads -- the margin for the
leader's last write taking a while to answer, and for clock rates to differ.
Leader election is not fencing: a write the old leader sent just before it
stopped may still land; every controller's compare-and-swap writes and
level-triggered syncs make that harmless.

A leader that stops on purpose (SIGTERM, `release_on_cancel`) releases the
Lease: it writes an empty holder with leaseDurationSeconds 1, so the next
candidate takes over at its next retry instead of after 15 s.

The clock is a seam (`ElectionClock`: apimachinery/clock.py's clocks plus an
async sleep), so tests run the protocol on fake time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from apimachinery import errors
from apimachinery.client import Client
from apimachinery.clock import Clock
from apimachinery.resourcelock import LeaderElectionRecord, LeaseLock, ResourceLock, micros

log = logging.getLogger(__name__)

LEASE_DURATION = 15.0
RENEW_DEADLINE = 10.0
RETRY_PERIOD = 2.0
JITTER_FACTOR = 1.2  # client-go's JitterFactor: acquire retries wait 2 s to 4.4 s
LEASE_NAMESPACE = "kube-system"


class LeaderElectionLost(Exception):
    """The leader could not renew its Lease within renewDeadline and stopped leading."""


class ElectionClock(Clock):
    """The real clocks, and sleeping on them (the test seam: a fake moves by hand)."""

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0))


def default_identity() -> str:
    """kube-scheduler's identity: `<hostname>_<a new UUID>`, unique per process."""
    return f"{socket.gethostname()}_{uuid.uuid4()}"


@dataclass(frozen=True)
class LeaderElectionConfig:
    """Kubernetes' LeaderElectionConfiguration (--leader-elect-* flags), checked as
    client-go's NewLeaderElector checks them."""

    resource_name: str
    resource_namespace: str = LEASE_NAMESPACE
    identity: str = ""
    lease_duration: float = LEASE_DURATION
    renew_deadline: float = RENEW_DEADLINE
    retry_period: float = RETRY_PERIOD
    release_on_cancel: bool = True

    def __post_init__(self) -> None:
        if not self.identity:
            object.__setattr__(self, "identity", default_identity())
        if not self.resource_name:
            raise ValueError("leader election needs a lease name (--leader-elect-resource-name)")
        for name in ("lease_duration", "renew_deadline", "retry_period"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name.replace('_', '')} must be greater than zero")
        if self.lease_duration <= self.renew_deadline:
            raise ValueError("leaseDuration must be greater than renewDeadline")
        if self.renew_deadline <= JITTER_FACTOR * self.retry_period:
            raise ValueError("renewDeadline must be greater than retryPeriod*JitterFactor")

    @property
    def lease_seconds(self) -> int:
        """leaseDurationSeconds as the Lease stores it (whole seconds, at least 1)."""
        return max(1, round(self.lease_duration))


class LeaderElector:
    """One candidate for one Lease (see the module docstring for the protocol)."""

    def __init__(
        self,
        config: LeaderElectionConfig,
        lock: ResourceLock,
        *,
        clock: ElectionClock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.lock = lock
        self.clock = clock or ElectionClock()
        self._rng = rng or random.Random()
        self._observed: LeaderElectionRecord | None = None
        self._observed_time = 0.0  # our monotonic reading when the record last changed
        self._reported_leader = ""

    @property
    def identity(self) -> str:
        return self.config.identity

    @property
    def leader(self) -> str:
        """The holder as this candidate last saw it ("" when none)."""
        return self._observed.holder_identity if self._observed else ""

    def is_leader(self) -> bool:
        return self.leader == self.identity

    async def run(self, lead: Callable[[], Awaitable[None]]) -> None:
        """Campaign, then run `lead()` while the Lease is ours.

        Returns when `lead()` returns; raises what it raises; raises
        LeaderElectionLost (after cancelling `lead()`) when a renewal round
        fails. Cancelled, it cancels `lead()` and releases the Lease
        (`release_on_cancel`).
        """
        await self._acquire()
        work = asyncio.ensure_future(lead())
        renewing = asyncio.ensure_future(self._renew_until_lost())
        try:
            await asyncio.wait({work, renewing}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            await _cancel(work, renewing)
            if self.config.release_on_cancel:
                await self.release()
            raise
        if work.done():
            await _cancel(renewing)
            if self.config.release_on_cancel:
                await self.release()
            work.result()  # lead()'s own exception, if it raised
            return
        await _cancel(work)
        log.error("leaderelection lost", extra={"lease": self.lock.describe()})
        raise LeaderElectionLost(f"leaderelection lost: could not renew {self.lock.describe()}")

    async def _acquire(self) -> None:
        name = self.lock.describe()
        log.info("attempting to acquire leader lease", extra={"lease": name})
        while not await self._attempt(self.config.renew_deadline):
            self._report_leader()
            period = self.config.retry_period
            await self.clock.sleep(period + self._rng.random() * JITTER_FACTOR * period)
        log.info("successfully acquired lease", extra={"lease": name, "identity": self.identity})
        self._report_leader()

    async def _renew_until_lost(self) -> None:
        """Renewal rounds every retryPeriod; returns when one fails (renewDeadline passed)."""
        while True:
            await self.clock.sleep(self.config.retry_period)
            deadline = self.clock.monotonic() + self.config.renew_deadline
            if not await self._renew_before(deadline):
                log.warning(
                    "failed to renew lease",
                    extra={"lease": self.lock.describe(), "deadline": self.config.renew_deadline},
                )
                return

    async def _renew_before(self, deadline: float) -> bool:
        """tryAcquireOrRenew every retryPeriod until one succeeds or `deadline` passes."""
        while True:
            remaining = deadline - self.clock.monotonic()
            if remaining <= 0:
                return False
            if await self._attempt(remaining) and self.is_leader():
                return True
            remaining = deadline - self.clock.monotonic()
            if remaining <= 0:
                return False
            await self.clock.sleep(min(self.config.retry_period, remaining))

    async def _attempt(self, limit: float) -> bool:
        """One tryAcquireOrRenew, abandoned after `limit` seconds (a hung call is cancelled)."""
        attempt = asyncio.ensure_future(self.try_acquire_or_renew())
        timer = asyncio.ensure_future(self.clock.sleep(limit))
        try:
            await asyncio.wait({attempt, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not attempt.done():
                await _cancel(attempt)
            await _cancel(timer)
        if attempt.cancelled():
            return False
        return attempt.result()

    async def try_acquire_or_renew(self) -> bool:
        """One compare-and-swap on the Lease: True when we hold it afterwards."""
        now_wall, now = micros(self.clock.time()), self.clock.monotonic()
        desired = LeaderElectionRecord(
            holder_identity=self.identity,
            lease_duration_seconds=self.config.lease_seconds,
            acquire_time=now_wall,
            renew_time=now_wall,
        )
        observed = self._observed
        if observed is not None and self.is_leader() and self._lease_valid(now):
            # The fast path: update the Lease we wrote last, no GET first.
            renewal = replace(
                desired,
                acquire_time=observed.acquire_time,
                leader_transitions=observed.leader_transitions,
            )
            if await self._write(self.lock.update, renewal, now):
                return True
        try:
            current = await self.lock.get()
        except errors.NotFound:
            return await self._write(self.lock.create, desired, now)
        except errors.StatusError as err:
            log.info("cannot read the lease", extra={"lease": self.lock.describe(), "error": err})
            return False
        if current != self._observed:
            self._observed, self._observed_time = current, now
        if current.holder_identity and self._lease_valid(now) and not self.is_leader():
            return False  # held by another, and it may still be alive
        if self.is_leader():
            desired = replace(
                desired,
                acquire_time=current.acquire_time,
                leader_transitions=current.leader_transitions,
            )
        else:
            desired = replace(desired, leader_transitions=current.leader_transitions + 1)
        return await self._write(self.lock.update, desired, now)

    async def _write(
        self,
        write: Callable[[LeaderElectionRecord], Awaitable[None]],
        record: LeaderElectionRecord,
        now: float,
    ) -> bool:
        try:
            await write(record)
        except errors.StatusError as err:
            log.debug("lease write refused", extra={"lease": self.lock.describe(), "error": err})
            return False
        self._observed, self._observed_time = record, now
        return True

    def _lease_valid(self, now: float) -> bool:
        observed = self._observed
        if observed is None:
            return False
        return self._observed_time + observed.lease_duration_seconds > now

    async def release(self) -> bool:
        """Give the Lease up (empty holder, 1 s) if we hold it, so a successor need not wait."""
        if not self.is_leader() or self._observed is None:
            return True
        now_wall = micros(self.clock.time())
        released = LeaderElectionRecord(
            holder_identity="",
            lease_duration_seconds=1,
            acquire_time=now_wall,
            renew_time=now_wall,
            leader_transitions=self._observed.leader_transitions,
        )
        try:
            await asyncio.wait_for(self.lock.update(released), self.config.renew_deadline)
        except (errors.StatusError, asyncio.TimeoutError) as err:
            log.warning(
                "failed to release lease", extra={"lease": self.lock.describe(), "error": err}
            )
            return False
        self._observed, self._observed_time = released, self.clock.monotonic()
        log.info("released lease", extra={"lease": self.lock.describe()})
        return True

    def _report_leader(self) -> None:
        """Log a new holder once (client-go's OnNewLeader)."""
        leader = self.leader
        if leader and leader != self._reported_leader:
            self._reported_leader = leader
            log.info("new leader elected", extra={"lease": self.lock.describe(), "leader": leader})


async def _cancel(*tasks: asyncio.Future[Any]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


async def run_elected(
    client: Client,
    config: LeaderElectionConfig,
    lead: Callable[[], Awaitable[None]],
    *,
    clock: ElectionClock | None = None,
) -> None:
    """client-go's RunOrDie: `lead()` while holding config's Lease through `client`.

    Raises LeaderElectionLost when the Lease is lost; a process then exits
    (kube-scheduler: "leaderelection lost"), the in-process control plane
    campaigns again.
    """
    lock = LeaseLock(client, config.resource_namespace, config.resource_name)
    await LeaderElector(config, lock, clock=clock).run(lead)
