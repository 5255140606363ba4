"""The SQLite backend: the conformance suite, plus what only SQLite has.

SQLite-specific checks: the exclusive lock against a second server, lazy
open, compaction really dropping rows (in steps) and the background
compactor, the backend registry, durability against SIGKILL of a child
process in the middle of a stream of acknowledged writes, and group commit
(writes queued behind a held worker thread share one COMMIT; a failed check,
a SQLite error in one write and a failed COMMIT each fail exactly what they
should).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
import threading
from collections.abc import Awaitable, Sequence
from pathlib import Path

import pytest

from apiserver.storage import new_storage, open_storage
from apiserver.storage.interface import (
    Compacted,
    KeyNotFound,
    KeyValue,
    RevisionMismatch,
    Storage,
    StorageError,
)
from apiserver.storage.sqlite import DB_FILE, SQLiteStorage
from apiserver.storage.sqlite_log import WriteOp, WriteResult, prefix_end

from .conformance import Follower, StorageConformance, take

REPO_ROOT = Path(__file__).resolve().parents[3]


class TestSQLiteConformance(StorageConformance):
    async def make_storage(self, path: Path, *, watch_buffer_size: int = 1000) -> Storage:
        return await SQLiteStorage.open(str(path / "store.db"), watch_buffer_size=watch_buffer_size)


async def test_second_server_on_the_same_file_is_refused(tmp_path: Path) -> None:
    first = await SQLiteStorage.open(str(tmp_path / "db"))
    try:
        with pytest.raises(StorageError, match="another server"):
            await SQLiteStorage.open(str(tmp_path / "db"))
        await first.create("/still/works", b"x")
    finally:
        await first.close()


async def test_opens_lazily_and_refuses_calls_after_close(tmp_path: Path) -> None:
    store = SQLiteStorage(str(tmp_path / "sub" / "dir" / "db"))
    assert not (tmp_path / "sub").exists()
    assert (await store.create("/a", b"1")).mod_revision == 1
    await store.close()
    await store.close()  # idempotent
    with pytest.raises(StorageError, match="closed"):
        await store.get("/a")


async def test_watch_on_an_unopened_store_opens_it(tmp_path: Path) -> None:
    store = SQLiteStorage(str(tmp_path / "db"))
    try:
        watch = store.watch("", 0)
        pending = asyncio.ensure_future(watch.__anext__())
        kv = await store.create("/a", b"1")
        event = await asyncio.wait_for(pending, 5.0)
        assert (event.key, event.revision) == ("/a", kv.mod_revision)
    finally:
        await store.close()


async def test_factory_by_name(tmp_path: Path) -> None:
    store = new_storage("sqlite", str(tmp_path))
    assert isinstance(store, SQLiteStorage) and store.name == "sqlite"
    await store.create("/a", b"1")
    await store.close()
    assert (tmp_path / DB_FILE).exists()
    reopened = await open_storage("sqlite", str(tmp_path))
    try:
        assert await reopened.current_revision() == 1
    finally:
        await reopened.close()
    with pytest.raises(StorageError, match="unknown storage backend 'nope'"):
        new_storage("nope", str(tmp_path))


async def test_compaction_drops_superseded_rows_in_steps(tmp_path: Path) -> None:
    store = await SQLiteStorage.open(str(tmp_path / "db"), compact_step=100)
    try:
        await store.create("/hot", b"0")
        await store.create("/cold", b"c")
        for i in range(1, 450):  # more than four compaction steps of history
            await store.update("/hot", b"%d" % i, None)
        top = await store.current_revision()
        assert await store.history_rows() == top
        await store.compact(top - 10)
        assert await store.compacted_revision() == top - 10
        # Kept: /cold's only row, /hot's value at the compaction point, the 10 after it.
        assert await store.history_rows() == 12
        hot = await store.get("/hot")
        assert hot is not None and hot.value == b"449"
        await store.compact(top + 100)  # clamped to the current revision
        assert await store.compacted_revision() == top
        assert await store.history_rows() == 2
    finally:
        await store.close()


async def test_background_compactor_keeps_the_newest_revisions(tmp_path: Path) -> None:
    store = await SQLiteStorage.open(str(tmp_path / "db"))
    try:
        await store.create("/k", b"0")
        for i in range(30):
            await store.update("/k", b"%d" % i, None)
        store.start_compactor(interval=0.01, keep=5)
        for _ in range(200):
            if await store.compacted_revision() == 26:
                break
            await asyncio.sleep(0.01)
        assert await store.compacted_revision() == 26
        with pytest.raises(Compacted):
            await asyncio.wait_for(store.watch("", 25).__anext__(), 1.0)
    finally:
        await store.close()


async def test_watch_from_a_future_revision_waits_for_it(tmp_path: Path) -> None:
    store = await SQLiteStorage.open(str(tmp_path / "db"))
    try:
        watch = store.watch("", 3)
        pending = asyncio.ensure_future(watch.__anext__())
        for i in range(4):
            await store.create(f"/k/{i}", b"x")
        event = await asyncio.wait_for(pending, 5.0)
        assert (event.key, event.revision) == ("/k/3", 4)
    finally:
        await store.close()


def test_prefix_end_bounds_exactly_the_prefix() -> None:
    assert prefix_end("") is None
    assert prefix_end("/registry/pods/") == "/registry/pods0"
    assert prefix_end("a\U0010ffff") is None
    assert prefix_end("a\ud7ff") == "a\ue000"
    for key in ["/registry/pods/a", "/registry/pods/\U0001f600"]:
        assert "/registry/pods/" <= key < "/registry/pods0"
    assert not "/registry/pods0" < "/registry/pods0"


CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from apiserver.storage.sqlite import SQLiteStorage

    async def main() -> None:
        store = await SQLiteStorage.open(sys.argv[1])
        i = 0
        while True:
            key = f"/acked/{i:06d}"
            await store.create(key, key.encode())
            if i % 3 == 0:
                await store.update(key, b"updated", None)
                key += " updated"
            sys.stdout.write(key + "\\n")
            sys.stdout.flush()
            i += 1

    asyncio.run(main())
    """
)


async def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    db = str(tmp_path / "db")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, db, stdout=asyncio.subprocess.PIPE, env=env
    )
    assert child.stdout is not None
    acked: list[str] = []
    try:
        while len(acked) < 150:
            line = await asyncio.wait_for(child.stdout.readline(), 10.0)
            assert line, "the writer exited early"
            acked.append(line.decode().rstrip("\n"))
    finally:
        child.send_signal(signal.SIGKILL)
        tail = await child.stdout.read()  # acknowledged just before the kill
        await child.wait()
    acked += [line for line in tail.decode().split("\n") if line]
    assert child.returncode == -signal.SIGKILL

    store = await SQLiteStorage.open(db)
    try:
        for entry in acked:
            key, _, updated = entry.partition(" ")
            kv = await store.get(key)
            assert kv is not None, f"acknowledged write lost: {key}"
            assert kv.value == (b"updated" if updated else key.encode())
        assert await store.current_revision() >= len(acked)
    finally:
        await store.close()


# ------------------------------------------------------------- group commit


class Gate:
    """Holds the store's worker thread, so that writes issued meanwhile queue up
    and are committed as one group once it is released."""

    def __init__(self, store: SQLiteStorage) -> None:
        assert store._executor is not None
        self.event = threading.Event()
        self.done = store._executor.submit(self.event.wait, TIMEOUT)
        self.store = store

    async def release_when_queued(self, n: int) -> None:
        for _ in range(1000):
            if len(self.store._queue) == n:
                break
            await asyncio.sleep(0.001)
        assert len(self.store._queue) == n
        self.event.set()


TIMEOUT = 10.0


async def test_writes_queued_during_a_commit_share_one_transaction(tmp_path: Path) -> None:
    store = await SQLiteStorage.open(str(tmp_path / "db"))
    try:
        base = await store.create("/k", b"0")
        await store.create("/b", b"b")
        start, commits = await store.current_revision(), store.commits
        acked: list[tuple[str, int]] = []

        async def write(name: str, op: Awaitable[KeyValue]) -> KeyValue:
            kv = await op
            assert store._hub is not None and store._hub.revision >= kv.mod_revision
            acked.append((name, kv.mod_revision))  # dispatched before acknowledged
            return kv

        watch = Follower(store.watch("", start))
        gate = Gate(store)
        tasks = [
            asyncio.ensure_future(write("B", store.update("/k", b"B", base.mod_revision))),
            asyncio.ensure_future(write("C", store.update("/k", b"C", base.mod_revision))),
            asyncio.ensure_future(write("D", store.delete("/b"))),
            asyncio.ensure_future(write("E", store.update("/missing", b"E", None))),
            asyncio.ensure_future(write("F", store.create("/f", b"F"))),
        ]
        await gate.release_when_queued(5)
        results = await asyncio.gather(*tasks, return_exceptions=True)

        assert store.commits == commits + 1  # one COMMIT, one fsync, for the group
        assert acked == [("B", start + 1), ("D", start + 2), ("F", start + 3)]
        mismatch, missing = results[1], results[3]
        assert isinstance(mismatch, RevisionMismatch) and mismatch.actual == start + 1
        assert isinstance(missing, KeyNotFound)
        assert await store.current_revision() == start + 3
        events = await watch.take(3)
        assert [(e.key, e.revision) for e in events] == [
            ("/k", start + 1),
            ("/b", start + 2),
            ("/f", start + 3),
        ]
        await watch.stop()
    finally:
        await store.close()


async def test_sqlite_error_in_one_write_is_undone_by_its_savepoint(tmp_path: Path) -> None:
    store = await SQLiteStorage.open(str(tmp_path / "db"))
    try:
        await store.create("/before", b"x")
        assert store._log is not None
        # The log row of /poison is inserted, then its `current` row is refused.
        await store._run(  # on the worker thread, which owns the connection
            store._log._db.execute,
            "CREATE TEMP TRIGGER poison BEFORE INSERT ON current WHEN NEW.key = '/poison'"
            " BEGIN SELECT RAISE(ABORT, 'poisoned'); END",
        )
        gate = Gate(store)
        tasks = [asyncio.ensure_future(store.create(key, b"v")) for key in ["/a", "/poison", "/c"]]
        await gate.release_when_queued(3)
        a, poison, c = await asyncio.gather(*tasks, return_exceptions=True)
        assert isinstance(poison, StorageError) and "poisoned" in str(poison)
        assert isinstance(a, KeyValue) and isinstance(c, KeyValue)
        assert (a.mod_revision, c.mod_revision) == (2, 3)
        assert await store.get("/poison") is None
        assert await store.history_rows() == 3  # the poisoned log row was rolled back
        events = await take(store.watch("", 0), 3)
        assert [e.key for e in events] == ["/before", "/a", "/c"]
    finally:
        await store.close()


async def test_failed_commit_fails_the_whole_group_and_takes_no_revision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await SQLiteStorage.open(str(tmp_path / "db"))
    try:
        await store.create("/before", b"x")
        assert store._log is not None
        revision_log = store._log

        def failing_apply(ops: Sequence[WriteOp]) -> list[WriteResult]:
            monkeypatch.undo()  # fail once
            raise StorageError("sqlite: disk I/O error")

        monkeypatch.setattr(revision_log, "apply", failing_apply)
        gate = Gate(store)
        tasks = [asyncio.ensure_future(store.create(f"/g/{i}", b"v")) for i in range(3)]
        await gate.release_when_queued(3)
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(r, StorageError) and "commit failed" in str(r) for r in results)
        assert await store.current_revision() == 1
        assert await store.list("/g/") == ([], 1)
        assert (await store.create("/after", b"y")).mod_revision == 2
    finally:
        await store.close()


async def test_a_cancelled_writer_does_not_undo_its_queued_write(tmp_path: Path) -> None:
    store = await SQLiteStorage.open(str(tmp_path / "db"))
    try:
        gate = Gate(store)
        cancelled = asyncio.ensure_future(store.create("/c", b"v"))
        kept = asyncio.ensure_future(store.create("/k", b"v"))
        await gate.release_when_queued(2)
        cancelled.cancel()
        kv = await kept
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        stored = await store.get("/c")  # queued, so committed: the outcome is unknown
        assert stored is not None and stored.mod_revision == kv.mod_revision - 1
    finally:
        await store.close()


async def test_many_concurrent_writers_share_commits(tmp_path: Path) -> None:
    store = await SQLiteStorage.open(str(tmp_path / "db"))
    try:

        async def writer(w: int) -> None:
            for i in range(10):
                await store.create(f"/w/{w}/{i}", b"x")

        await asyncio.gather(*(writer(w) for w in range(64)))
        assert store.committed_writes == 640 == await store.current_revision()
        assert store.commits < store.committed_writes  # writes did share fsyncs
    finally:
        await store.close()
