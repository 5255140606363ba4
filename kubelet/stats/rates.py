"""usageNanoCores: a CPU rate from two readings of a cumulative counter.

A cgroup counts CPU time since it began (cpu.stat usage_usec, cpuacct.usage);
how busy a container is *now* is the slope between two readings. cadvisor
keeps a history per container, sampled every housekeeping interval, and the
Summary API reports the rate between its last two samples. The kubelet here
samples when asked (a Summary call) and keeps the previous reading of each
key (a container id, a pod uid, "node"):

    t = 100.0 s   usage 40.0 s of CPU      first reading: no rate yet
    t = 100.4 s   usage 40.3 s             0.4 s later: too close (< min_window),
                                           the previous reading is kept
    t = 101.0 s   usage 40.9 s             rate = 0.9 s / 1.0 s = 0.9 cores
                                           = 900000000 nanocores, window 1.0 s

A reading closer than `min_window` to the last one keeps the last rate (two
`top` calls in a row both get an answer, not a noisy slope over a few
milliseconds). A counter that goes down (a pod whose container restarted, a
node's daemons of which one exited) starts over: that key has no rate until
its next reading. Keys not seen in a collection are forgotten (`retain`), so a
deleted container leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

NANOS = 1_000_000_000


@dataclass(frozen=True)
class Rate:
    """CPU nanoseconds per second over `window` seconds, ending at `time`."""

    nano_cores: int
    window: float
    time: float


@dataclass(frozen=True)
class _Reading:
    time: float
    cumulative_ns: int


class RateTracker:
    """The last reading and the last rate of each key."""

    def __init__(self, min_window: float = 1.0) -> None:
        self.min_window = min_window
        self._last: dict[str, _Reading] = {}
        self._rates: dict[str, Rate] = {}

    def observe(self, key: str, time: float, cumulative_ns: int) -> None:
        """Take a reading of `key` at `time` (seconds)."""
        last = self._last.get(key)
        if last is None or cumulative_ns < last.cumulative_ns:
            self._last[key] = _Reading(time, cumulative_ns)
            self._rates.pop(key, None)
            return
        elapsed = time - last.time
        if elapsed < self.min_window:
            return
        used = cumulative_ns - last.cumulative_ns
        self._rates[key] = Rate(round(used / elapsed), elapsed, time)
        self._last[key] = _Reading(time, cumulative_ns)

    def rate(self, key: str) -> Rate | None:
        return self._rates.get(key)

    def waiting(self, keys: Iterable[str]) -> bool:
        """Whether any of `keys` has a reading but no rate yet."""
        return any(key not in self._rates for key in keys)

    def retain(self, keys: Iterable[str]) -> None:
        """Forget every key not in `keys`."""
        keep = set(keys)
        for table in (self._last, self._rates):
            for key in [k for k in table if k not in keep]:
                del table[key]
