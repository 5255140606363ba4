"""One etcd watch of the etcd backend: an etcd Watch stream, a reader task, a bounded buffer.

The backend opens two kinds (etcd_cacher.py): the cacher's one watch on every
key, which feeds all watchers, and a short-lived one per watcher that starts
in the past, to replay the history the cacher's hub does not hold.

etcd does the hard part of a watch itself: asked for every change under a key
range from a start revision, it replays its history from there and then
streams new changes, in revision order, with no gap between the two (its
"unsynced" watchers catch up from the database, then join the "synced" set).
So unlike the SQLite backend (watchcache.py) there is no history read to join
to a live stream here. What is left is the interface's promises:

Start and compaction. The interface says `watch(prefix, after)` raises
Compacted when `after < C` after `compact(C)`. Kubernetes watches from
resourceVersion + 1, which etcd still serves at `after = C - 1` (etcd's own
rule is: a start revision below the compaction revision is compacted), but
then the first event, at C, may lack its previous value (the value before C
is what the compaction dropped). So a watch that starts in the past starts
one revision earlier, at `after` itself (in etcd's numbers, see
etcd_mapping.py), and the event at `after`, if any, is dropped: etcd then
refuses exactly the starts the interface refuses, and says where history
begins (`compact_revision`, which becomes Compacted.compacted).

    compact(7); watch(after=6)  -> Create(start=etcd(6)) -> compact_revision etcd(7)
                                -> Compacted(6, 7)
    compact(7); watch(after=7)  -> Create(start=etcd(7)) -> the event at 7 dropped,
                                   8, 9, ... delivered

A watch from the present (`after` at or beyond etcd's current revision, read
just before the watch is created; the common case: a list's revision) starts
at after + 1 instead. Every compaction is at or before the current revision,
so none can be refused then, and etcd makes such a watcher "synced" at once:
its events are sent as each write commits. A start at or before the store's
revision makes it "unsynced" until etcd's background loop (every 100 ms)
catches it up, which is fine for a replay and a needless pause for a watch
from now.

Back-pressure. A reader task drains the stream as fast as etcd sends, into a
buffer. When a response arrives while the consumer has left `limit` events
untaken (or `byte_limit` bytes of values: a count alone would let a watcher
of big objects hold gigabytes), the buffer is dropped and the consumer's next step raises
WatcherTooSlow(last revision it received); it resumes from there. A response
is taken whole, so the buffer holds at most its limit plus one response:
etcd sends a live ("synced") watcher one response per write, but replays
history to a watch that starts in the past in responses of many revisions,
and a consumer must not be cut off for a batch it had no chance to take. The
reader never blocks etcd, and a watcher nobody reads costs one buffer, not an
ever-growing backlog in etcd's send queue.

Failover. If the stream breaks with UNAVAILABLE (the member died), the reader
opens a new stream on the next endpoint from the newest revision it has seen:
the last event it buffered, or a progress notification's header revision
(etcd sends those on a quiet watch; every later event is newer). The consumer
sees nothing of the switch. The reader keeps trying, every endpoint in turn,
for as long as one request may take (`request_timeout`); only then does the
watch fail with EtcdUnavailable, and its consumer re-watches as after any
error. So a single member that restarts within that time costs its watchers
a pause, not a relist.

Ending. The watch ends when the consumer stops iterating (the stream is
cancelled), when the store closes (the consumer drains what is buffered, then
the iteration ends), or with an error (Compacted, WatcherTooSlow, StorageError).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncGenerator, Callable

import grpc
import grpc.aio

import apiserver.storage.etcd_mapping as mapping
from apiserver.storage.etcd_client import EtcdClient, EtcdUnavailable, translate
from apiserver.storage.interface import Compacted, Event, StorageError, WatcherTooSlow
from apiserver.storage.watchcache import event_bytes
from protos import etcd_pb2 as pb

log = logging.getLogger(__name__)

# Pause between reconnection rounds after a stream broke.
RECONNECT_DELAY = 0.2


class _Buffer:
    """The bounded hand-over from the reader task to the consumer."""

    def __init__(self, limit: int, byte_limit: int) -> None:
        self.limit = limit
        self.byte_limit = byte_limit
        self.bytes = 0
        self.events: deque[Event] = deque()
        self.overflowed = False
        self.ended = False
        self.error: StorageError | None = None
        self._waiter: asyncio.Future[None] | None = None

    def push(self, events: list[Event]) -> bool:
        """Queue one response's `events`; False when the consumer left `limit` events
        (or `byte_limit` bytes) untaken, and the buffer is dropped."""
        if len(self.events) >= self.limit or self.bytes >= self.byte_limit:
            self.overflowed = True
            self.events.clear()
            self.bytes = 0
            self._wake()
            return False
        self.events.extend(events)
        self.bytes += sum(event_bytes(e) for e in events)
        self._wake()
        return True

    def fail(self, error: StorageError) -> None:
        """Raise `error` once the consumer has taken what is buffered (unless ended)."""
        if self.error is None and not self.ended:
            self.error = error
        self._wake()

    def end(self) -> None:
        self.ended = True
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def take(self, delivered: int) -> list[Event] | None:
        """Everything buffered (at least one event); None once ended and drained."""
        while True:
            if self.overflowed:
                raise WatcherTooSlow(delivered)
            if self.events:
                batch = list(self.events)
                self.events.clear()
                self.bytes = 0
                return batch
            if self.ended:  # the store closed: a clean end, whatever the reader saw after
                return None
            if self.error is not None:
                raise self.error
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None


class EtcdWatch:
    """Events under `prefix` with revision > `after`, read from etcd (module docstring)."""

    def __init__(
        self,
        client: EtcdClient,
        prefix: str,
        after: int,
        limit: tuple[int, int],
        on_end: Callable[[EtcdWatch], None],
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.buffer = _Buffer(*limit)
        self._seen = after  # newest revision etcd is known to have sent us (interface's numbers)
        self._on_end = on_end
        self._reader: asyncio.Task[None] | None = None
        self._created = False  # the current stream's watch was confirmed by etcd

    def stop(self) -> None:
        """The store is closing: end after the consumer drains the buffer."""
        if self._reader is not None:
            self._reader.cancel()
        self.buffer.end()

    async def batches(self) -> AsyncGenerator[list[Event], None]:
        if self.buffer.ended:  # stopped before it started
            self._on_end(self)
            return
        self._reader = asyncio.ensure_future(self._read())
        delivered = self._seen
        try:
            while True:
                batch = await self.buffer.take(delivered)
                if batch is None:
                    return
                yield batch
                delivered = batch[-1].revision
        finally:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._on_end(self)

    # ---------------------------------------------------------------- reader

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        broken_since: float | None = None  # when the watch last lost its stream
        while True:
            endpoint, call, reason = "", None, ""
            self._created = False
            try:
                endpoint, call = await self.client.open_watch()
                if await self._follow(call):
                    return  # over for good (an error or the overflow is handed over)
                reason = "the stream ended"
            except EtcdUnavailable as err:
                reason = str(err)
            except grpc.aio.AioRpcError as err:
                if err.code() != grpc.StatusCode.UNAVAILABLE:
                    self.buffer.fail(translate(err, endpoint))
                    return
                reason = err.details() or "unavailable"
            except StorageError as err:
                self.buffer.fail(err)
                return
            except (
                Exception
            ) as err:  # e.g. a key that is not UTF-8: never leave the consumer waiting
                log.exception("etcd watch failed", extra={"prefix": self.prefix})
                self.buffer.fail(StorageError(f"etcd watch failed: {err}"))
                return
            finally:
                if call is not None:
                    call.cancel()
            if endpoint:
                self.client.watch_failed(endpoint)
            if broken_since is None or self._created:
                broken_since = loop.time()
            if loop.time() - broken_since > self.client.config.request_timeout:
                self.buffer.fail(EtcdUnavailable(f"etcd watch lost: {reason}"))
                return
            log.warning(
                "etcd watch stream broke, resuming",
                extra={"endpoint": endpoint, "prefix": self.prefix, "revision": self._seen},
            )
            await asyncio.sleep(RECONNECT_DELAY)

    async def _follow(self, call: grpc.aio.StreamStreamCall) -> bool:
        """Create the watch on `call` and pump its responses.

        True once the watch is over; False when the stream ended and should be resumed.
        """
        start, end = mapping.key_range(self.prefix)
        first = mapping.to_etcd(self._seen)
        if first >= await self.client.revision():  # from the present: start after it
            first += 1
        create = pb.WatchCreateRequest(
            key=start,
            range_end=end,
            start_revision=first,
            progress_notify=True,
            prev_kv=True,
        )
        await call.write(pb.WatchRequest(create_request=create))
        while True:
            response = await call.read()
            if response is grpc.aio.EOF:
                return False
            assert isinstance(response, pb.WatchResponse)
            if response.compact_revision:
                compacted = mapping.from_etcd(response.compact_revision)
                self.buffer.fail(Compacted(self._seen, compacted))
                return True
            if response.canceled:
                reason = response.cancel_reason or "no reason given"
                self.buffer.fail(StorageError(f"etcd canceled the watch: {reason}"))
                return True
            if response.created:
                self._created = True
            if not response.events:
                if not response.created:  # a progress notification: all up to here was sent
                    self._seen = max(self._seen, mapping.from_etcd(response.header.revision))
                continue
            events = [mapping.event(e) for e in response.events]
            fresh = [e for e in events if e.revision > self._seen]
            if not fresh:
                continue
            if not self.buffer.push(fresh):
                log.warning(
                    "watcher too slow, closing it",
                    extra={"prefix": self.prefix, "revision": fresh[-1].revision},
                )
                return True
            self._seen = fresh[-1].revision
