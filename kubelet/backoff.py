"""Per-key exponential backoff on the monotonic clock (Kubernetes' util/flowcontrol.Backoff).

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

Which clock. A backoff is a duration, so it is measured on the monotonic
clock (apimachinery/clock.py): an NTP step or `date -s` of +5 minutes must
not end a 5-minute CrashLoopBackOff at once, and -5 minutes must not double
it. Every time this class keeps is a monotonic reading. The event times
callers pass in (`at`: a container's finishedAt) are wall-clock stamps, as
the runtime reports them; each is turned into a monotonic reading the first
time this key sees it (`Clock.wall_to_monotonic`: "it finished 0.3 s ago")
and that reading is remembered beside the stamp, so later calls with the
same finishedAt -- every resync while the wait runs -- measure from the
same monotonic point whatever the wall clock did meanwhile. (Kubernetes'
kubelet subtracts finishedAt from wall time here, so a step of its clock
does move its backoffs; tinykube keeps the duration honest instead.)

Worked example of a jump, delay 300 s, the container exits at wall 10:00:00
(monotonic 5000): at 10:02:00 (monotonic 5120) an operator sets the clock to
10:07:00. Wall time says the 5 minutes are over; the monotonic reading
(5120, deadline 5300) says 180 s are left, and that is what is shown.

`in_backoff_since(key, at)`: the wait after the event at `at` (the newest
exit) is still running. `in_backoff_since_update(key)`: the same, measured
from the key's own last update (the image puller: the failed pull itself is
the event, taken from the monotonic clock directly). `gc()` forgets keys
idle for more than 2 x max, as the kubelet's housekeeping does.
"""

from __future__ import annotations

from dataclasses import dataclass

from apimachinery.clock import Clock

CRASH_BACKOFF_INITIAL = 10.0
CRASH_BACKOFF_MAX = 300.0
IMAGE_BACKOFF_INITIAL = 10.0
IMAGE_BACKOFF_MAX = 300.0


@dataclass
class _Entry:
    delay: float
    last_update: float  # monotonic
    stamp: float | None = None  # the newest wall-clock event stamp seen for this key...
    stamp_mono: float = 0.0  # ...and the monotonic reading it was turned into


class Backoff:
    """Per-key exponential backoff: CrashLoopBackOff or image pulls (see the module docstring)."""

    def __init__(
        self,
        initial: float = CRASH_BACKOFF_INITIAL,
        maximum: float = CRASH_BACKOFF_MAX,
        clock: Clock | None = None,
    ) -> None:
        if initial <= 0 or maximum < initial:
            raise ValueError("backoff needs 0 < initial <= maximum")
        self.initial = initial
        self.maximum = maximum
        self.clock = clock if clock is not None else Clock()
        self._entries: dict[str, _Entry] = {}

    def _expired(self, entry: _Entry, at: float) -> bool:
        return at - entry.last_update > 2 * self.maximum

    def _monotonic(self, key: str, stamp: float) -> float:
        """The monotonic reading of the wall-clock event `stamp`, fixed when first seen."""
        entry = self._entries.get(key)
        if entry is not None and entry.stamp == stamp:
            return entry.stamp_mono
        mono = self.clock.wall_to_monotonic(stamp)
        if entry is not None:
            entry.stamp, entry.stamp_mono = stamp, mono
        return mono

    def get(self, key: str) -> float:
        """The current delay for `key` (0 if it has none)."""
        entry = self._entries.get(key)
        return entry.delay if entry is not None else 0.0

    def next(self, key: str, at: float | None = None) -> float:
        """Record an event at wall time `at` (default: now); returns the delay now in force."""
        mono = self.clock.monotonic() if at is None else self._monotonic(key, at)
        entry = self._entries.get(key)
        if entry is None or self._expired(entry, mono):
            entry = _Entry(self.initial, mono)
            self._entries[key] = entry
        else:
            entry.delay = min(entry.delay * 2, self.maximum)
            entry.last_update = mono
        if at is not None:
            entry.stamp, entry.stamp_mono = at, mono
        return entry.delay

    def _remaining(self, entry: _Entry, start: float) -> float:
        now = self.clock.monotonic()
        if self._expired(entry, now):
            return 0.0
        return max(0.0, start + entry.delay - now)

    def remaining_since(self, key: str, at: float) -> float:
        """Seconds left of the wait after the event at wall time `at`; 0 when there is none."""
        entry = self._entries.get(key)
        if entry is None:
            return 0.0
        return self._remaining(entry, self._monotonic(key, at))

    def remaining_since_update(self, key: str) -> float:
        """Seconds left of the wait after the key's last update; 0 when there is none."""
        entry = self._entries.get(key)
        return 0.0 if entry is None else self._remaining(entry, entry.last_update)

    def in_backoff_since(self, key: str, at: float) -> bool:
        return self.remaining_since(key, at) > 0

    def in_backoff_since_update(self, key: str) -> bool:
        return self.remaining_since_update(key) > 0

    def reset(self, key: str) -> None:
        self._entries.pop(key, None)

    def forget_prefix(self, prefix: str) -> None:
        """Drop every key starting with `prefix` (a pod uid when the pod is gone)."""
        for key in [k for k in self._entries if k.startswith(prefix)]:
            del self._entries[key]

    def gc(self) -> None:
        now = self.clock.monotonic()
        for key in [k for k, e in self._entries.items() if self._expired(e, now)]:
            del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)
