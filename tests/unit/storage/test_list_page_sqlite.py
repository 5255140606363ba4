"""What paging needs of the SQLite file itself, and the interface's default `list_page`.

The conformance suite (list_paging.py) checks what every backend answers;
here: the index that makes a page at an old revision one ordered walk is
there in a file made before it existed (it is created at open), the old-
revision read uses it, and a page reads the same rows whatever the page size.
The default `Storage.list_page`, for a backend that keeps no history, serves
the current revision and calls every older one compacted.
"""

from __future__ import annotations

import builtins
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from apiserver.storage.interface import (
    Compacted,
    Event,
    EventType,
    KeyValue,
    Storage,
    StorageError,
)
from apiserver.storage.sqlite import SQLiteStorage
from apiserver.storage.sqlite_log import RevisionLog, WriteOp

INDEX = "log_key_revision"


def _indexes(path: Path) -> list[str]:
    db = sqlite3.connect(path)
    try:
        rows = db.execute("SELECT name FROM sqlite_master WHERE type = 'index'").fetchall()
        return [r[0] for r in rows]
    finally:
        db.close()


async def test_a_file_made_before_the_index_gets_it_at_open(tmp_path: Path) -> None:
    path = tmp_path / "db"
    store = await SQLiteStorage.open(str(path))
    for i in range(3):
        await store.create(f"/k/{i}", b"v")
    await store.close()
    db = sqlite3.connect(path)
    db.execute(f"DROP INDEX {INDEX}")  # what a file of an older release looks like
    db.commit()
    db.close()
    assert INDEX not in _indexes(path)

    store = await SQLiteStorage.open(str(path))
    try:
        await store.delete("/k/1")
        page = await store.list_page("/k/", revision=3)
        assert [kv.key for kv in page.items] == ["/k/0", "/k/1", "/k/2"]
    finally:
        await store.close()
    assert INDEX in _indexes(path)


def test_a_page_at_an_old_revision_walks_the_index(tmp_path: Path) -> None:
    log = RevisionLog(str(tmp_path / "db"))
    try:
        log.apply([WriteOp(EventType.ADDED, f"/k/{i:02}", b"v1") for i in range(50)])
        revision = log.revision
        log.apply([WriteOp(EventType.MODIFIED, f"/k/{i:02}", b"v2") for i in range(0, 50, 2)])
        statements: list[str] = []
        log._db.set_trace_callback(statements.append)  # the SQL the page runs, values inlined
        page = log.list_page("/k/", revision, "/k/10", 5)
        log._db.set_trace_callback(None)
        assert [(kv.key, kv.value) for kv in page.items] == [
            (f"/k/{i}", b"v1") for i in range(10, 15)
        ]
        assert (page.more, page.count) == (True, 40)
        assert statements
        for sql in statements:
            plan = " ".join(str(row[-1]) for row in log._db.execute("EXPLAIN QUERY PLAN " + sql))
            assert INDEX in plan and "TEMP B-TREE" not in plan, (sql, plan)
    finally:
        log.close()


class NoHistory(Storage):
    """A backend with no history of its own: only the abstract methods, over SQLite."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner

    async def get(self, key: str) -> KeyValue | None:
        return await self.inner.get(key)

    async def list(self, prefix: str) -> tuple[builtins.list[KeyValue], int]:
        return await self.inner.list(prefix)

    async def create(self, key: str, value: bytes) -> KeyValue:
        return await self.inner.create(key, value)

    async def update(self, key: str, value: bytes, expected_revision: int | None) -> KeyValue:
        return await self.inner.update(key, value, expected_revision)

    async def delete(self, key: str, expected_revision: int | None = None) -> KeyValue:
        return await self.inner.delete(key, expected_revision)

    def watch(self, prefix: str, after_revision: int) -> AsyncIterator[Event]:
        return self.inner.watch(prefix, after_revision)

    async def current_revision(self) -> int:
        return await self.inner.current_revision()

    async def compact(self, revision: int) -> None:
        await self.inner.compact(revision)

    async def close(self) -> None:
        await self.inner.close()


async def test_the_default_serves_the_current_revision_only(tmp_path: Path) -> None:
    store = NoHistory(await SQLiteStorage.open(str(tmp_path / "db")))
    try:
        for name in "abc":
            await store.create(f"/d/{name}", b"v")
        first = await store.list_page("/d/", limit=2)
        assert [kv.key for kv in first.items] == ["/d/a", "/d/b"]
        assert (first.revision, first.more, first.count) == (3, True, 3)
        rest = await store.list_page("/d/", revision=3, start="/d/b\0", limit=2)
        assert ([kv.key for kv in rest.items], rest.more, rest.count) == (["/d/c"], False, 1)
        await store.create("/d/d", b"v")
        with pytest.raises(Compacted):
            await store.list_page("/d/", revision=3, start="/d/b\0", limit=2)
        with pytest.raises(StorageError, match="future revision"):
            await store.list_page("/d/", revision=9)
    finally:
        await store.close()
