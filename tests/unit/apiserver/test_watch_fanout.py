"""Watch fan-out under many watchers: shared events and encodings, coalesced wake-ups, and
unconditional updates of one key queued instead of retried (registry/watch.py,
storage/watchcache.py, registry/store.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from apimachinery import scheme
from apiserver import servicer
from apiserver.registry.store import Store
from apiserver.registry.watch import ApiBatch, watch
from apiserver.storage import watchcache
from apiserver.storage.interface import Event, EventType, KeyValue
from apiserver.storage.sqlite import SQLiteStorage
from protos import api_pb2, core_pb2

from .objects import configmap


class CountingStorage(SQLiteStorage):
    """SQLite, counting the update attempts that reach the store."""

    updates = 0

    async def update(self, key: str, value: bytes, expected_revision: int | None) -> KeyValue:
        self.updates += 1
        return await super().update(key, value, expected_revision)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    storage = await CountingStorage.open(str(tmp_path / "db"))
    registry = Store(storage)
    try:
        await registry.start()  # seeds the default namespace
        yield registry
    finally:
        await registry.close()
        await storage.close()


async def _take(stream: AsyncIterator[ApiBatch], events: int) -> list[ApiBatch]:
    batches: list[ApiBatch] = []
    while sum(len(b.events) for b in batches) < events:
        batches.append(await asyncio.wait_for(stream.__anext__(), 10))
    return batches


async def test_watchers_with_one_selector_share_each_event_and_its_encoding(store: Store) -> None:
    info = scheme.for_resource("configmaps")
    start = str(await store.storage.current_revision())
    streams = [watch(store, info, "default", start, "app=a") for _ in range(3)]
    firsts = [asyncio.ensure_future(s.__anext__()) for s in streams]
    await asyncio.sleep(0.05)  # every watch subscribed before the writes
    labelled = configmap("one")
    labelled.metadata.labels["app"] = "a"
    created = await store.create(labelled)
    added_at = int(created.metadata.resource_version)
    await store.create(configmap("other"))  # outside the selected set: nobody sees it
    created.metadata.labels["app"] = "b"
    moved = await store.update(created)  # leaves the set: DELETED for these watchers
    seen = []
    for stream, first in zip(streams, firsts, strict=True):
        batches = [await asyncio.wait_for(first, 10), *await _take(stream, 1)]
        seen.append([ev for b in batches for ev in b.events])
        await stream.aclose()  # type: ignore[attr-defined]
    assert [(ev.type, ev.revision) for ev in seen[0]] == [
        ("ADDED", added_at),
        ("DELETED", int(moved.metadata.resource_version)),
    ]
    for other in seen[1:]:  # the very same objects: filtered and packed once
        assert all(a is b for a, b in zip(seen[0], other, strict=True))

    # The shared wire form is what building the message field by field gives.
    batch = ApiBatch(seen[0], seen[0][-1].revision)
    expected = api_pb2.WatchResponse()
    for ev in seen[0]:
        expected.events.add(type=ev.type, object=ev.object, resource_version=str(ev.revision))
    assert servicer._response(batch) == expected
    single = ApiBatch(seen[0][:1], seen[0][0].revision)
    assert servicer._response(single) is servicer._response(single)  # one per event
    assert servicer._response(single) == api_pb2.WatchResponse(events=expected.events[:1])


async def test_wake_ups_are_coalesced_into_one_batch_per_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(watchcache, "WAKE_COST", 0.01)
    monkeypatch.setattr(watchcache, "MAX_WINDOW", 0.3)  # 50 watchers: a 0.3 s window

    async def no_history(prefix: str, after: int, limit: int) -> tuple[list[Event], int, bool]:
        return [], after, False

    hub = watchcache.WatchHub(0, 0)
    streams = [hub.watch_batches("/k/", 0, no_history) for _ in range(50)]

    def event(rev: int) -> Event:
        return Event(EventType.ADDED, f"/k/{rev}", b"v", rev, rev)

    pending = [asyncio.ensure_future(s.__anext__()) for s in streams]
    await asyncio.sleep(0.01)
    hub.dispatch(event(1))  # after a quiet spell: flushed at once
    first = await asyncio.wait_for(asyncio.gather(*pending), 10)
    assert all([e.revision for e in b] == [1] for b in first)

    pending = [asyncio.ensure_future(s.__anext__()) for s in streams]
    await asyncio.sleep(0.01)  # every watcher waiting (one that asks finds its buffer at once)
    sent = time.monotonic()
    for rev in (2, 3, 4):  # inside the window the flush waits, and they travel together
        hub.dispatch(event(rev))
    second = await asyncio.wait_for(asyncio.gather(*pending), 10)
    assert time.monotonic() - sent >= 0.2
    assert all([e.revision for e in b] == [2, 3, 4] for b in second)
    assert hub.watcher_count == 50
    for s in streams:
        await s.aclose()
    assert hub.watcher_count == 0
    hub.close()


async def test_unconditional_updates_of_one_key_queue_instead_of_retrying(store: Store) -> None:
    await store.create(configmap("hot", n="0"))
    storage = store.storage
    assert isinstance(storage, CountingStorage)
    before = storage.updates

    async def bump(i: int) -> str:
        cm = configmap("hot", n=str(i + 1))  # no resourceVersion: unconditional
        return str((await store.update(cm)).metadata.resource_version)

    versions = await asyncio.gather(*(bump(i) for i in range(10)))
    assert len(set(versions)) == 10  # ten writes, each its own revision
    assert storage.updates - before == 10  # each first time right: no retry storm
    assert store._unconditional._queues == {}  # nothing left behind


async def test_two_stores_in_one_process_never_share_an_event(tmp_path: Path) -> None:
    """The same (revision, key) in two storages is two different events: each store's
    watchers get their own store's object, not one packed by the other store."""
    info = scheme.for_resource("configmaps")
    seen: list[str] = []
    for name in ("a", "b"):
        storage = await SQLiteStorage.open(str(tmp_path / name))
        registry = Store(storage)
        try:
            await registry.start()
            start = str(await storage.current_revision())
            stream = watch(registry, info, "default", start)
            first = asyncio.ensure_future(stream.__anext__())
            await asyncio.sleep(0.05)
            cm = configmap("same")
            cm.data["from"] = name
            await registry.create(cm)  # the same revision and key in both stores
            batch = await asyncio.wait_for(first, 10)
            obj = core_pb2.ConfigMap()
            batch.events[0].object.Unpack(obj)
            seen.append(obj.data["from"])
            await stream.aclose()  # type: ignore[attr-defined]
        finally:
            await registry.close()
            await storage.close()
    assert seen == ["a", "b"]
