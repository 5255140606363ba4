"""The etcd backend's watch cache (apiserver/storage/etcd_cacher.py), on a real etcd member.

* Many watchers on one server share that server's one etcd watch, and a
  write through another server (its own store, its own cache) reaches them.
* A watch from the past replays history from a short-lived etcd watch and
  joins the cache's live stream without a gap or a duplicate while writes
  go on; the replay's stream is closed once joined.
* When the cache's etcd watch is lost for good (etcd gone for longer than
  `request_timeout`), every watcher is cut off with WatcherTooSlow at the
  last revision it delivered, and once etcd is back the cache follows it
  again and the watchers resume from there without missing an event.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from apiserver.storage.etcd import EtcdStorage
from apiserver.storage.etcd_client import EtcdConfig
from apiserver.storage.interface import Event, WatcherTooSlow

from .conformance import Follower, take
from .etcd_server import EtcdServer, needs_etcd

pytestmark = needs_etcd
TIMEOUT = 10.0


async def eventually(check: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


@pytest.fixture
async def store(etcd_server: EtcdServer) -> AsyncIterator[EtcdStorage]:
    s = EtcdStorage(EtcdConfig((etcd_server.endpoint,), dial_timeout=0.5))
    try:
        yield s
    finally:
        await s.close()


async def test_watchers_share_one_etcd_watch_and_see_another_servers_writes(
    etcd_server: EtcdServer, store: EtcdStorage
) -> None:
    other = EtcdStorage(EtcdConfig((etcd_server.endpoint,), dial_timeout=0.5))
    watches: list[Follower] = []
    try:
        start = await store.current_revision()
        watches = [Follower(store.watch(f"/p/{i % 3}/", start)) for i in range(30)]
        await eventually(lambda: store.watcher_count == 30)
        written = [(await other.create(f"/p/{i % 3}/k{i}", b"v")).mod_revision for i in range(6)]
        for i, watch in enumerate(watches):
            got = await watch.take(2)
            assert [e.revision for e in got] == written[i % 3 :: 3]
            assert {e.key for e in got} == {f"/p/{i % 3}/k{j}" for j in range(i % 3, 6, 3)}
        assert store._client.watch_streams == 1  # one etcd watch for the 30
        assert other._client.watch_streams == 0  # the writer's server watches nothing
    finally:
        for watch in watches:
            await watch.stop()
        await other.close()


async def test_a_watch_from_the_past_joins_the_live_stream_without_gap_or_repeat(
    store: EtcdStorage,
) -> None:
    live = Follower(store.watch("", await store.current_revision()))  # starts the cache
    await eventually(lambda: store.watcher_count == 1)
    written: list[tuple[int, str]] = []

    async def write(n: int, offset: int) -> None:
        for i in range(offset, offset + n):
            key = f"/j/{i}" if i % 2 else f"/o/{i}"  # the other prefix interleaves
            written.append(((await store.create(key, b"x")).mod_revision, key))

    await write(30, 0)
    last = written[-1][0]
    await eventually(lambda: store.cacher.hub.revision >= last)
    after = written[6][0]
    streams = store._client.watch_streams
    writer = asyncio.ensure_future(write(60, 30))  # writes go on while the replay runs
    await asyncio.sleep(0.01)
    watch = store.watch("/j/", after)
    got: list[Event] = []
    try:
        got.extend(await take(watch, 5))
        await asyncio.wait_for(writer, TIMEOUT)
        end = (await store.create("/j/~end", b"end")).mod_revision
        while got[-1].revision < end:
            got.extend(await take(watch, 1))
    finally:
        await watch.aclose()  # type: ignore[attr-defined]
        await live.stop()
    expected = [(r, k) for r, k in written if r > after and k.startswith("/j/")]
    assert [(e.revision, e.key) for e in got] == [*expected, (end, "/j/~end")]
    assert store._client.watch_streams == streams + 1  # one replay stream
    assert store.cacher.replays == 0  # and it was closed at the join


async def test_a_lost_cache_watch_cuts_watchers_off_and_the_cache_recovers(
    etcd_server: EtcdServer,
) -> None:
    config = EtcdConfig((etcd_server.endpoint,), dial_timeout=0.2, request_timeout=1.0)
    store = EtcdStorage(config)
    try:
        start = await store.current_revision()
        watches = [store.watch("/c/", start) for _ in range(3)]
        firsts = [asyncio.ensure_future(w.__anext__()) for w in watches]
        await eventually(lambda: store.watcher_count == 3)
        seen = (await store.create("/c/a", b"1")).mod_revision
        assert [(await asyncio.wait_for(f, TIMEOUT)).revision for f in firsts] == [seen] * 3

        await asyncio.to_thread(etcd_server.stop)
        for watch in watches:  # etcd gone past request_timeout: cut off, resumable
            with pytest.raises(WatcherTooSlow) as info:
                await asyncio.wait_for(watch.__anext__(), TIMEOUT)
            assert info.value.last_revision == seen
        assert store.watcher_count == 0 and store.cacher.restarts == 1

        await asyncio.to_thread(etcd_server.start)
        await eventually(lambda: store.cacher.ready)
        more = [(await store.create(f"/c/{i}", b"2")).mod_revision for i in range(3)]
        resumed = [Follower(store.watch("/c/", seen)) for _ in range(3)]
        fresh = Follower(store.watch("/c/", more[-1]))
        for follower in resumed:
            assert [e.revision for e in await follower.take(3)] == more
        later = (await store.create("/c/later", b"3")).mod_revision
        for follower in [*resumed, fresh]:
            assert [e.revision for e in await follower.take(1)] == [later]
            await follower.quiet()
            await follower.stop()
    finally:
        await store.close()
