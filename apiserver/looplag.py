"""Event-loop lag: how far behind the API server's one asyncio loop is running.

What it is. Everything the server does -- gRPC's receive and send callbacks,
the HTTP API's reads, authentication, the store's answers, the fan-out of
every event to every watcher -- is a callback on one event loop, run one
after another. A callback that becomes ready now runs after everything
already queued in front of it. The loop's lag is that wait: schedule a
timer for time T, and see at what time T + lag it actually runs. An idle
loop runs it within a fraction of a millisecond; an overloaded one seconds
late, and so is every request that arrives meanwhile.

Why the in-flight limit cannot see it. `--max-mutating-requests-inflight`
(inflight.py) counts requests inside the handler: from the guard's `admit`
to the answer. A request whose bytes have arrived but whose callback still
waits in the loop's queue has not reached the guard: it holds no slot. At
1000 writes/s with 100 watchers (docs/performance.md) the handler held 20
writes while the client saw p50 0.86 s: the time went before the handler.
If it goes to the loop's queue, the lag is what such a request waits,
measured directly; inflight.py refuses mutating requests while it is high,
so the writes that are served are the ones that did not wait long, and the
work they would have added (a store commit, a fan-out to 100 watchers) is
not added to a loop that is behind. Measured there (2026-12-06), the loop
was not where the time went: its wakes were at most 60 ms late (smoothed
at most 35 ms) while writes took seconds, so at 100 ms the trigger did not
fire; the wait is outside the loop (the TLS front's relay thread, the
transport, the other processes on the machine). It stays as a backstop for
a loop that does fall behind.

How it is measured. A task on the server's loop sleeps `interval` (20 ms)
and reads the monotonic clock when it wakes: `late = woke - due`. One late
wake says little (a collection of the garbage, one large list), so the
figure the limiter reads is smoothed: an exponentially weighted moving
average whose weight is the time the sample covers, `w = 1 - exp(-dt/tau)`
with dt the time since the previous wake and tau 100 ms. A loop that has
been 150 ms behind for 170 ms weighs more than a 1 ms blip, and a single
60 ms pause moves the average by about half of it (under a 100 ms threshold),
while lag that lasts is followed within a few samples. A maximum over a
short window was the alternative: simpler, but every pause longer than the
threshold would refuse writes for the whole window, and each refused client
waits its Retry-After, a full second. Between wakes the monitor also knows
how overdue its pending wake is: if the loop is running a request past the
time the monitor should have woken, the loop is at least that far behind
now, so `lag()` is the larger of the average and the overdue time (a loop
stuck behind 2 s of callbacks is seen before the sample that says so).

Worked example, interval 20 ms, tau 100 ms, `--max-loop-lag-ms 100`. Idle,
the monitor wakes 0.3 ms late: average 0.1 ms. Writes and fan-out arrive
faster than the loop runs them; the next wakes are late 30 ms (after 50 ms:
w 0.39, average 12 ms), 80 ms (after 100 ms: w 0.63, average 55 ms) and
150 ms (after 170 ms: w 0.82, average 133 ms). From now on a write from a
user outside system:masters is answered 429 at once, as a full pool would
answer it; reads, watches and the admin go on. The loop drains: wakes 60,
20 and 5 ms late bring the average to 93, 69, 55 ms, and writes are
admitted again.

The interval is a cost, not a delay: an idle loop sleeps in epoll between
wakes, and each wake cost about 0.16 ms of CPU (mostly the kernel's) on
the 2-core VM measured, so 10 ms would be 1.6 % of a core for an idle
server and 20 ms is 0.8 %; a busy loop is not sleeping, and the overdue
time above sees lag between wakes whatever the interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable

DEFAULT_INTERVAL = 0.020  # seconds between wakes
DEFAULT_TAU = 0.100  # the average's time constant, seconds


class LoopLagMonitor:
    """Measures the running loop's lag; `clock` and `sleep` are seams for tests."""

    def __init__(
        self,
        interval: float = DEFAULT_INTERVAL,
        tau: float = DEFAULT_TAU,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if interval <= 0 or tau <= 0:
            raise ValueError(f"interval and tau must be positive, not {interval!r}, {tau!r}")
        self.interval = interval
        self.tau = tau
        self.clock = clock
        self.sleep = sleep
        self.smoothed = 0.0  # seconds: the average the limiter reads
        self.last = 0.0  # seconds: the latest wake's lateness
        self.samples = 0
        self._due: float | None = None  # when the pending wake should happen
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start measuring on the running loop (idempotent)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop measuring (idempotent); the figures stay as they were."""
        task, self._task = self._task, None
        self._due = None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            slept_at = self.clock()
            self._due = slept_at + self.interval
            await self.sleep(self.interval)
            self.record(slept_at, self.clock())

    def record(self, slept_at: float, woke: float) -> None:
        """One wake: a sleep of `interval` begun at `slept_at` that ended at `woke`."""
        late = max(0.0, woke - slept_at - self.interval)
        weight = 1.0 - math.exp(-max(0.0, woke - slept_at) / self.tau)
        self.smoothed += weight * (late - self.smoothed)
        self.last = late
        self.samples += 1

    def lag(self) -> float:
        """Seconds: the smoothed lag, or how overdue the pending wake is, whichever is more."""
        overdue = 0.0 if self._due is None else self.clock() - self._due
        return max(self.smoothed, overdue)
