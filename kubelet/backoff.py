"""Per-key exponential backoff with an injectable clock (Kubernetes' util/flowcontrol.Backoff).

The kubelet keeps two of these:

* CrashLoopBackOff, keyed `<pod uid>/<container name>`: 10 s doubling to
  300 s (Kubernetes' backOffPeriod and MaxContainerBackOff);
* image pulls, keyed `<pod uid>/<image>`: ErrImagePull the first time,
  ImagePullBackOff while the wait runs.

Each key remembers its current `delay` and `last_update`, the time of the
event that last moved it. `next(key, at)` moves it: the first time, or when
more than 2 x max (10 minutes) has passed since the last event, the delay is
the initial one; otherwise it doubles, capped at the max. "Reset after 10
minutes of running" falls out of this: for a crashing container the event
time is the container's finishedAt, so a container that ran ten minutes
before it crashed again starts over at 10 s.

Worked example for a container that exits 1 at once, every time (times in
seconds; the kubelet resyncs the pod when the wait is over):

    t=0    exits (finishedAt 0)   no entry           -> restart now; delay 10, last 0
    t=0.1  exits (finishedAt 0.1) 0.1 - 0.1 < 10     -> CrashLoopBackOff "back-off 10s"
    t=10.1 resync                 waited 10          -> restart; delay 20, last 0.1
    t=10.2 exits                  in backoff 20      -> "back-off 20s" until t=30.2
    ...    40, 80, 160, 300, 300, ...
    a run of more than 600 s, then an exit: delay back to 10

`in_backoff_since(key, at)`: the wait after the event at `at` (the newest
exit) is still running. `in_backoff_since_update(key)`: the same, measured
from the key's own last update (the image puller: the failed pull itself is
the event). `gc()` forgets keys idle for more than 2 x max, as the
kubelet's housekeeping does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

CRASH_BACKOFF_INITIAL = 10.0
CRASH_BACKOFF_MAX = 300.0
IMAGE_BACKOFF_INITIAL = 10.0
IMAGE_BACKOFF_MAX = 300.0

Clock = Callable[[], float]


@dataclass
class _Entry:
    delay: float
    last_update: float


class Backoff:
    """Per-key exponential backoff: CrashLoopBackOff or image pulls (see the module docstring)."""

    def __init__(
        self,
        initial: float = CRASH_BACKOFF_INITIAL,
        maximum: float = CRASH_BACKOFF_MAX,
        clock: Clock = time.time,
    ) -> None:
        if initial <= 0 or maximum < initial:
            raise ValueError("backoff needs 0 < initial <= maximum")
        self.initial = initial
        self.maximum = maximum
        self.clock = clock
        self._entries: dict[str, _Entry] = {}

    def _expired(self, entry: _Entry, at: float) -> bool:
        return at - entry.last_update > 2 * self.maximum

    def get(self, key: str) -> float:
        """The current delay for `key` (0 if it has none)."""
        entry = self._entries.get(key)
        return entry.delay if entry is not None else 0.0

    def last_update(self, key: str) -> float:
        """When `key` last moved (0 if it has no entry)."""
        entry = self._entries.get(key)
        return entry.last_update if entry is not None else 0.0

    def next(self, key: str, at: float | None = None) -> float:
        """Record an event at `at` (default now); returns the delay now in force."""
        at = self.clock() if at is None else at
        entry = self._entries.get(key)
        if entry is None or self._expired(entry, at):
            entry = _Entry(self.initial, at)
            self._entries[key] = entry
        else:
            entry.delay = min(entry.delay * 2, self.maximum)
            entry.last_update = at
        return entry.delay

    def remaining_since(self, key: str, at: float) -> float:
        """Seconds left of the wait that started at `at`; 0 when there is none."""
        entry = self._entries.get(key)
        if entry is None:
            return 0.0
        now = self.clock()
        if self._expired(entry, now):
            return 0.0
        return max(0.0, at + entry.delay - now)

    def in_backoff_since(self, key: str, at: float) -> bool:
        return self.remaining_since(key, at) > 0

    def in_backoff_since_update(self, key: str) -> bool:
        entry = self._entries.get(key)
        return entry is not None and self.remaining_since(key, entry.last_update) > 0

    def reset(self, key: str) -> None:
        self._entries.pop(key, None)

    def forget_prefix(self, prefix: str) -> None:
        """Drop every key starting with `prefix` (a pod uid when the pod is gone)."""
        for key in [k for k in self._entries if k.startswith(prefix)]:
            del self._entries[key]

    def gc(self) -> None:
        now = self.clock()
        for key in [k for k, e in self._entries.items() if self._expired(e, now)]:
            del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)
