"""The etcd backend's watch cache: one etcd watch per API server, fanned out in process.

Kubernetes' apiserver puts a `Cacher` between etcd and its watchers, so that
a hundred clients watching Pods cost etcd one watch, not a hundred. Here the
`Cacher` holds ONE etcd Watch on the whole key space (an `EtcdWatch` on the
prefix "", with its failover across members) and feeds every event into a
`WatchHub` (watchcache.py), the same fan-out the SQLite backend uses: bounded
per-watcher buffers, cut-off by count and bytes, an index by key prefix,
coalesced wake-ups, and the gap-free join of a history replay to the live
buffer. Several API servers on one etcd each run their own cacher, so a write
through server A reaches a watcher on server B through B's cacher.

Start. The cacher starts with the first watch: it reads etcd's revision R0
(linearizably), the hub starts at R0, and the etcd watch starts after R0.

History. A watch from `after` below the hub's newest revision H needs the
events (after, H], which the hub never saw (or no longer holds). SQLite reads
them from its log; here they come from etcd itself, through a short-lived
etcd watch from `after` (etcd_watch.py: its start one revision early, and
its `compact_revision` answer, give exactly the interface's Compacted). It
ends at H, and the hub's join takes over: buffered events <= H are skipped.

How the replay knows it reached H. etcd's watch has no "caught up to H"
marker that can be trusted for a watch still catching up (a progress request
on etcd before 3.4.25/3.5.8 is answered with the current revision at once,
ahead of the watch's own catch-up). So the replay watches the whole key
space, like the cacher's own watch, and keeps the events under the watcher's
prefix: on the whole key space every revision is an event (etcd advances its
revision only for a transaction that changed a key), so the event at H itself
arrives, and the replay stops there. Any H read after the watcher subscribed
is correct (the hub's revision only grows: events after the subscription are
in the buffer, and those <= H are skipped), so H is read at the replay's start.

Worked example: the hub is at H = 42; a watcher of /registry/pods/ asks for
after = 40. It subscribes; the replay watch starts at 40 (the event at 40 is
dropped), etcd sends 41 (a ConfigMap: not kept) and 42 (a Pod: kept); 42 >= H
ends the replay, whose stream is cancelled. Meanwhile 43 (a Pod) reached the
buffer: it is > H, so it is delivered after 42.

The common case costs no replay: a watch from a list's revision, which the
hub has usually reached (after >= H). The cost of the rare one is the events
of every kind in (after, H], read once and filtered here.

Failure. The cacher's etcd watch resumes by itself across a member's restart
or a broken stream (etcd_watch.py), from the last revision it saw: watchers
see a pause, nothing else. When it gives up (no member for `request_timeout`,
its position compacted, a cancel from etcd, its own buffer overflowing), the
cacher cuts every watcher off with WatcherTooSlow at the last revision each
one delivered (the hub's `cut_off`): they re-watch from there, through a
replay, or get Compacted and re-list; nothing is skipped silently. New
watches wait (up to `request_timeout`) while the cacher re-reads etcd's
revision and starts a new etcd watch from it.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
from collections.abc import AsyncGenerator

import apiserver.storage.etcd_mapping as mapping
from apiserver.storage.etcd_client import EtcdClient, EtcdUnavailable
from apiserver.storage.etcd_watch import EtcdWatch
from apiserver.storage.interface import Event, StorageError
from apiserver.storage.watchcache import DEFAULT_BUFFER_BYTES, DEFAULT_BUFFER_SIZE, WatchHub

log = logging.getLogger(__name__)

# Pause before the cacher starts its etcd watch again after it broke.
RESTART_DELAY = 0.5
# The buffer between the cacher's etcd stream and its dispatch: the dispatch never waits,
# so this only fills when the event loop falls far behind etcd.
CACHE_BUFFER = (DEFAULT_BUFFER_SIZE * 10, DEFAULT_BUFFER_BYTES * 4)


class _Replay:
    """One watcher's history (after, H] from a short-lived etcd watch (module docstring)."""

    def __init__(self, cacher: Cacher) -> None:
        self._cacher = cacher
        self._until = 0  # H
        self._watch: EtcdWatch | None = None
        self._batches: AsyncGenerator[builtins.list[Event], None] | None = None

    async def read(
        self, prefix: str, after: int, limit: int
    ) -> tuple[builtins.list[Event], int, bool]:
        """The hub's HistoryReader: the next events under `prefix`, the revision read up
        to, and whether more follows. `limit` is not needed: the etcd watch's own bounded
        buffer already caps what one step holds."""
        if self._batches is None:
            self._until = self._cacher.hub.revision  # the watcher subscribed already
            self._watch = self._cacher.open_replay(after)
            self._batches = self._watch.batches()
        kept: builtins.list[Event] = []
        while True:
            batch = await anext(self._batches, None)
            if batch is None:  # the store closed
                return kept, self._until, False
            for event in batch:
                if event.revision > self._until:
                    break
                if event.key.startswith(prefix):
                    kept.append(event)
            if batch[-1].revision >= self._until:
                await self.close()
                return kept, self._until, False
            if kept:
                return kept, batch[-1].revision, True

    async def close(self) -> None:
        batches, self._batches = self._batches, None
        if batches is not None:
            await batches.aclose()


class Cacher:
    """One etcd watch feeding a WatchHub; see the module docstring. Event-loop bound."""

    def __init__(self, client: EtcdClient, watch_limit: tuple[int, int]) -> None:
        self._client = client
        self._watch_limit = watch_limit
        self.hub = WatchHub(0, 0, *watch_limit)
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._replays: set[EtcdWatch] = set()
        self._closed = False
        self.restarts = 0  # how often the etcd watch was started again (tests, metrics)

    @property
    def ready(self) -> bool:
        """The cacher follows etcd (False before its start and while it restarts)."""
        return self._ready.is_set()

    @property
    def replays(self) -> int:
        """Replay watches open now."""
        return len(self._replays)

    def open_replay(self, after: int) -> EtcdWatch:
        watch = EtcdWatch(self._client, "", after, self._watch_limit, self._replays.discard)
        self._replays.add(watch)
        return watch

    def compacted(self, revision: int) -> None:
        """This server compacted at `revision`: refuse older starts up front."""
        self.hub.compacted = max(self.hub.compacted, revision)

    async def watch_batches(
        self, prefix: str, after: int
    ) -> AsyncGenerator[builtins.list[Event], None]:
        """The interface's watch_batches, through the hub."""
        await self._wait_ready()
        history = _Replay(self)
        batches = self.hub.watch_batches(prefix, after, history.read)
        try:
            async for batch in batches:
                yield batch
        finally:
            await batches.aclose()
            await history.close()

    async def _wait_ready(self) -> None:
        if self._closed:
            return  # the hub is closed: the watch ends at once
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="etcd-watch-cache"
            )
        timeout = self._client.config.request_timeout
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
        except asyncio.TimeoutError:
            raise EtcdUnavailable(f"etcd: the watch cache is not ready after {timeout}s") from None

    async def _run(self) -> None:
        """Keep one etcd watch feeding the hub; start it again whenever it breaks."""
        while not self._closed:
            try:
                revision = mapping.from_etcd(await self._client.revision())
            except StorageError as err:
                log.warning("watch cache cannot read etcd's revision", extra={"error": str(err)})
                await asyncio.sleep(RESTART_DELAY)
                continue
            hub = self.hub
            hub.revision = max(hub.revision, revision)
            watch = EtcdWatch(self._client, "", hub.revision, CACHE_BUFFER, lambda _: None)
            self._ready.set()
            log.info("watch cache follows etcd", extra={"revision": hub.revision})
            try:
                async for batch in watch.batches():
                    for event in batch:
                        hub.dispatch(event)
                return  # the store closed
            except StorageError as err:
                self._ready.clear()
                log.warning(
                    "watch cache lost its etcd watch, cutting its watchers off",
                    extra={
                        "revision": hub.revision,
                        "watchers": hub.watcher_count,
                        "error": str(err),
                    },
                )
                hub.cut_off()
                self.restarts += 1
            await asyncio.sleep(RESTART_DELAY)

    async def close(self) -> None:
        """End every watch (each drains what it holds) and the etcd streams."""
        self._closed = True
        self.hub.close()
        for watch in list(self._replays):
            watch.stop()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
