"""The SQLite backend: the conformance suite, plus what only SQLite has.

SQLite-specific checks: the exclusive lock against a second server, lazy
open, compaction really dropping rows (in steps) and the background
compactor, the backend registry, and durability against SIGKILL of a child
process in the middle of a stream of acknowledged writes.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
from pathlib import Path

import pytest

from apiserver.storage import new_storage, open_storage
from apiserver.storage.interface import Compacted, Storage, StorageError
from apiserver.storage.sqlite import DB_FILE, SQLiteStorage
from apiserver.storage.sqlite_log import prefix_end

from .conformance import StorageConformance

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
