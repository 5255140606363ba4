"""Concurrent writes, part of the storage conformance suite.

A backend may commit concurrent writes together (the SQLite backend's group
commit puts every write that arrives during one fsync into the next
transaction). Whatever it does, the contract seen by clients must hold:

* a write that fails its compare-and-swap fails alone: the writes around it,
  even ones committed in the same transaction, succeed, and the failed one
  takes no revision, so the successful revisions stay gap-free;
* revisions respect real time: a write issued after another write was
  acknowledged gets a larger revision (checked for many interleaved chains),
  and an acknowledged write is immediately visible to reads and watches;
* many concurrent writers get unique, gap-free revisions, and a watch sees
  every write once, in revision order, with the value it wrote.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from pathlib import Path

from apiserver.storage.interface import (
    EventType,
    KeyValue,
    RevisionMismatch,
    Storage,
)

TIMEOUT = 10.0


class WriteConcurrency:
    """Mixed into StorageConformance; needs its `make_storage`."""

    async def make_storage(self, path: Path, *, watch_buffer_size: int = 1000) -> Storage:
        raise NotImplementedError

    async def test_failed_cas_in_a_concurrent_group_fails_only_itself(self, tmp_path: Path) -> None:
        store = await self.make_storage(tmp_path)
        try:
            base = await store.create("/g/k", b"0")
            await store.create("/g/b", b"b")
            start = await store.current_revision()
            # Issued together: with group commit they share one transaction.
            results = await asyncio.gather(
                store.update("/g/k", b"first", base.mod_revision),
                store.update("/g/k", b"second", base.mod_revision),
                store.delete("/g/b"),
                store.create("/g/n", b"n"),
                store.update("/g/k", b"third", base.mod_revision),
                return_exceptions=True,
            )
            winners = [r for r in results[:2] + results[4:] if isinstance(r, KeyValue)]
            losers = [r for r in results[:2] + results[4:] if isinstance(r, RevisionMismatch)]
            assert len(winners) == 1 and len(losers) == 2
            for loser in losers:
                assert (loser.expected, loser.actual) == (
                    base.mod_revision,
                    winners[0].mod_revision,
                )
            deleted, created = results[2], results[3]
            assert isinstance(deleted, KeyValue) and deleted.value == b"b"
            assert isinstance(created, KeyValue) and created.value == b"n"
            revisions = sorted(kv.mod_revision for kv in [winners[0], deleted, created])
            assert revisions == [start + 1, start + 2, start + 3]  # losers took none
            assert await store.current_revision() == start + 3
            assert await store.get("/g/k") == winners[0]
            assert await store.get("/g/b") is None
            assert (await store.create("/g/after", b"a")).mod_revision == start + 4
            history = store.watch("/g/", start)
            events = [await asyncio.wait_for(history.__anext__(), TIMEOUT) for _ in range(4)]
            assert [e.revision for e in events] == [*revisions, start + 4]
        finally:
            await store.close()

    async def test_revisions_follow_acknowledgement_order(self, tmp_path: Path) -> None:
        store = await self.make_storage(tmp_path)
        try:
            acked_high = 0  # the largest revision acknowledged so far
            violations: list[tuple[int, int]] = []

            async def chain(c: int) -> None:
                nonlocal acked_high
                for i in range(15):
                    issued_after = acked_high
                    kv = await store.create(f"/o/{c}/{i}", b"x")
                    if kv.mod_revision <= issued_after:
                        violations.append((issued_after, kv.mod_revision))
                    # Acknowledged means visible: to reads and in the current revision.
                    assert await store.get(kv.key) == kv
                    assert await store.current_revision() >= kv.mod_revision
                    acked_high = max(acked_high, kv.mod_revision)

            await asyncio.wait_for(asyncio.gather(*(chain(c) for c in range(16))), TIMEOUT)
            assert violations == []
            assert acked_high == await store.current_revision() == 16 * 15
        finally:
            await store.close()

    async def test_many_concurrent_writers_get_gap_free_revisions(self, tmp_path: Path) -> None:
        store = await self.make_storage(tmp_path, watch_buffer_size=10000)
        try:
            writers, rounds = 64, 12
            watch = store.watch("/m/", 0)
            first = asyncio.ensure_future(watch.__anext__())
            await asyncio.sleep(0)
            written: dict[int, tuple[EventType, str, bytes]] = {}

            async def writer(w: int, pause: Callable[[], Awaitable[None]]) -> None:
                key = f"/m/{w}"
                value = b"0"
                kv = await store.create(key, value)
                written[kv.mod_revision] = (EventType.ADDED, key, value)
                for i in range(1, rounds):
                    await pause()
                    value = b"%d" % i
                    kv = await store.update(key, value, kv.mod_revision)
                    written[kv.mod_revision] = (EventType.MODIFIED, key, value)
                kv = await store.delete(key, kv.mod_revision)
                written[kv.mod_revision] = (EventType.DELETED, key, value)

            rng = random.Random(7)

            def jitter() -> Callable[[], Awaitable[None]]:
                delay = rng.choice([0.0, 0.0, 0.0005, 0.001])
                return lambda: asyncio.sleep(delay)

            tasks = [writer(w, jitter()) for w in range(writers)]
            await asyncio.wait_for(asyncio.gather(*tasks), TIMEOUT * 3)
            total = writers * (rounds + 1)
            assert sorted(written) == list(range(1, total + 1))
            assert await store.current_revision() == total
            assert await store.list("/m/") == ([], total)

            events = [await asyncio.wait_for(first, TIMEOUT)]
            while len(events) < total:
                events.append(await asyncio.wait_for(watch.__anext__(), TIMEOUT))
            assert [(e.type, e.key, e.value) for e in events] == [
                written[r] for r in range(1, total + 1)
            ]
            assert [e.revision for e in events] == list(range(1, total + 1))
        finally:
            await store.close()
