"""Two clocks, and a fake of both: why timeouts measure with one and stamp with the other.

A controller that asks "has this node been silent for 40 s?" must measure
elapsed time, and wall-clock time is not that: NTP steps it, an operator
sets it, a VM resumes with it hours behind. If the node lifecycle
controller subtracted wall-clock readings, a +5 minute step would make
every node look silent for five minutes and mark them all unhealthy at
once -- then evict their pods. Kubernetes' controllers measure with Go's
monotonic clock reading (time.Since uses it) and stamp objects with wall
time, and so does tinykube:

    monotonic()   elapsed time: deadlines, probes, backoffs, timeouts.
                  Never jumps; its zero is arbitrary, so it is never stored.
    time()        wall time: what goes into objects (timeAdded,
                  lastHeartbeatTime), what people read.

Converting a stored wall timestamp into a monotonic deadline happens once,
when the controller first sees it ("it was stamped 12 s ago"); after that
the deadline is the controller's own and a wall-clock jump cannot move it.

`FakeClock` is the test seam (k8s.io/utils/clock/testing): `step(s)` moves
both clocks, as time passing does; `jump(s)` moves only the wall clock, as
an operator's `date -s` does.

Who measures with it: the node lifecycle and taint eviction controllers
(health deadlines, tolerationSeconds), the kubelet's CrashLoopBackOff and
image pull backoff (kubelet/backoff.py) and probes' initialDelaySeconds
(kubelet/prober/worker.py), the scheduling queue's backoffs and
unschedulable timeout (scheduler/queue.py), and the work queue's token
bucket (apimachinery/workqueue.py). Each takes a `Clock` (default: the real
one) so a test can pass a FakeClock.
"""

from __future__ import annotations

import time


class Clock:
    """The real clocks."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    def wall_to_monotonic(self, stamp: float) -> float:
        """The monotonic reading at which wall time was `stamp` (never later than now)."""
        now_mono, now_wall = self.monotonic(), self.time()
        return now_mono - max(0.0, now_wall - stamp)


class FakeClock(Clock):
    """Clocks a test moves by hand."""

    def __init__(self, wall: float = 1_700_000_000.0, mono: float = 1000.0) -> None:
        self._wall = wall
        self._mono = mono

    def monotonic(self) -> float:
        return self._mono

    def time(self) -> float:
        return self._wall

    def step(self, seconds: float) -> None:
        """Time passes: both clocks move."""
        self._mono += seconds
        self._wall += seconds

    def jump(self, seconds: float) -> None:
        """Someone sets the wall clock: only it moves."""
        self._wall += seconds
