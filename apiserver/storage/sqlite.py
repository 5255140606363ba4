"""SQLite storage: the embedded default backend (what etcd is to kube-apiserver).

Three parts, each in its own module:

* `RevisionLog` (sqlite_log.py): tables, transactions, compaction. Blocking.
* `WatchHub` (watchcache.py): per-watcher bounded buffers and the gap-free
  join of history and live events. Event-loop only.
* `SQLiteStorage` (here): the `Storage` interface gluing them together, and
  the group commit of writes.

Threads. Every call into SQLite runs on one dedicated worker thread (a
single-thread executor), never on the event loop. That thread is the single
writer: writes are serialised by construction, the compare-and-swap of
`update`/`delete` needs no extra lock, and the revision counter is a plain
int. Reads share the thread; they are index lookups and cost microseconds
next to a write's fsync.

Group commit. A durable write costs one fsync, and an fsync costs the same
for one row as for a thousand. Committing each write on its own caps the
store at 1/fsync writes per second however many clients wait, so writes are
grouped instead (as etcd batches its raft log appends, and as databases do
with their write-ahead log):

* A write is queued (`_queue`, under a small lock) with an asyncio future of
  its own; if no drain is pending on the worker, one is submitted.
* A drain takes EVERY queued write (up to `MAX_BATCH`), and the log applies
  them in order in ONE transaction (`RevisionLog.apply`): each write runs its
  own compare-and-swap check against the state the earlier writes of the
  group left, behind its own SAVEPOINT, so a failed check or a SQLite error
  fails only that write and consumes no revision. Then one COMMIT, one fsync.
* Writes that arrive while the drain is committing wait in the queue and
  submit the next drain; they form the next group. Under no load a group is
  one write and costs what it did before; under load the group grows until
  one fsync carries everything that arrived during the previous one.
* After the COMMIT the worker hands the whole group to the loop in one
  `call_soon_threadsafe(_finish, group, results)`. `_finish` resolves each
  write's future (result or error) and dispatches the group's events to the
  watch hub's buffers in revision order, in that one callback, so no writer
  resumes before its event is buffered, and the writers go ahead of the
  watchers' wake-up on the loop. If the COMMIT fails, none of the
  group happened: every write fails with StorageError and the revision
  counter is unchanged.

So the guarantees are what they were with one commit per write: no write is
acknowledged before the COMMIT that contains it is durable; revisions are
strictly increasing and gap-free in commit order (failed writes take none);
an acknowledged write's event is already in every watcher's buffer; and
watchers see events in commit order (groups are handed to the loop in commit
order by the one worker thread, and each group in revision order).

Worked example: revision 10 exists and write A (create /a) is committing
alone. While its fsync runs, three writes arrive: B (update /k expecting
revision 7), C (update /k expecting revision 7), D (delete /b). They queue;
B's arrival submits the next drain. A's COMMIT returns, its group goes to the
loop (A's event 11 is dispatched, then A's future resolves). The next drain
takes [B, C, D] in one transaction: B's check passes (/k is at 7) and B
becomes revision 12; C's check now sees /k at 12, so C fails with
RevisionMismatch and writes nothing; D becomes revision 13. One COMMIT (one
fsync) for B and D. On the loop: resolve B
(mod_revision 12), C (RevisionMismatch), D (mod_revision 13), then dispatch
12 and 13; B, C and D resume after that.

A write, step by step:

    loop:   create() queues WriteOp + future; submits _drain if none pending
    worker: _drain: take the queue; BEGIN IMMEDIATE; per write: SAVEPOINT,
            check, INSERT log, UPSERT current, RELEASE; COMMIT (one fsync)
    worker: loop.call_soon_threadsafe(_finish, group, results)
    loop:   _finish: future.set_result / set_exception for each write, then
            hub.dispatch(each event, in revision order) into the buffers
    loop:   each writer's coroutine resumes with its KeyValue or error; then
            the hub's flush wakes the watchers (watchcache.py)

See watchcache.py for how a watch that starts in the past joins the live
stream.

Lists in pages. `list_page` reads one page at a revision: the `current` table
at the current revision, the revision log's history at an older one
(sqlite_range.py), so the pages of one list are one snapshot until the
compactor passes the first page's revision; after that the next page is
Compacted (the API's 410 Expired).

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
import threading
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

from apiserver.storage.interface import (
    Event,
    EventType,
    KeyValue,
    ListPage,
    Storage,
    StorageError,
)
from apiserver.storage.sqlite_log import RevisionLog, WriteOp, WriteResult
from apiserver.storage.watchcache import DEFAULT_BUFFER_BYTES, DEFAULT_BUFFER_SIZE, WatchHub

log = logging.getLogger(__name__)

T = TypeVar("T")

DB_FILE = "tinykube.db"
COMPACT_STEP = 2000
DEFAULT_KEEP = 10000
# At most this many writes share one COMMIT; the rest form the next group (so a
# burst of thousands still lets reads, which share the worker, in between).
MAX_BATCH = 1000

# A write waiting for its group commit: what to do, and the future its writer awaits.
_Queued = tuple[WriteOp, "asyncio.Future[KeyValue]"]


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

    backend = "sqlite"  # the name a snapshot records

    name = "sqlite"

    def __init__(
        self,
        path: str,
        *,
        watch_buffer_size: int = DEFAULT_BUFFER_SIZE,
        watch_buffer_bytes: int = DEFAULT_BUFFER_BYTES,
        compact_step: int = COMPACT_STEP,
    ) -> None:
        self.path = path
        self._watch_buffer_size = watch_buffer_size
        self._watch_buffer_bytes = watch_buffer_bytes
        self._compact_step = compact_step
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._log: RevisionLog | None = None
        self._hub: WatchHub | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._open_lock = asyncio.Lock()
        self._closed = False
        self._compactor: asyncio.Task[None] | None = None
        # Group commit: writes waiting for the next drain, and whether one is submitted.
        self._queue_lock = threading.Lock()
        self._queue: list[_Queued] = []
        self._drain_pending = False
        self.commits = 0  # COMMITs of write groups (worker thread; for tests and metrics)
        self.committed_writes = 0  # writes those COMMITs carried

    @classmethod
    async def open(
        cls,
        path: str,
        *,
        watch_buffer_size: int = DEFAULT_BUFFER_SIZE,
        watch_buffer_bytes: int = DEFAULT_BUFFER_BYTES,
        compact_step: int = COMPACT_STEP,
    ) -> SQLiteStorage:
        """Create and open a store (the usual entry point)."""
        store = cls(
            path,
            watch_buffer_size=watch_buffer_size,
            watch_buffer_bytes=watch_buffer_bytes,
            compact_step=compact_step,
        )
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
                revision_log.revision,
                revision_log.compacted,
                self._watch_buffer_size,
                self._watch_buffer_bytes,
            )

    # -------------------------------------------------------------- plumbing

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        """Run `fn(*args)` on the worker thread."""
        await self.ensure_open()
        if self._closed or self._executor is None:
            raise StorageError("storage is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    async def _write(self, op: WriteOp) -> KeyValue:
        """Queue one write for the next group commit and wait for its outcome."""
        await self.ensure_open()
        if self._closed or self._executor is None or self._loop is None:
            raise StorageError("storage is closed")
        future: asyncio.Future[KeyValue] = self._loop.create_future()
        with self._queue_lock:
            self._queue.append((op, future))
            submit = not self._drain_pending
            self._drain_pending = True
        if submit:
            self._executor.submit(self._drain, self._executor)
        return await future

    def _drain(self, executor: concurrent.futures.Executor) -> None:
        """Worker thread: commit every queued write (up to MAX_BATCH) as one group."""
        with self._queue_lock:
            group = self._queue[:MAX_BATCH]
            del self._queue[:MAX_BATCH]
            if self._queue:  # the rest form the next group (close() shuts down after us)
                executor.submit(self._drain, executor)
            else:
                self._drain_pending = False
        if not group:
            return
        results: list[WriteResult]
        try:
            results = self._require_log().apply([op for op, _ in group])
        except Exception as err:  # the COMMIT failed: none of the group happened
            log.error("group commit failed", extra={"writes": len(group), "error": str(err)})
            results = [StorageError(f"commit failed: {err}") for _ in group]
        self.commits += 1
        self.committed_writes += sum(1 for r in results if isinstance(r, tuple))
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._finish, group, results)

    def _finish(self, group: list[_Queued], results: list[WriteResult]) -> None:
        """Loop: resolve a committed group's writes, and buffer its events for the watchers.

        Both happen in this one callback, so no writer resumes before every watcher
        holds its event. The futures are resolved first so that the writers' own
        steps are queued on the loop ahead of the watchers' wake-up (the hub's flush,
        which `dispatch` schedules): the answer to a write does not wait behind the
        fan-out of its event to a hundred watchers."""
        assert self._hub is not None
        hub = self._hub
        for (_, future), result in zip(group, results, strict=True):
            if future.done():  # the writer was cancelled; the write stands regardless
                continue
            if isinstance(result, tuple):
                future.set_result(result[0])
            else:
                future.set_exception(result)
        for result in results:
            if isinstance(result, tuple):
                hub.dispatch(result[1])

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

    async def list_page(
        self, prefix: str, *, revision: int = 0, start: str = "", limit: int = 0
    ) -> ListPage:
        await self.ensure_open()
        return await self._run(self._require_log().list_page, prefix, revision, start, limit)

    async def create(self, key: str, value: bytes) -> KeyValue:
        return await self._write(WriteOp(EventType.ADDED, key, value))

    async def update(self, key: str, value: bytes, expected_revision: int | None) -> KeyValue:
        return await self._write(WriteOp(EventType.MODIFIED, key, value, expected_revision))

    async def delete(self, key: str, expected_revision: int | None = None) -> KeyValue:
        return await self._write(WriteOp(EventType.DELETED, key, b"", expected_revision))

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

    def watch_batches(
        self, prefix: str, after_revision: int
    ) -> AsyncIterator[builtins.list[Event]]:
        if self._hub is not None:  # open: the hub's iterator itself, no wrapper per batch
            return self._hub.watch_batches(prefix, after_revision, self._read_history)
        return self._watch_batches_after_open(prefix, after_revision)

    async def _watch_batches_after_open(
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

    async def _read_history(
        self, prefix: str, after: int, limit: int
    ) -> tuple[builtins.list[Event], int, bool]:
        return await self._run(self._require_log().history, prefix, after, limit)

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
        freed, size = await self._run(revision_log.vacuum)
        log.info(
            "compacted",
            extra={"revision": self._hub.compacted, "pages_freed": freed, "bytes": size},
        )

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
        with self._queue_lock:  # nothing should be left; never leave a writer hanging
            stranded, self._queue = self._queue, []
        for _, future in stranded:
            if not future.done():
                future.set_exception(StorageError("storage is closed"))
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

    async def snapshot(self, dest: str) -> int:
        """Write a consistent copy of the store to `dest` (a new file); the revision it holds."""
        await self.ensure_open()
        return await self._run(self._require_log().backup, dest)

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
