"""Events expire after --event-ttl, watchers see them go, and the database file shrinks back."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest
from google.protobuf import timestamp_pb2

from apimachinery import errors
from apimachinery.client import Client
from apimachinery.clock import FakeClock
from apiserver.registry.eventttl import DEFAULT_EVENT_TTL, EventReaper, last_activity
from apiserver.server import APIServer
from apiserver.storage.sqlite import SQLiteStorage
from protos import core_pb2

pytestmark = pytest.mark.timeout(60)


def stamp(seconds: float) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(int(seconds * 1e9))
    return ts


def event(name: str, last: float, note: str = "Pulled") -> core_pb2.Event:
    ev = core_pb2.Event(api_version="v1", kind="Event", reason=note, message=note, type="Normal")
    ev.metadata.name = name
    ev.metadata.namespace = "default"
    ev.involved_object.kind = "Pod"
    ev.involved_object.name = "web"
    ev.involved_object.namespace = "default"
    ev.first_timestamp.CopyFrom(stamp(last - 5))
    ev.last_timestamp.CopyFrom(stamp(last))
    ev.count = 1
    return ev


def test_last_activity_is_the_newest_timestamp() -> None:
    ev = event("e", 1000.0)
    ev.metadata.creation_timestamp.CopyFrom(stamp(900.0))
    assert last_activity(ev) == 1000.0
    ev.event_time.CopyFrom(stamp(2000.5))
    assert last_activity(ev) == 2000.5


async def test_expired_events_are_deleted_and_watchers_see_it(
    server: APIServer, client: Client
) -> None:
    assert server.event_reaper.ttl == DEFAULT_EVENT_TTL  # the API server runs one by default
    now = time.time()
    # The server stamps creationTimestamp (now): like etcd's lease, the TTL runs at least
    # from the write. "fresh" happened again later, so it lives longer.
    await client.create(event("old", now - 2 * 3600))
    await client.create(event("fresh", now + 1000))
    _, rv = await client.list(core_pb2.Event, "default")
    seen: list[tuple[str, str]] = []

    async def watch() -> None:
        async for ev in client.watch(core_pb2.Event, "default", resource_version=rv):
            seen.append((ev.type, ev.object.metadata.name))
            return

    watcher = asyncio.ensure_future(watch())
    await asyncio.sleep(0.2)
    reaper = EventReaper(server.storage, 3600, clock=FakeClock(wall=now + 3610))
    assert await reaper.reap_once() == 1
    await asyncio.wait_for(watcher, 5)
    assert seen == [("DELETED", "old")]
    with pytest.raises(errors.NotFound):
        await client.get(core_pb2.Event, "old", "default")
    assert (await client.get(core_pb2.Event, "fresh", "default")).reason == "Pulled"


async def test_an_event_that_repeats_is_kept(server: APIServer, client: Client) -> None:
    now = time.time()
    created = await client.create(event("repeats", now - 2 * 3600))
    created.count = 2
    created.last_timestamp.CopyFrom(stamp(now + 1000))  # the component saw it again
    await client.update(created)
    reaper = EventReaper(server.storage, 3600, clock=FakeClock(wall=now + 3610))
    assert await reaper.reap_once() == 0
    later = FakeClock(wall=now + 1000 + 3601)
    assert await EventReaper(server.storage, 3600, clock=later).reap_once() == 1


def test_a_ttl_must_be_positive() -> None:
    with pytest.raises(ValueError, match="event-ttl"):
        EventReaper(None, 0)  # type: ignore[arg-type]


async def test_the_file_shrinks_after_events_expire_and_compaction(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    store = await SQLiteStorage.open(str(path))
    try:
        for i in range(600):
            ev = event(f"e{i}", time.time() - 7200, note="x" * 2000)
            await store.create(f"/registry/events/default/e{i}", ev.SerializeToString())
        full = os.path.getsize(path) + os.path.getsize(f"{path}-wal")
        assert await EventReaper(store, 3600).reap_once() == 600
        await store.compact(await store.current_revision())
        after = os.path.getsize(path) + os.path.getsize(f"{path}-wal")
        assert after < full / 4, (full, after)
    finally:
        await store.close()
