"""Watch fan-out: history replay joined to live events without a gap or a duplicate.

Kubernetes' apiserver puts a `Cacher` between etcd and its watchers: one
stream of changes comes in, and each watcher gets the events under its key
prefix through its own bounded channel. `WatchHub` is that fan-out for the
SQLite backend. It lives entirely in the event loop: the storage's writer
thread hands it each committed event with `loop.call_soon_threadsafe`, in
commit order, *before* the write's own coroutine resumes (both go through
the loop's FIFO ready queue, and the dispatch is queued first). So by the
time `create()` returns, every watcher already holds the event.

Starting a watch at `after` (the join, and why it is gap-free):

1. Subscribe first. From this instant every event the loop dispatches lands
   in the subscription's buffer.
2. If `after >= hub.revision` (the newest event dispatched so far), nothing
   newer than `after` has been dispatched yet, so every event the watch needs
   is still to come through the buffer: no history read at all. This is the
   common case (watch from a list's revision) and costs no I/O.
3. Otherwise read history `(after, H]` from the log, where H is the revision
   the read saw. Any event committed before the read is in that history. Any
   event committed after it was dispatched after step 1 (dispatch follows
   commit), so it is in the buffer. Replay the history, then the buffer,
   skipping buffered events with revision <= H: those are the ones both
   sources have. Nothing is missed, nothing is sent twice.

Worked example: revisions 1..7 exist, a watcher asks for after=4 while
revision 8 is being committed. It subscribes; the read sees H=8 (events 5-8);
the dispatch of 8 reaches the buffer too. Replay 5, 6, 7, 8; the buffered 8
is <= H and is skipped; 9 and later flow from the buffer.

A long history is read in chunks of `HISTORY_CHUNK` log rows, each yielded
before the next is read, so a watch from far back holds one chunk of old
events in memory at a time, not the whole replay. Step 3's H is then the
revision the *last* chunk read up to.

Back-pressure: each subscription buffers at most `buffer_size` live events
and `buffer_bytes` bytes of them (values and previous values), whichever
comes first: a count alone would let a watcher of big objects (ConfigMaps
near the 1.5 MiB limit) hold gigabytes. The dispatcher never waits: when a
buffer is full the subscription is cut off, its buffer dropped, and the
consumer's next step raises `WatcherTooSlow(last delivered revision)`; it can
resume from there (as a Kubernetes watcher re-watches from its last
resourceVersion), or re-list if that is compacted. A consumer that simply
abandons its iterator is cut off the same way, so a forgotten watch costs at
most one buffer. (A gRPC client that stops reading is such a consumer: HTTP/2
flow control stops the server's writes, the registry stops pulling, and the
buffer fills.)
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable

from apiserver.storage.interface import Compacted, Event, WatcherTooSlow

log = logging.getLogger(__name__)

DEFAULT_BUFFER_SIZE = 10000
DEFAULT_BUFFER_BYTES = 64 * 1024 * 1024
# History is read, and replayed, in chunks of at most this many log rows.
HISTORY_CHUNK = 500

# Reads logged history under a prefix after a revision, at most `limit` rows:
# (events, revision read up to, whether more history follows).
HistoryReader = Callable[[str, int, int], Awaitable[tuple[list[Event], int, bool]]]


def event_bytes(event: Event) -> int:
    """What an event holds in memory, roughly: its value and its previous value."""
    return len(event.value) + len(event.prev_value or b"") + len(event.key)


class _Subscription:
    """One watcher's bounded channel."""

    __slots__ = (
        "buffer",
        "byte_limit",
        "bytes",
        "closed",
        "limit",
        "overflowed",
        "prefix",
        "waiter",
    )

    def __init__(self, prefix: str, limit: int, byte_limit: int = DEFAULT_BUFFER_BYTES) -> None:
        self.prefix = prefix
        self.limit = limit
        self.byte_limit = byte_limit
        self.bytes = 0
        self.buffer: deque[Event] = deque()
        self.waiter: asyncio.Future[None] | None = None
        self.overflowed = False
        self.closed = False

    def push(self, event: Event) -> bool:
        """Queue `event`; False when the buffer was full and the watcher is cut off."""
        size = event_bytes(event)
        if len(self.buffer) >= self.limit or (self.buffer and self.bytes + size > self.byte_limit):
            self.overflowed = True
            self.buffer.clear()
            self.bytes = 0
            self._wake()
            return False
        self.buffer.append(event)
        self.bytes += size
        self._wake()
        return True

    def end(self) -> None:
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def next(self, last_delivered: int) -> Event | None:
        """The next buffered event; None once the hub closed and the buffer is drained."""
        while not self.buffer:
            if self.overflowed:
                raise WatcherTooSlow(last_delivered)
            if self.closed:
                return None
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        if self.overflowed:
            raise WatcherTooSlow(last_delivered)
        event = self.buffer.popleft()
        self.bytes -= event_bytes(event)
        return event

    async def next_batch(self, last_delivered: int) -> list[Event] | None:
        """Everything buffered (at least one event); None once closed and drained."""
        first = await self.next(last_delivered)
        if first is None:
            return None
        batch = [first]
        batch.extend(self.buffer)
        self.buffer.clear()
        self.bytes = 0
        return batch


class WatchHub:
    """Fans committed events out to prefix watchers. Event-loop only."""

    def __init__(
        self,
        revision: int,
        compacted: int,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
        buffer_bytes: int = DEFAULT_BUFFER_BYTES,
    ):
        if buffer_size < 1 or buffer_bytes < 1:
            raise ValueError("watch buffer size must be at least 1")
        self.revision = revision  # newest event dispatched
        self.compacted = compacted  # oldest revision a watch may start after
        self.buffer_size = buffer_size
        self.buffer_bytes = buffer_bytes
        self._subs: set[_Subscription] = set()
        self._closed = False

    @property
    def watcher_count(self) -> int:
        return len(self._subs)

    def dispatch(self, event: Event) -> None:
        """Deliver one committed event; O(watchers), never blocks."""
        self.revision = event.revision
        key = event.key
        dropped: list[_Subscription] = []
        for sub in self._subs:
            if key.startswith(sub.prefix) and not sub.push(event):
                dropped.append(sub)
        for sub in dropped:
            self._subs.discard(sub)
            log.warning(
                "watcher too slow, closing it",
                extra={
                    "prefix": sub.prefix,
                    "revision": event.revision,
                    "buffer": sub.limit,
                    "buffer_bytes": sub.byte_limit,
                },
            )

    def close(self) -> None:
        """End every watch; iterators finish after draining what they hold."""
        self._closed = True
        for sub in self._subs:
            sub.end()
        self._subs.clear()

    async def watch(
        self, prefix: str, after: int, read_history: HistoryReader
    ) -> AsyncGenerator[Event, None]:
        """Events under `prefix` with revision > `after`; see the module docstring."""
        batches = self.watch_batches(prefix, after, read_history)
        try:
            async for batch in batches:
                for event in batch:
                    yield event
        finally:
            await batches.aclose()

    async def watch_batches(
        self, prefix: str, after: int, read_history: HistoryReader
    ) -> AsyncGenerator[list[Event], None]:
        """The same events as `watch`, in lists: each list is everything that was buffered
        when the consumer asked. A consumer that keeps up gets lists of one; one that
        falls behind gets the backlog in one step instead of one wake-up per event."""
        if self._closed:
            return
        if after < self.compacted:
            raise Compacted(after, self.compacted)
        sub = _Subscription(prefix, self.buffer_size, self.buffer_bytes)
        self._subs.add(sub)
        try:
            delivered = after  # newest revision handed to the consumer
            skip_through = after  # buffered events at or below this were replayed
            more = after < self.revision
            while more:
                chunk, read_through, more = await read_history(prefix, skip_through, HISTORY_CHUNK)
                if sub.overflowed:
                    raise WatcherTooSlow(delivered)
                if chunk:
                    yield chunk
                    delivered = chunk[-1].revision
                skip_through = max(skip_through, read_through)
            while True:
                live = await sub.next_batch(delivered)
                if live is None:
                    return
                if live[0].revision <= skip_through:
                    live = [e for e in live if e.revision > skip_through]
                    if not live:
                        continue
                yield live
                delivered = live[-1].revision
        finally:
            self._subs.discard(sub)
