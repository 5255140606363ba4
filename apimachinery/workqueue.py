"""The controller work queue: client-go's workqueue, for asyncio.

A controller's event handlers only enqueue keys ("default/web-app"); workers
take keys from this queue and run `sync(key)`, which re-reads the informer
cache and takes one step toward the desired state. The queue is what makes
that level-triggered loop safe and cheap:

* **Duplicates collapse.** Ten updates to one Deployment while it waits in the
  queue are one sync, because sync reads the latest state anyway.
* **One key is never synced by two workers at once.** A key being processed
  that is added again is parked in `dirty` and re-queued only when the worker
  calls `done(key)`; so a sync never races with itself.
* **Failures back off per key.** `add_rate_limited(key)` re-adds after a delay
  that doubles with each failure of that key (5 ms, 10 ms, 20 ms, ... capped
  at 1000 s) and, by default, is also bounded by an overall token bucket
  (10 per second, burst 100) so a storm of failures cannot flood the API
  server. `forget(key)` after a successful sync resets the key's backoff.

The three structures, as in client-go's queue.go: `queue` (ordered keys waiting
for a worker), `dirty` (every key that needs processing: the waiting ones plus
those re-added while being processed) and `processing` (keys a worker holds).
A worked example with one key `a`:

    add(a)          queue=[a]  dirty={a}  processing={}
    add(a)          queue=[a]  dirty={a}  processing={}     duplicate collapses
    get() -> a      queue=[]   dirty={}   processing={a}
    add(a)          queue=[]   dirty={a}  processing={a}    parked, not queued:
                                                            no second worker gets it
    get()           ...blocks: nothing is waiting
    done(a)         queue=[a]  dirty={a}  processing={}     re-queued now
    get() -> a      queue=[]   dirty={}   processing={a}    the blocked get wakes
    done(a)         queue=[]   dirty={}   processing={}

`add_after(key, delay)` keeps waiting keys in a heap ordered by ready time;
adding a key that already waits keeps the earlier of the two times, as
client-go's delaying queue does. One timer, armed for the earliest entry,
moves ready keys into the queue.

Every delay is a duration on the monotonic clock, never wall time: the
token bucket refills by `Clock.monotonic()` (apimachinery/clock.py; tests
pass a FakeClock) and `add_after` arms the event loop's timer, which asyncio
keeps on time.monotonic() too. So a step of the wall clock (NTP, `date -s`)
neither releases every waiting key at once nor holds them back.

Assumptions: everything runs on one event loop (no locks; the structures are
only touched between awaits). `add_after` and `add_rate_limited` need the
running loop. After `shut_down()` adds are ignored, waiting workers drain
what is queued, and `get()` then raises `ShutDown`.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections import deque
from collections.abc import Hashable
from typing import Generic, Protocol, TypeVar

from apimachinery.clock import Clock

log = logging.getLogger(__name__)

T = TypeVar("T", bound=Hashable)
T_contra = TypeVar("T_contra", bound=Hashable, contravariant=True)


class ShutDown(Exception):
    """Raised by `get()` once the queue is shut down and empty: the worker should return."""


# ---- rate limiters -------------------------------------------------------------------------


class RateLimiter(Protocol[T_contra]):
    def when(self, item: T_contra) -> float:
        """Seconds to wait before `item` may be processed again (counts one requeue)."""

    def forget(self, item: T_contra) -> None:
        """Stop tracking `item`: its next failure starts from the base delay."""

    def num_requeues(self, item: T_contra) -> int: ...


class ItemExponentialFailureRateLimiter(Generic[T]):
    """Per-item backoff: base * 2**failures, capped at `max_delay`.

    With base 5 ms and max 1000 s: 5 ms, 10 ms, 20 ms, 40 ms, ... the 19th
    failure waits 1310 s, so it and every later one wait the cap, 1000 s.
    """

    def __init__(self, base_delay: float = 0.005, max_delay: float = 1000.0) -> None:
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._failures: dict[T, int] = {}

    def when(self, item: T) -> float:
        exponent = self._failures.get(item, 0)
        self._failures[item] = exponent + 1
        if exponent >= 64:  # 2**64 * base is far past any sane cap
            return self.max_delay
        return float(min(self.base_delay * (2**exponent), self.max_delay))

    def forget(self, item: T) -> None:
        self._failures.pop(item, None)

    def num_requeues(self, item: T) -> int:
        return self._failures.get(item, 0)


class BucketRateLimiter(Generic[T]):
    """An overall token bucket shared by all items: `qps` tokens a second, `burst` at most.

    Each `when` takes a token; when the bucket is empty the answer is how long
    until the token it reserved will exist (so delays grow 1/qps apart).
    """

    def __init__(self, qps: float = 10.0, burst: int = 100, clock: Clock | None = None) -> None:
        self.qps = qps
        self.burst = burst
        self.clock = clock if clock is not None else Clock()
        self._tokens = float(burst)
        self._last = self.clock.monotonic()

    def when(self, item: T) -> float:
        now = self.clock.monotonic()
        self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.qps)
        self._last = now
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.qps

    def forget(self, item: T) -> None:
        return None

    def num_requeues(self, item: T) -> int:
        return 0


class MaxOfRateLimiter(Generic[T]):
    """The longest delay any of the limiters asks for (client-go's MaxOfRateLimiter)."""

    def __init__(self, *limiters: RateLimiter[T]) -> None:
        self.limiters = limiters

    def when(self, item: T) -> float:
        return max((limiter.when(item) for limiter in self.limiters), default=0.0)

    def forget(self, item: T) -> None:
        for limiter in self.limiters:
            limiter.forget(item)

    def num_requeues(self, item: T) -> int:
        return max((limiter.num_requeues(item) for limiter in self.limiters), default=0)


def default_controller_rate_limiter() -> MaxOfRateLimiter[T]:
    """client-go's DefaultControllerRateLimiter: per-item 5 ms..1000 s, overall 10 qps burst 100."""
    return MaxOfRateLimiter(ItemExponentialFailureRateLimiter(0.005, 1000.0), BucketRateLimiter())


# ---- queues --------------------------------------------------------------------------------


class Queue(Generic[T]):
    """The basic queue: FIFO, deduplicating, one worker per item at a time."""

    def __init__(self, name: str = "") -> None:
        self.name = name
        self._queue: deque[T] = deque()
        self._dirty: set[T] = set()
        self._processing: set[T] = set()
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._shutting_down = False

    def add(self, item: T) -> None:
        """Mark `item` as needing processing; a no-op if it already waits."""
        if self._shutting_down or item in self._dirty:
            return
        self._dirty.add(item)
        if item in self._processing:
            return  # re-queued by done()
        self._queue.append(item)
        self._wake_one()

    async def get(self) -> T:
        """The next item; the caller must call `done(item)` when finished with it."""
        while not self._queue:
            if self._shutting_down:
                raise ShutDown(self.name)
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()  # we were woken for an item we will not take: pass it on
                elif waiter in self._waiters:
                    self._waiters.remove(waiter)
                raise
        item = self._queue.popleft()
        self._processing.add(item)
        self._dirty.discard(item)
        return item

    def done(self, item: T) -> None:
        """Finish processing `item`; if it was added meanwhile, queue it again now."""
        self._processing.discard(item)
        if item in self._dirty:
            self._queue.append(item)
            self._wake_one()

    def shut_down(self) -> None:
        """Ignore further adds; wake every waiting worker (each drains, then gets ShutDown)."""
        self._shutting_down = True
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)

    def shutting_down(self) -> bool:
        return self._shutting_down

    def __len__(self) -> int:
        """Items waiting for a worker (not those being processed)."""
        return len(self._queue)

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


class DelayingQueue(Queue[T]):
    """A Queue that can also add an item later (client-go's DelayingInterface)."""

    def __init__(self, name: str = "") -> None:
        super().__init__(name)
        self._heap: list[tuple[float, int, T]] = []
        self._ready_at: dict[T, float] = {}
        self._seq = itertools.count()
        self._timer: asyncio.TimerHandle | None = None

    def add_after(self, item: T, delay: float) -> None:
        """Add `item` after `delay` seconds; if it already waits, the earlier time wins."""
        if self._shutting_down:
            return
        if delay <= 0:
            self.add(item)
            return
        loop = asyncio.get_running_loop()
        ready = loop.time() + delay
        current = self._ready_at.get(item)
        if current is not None and current <= ready:
            return
        self._ready_at[item] = ready
        heapq.heappush(self._heap, (ready, next(self._seq), item))
        self._arm(loop)

    def shut_down(self) -> None:
        super().shut_down()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._heap.clear()
        self._ready_at.clear()

    def waiting(self) -> int:
        """Items scheduled by add_after that are not yet ready."""
        return len(self._ready_at)

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        """Make sure the timer fires no later than the earliest heap entry."""
        if not self._heap:
            return
        earliest = self._heap[0][0]
        if self._timer is not None:
            if self._timer.when() <= earliest:
                return
            self._timer.cancel()
        self._timer = loop.call_at(earliest, self._fire, loop)

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        now = loop.time()
        while self._heap and self._heap[0][0] <= now:
            ready, _, item = heapq.heappop(self._heap)
            if self._ready_at.get(item) != ready:
                continue  # superseded by an earlier add_after of the same item
            del self._ready_at[item]
            self.add(item)
        self._arm(loop)


class RateLimitingQueue(DelayingQueue[T]):
    """A DelayingQueue whose failed items come back after a rate-limited delay.

    The worker loop every controller runs (written once: apimachinery/worker.py):

        while True:
            try:
                key = await queue.get()
            except ShutDown:
                return
            try:
                await sync(key)
            except Exception:
                queue.add_rate_limited(key)     # back off: 5 ms, 10 ms, 20 ms, ...
            else:
                queue.forget(key)               # success resets the backoff
            finally:
                queue.done(key)
    """

    def __init__(self, rate_limiter: RateLimiter[T] | None = None, name: str = "") -> None:
        super().__init__(name)
        self.rate_limiter: RateLimiter[T] = rate_limiter or default_controller_rate_limiter()

    def add_rate_limited(self, item: T) -> None:
        delay = self.rate_limiter.when(item)
        log.debug(
            "requeue with backoff",
            extra={"queue": self.name, "item": str(item), "delay": delay},
        )
        self.add_after(item, delay)

    def forget(self, item: T) -> None:
        self.rate_limiter.forget(item)

    def num_requeues(self, item: T) -> int:
        return self.rate_limiter.num_requeues(item)
