"""The etcd backend: what only etcd has, on a real etcd member.

The shared conformance suite runs on etcd in
tests/integration/storage/test_etcd_conformance.py (it takes a minute); here:
the spec and TLS flags, failover to the next endpoint, a watch that survives a
member restart, a write while etcd is down, a watcher cut off by bytes, the
shared compactor's rounds between two API servers, and leases. TLS is in
test_etcd_tls.py, the API server on etcd in test_etcd_apiserver.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from apiserver.storage import new_storage, open_storage, parse_spec, storage_spec
from apiserver.storage.etcd import EtcdStorage
from apiserver.storage.etcd_client import COMPACT_REV_KEY, EtcdConfig, EtcdUnavailable
from apiserver.storage.interface import (
    Compacted,
    EventType,
    StorageError,
    WatcherTooSlow,
)
from protos import etcd_pb2 as pb

from .conformance import Follower, take
from .etcd_server import EtcdServer, _free_port, needs_etcd


@pytest.fixture
async def store(etcd_server: EtcdServer) -> AsyncIterator[EtcdStorage]:
    s = EtcdStorage(EtcdConfig((etcd_server.endpoint,), dial_timeout=0.5))
    try:
        yield s
    finally:
        await s.close()


# ---------------------------------------------------------------- the spec


def test_specs_name_backends_and_etcd_endpoints() -> None:
    assert parse_spec("sqlite") == ("sqlite", "")
    assert parse_spec("sqlite:/var/lib/db") == ("sqlite", "/var/lib/db")
    assert parse_spec("etcd://a:2379,b:2379") == ("etcd", "etcd://a:2379,b:2379")
    config = EtcdConfig.parse("etcd://10.0.0.1:2379, 10.0.0.2:2379")
    assert config.endpoints == ("10.0.0.1:2379", "10.0.0.2:2379") and not config.tls
    for bad, why in [
        ("etcd://", "no endpoints"),
        ("etcd://host", "not HOST:PORT"),
        ("etcd://host:99999", "not HOST:PORT"),
        ("etcd://h:1?cafile=x&user=root", "unknown option"),
        ("etcd://h:1?certfile=c&keyfile=k", "needs --etcd-cafile"),
        ("etcd://h:1?cafile=a&certfile=c", "go together"),
    ]:
        with pytest.raises(StorageError, match=why):
            EtcdConfig.parse(bad)
    with pytest.raises(StorageError, match="path after sqlite: is empty"):
        parse_spec("sqlite:")


def test_tls_flags_fold_into_the_etcd_spec(tmp_path: Path) -> None:
    spec = storage_spec(
        "etcd://h:2379", etcd_cafile="/p/ca.crt", etcd_certfile="/p/c.crt", etcd_keyfile="/p/c.key"
    )
    config = EtcdConfig.parse(spec)
    assert (config.endpoints, config.cafile, config.certfile, config.keyfile) == (
        ("h:2379",),
        "/p/ca.crt",
        "/p/c.crt",
        "/p/c.key",
    )
    assert storage_spec("sqlite") == "sqlite"
    with pytest.raises(StorageError, match="need an etcd:// --storage"):
        storage_spec("sqlite", etcd_cafile="/p/ca.crt")
    with pytest.raises(StorageError, match="cannot read --etcd-cafile"):
        new_storage(f"etcd://h:2379?cafile={tmp_path}/missing.crt", str(tmp_path))


async def test_sqlite_path_spec_names_the_database_file(tmp_path: Path) -> None:
    store = await open_storage(f"sqlite:{tmp_path}/elsewhere.db", str(tmp_path / "data"))
    try:
        assert store.name == "sqlite" and (tmp_path / "elsewhere.db").exists()
    finally:
        await store.close()


# --------------------------------------------------------------- failover


@needs_etcd
async def test_open_storage_connects_to_the_spec(etcd_server: EtcdServer, tmp_path: Path) -> None:
    store = await open_storage(f"etcd://{etcd_server.endpoint}", str(tmp_path))
    try:
        assert isinstance(store, EtcdStorage) and store.name == "etcd"
        assert await store.current_revision() == 0
        assert (await store.create("/a", b"1")).mod_revision == 1
    finally:
        await store.close()


@needs_etcd
async def test_calls_fail_over_to_the_next_endpoint(etcd_server: EtcdServer) -> None:
    dead = f"127.0.0.1:{_free_port()}"
    store = EtcdStorage(EtcdConfig((dead, etcd_server.endpoint), dial_timeout=0.5))
    try:
        watch = Follower(store.watch("/f/", 0))
        kv = await store.create("/f/a", b"1")
        assert await store.get("/f/a") == kv
        assert (await store.list("/f/"))[0] == [kv]
        assert [e.revision for e in await watch.take(1)] == [kv.mod_revision]
        await watch.stop()
        assert store._client.current_endpoint == etcd_server.endpoint
    finally:
        await store.close()


@needs_etcd
async def test_a_refusing_endpoint_is_skipped_without_waiting_out_the_dial_timeout(
    etcd_server: EtcdServer,
) -> None:
    # A killed member refuses connections: the live one after it is tried at once, not
    # after `dial_timeout` (the 5 s that followed etcd's 7 s "request timed out" when
    # an etcd leader was killed under writes: tests/unit/storage/test_etcd_cluster.py).
    dead = f"127.0.0.1:{_free_port()}"
    store = EtcdStorage(EtcdConfig((dead, etcd_server.endpoint), dial_timeout=60.0))
    try:
        started = time.monotonic()
        kv = await store.create("/s/a", b"1")
        assert time.monotonic() - started < 30.0, "waited on the refusing endpoint"
        assert await store.get("/s/a") == kv
        assert store._client.current_endpoint == etcd_server.endpoint
    finally:
        await store.close()


@needs_etcd
async def test_watch_resumes_across_a_member_restart(
    etcd_server: EtcdServer, store: EtcdStorage
) -> None:
    written = [(await store.create(f"/r/{i}", b"x")).mod_revision for i in range(3)]
    watch = Follower(store.watch("/r/", 0))
    assert [e.revision for e in await watch.take(3)] == written
    await asyncio.to_thread(etcd_server.stop)
    with pytest.raises(EtcdUnavailable):  # down: the write is refused, not left hanging
        await store.create("/r/down", b"x")
    await asyncio.to_thread(etcd_server.start)
    more = [(await store.create(f"/r/{i}", b"y")).mod_revision for i in range(3, 6)]
    events = await watch.take(3)
    assert [(e.type, e.revision) for e in events] == [(EventType.ADDED, r) for r in more]
    await watch.quiet()
    await watch.stop()


@needs_etcd
async def test_a_watcher_is_cut_off_by_bytes_as_well_as_events(etcd_server: EtcdServer) -> None:
    store = EtcdStorage(EtcdConfig((etcd_server.endpoint,)), watch_buffer_bytes=4096)
    try:
        slow = store.watch("/big/", await store.current_revision())
        first = asyncio.ensure_future(slow.__anext__())
        written = [(await store.create("/big/0", b"x" * 1024)).mod_revision]
        assert (await asyncio.wait_for(first, 5)).revision == written[0]  # the watch is live
        for i in range(1, 10):  # ~1 KiB each: the buffer passes 4 KiB after four
            written.append((await store.create(f"/big/{i}", b"x" * 1024)).mod_revision)
        with pytest.raises(WatcherTooSlow) as info:
            await take(slow, 9)
        assert info.value.last_revision == written[0]
        resumed = await take(store.watch("/big/", info.value.last_revision), 9)
        assert [e.revision for e in resumed] == written[1:]
    finally:
        await store.close()


# ------------------------------------------------------------- compaction


@needs_etcd
async def test_one_compactor_per_interval_among_servers(
    etcd_server: EtcdServer, store: EtcdStorage
) -> None:
    other = EtcdStorage(EtcdConfig((etcd_server.endpoint,)))
    try:
        await store.create("/c/a", b"0")
        version, recorded = await store.compact_round(0, 0)  # first round: nothing to compact
        assert version == 1
        lost_version, _ = await other.compact_round(0, 0)  # same interval: the other one lost
        assert lost_version == 1
        for i in range(5):
            await store.update("/c/a", b"%d" % i, None)
        version, _ = await store.compact_round(version, recorded)  # compacts at `recorded`
        assert version == 2
        with pytest.raises(Compacted) as info:
            await take(store.watch("/c/", 0), 1)
        assert info.value.compacted == recorded - 1  # etcd's revision, in the interface's terms
        assert (await take(store.watch("/c/", info.value.compacted), 1))[0].value == b"0"

        other.start_compactor(interval=0.05)  # the loop takes turns too, with the same key
        for _ in range(100):
            key = await other._client.range(pb.RangeRequest(key=COMPACT_REV_KEY))
            if key.kvs[0].version >= 4:
                break
            await asyncio.sleep(0.05)
        assert key.kvs[0].version >= 4
    finally:
        await other.close()


# ----------------------------------------------------------------- leases


@needs_etcd
async def test_a_key_attached_to_a_lease_goes_when_it_is_revoked(store: EtcdStorage) -> None:
    client = store._client
    lease = await client.lease_grant(60)
    assert 0 < await client.lease_keep_alive(lease) <= 60
    watch = Follower(store.watch("/events/", await store.current_revision()))
    put = pb.PutRequest(key=b"/events/default/e1", value=b"v", lease=lease)
    await client.txn(pb.TxnRequest(success=[pb.RequestOp(request_put=put)]))
    await client.lease_revoke(lease)
    assert await store.get("/events/default/e1") is None
    events = await watch.take(2)
    assert [(e.type, e.value) for e in events] == [
        (EventType.ADDED, b"v"),
        (EventType.DELETED, b"v"),
    ]
    assert await client.lease_keep_alive(lease) <= 0  # gone
    await watch.stop()
