"""Watch fan-out: history replay joined to live events without a gap or a duplicate.

Kubernetes' apiserver puts a `Cacher` between etcd and its watchers: one
stream of changes comes in, and each watcher gets the events under its key
prefix through its own bounded channel. `WatchHub` is that fan-out, for the
SQLite backend and for the etcd backend's cacher (etcd_cacher.py, where the
one stream is an etcd watch and history comes from etcd itself; there a
broken feed cuts every watcher off, `cut_off`, to resume from its last
revision). It lives entirely in the event loop: the SQLite storage's writer
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

Fan-out cost, and why wake-ups are coalesced. Putting an event in a buffer
is cheap; what costs is what a wake-up starts: the watcher's coroutine chain
runs and the server sends one message (about 30 us of the loop per message
with grpc.aio on this project's machine). 200 writes/s to 100 watchers is
20 000 such messages a second, and the loop that sends them is the one that
answers the writes. So dispatch only fills buffers (`dispatch` is O(matching
watchers) through an index of watchers by key prefix), and the wake-up of
every watcher that got something is one `flush`, scheduled at most once per
*window*: the first event after a quiet spell is flushed at once (call_soon,
behind the write acknowledgements already queued), later ones wait for the
window to end and go out together. The window is `WAKE_COST` per watcher
woken last time, capped at `MAX_WINDOW`, so fan-out can take at most about
half of the loop however fast writes come: a watcher that gets several
events in one window receives them as one batch, one message.

Worked example, 100 watchers of one kind: a flush wakes 100, so the window
is 100 x 40 us = 4 ms. At 200 writes/s (one every 5 ms) nearly every event is
flushed at once, alone. At 1000 writes/s each window gathers about four
events, so each watcher gets about 250 messages a second, not 1000, and the
writes keep the rest of the loop. With one watcher the window is 40 us: no
visible delay.
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
# Coalescing of wake-ups (module docstring): the window after a flush is
# WAKE_COST per watcher that flush woke, at most MAX_WINDOW.
WAKE_COST = 40e-6
MAX_WINDOW = 0.02

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
        """Queue `event` without waking the consumer (the hub's flush does); False when
        the buffer was full and the watcher is cut off (woken at once, to fail)."""
        size = event_bytes(event)
        if len(self.buffer) >= self.limit or (self.buffer and self.bytes + size > self.byte_limit):
            self.cut_off()
            return False
        self.buffer.append(event)
        self.bytes += size
        return True

    def cut_off(self) -> None:
        """Drop the buffer; the consumer's next step raises WatcherTooSlow (woken at once)."""
        self.overflowed = True
        self.buffer.clear()
        self.bytes = 0
        self._wake()

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
        # The index: watchers by the prefix they watch (a kind, or a kind in a namespace).
        self._by_prefix: dict[str, set[_Subscription]] = {}
        self._count = 0
        self._closed = False
        # Coalesced wake-ups: watchers holding undelivered events, and the pending flush.
        self._dirty: set[_Subscription] = set()
        self._flush_handle: asyncio.Handle | None = None
        self._next_flush = 0.0  # loop time before which a flush waits (the window)

    @property
    def watcher_count(self) -> int:
        return self._count

    def _add(self, sub: _Subscription) -> None:
        self._by_prefix.setdefault(sub.prefix, set()).add(sub)
        self._count += 1

    def _discard(self, sub: _Subscription) -> None:
        subs = self._by_prefix.get(sub.prefix)
        if subs is None or sub not in subs:
            return
        subs.discard(sub)
        self._count -= 1
        self._dirty.discard(sub)
        if not subs:
            del self._by_prefix[sub.prefix]

    def dispatch(self, event: Event) -> None:
        """Buffer one committed event for every watcher of its key; never blocks.

        O(prefixes watched + matching watchers). The watchers are woken by the next
        `flush` (module docstring), which this schedules if none is pending."""
        self.revision = event.revision
        key = event.key
        dropped: list[_Subscription] = []
        dirty = self._dirty
        for prefix, subs in self._by_prefix.items():
            if not key.startswith(prefix):
                continue
            for sub in subs:
                if sub.push(event):
                    dirty.add(sub)
                else:
                    dropped.append(sub)
        if dirty and self._flush_handle is None:
            self._schedule_flush()
        for sub in dropped:
            self._discard(sub)
            log.warning(
                "watcher too slow, closing it",
                extra={
                    "prefix": sub.prefix,
                    "revision": event.revision,
                    "buffer": sub.limit,
                    "buffer_bytes": sub.byte_limit,
                },
            )

    def _schedule_flush(self) -> None:
        loop = asyncio.get_running_loop()
        if loop.time() >= self._next_flush:
            self._flush_handle = loop.call_soon(self.flush)
        else:
            self._flush_handle = loop.call_at(self._next_flush, self.flush)

    def flush(self) -> None:
        """Wake every watcher holding undelivered events; the next flush waits a window."""
        self._flush_handle = None
        dirty, self._dirty = self._dirty, set()
        for sub in dirty:
            sub._wake()
        if dirty:
            window = min(MAX_WINDOW, WAKE_COST * len(dirty))
            self._next_flush = asyncio.get_running_loop().time() + window

    def close(self) -> None:
        """End every watch; iterators finish after draining what they hold."""
        self._closed = True
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        for subs in self._by_prefix.values():
            for sub in subs:
                sub.end()
        self._by_prefix.clear()
        self._dirty.clear()
        self._count = 0

    def cut_off(self) -> None:
        """Fail every watch with WatcherTooSlow at the last revision it delivered.

        For a hub whose feed broke (the etcd backend's cacher, etcd_cacher.py): what
        comes after the break is unknown to the hub, so every watcher resumes from its
        own last revision, which replays history from the store itself."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        for subs in self._by_prefix.values():
            for sub in subs:
                sub.cut_off()
        self._by_prefix.clear()
        self._dirty.clear()
        self._count = 0

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
        self._add(sub)
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
            self._discard(sub)
