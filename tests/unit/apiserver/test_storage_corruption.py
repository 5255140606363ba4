"""A corrupt SQLite store is refused at open, naming the file and the way back (sqlite_check.py)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from apiserver.storage.sqlite import SQLiteStorage
from apiserver.storage.sqlite_check import StorageCorrupt

pytestmark = pytest.mark.timeout(60)


async def filled(path: Path, count: int = 200) -> None:
    """A store with `count` keys, some updated and one deleted, closed cleanly."""
    store = await SQLiteStorage.open(str(path))
    try:
        for i in range(count):
            await store.create(f"/registry/configmaps/default/c{i:04d}", b"x" * 200)
        for i in range(0, count, 7):
            await store.update(f"/registry/configmaps/default/c{i:04d}", b"y" * 200, None)
        await store.delete("/registry/configmaps/default/c0001")
    finally:
        await store.close()


def tamper(path: Path, sql: str) -> None:
    db = sqlite3.connect(str(path))
    try:
        db.execute(sql)
        db.commit()
    finally:
        db.close()


async def refused(path: Path) -> StorageCorrupt:
    with pytest.raises(StorageCorrupt) as caught:
        await SQLiteStorage.open(str(path))
    message = str(caught.value)
    assert str(path) in message
    assert "tinykube snapshot restore" in message
    return caught.value


async def test_a_healthy_store_reopens_with_everything(tmp_path: Path) -> None:
    path = tmp_path / "ok.db"
    await filled(path)
    store = await SQLiteStorage.open(str(path))
    try:
        items, revision = await store.list("/registry/configmaps/")
        assert len(items) == 199 and revision == 200 + 29 + 1
    finally:
        await store.close()


async def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not SQLite at all\n" * 400)
    err = await refused(path)
    assert any("not a database" in p for p in err.problems)


async def test_overwritten_pages_fail_the_integrity_check(tmp_path: Path) -> None:
    path = tmp_path / "torn.db"
    await filled(path, count=400)
    data = bytearray(path.read_bytes())
    page = 4096
    assert len(data) > 8 * page
    for start in range(2 * page, len(data) - page, 3 * page):  # leave the header page alone
        data[start + 16 : start + page - 16] = bytes((i * 37) % 251 for i in range(page - 32))
    path.write_bytes(bytes(data))
    await refused(path)


async def test_a_live_key_ahead_of_the_revision_counter(tmp_path: Path) -> None:
    path = tmp_path / "ahead.db"
    await filled(path)
    tamper(path, "UPDATE current SET mod_revision = 99999 WHERE key LIKE '%c0002'")
    err = await refused(path)
    assert any("c0002" in p and "99999" in p for p in err.problems)


async def test_a_live_key_whose_write_is_missing_from_the_log(tmp_path: Path) -> None:
    path = tmp_path / "hole.db"
    await filled(path)
    tamper(
        path,
        "DELETE FROM log WHERE revision ="
        " (SELECT mod_revision FROM current WHERE key LIKE '%c0003')",
    )
    err = await refused(path)
    assert any("c0003" in p and "no such write" in p for p in err.problems)


async def test_a_compaction_mark_beyond_the_revision(tmp_path: Path) -> None:
    path = tmp_path / "compacted.db"
    await filled(path)
    tamper(path, "INSERT OR REPLACE INTO meta (name, value) VALUES ('compacted', 123456)")
    err = await refused(path)
    assert any("compacted revision 123456" in p for p in err.problems)
