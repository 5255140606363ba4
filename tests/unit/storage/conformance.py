"""The storage conformance suite: what every `Storage` backend must do.

A backend's test module subclasses `StorageConformance` and implements
`make_storage`; pytest collects the inherited tests (the base class's name
does not start with "Test", so it is never run on its own)::

    class TestSQLiteConformance(StorageConformance):
        async def make_storage(self, path, *, watch_buffer_size=1000):
            return await SQLiteStorage.open(str(path / "db"), watch_buffer_size=...)

`make_storage(path)` called again with the same `path` after `close()` must
reopen the same data: that is how the durability tests reopen a store.

The suite checks the contract in apiserver/storage/interface.py: compare-and-
swap writes, one strictly increasing revision, ordered gap-free duplicate-free
watches resumable from any kept revision, compaction, bounded watch buffers
and durability across reopen. The property test in watch_properties.py checks
the watch contract against a model for random histories; list_paging.py checks
lists read in pages at a revision (the snapshot Kubernetes' limit/continue
needs), against a model too; write_concurrency.py checks concurrent writes (a
failed compare-and-swap among writes committed together, revisions against
acknowledgement order, many writers at once).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from apiserver.storage.interface import (
    Compacted,
    Event,
    EventType,
    KeyExists,
    KeyNotFound,
    RevisionMismatch,
    Storage,
    WatcherTooSlow,
)

from .list_paging import ListPaging
from .watch_properties import WatchProperties
from .write_concurrency import WriteConcurrency

TIMEOUT = 5.0


async def take(events: AsyncIterator[Event], n: int, timeout: float = TIMEOUT) -> list[Event]:
    """The next `n` events of a raw iterator, failing the test if they do not come in time."""
    out: list[Event] = []
    for _ in range(n):
        out.append(await asyncio.wait_for(events.__anext__(), timeout))
    return out


class Follower:
    """Drains a watch into a queue from a task, so a test can wait for events or
    for silence without cancelling the watch's own iteration (cancelling a
    pending `__anext__` ends an async generator for good)."""

    def __init__(self, events: AsyncIterator[Event]) -> None:
        self.queue: asyncio.Queue[Event | Exception | None] = asyncio.Queue()
        self.task = asyncio.ensure_future(self._pump(events))

    async def _pump(self, events: AsyncIterator[Event]) -> None:
        try:
            async for event in events:
                self.queue.put_nowait(event)
            self.queue.put_nowait(None)
        except Exception as err:
            self.queue.put_nowait(err)

    async def take(self, n: int, timeout: float = TIMEOUT) -> list[Event]:
        out: list[Event] = []
        for _ in range(n):
            item = await asyncio.wait_for(self.queue.get(), timeout)
            if isinstance(item, Exception):
                raise item
            if item is None:
                raise AssertionError(f"watch ended after {len(out)} of {n} events")
            out.append(item)
        return out

    async def quiet(self, wait: float = 0.05) -> None:
        """Nothing more arrives within `wait` seconds."""
        await asyncio.sleep(wait)
        assert self.queue.empty(), f"unexpected event: {self.queue.get_nowait()}"

    async def ended(self, timeout: float = TIMEOUT) -> bool:
        await asyncio.wait_for(asyncio.shield(self.task), timeout)
        return self.queue.qsize() == 1 and self.queue.get_nowait() is None

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


def summary(events: list[Event]) -> list[tuple[str, str, bytes, int]]:
    return [(e.type.value, e.key, e.value, e.revision) for e in events]


class StorageConformance(ListPaging, WatchProperties, WriteConcurrency):
    """The shared suite. Override `make_storage`."""

    async def make_storage(self, path: Path, *, watch_buffer_size: int = 1000) -> Storage:
        raise NotImplementedError

    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[Storage]:
        s = await self.make_storage(tmp_path)
        yield s
        await s.close()

    # ------------------------------------------------------------ key values

    async def test_create_then_get(self, store: Storage) -> None:
        assert await store.current_revision() == 0
        kv = await store.create("/registry/pods/default/web", b"v1")
        assert (kv.key, kv.value) == ("/registry/pods/default/web", b"v1")
        assert kv.create_revision == kv.mod_revision == await store.current_revision() > 0
        assert await store.get("/registry/pods/default/web") == kv
        assert await store.get("/registry/pods/default/nope") is None

    async def test_create_existing_raises_key_exists_and_changes_nothing(
        self, store: Storage
    ) -> None:
        kv = await store.create("/k", b"first")
        with pytest.raises(KeyExists) as info:
            await store.create("/k", b"second")
        assert info.value.key == "/k"
        assert await store.get("/k") == kv
        assert await store.current_revision() == kv.mod_revision

    async def test_update_keeps_create_revision_and_advances_mod_revision(
        self, store: Storage
    ) -> None:
        created = await store.create("/k", b"1")
        updated = await store.update("/k", b"2", created.mod_revision)
        assert updated.value == b"2"
        assert updated.create_revision == created.create_revision
        assert updated.mod_revision > created.mod_revision
        unconditional = await store.update("/k", b"3", None)
        assert unconditional.mod_revision > updated.mod_revision
        assert await store.get("/k") == unconditional

    async def test_missing_key_raises_key_not_found(self, store: Storage) -> None:
        with pytest.raises(KeyNotFound):
            await store.update("/missing", b"x", None)
        with pytest.raises(KeyNotFound):
            await store.delete("/missing")
        assert await store.current_revision() == 0

    async def test_stale_revision_raises_mismatch_and_changes_nothing(self, store: Storage) -> None:
        v1 = await store.create("/k", b"1")
        v2 = await store.update("/k", b"2", v1.mod_revision)
        with pytest.raises(RevisionMismatch) as info:
            await store.update("/k", b"3", v1.mod_revision)
        assert (info.value.expected, info.value.actual) == (v1.mod_revision, v2.mod_revision)
        with pytest.raises(RevisionMismatch):
            await store.delete("/k", v1.mod_revision)
        assert await store.get("/k") == v2
        assert await store.current_revision() == v2.mod_revision

    async def test_delete_returns_last_value_at_deletion_revision(self, store: Storage) -> None:
        v1 = await store.create("/k", b"1")
        v2 = await store.update("/k", b"2", None)
        gone = await store.delete("/k", v2.mod_revision)
        assert gone.value == b"2"
        assert gone.create_revision == v1.create_revision
        assert gone.mod_revision == await store.current_revision() > v2.mod_revision
        assert await store.get("/k") is None
        again = await store.create("/k", b"new")
        assert again.create_revision == again.mod_revision > gone.mod_revision

    async def test_revisions_strictly_increase_across_keys(self, store: Storage) -> None:
        revisions = []
        for i in range(5):
            revisions.append((await store.create(f"/a/{i}", b"x")).mod_revision)
            revisions.append((await store.update(f"/a/{i}", b"y", None)).mod_revision)
        revisions.append((await store.delete("/a/0")).mod_revision)
        assert revisions == sorted(set(revisions))
        assert await store.current_revision() == revisions[-1]

    async def test_list_by_prefix_in_key_order_with_revision(self, store: Storage) -> None:
        for key in ["/r/pods/b", "/r/pods/a", "/r/podsx/c", "/r/services/a", "/r/pods/c"]:
            await store.create(key, key.encode())
        await store.delete("/r/pods/c")
        items, revision = await store.list("/r/pods/")
        assert [kv.key for kv in items] == ["/r/pods/a", "/r/pods/b"]
        assert all(kv.value == kv.key.encode() for kv in items)
        assert revision == await store.current_revision()
        everything, _ = await store.list("")
        assert len(everything) == 4
        assert await store.list("/nothing/") == ([], revision)

    # ----------------------------------------------------------------- watch

    async def _history(self, store: Storage) -> list[int]:
        """A small history on /w/ and /x/; returns the revisions written."""
        revs = [
            (await store.create("/w/a", b"a1")).mod_revision,
            (await store.create("/x/z", b"z1")).mod_revision,
            (await store.update("/w/a", b"a2", None)).mod_revision,
            (await store.create("/w/b", b"b1")).mod_revision,
            (await store.delete("/w/a")).mod_revision,
        ]
        return revs

    async def test_watch_from_zero_replays_everything_with_event_types(
        self, store: Storage
    ) -> None:
        revs = await self._history(store)
        events = await take(store.watch("", 0), 5)
        assert summary(events) == [
            ("ADDED", "/w/a", b"a1", revs[0]),
            ("ADDED", "/x/z", b"z1", revs[1]),
            ("MODIFIED", "/w/a", b"a2", revs[2]),
            ("ADDED", "/w/b", b"b1", revs[3]),
            ("DELETED", "/w/a", b"a2", revs[4]),
        ]
        assert events[2].prev_value == b"a1"
        assert events[4].create_revision == revs[0]

    async def test_watch_from_middle_revision(self, store: Storage) -> None:
        revs = await self._history(store)
        watch = Follower(store.watch("/w/", revs[2]))
        events = await watch.take(2)
        assert [(e.type, e.revision) for e in events] == [
            (EventType.ADDED, revs[3]),
            (EventType.DELETED, revs[4]),
        ]
        live = await store.create("/w/c", b"c1")
        assert [e.revision for e in await watch.take(1)] == [live.mod_revision]
        await watch.quiet()

    async def test_watch_from_current_revision_sees_only_new_writes(self, store: Storage) -> None:
        await self._history(store)
        watch = Follower(store.watch("", await store.current_revision()))
        await watch.quiet()
        kv = await store.create("/w/new", b"n")
        assert summary(await watch.take(1)) == [("ADDED", "/w/new", b"n", kv.mod_revision)]

    async def test_watch_filters_by_prefix(self, store: Storage) -> None:
        watch = Follower(store.watch("/w/", 0))
        await store.create("/wx/1", b"sibling, not a child")
        await store.create("/x/1", b"other")
        kv = await store.create("/w/1", b"mine")
        assert summary(await watch.take(1)) == [("ADDED", "/w/1", b"mine", kv.mod_revision)]
        await watch.quiet()

    async def test_deleted_event_carries_last_value(self, store: Storage) -> None:
        watch = Follower(store.watch("/d/", await store.current_revision()))
        await store.create("/d/k", b"v1")
        await store.update("/d/k", b"last", None)
        gone = await store.delete("/d/k")
        events = await watch.take(3)
        assert [e.type for e in events] == [
            EventType.ADDED,
            EventType.MODIFIED,
            EventType.DELETED,
        ]
        assert (events[2].value, events[2].revision) == (b"last", gone.mod_revision)

    async def test_watch_under_concurrent_writers_is_ordered_and_complete(
        self, store: Storage
    ) -> None:
        watch = Follower(store.watch("/c/", await store.current_revision()))
        await asyncio.sleep(0)

        async def writer(w: int) -> list[int]:
            return [(await store.create(f"/c/{w}/{i}", b"x")).mod_revision for i in range(10)]

        batches = await asyncio.gather(*(writer(w) for w in range(8)))
        written = sorted(r for batch in batches for r in batch)
        assert [e.revision for e in await watch.take(len(written))] == written
        await watch.quiet()

    async def test_close_ends_watches(self, tmp_path: Path) -> None:
        store = await self.make_storage(tmp_path)
        await store.create("/a", b"1")
        watches = [Follower(store.watch("", 0)) for _ in range(3)]
        for watch in watches:
            assert len(await watch.take(1)) == 1
        await store.close()
        for watch in watches:
            assert await watch.ended()

    # -------------------------------------------------------- concurrency

    async def test_concurrent_writers_with_same_expected_revision_one_wins(
        self, store: Storage
    ) -> None:
        base = await store.create("/cas", b"0")

        async def attempt(i: int) -> bool:
            try:
                await store.update("/cas", f"{i}".encode(), base.mod_revision)
                return True
            except RevisionMismatch:
                return False

        results = await asyncio.gather(*(attempt(i) for i in range(20)))
        assert results.count(True) == 1
        kv = await store.get("/cas")
        assert kv is not None and kv.value == str(results.index(True)).encode()

    async def test_counter_with_retry_on_mismatch_counts_exactly(self, store: Storage) -> None:
        await store.create("/counter", b"0")
        tasks, increments = 8, 10

        async def incrementer() -> None:
            for _ in range(increments):
                while True:
                    kv = await store.get("/counter")
                    assert kv is not None
                    try:
                        await store.update("/counter", b"%d" % (int(kv.value) + 1), kv.mod_revision)
                        break
                    except RevisionMismatch:
                        continue

        await asyncio.gather(*(incrementer() for _ in range(tasks)))
        kv = await store.get("/counter")
        assert kv is not None and int(kv.value) == tasks * increments

    # ------------------------------------------------------------ compaction

    async def test_compaction_expires_old_revisions_and_keeps_current_values(
        self, store: Storage
    ) -> None:
        for i in range(10):
            await store.create(f"/k/{i}", b"v0")
        for i in range(10):
            await store.update(f"/k/{i}", b"v1", None)
        await store.delete("/k/9")
        compact_at = await store.current_revision() - 5
        await store.compact(compact_at)

        with pytest.raises(Compacted) as info:
            await asyncio.wait_for(store.watch("/k/", compact_at - 1).__anext__(), 1.0)
        assert info.value.requested == compact_at - 1
        with pytest.raises(Compacted):
            await asyncio.wait_for(store.watch("", 0).__anext__(), 1.0)

        events = await take(store.watch("/k/", compact_at), 5)
        assert [e.revision for e in events] == list(range(compact_at + 1, compact_at + 6))
        assert events[0].prev_value == b"v0"  # the value at the compaction point is kept
        assert events[-1].type is EventType.DELETED and events[-1].value == b"v1"

        items, _ = await store.list("/k/")
        assert [(kv.key, kv.value) for kv in items] == [(f"/k/{i}", b"v1") for i in range(9)]
        revision = await store.current_revision()
        await store.compact(revision)
        await store.compact(revision - 3)  # going backwards is a no-op
        with pytest.raises(Compacted):
            await asyncio.wait_for(store.watch("", revision - 1).__anext__(), 1.0)
        watch = Follower(store.watch("", revision))
        kv = await store.update("/k/0", b"v2", None)
        assert [e.revision for e in await watch.take(1)] == [kv.mod_revision]

    # ------------------------------------------------------- slow watchers

    async def test_slow_watcher_is_cut_off_while_others_keep_up(self, tmp_path: Path) -> None:
        store = await self.make_storage(tmp_path, watch_buffer_size=20)
        try:
            start = await store.current_revision()
            slow = store.watch("/s/", start)
            fast = store.watch("/s/", start)
            slow_first = asyncio.ensure_future(slow.__anext__())
            seen: list[int] = []

            async def follow() -> None:
                async for event in fast:
                    seen.append(event.revision)
                    if len(seen) == 100:
                        return

            follower = asyncio.ensure_future(follow())
            await asyncio.sleep(0.01)
            written = []
            for i in range(100):
                written.append((await store.create(f"/s/{i}", b"x")).mod_revision)
            await asyncio.wait_for(follower, TIMEOUT)
            assert seen == written

            first = await asyncio.wait_for(slow_first, TIMEOUT)
            assert first.revision == written[0]
            with pytest.raises(WatcherTooSlow) as info:
                await take(slow, 100)
            resume_from = info.value.last_revision
            assert written[0] <= resume_from < written[-1]
            resumed = await take(store.watch("/s/", resume_from), 1)
            assert resumed[0].revision == written[written.index(resume_from) + 1]
        finally:
            await store.close()

    # ------------------------------------------------------------ durability

    async def test_reopen_keeps_data_and_revision(self, tmp_path: Path) -> None:
        store = await self.make_storage(tmp_path)
        kv = await store.create("/keep", b"v")
        await store.create("/gone", b"v")
        last = await store.delete("/gone")
        await store.close()

        store = await self.make_storage(tmp_path)
        try:
            assert await store.get("/keep") == kv
            assert await store.current_revision() == last.mod_revision
            events = await take(store.watch("", 0), 3)
            assert [e.type for e in events][-1] is EventType.DELETED
            nxt = await store.create("/next", b"v")
            assert nxt.mod_revision == last.mod_revision + 1
        finally:
            await store.close()

    async def test_revision_never_goes_back_after_everything_is_deleted_and_compacted(
        self, tmp_path: Path
    ) -> None:
        store = await self.make_storage(tmp_path)
        await store.create("/a", b"1")
        await store.update("/a", b"2", None)
        gone = await store.delete("/a")
        await store.compact(gone.mod_revision)
        await store.close()

        store = await self.make_storage(tmp_path)
        try:
            assert await store.current_revision() == gone.mod_revision
            assert await store.list("") == ([], gone.mod_revision)
            with pytest.raises(Compacted):
                await asyncio.wait_for(store.watch("", 0).__anext__(), 1.0)
            assert (await store.create("/a", b"3")).mod_revision == gone.mod_revision + 1
        finally:
            await store.close()
