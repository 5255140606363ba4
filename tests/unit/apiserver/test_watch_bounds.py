"""Watch memory is bounded: by bytes as well as events, and a long replay is read in chunks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any, cast

import pytest

from apiserver.storage.interface import EventType, KeyValue, WatcherTooSlow
from apiserver.storage.sqlite import SQLiteStorage
from apiserver.storage.watchcache import HISTORY_CHUNK

pytestmark = pytest.mark.timeout(60)
PREFIX = "/registry/configmaps/default/"


async def close(watch: object) -> None:
    """End a watch the way a consumer that stops does (the storage's iterators are generators)."""
    await cast(AsyncGenerator[Any, None], watch).aclose()


async def test_a_watcher_that_does_not_read_is_cut_off_by_bytes(tmp_path: Path) -> None:
    store = await SQLiteStorage.open(str(tmp_path / "w.db"), watch_buffer_bytes=100_000)
    try:
        watch = store.watch(PREFIX, await store.current_revision())
        first = asyncio.ensure_future(watch.__anext__())
        created = await store.create(PREFIX + "a", b"x" * 10)
        assert (await first).key == PREFIX + "a"
        # The consumer stops reading: 20 values of 10 kB pass 100 kB long before
        # the default count limit (10 000 events) would be reached.
        for i in range(20):
            await store.create(PREFIX + f"big{i}", b"y" * 10_000)
        assert store.watcher_count == 0  # cut off at once, its buffer dropped
        with pytest.raises(WatcherTooSlow) as caught:
            await watch.__anext__()
        assert caught.value.last_revision == created.mod_revision
        await close(watch)
        # It resumes from where it was, as a Kubernetes watcher re-watches.
        resumed = store.watch(PREFIX, caught.value.last_revision)
        seen = [(await resumed.__anext__()).key for _ in range(20)]
        assert seen == [PREFIX + f"big{i}" for i in range(20)]
        await close(resumed)
    finally:
        await store.close()


async def test_a_small_reader_of_big_events_keeps_up(tmp_path: Path) -> None:
    store = await SQLiteStorage.open(str(tmp_path / "k.db"), watch_buffer_bytes=50_000)
    try:
        watch = store.watch(PREFIX, await store.current_revision())
        for i in range(30):
            await store.create(PREFIX + f"c{i}", b"z" * 20_000)
            assert (await watch.__anext__()).key == PREFIX + f"c{i}"
        await close(watch)
    finally:
        await store.close()


async def test_a_long_history_is_replayed_in_order_chunk_by_chunk(tmp_path: Path) -> None:
    store = await SQLiteStorage.open(str(tmp_path / "h.db"))
    try:
        total = 3 * HISTORY_CHUNK + 17
        for i in range(total):
            await store.create(PREFIX + f"k{i:05d}", b"v")
            if i % 3 == 0:
                await store.create(f"/registry/secrets/default/s{i}", b"other prefix")
        batches = store.watch_batches(PREFIX, 0)
        seen: list[str] = []
        sizes: list[int] = []
        writer: asyncio.Task[KeyValue] | None = None
        async for batch in batches:
            sizes.append(len(batch))
            seen.extend(e.key for e in batch)
            assert all(e.type == EventType.ADDED for e in batch)
            if writer is None:  # a write lands while the replay is under way
                writer = asyncio.ensure_future(store.create(PREFIX + "zz-live", b"v"))
            if len(seen) == total + 1:
                break
        await close(batches)
        assert seen[:total] == [PREFIX + f"k{i:05d}" for i in range(total)]
        assert seen[total:] == [PREFIX + "zz-live"]  # once, after the history
        assert max(sizes) <= HISTORY_CHUNK
    finally:
        await store.close()
