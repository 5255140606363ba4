"""SQLite storage: the embedded default backend (what etcd is to kube-apiserver).

Three parts, each in its own module:

* `RevisionLog` (sqlite_log.py): tables, transactions, compaction. Blocking.
* `WatchHub` (watchcache.py): per-watcher bounded buffers and the gap-free
  join of history and live events. Event-loop only.
* `SQLiteStorage` (here): the `Storage` interface gluing them together.

Threads. Every call into SQLite runs on one dedicated worker thread (a
single-thread executor), never on the event loop. That thread is the single
writer: writes are serialised by construction, the compare-and-swap of
`update`/`delete` needs no extra lock, and the revision counter is a plain
int. Reads share the thread; they are index lookups and cost microseconds
next to a write's fsync.

A write, step by step (the latency budget is a few milliseconds):

    loop:   await run_in_executor(worker, _write, log.update, key, value, rev)
    worker: BEGIN IMMEDIATE; SELECT current; INSERT log; UPSERT current;
            COMMIT (fsync of the WAL: the write is now durable)
    worker: loop.call_soon_threadsafe(hub.dispatch, event)   # queued first
    worker: return -> the executor future resolves             # queued second
    loop:   hub.dispatch(event) -> every matching watcher's buffer
    loop:   the writer's coroutine resumes with the KeyValue

So an acknowledged write is durable and already visible to every watcher,
and watchers see events in commit order. See watchcache.py for how a watch
that starts in the past joins the live stream.

Compaction. `compact(rev)` drops superseded history at or before `rev` in
steps of `COMPACT_STEP` revisions, each its own short transaction, so writes
interleave with a large compaction instead of waiting for all of it.
`start_compactor(interval, keep)` runs it periodically, keeping the newest
`keep` revisions (kube-apiserver asks etcd to compact every 5 minutes).

Failure modes. The database is opened with an exclusive lock: a second
server on the same file fails at open with StorageError. A SQLite error
during a write rolls the transaction back and surfaces as StorageError; the
revision does not advance. After `close()` every call raises StorageError.
"""

from __future__ import annotations

import asyncio
import builtins
import concurrent.futures
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

from apiserver.storage.interface import Event, KeyValue, Storage, StorageError
from apiserver.storage.sqlite_log import RevisionLog
from apiserver.storage.watchcache import DEFAULT_BUFFER_SIZE, WatchHub

log = logging.getLogger(__name__)

T = TypeVar("T")

DB_FILE = "tinykube.db"
COMPACT_STEP = 2000
DEFAULT_KEEP = 10000


class SQLiteStorage(Storage):
    """A `Storage` in one SQLite file.

    Use::

        store = await SQLiteStorage.open("/var/lib/tinykube/tinykube.db")
        kv = await store.create("/registry/pods/default/web", b"...")
        await store.close()

    The constructor does no I/O; the first operation (or `await
    ensure_open()`) opens the file on the worker thread. The store belongs to
    the event loop that opened it: watch fan-out runs on that loop.
    """

    name = "sqlite"

    def __init__(
        self,
        path: str,
        *,
        watch_buffer_size: int = DEFAULT_BUFFER_SIZE,
        compact_step: int = COMPACT_STEP,
    ) -> None:
        self.path = path
        self._watch_buffer_size = watch_buffer_size
        self._compact_step = compact_step
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._log: RevisionLog | None = None
        self._hub: WatchHub | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._open_lock = asyncio.Lock()
        self._closed = False
        self._compactor: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls,
        path: str,
        *,
        watch_buffer_size: int = DEFAULT_BUFFER_SIZE,
        compact_step: int = COMPACT_STEP,
    ) -> SQLiteStorage:
        """Create and open a store (the usual entry point)."""
        store = cls(path, watch_buffer_size=watch_buffer_size, compact_step=compact_step)
        await store.ensure_open()
        return store

    async def ensure_open(self) -> None:
        """Open the database if it is not open yet (idempotent)."""
        if self._hub is not None:
            return
        async with self._open_lock:
            if self._closed:
                raise StorageError("storage is closed")
            if self._hub is not None:
                return
            executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="sqlite-store")
            loop = asyncio.get_running_loop()
            try:
                revision_log = await loop.run_in_executor(executor, RevisionLog, self.path)
            except BaseException:
                executor.shutdown(wait=False)
                raise
            self._executor, self._log, self._loop = executor, revision_log, loop
            self._hub = WatchHub(
                revision_log.revision, revision_log.compacted, self._watch_buffer_size
            )

    # -------------------------------------------------------------- plumbing

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        """Run `fn(*args)` on the worker thread."""
        await self.ensure_open()
        if self._closed or self._executor is None:
            raise StorageError("storage is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    def _commit(self, write: Callable[..., tuple[KeyValue, Event]], *args: object) -> KeyValue:
        """Worker thread: do one write, then queue its fan-out before returning."""
        kv, event = write(*args)
        assert self._loop is not None and self._hub is not None
        self._loop.call_soon_threadsafe(self._hub.dispatch, event)
        return kv

    def _require_log(self) -> RevisionLog:
        if self._log is None:
            raise StorageError("storage is not open")
        return self._log

    # ------------------------------------------------------------- interface

    async def get(self, key: str) -> KeyValue | None:
        await self.ensure_open()
        return await self._run(self._require_log().get, key)

    async def list(self, prefix: str) -> tuple[list[KeyValue], int]:
        await self.ensure_open()
        return await self._run(self._require_log().list, prefix)

    async def create(self, key: str, value: bytes) -> KeyValue:
        await self.ensure_open()
        return await self._run(self._commit, self._require_log().create, key, value)

    async def update(self, key: str, value: bytes, expected_revision: int | None) -> KeyValue:
        await self.ensure_open()
        revision_log = self._require_log()
        return await self._run(self._commit, revision_log.update, key, value, expected_revision)

    async def delete(self, key: str, expected_revision: int | None = None) -> KeyValue:
        await self.ensure_open()
        revision_log = self._require_log()
        return await self._run(self._commit, revision_log.delete, key, expected_revision)

    def watch(self, prefix: str, after_revision: int) -> AsyncIterator[Event]:
        if self._hub is not None:  # open: hand out the hub's iterator itself
            return self._hub.watch(prefix, after_revision, self._read_history)
        return self._watch_after_open(prefix, after_revision)

    async def _watch_after_open(self, prefix: str, after_revision: int) -> AsyncIterator[Event]:
        await self.ensure_open()
        assert self._hub is not None
        events = self._hub.watch(prefix, after_revision, self._read_history)
        try:
            async for event in events:
                yield event
        finally:
            await events.aclose()

    async def watch_batches(
        self, prefix: str, after_revision: int
    ) -> AsyncIterator[builtins.list[Event]]:
        await self.ensure_open()
        assert self._hub is not None
        batches = self._hub.watch_batches(prefix, after_revision, self._read_history)
        try:
            async for batch in batches:
                yield batch
        finally:
            await batches.aclose()

    async def _read_history(self, prefix: str, after: int) -> tuple[builtins.list[Event], int]:
        return await self._run(self._require_log().history, prefix, after)

    async def current_revision(self) -> int:
        await self.ensure_open()
        assert self._hub is not None
        return self._hub.revision

    async def compact(self, revision: int) -> None:
        await self.ensure_open()
        assert self._hub is not None
        revision_log = self._require_log()
        while True:
            before = self._hub.compacted
            done = await self._run(revision_log.compact, revision, self._compact_step)
            self._hub.compacted = done
            if done == before or done >= revision:
                break
        log.info("compacted", extra={"revision": self._hub.compacted})

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._compactor is not None:
            self._compactor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._compactor
            self._compactor = None
        if self._hub is not None:
            self._hub.close()
        executor, revision_log = self._executor, self._log
        self._executor = None
        if executor is not None and revision_log is not None:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(executor, revision_log.close)
            executor.shutdown(wait=True)
        log.info("closed sqlite storage", extra={"path": self.path})

    # ----------------------------------------------------------------- extras

    async def compacted_revision(self) -> int:
        """The newest compacted revision: watches must start at or after it."""
        await self.ensure_open()
        assert self._hub is not None
        return self._hub.compacted

    async def history_rows(self) -> int:
        """How many rows the revision log holds (tests and metrics)."""
        await self.ensure_open()
        return await self._run(self._require_log().log_rows)

    @property
    def watcher_count(self) -> int:
        return self._hub.watcher_count if self._hub is not None else 0

    def start_compactor(self, interval: float = 300.0, keep: int = DEFAULT_KEEP) -> None:
        """Every `interval` seconds, compact all but the newest `keep` revisions."""
        if self._compactor is None:
            self._compactor = asyncio.get_running_loop().create_task(
                self._compact_forever(interval, keep), name="sqlite-compactor"
            )

    async def _compact_forever(self, interval: float, keep: int) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                target = await self.current_revision() - keep
                if target > await self.compacted_revision():
                    await self.compact(target)
            except StorageError as err:
                log.warning("compaction failed", extra={"error": str(err)})


def new_sqlite_storage(data_dir: str) -> SQLiteStorage:
    """The registry factory: the store lives in `<data_dir>/tinykube.db`."""
    return SQLiteStorage(os.path.join(data_dir, DB_FILE))
