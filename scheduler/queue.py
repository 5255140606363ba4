"""The scheduling queue: active, backoff and unschedulable (internal/queue/scheduling_queue.go).

Pending pods wait in one of three places:

* activeQ: ready to be scheduled, a heap ordered by priority (higher first)
  then by the time the pod entered the queue (older first). `pop()` waits
  on it.
* backoffQ: pods that failed recently, each waiting out its own backoff:
  1 s after the first failure, doubling per attempt, capped at 10 s
  (podInitialBackoffSeconds / podMaxBackoffSeconds). A once-per-second flush
  moves expired ones to activeQ.
* unschedulablePods: pods no node could take. Retrying them in a loop would
  burn CPU for nothing, so they wait for a *cluster event* that may help:
  a node added, a node's labels/taints/allocatable/unschedulable changed,
  an assigned pod deleted (freeing room). Then `move_all_to_active_or_backoff`
  sends each to activeQ, or to backoffQ if its backoff has not expired.
  As a safety net, pods that have waited `max_unschedulable_seconds`
  (5 minutes) are moved anyway, checked every 30 s.

The race Kubernetes guards with `moveRequestCycle`: a node is added while
pod P is being scheduled and failing against the old snapshot. If P were
then parked as unschedulable it would miss the event that could place it.
So each pop records the scheduling cycle; a failure from a cycle that
started before the latest move request goes to backoffQ, not to
unschedulablePods.

Worked example (backoff 1 s, max 10 s): P fails at t=0 (attempt 1) ->
unschedulable. A node is added at t=0.3 -> P's backoff (1 s) has not
expired -> backoffQ until t=1 -> activeQ, popped, fails again (attempt 2,
backoff 2 s) -> unschedulable, and so on: 4 s, 8 s, 10 s, 10 s...

Pods are keyed "namespace/name"; updating a pod that waits anywhere
replaces its object in place (an unschedulable pod whose spec changed is
moved to be retried, since the change may make it fit).

Every time here (entry timestamps, backoff expiries, the 5-minute
unschedulable timeout) is a reading of the monotonic clock, through the
Clock seam of apimachinery/clock.py (tests pass a FakeClock): a step of the
wall clock neither releases every backed-off pod at once nor parks them for
longer. Nothing here is stored in an object, so no wall time is needed.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from dataclasses import dataclass, field

from apimachinery.clock import Clock
from scheduler.types import PodInfo

log = logging.getLogger(__name__)

DEFAULT_INITIAL_BACKOFF = 1.0
DEFAULT_MAX_BACKOFF = 10.0
DEFAULT_MAX_UNSCHEDULABLE_SECONDS = 300.0
FLUSH_BACKOFF_EVERY = 1.0
FLUSH_UNSCHEDULABLE_EVERY = 30.0

# cluster events that may make an unschedulable pod schedulable
NODE_ADD = "NodeAdd"
NODE_UPDATE = "NodeUpdate"
ASSIGNED_POD_DELETE = "AssignedPodDelete"
UNSCHEDULABLE_TIMEOUT = "UnschedulableTimeout"
FORCE_ACTIVATE = "ForceActivate"


@dataclass(eq=False)
class QueuedPodInfo:
    """A pending pod and its history in the queue: attempts, timestamps, who rejected it."""

    pod_info: PodInfo
    timestamp: float  # when it (last) entered the queue (monotonic): the activeQ tie-break
    initial_attempt: float  # first time it was added (monotonic): for latency metrics and logs
    attempts: int = 0
    unschedulable_plugins: set[str] = field(default_factory=set)
    unschedulable_since: float = 0.0

    @property
    def key(self) -> str:
        return self.pod_info.key


class SchedulingQueue:
    """activeQ, backoffQ and unschedulable pods, and the moves between them (PriorityQueue)."""

    def __init__(
        self,
        *,
        initial_backoff: float = DEFAULT_INITIAL_BACKOFF,
        max_backoff: float = DEFAULT_MAX_BACKOFF,
        max_unschedulable_seconds: float = DEFAULT_MAX_UNSCHEDULABLE_SECONDS,
        clock: Clock | None = None,
    ) -> None:
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.max_unschedulable_seconds = max_unschedulable_seconds
        self.clock = clock if clock is not None else Clock()
        self._seq = itertools.count()
        self._active: list[tuple[int, float, int, str]] = []  # (-priority, timestamp, seq, key)
        self._active_items: dict[str, QueuedPodInfo] = {}
        self._backoff: list[tuple[float, int, str]] = []  # (expiry, seq, key)
        self._backoff_items: dict[str, QueuedPodInfo] = {}
        self.unschedulable: dict[str, QueuedPodInfo] = {}
        self.scheduling_cycle = 0
        self.move_request_cycle = -1
        self._wakeup = asyncio.Event()
        self._closed = False

    # ---- what is where ----------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._active_items) + len(self._backoff_items) + len(self.unschedulable)

    def pending(self) -> dict[str, list[str]]:
        """Keys per sub-queue (for tests and debugging)."""
        return {
            "active": sorted(self._active_items),
            "backoff": sorted(self._backoff_items),
            "unschedulable": sorted(self.unschedulable),
        }

    def __contains__(self, key: object) -> bool:
        return key in self._active_items or key in self._backoff_items or key in self.unschedulable

    def backoff_duration(self, attempts: int) -> float:
        """1 s, 2 s, 4 s, 8 s, 10 s, 10 s ... for attempts 1, 2, 3, ..."""
        if attempts <= 0:
            return 0.0
        return float(min(self.initial_backoff * 2.0 ** (attempts - 1), self.max_backoff))

    def backoff_expiry(self, qpi: QueuedPodInfo) -> float:
        return qpi.timestamp + self.backoff_duration(qpi.attempts)

    def is_backing_off(self, qpi: QueuedPodInfo) -> bool:
        return self.backoff_expiry(qpi) > self.clock.monotonic()

    # ---- moving between sub-queues -----------------------------------------------------------

    def _push_active(self, qpi: QueuedPodInfo) -> None:
        self._active_items[qpi.key] = qpi
        prio = qpi.pod_info.priority
        heapq.heappush(self._active, (-prio, qpi.timestamp, next(self._seq), qpi.key))
        self._wakeup.set()

    def _push_backoff(self, qpi: QueuedPodInfo) -> None:
        self._backoff_items[qpi.key] = qpi
        heapq.heappush(self._backoff, (self.backoff_expiry(qpi), next(self._seq), qpi.key))

    def _remove(self, key: str) -> QueuedPodInfo | None:
        """Take `key` out of wherever it waits (heap entries are dropped lazily)."""
        return (
            self._active_items.pop(key, None)
            or self._backoff_items.pop(key, None)
            or self.unschedulable.pop(key, None)
        )

    def add(self, info: PodInfo) -> None:
        """A new pending pod (or one seen again after a relist): straight to activeQ."""
        if self._closed:
            return
        if info.key in self:
            self.update(info)
            return
        now = self.clock.monotonic()
        self._push_active(QueuedPodInfo(info, now, now))

    def update(self, info: PodInfo, spec_changed: bool = True) -> None:
        """A waiting pod changed: keep its place, or retry it if it was unschedulable."""
        key = info.key
        for where in (self._active_items, self._backoff_items):
            qpi = where.get(key)
            if qpi is not None:
                qpi.pod_info = info
                return
        qpi = self.unschedulable.get(key)
        if qpi is None:
            self.add(info)
            return
        qpi.pod_info = info
        if spec_changed:
            del self.unschedulable[key]
            self._requeue(qpi)

    def delete(self, key: str) -> None:
        self._remove(key)

    def _requeue(self, qpi: QueuedPodInfo) -> None:
        if self.is_backing_off(qpi):
            self._push_backoff(qpi)
        else:
            self._push_active(qpi)

    def add_unschedulable_if_not_present(
        self, qpi: QueuedPodInfo, pod_scheduling_cycle: int, plugins: set[str] | None = None
    ) -> None:
        """Back from a failed cycle: park it, or back it off if a move happened meanwhile."""
        if self._closed or qpi.key in self:
            return
        qpi.timestamp = self.clock.monotonic()
        qpi.unschedulable_plugins = set(plugins or ())
        if self.move_request_cycle >= pod_scheduling_cycle:
            self._push_backoff(qpi)
        else:
            qpi.unschedulable_since = qpi.timestamp
            self.unschedulable[qpi.key] = qpi

    def add_backoff(self, qpi: QueuedPodInfo) -> None:
        """Back from an error (binding failed, plugin error): retry after its backoff."""
        if self._closed or qpi.key in self:
            return
        qpi.timestamp = self.clock.monotonic()
        self._push_backoff(qpi)

    def move_all_to_active_or_backoff(self, event: str) -> int:
        """A cluster event: every unschedulable pod gets another try. Returns how many moved."""
        moved = list(self.unschedulable.values())
        self.unschedulable.clear()
        for qpi in moved:
            self._requeue(qpi)
        self.move_request_cycle = self.scheduling_cycle
        if moved:
            log.debug("unschedulable pods moved", extra={"event": event, "pods": len(moved)})
        return len(moved)

    def flush_backoff_completed(self) -> int:
        now = self.clock.monotonic()
        moved = 0
        while self._backoff and self._backoff[0][0] <= now:
            _, _, key = heapq.heappop(self._backoff)
            qpi = self._backoff_items.get(key)
            if qpi is None or self.backoff_expiry(qpi) > now:
                continue  # stale entry: gone, or pushed again with a later expiry
            del self._backoff_items[key]
            self._push_active(qpi)
            moved += 1
        return moved

    def flush_unschedulable_left_over(self) -> int:
        now = self.clock.monotonic()
        stale = [
            qpi
            for qpi in self.unschedulable.values()
            if now - qpi.unschedulable_since >= self.max_unschedulable_seconds
        ]
        for qpi in stale:
            del self.unschedulable[qpi.key]
            self._requeue(qpi)
        return len(stale)

    # ---- the consumer -----------------------------------------------------------------------

    def pop_nowait(self) -> QueuedPodInfo | None:
        while self._active:
            _, _, _, key = heapq.heappop(self._active)
            qpi = self._active_items.pop(key, None)
            if qpi is not None:
                qpi.attempts += 1
                self.scheduling_cycle += 1
                return qpi
        self._wakeup.clear()
        return None

    async def pop(self) -> QueuedPodInfo:
        """The next pod to schedule; waits while activeQ is empty."""
        while True:
            qpi = self.pop_nowait()
            if qpi is not None:
                return qpi
            if self._closed:
                raise asyncio.CancelledError
            await self._wakeup.wait()

    async def run_flushers(self) -> None:
        """The periodic flushes of backoffQ (1 s) and left-over unschedulable pods (30 s)."""
        last_unschedulable = self.clock.monotonic()
        while True:
            await asyncio.sleep(min(FLUSH_BACKOFF_EVERY, self.initial_backoff))
            self.flush_backoff_completed()
            if self.clock.monotonic() - last_unschedulable >= FLUSH_UNSCHEDULABLE_EVERY:
                last_unschedulable = self.clock.monotonic()
                self.flush_unschedulable_left_over()

    def close(self) -> None:
        self._closed = True
        self._wakeup.set()
