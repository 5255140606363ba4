"""The etcd backend: the storage interface on an etcd v3 cluster, as kube-apiserver uses it.

SQLite (sqlite.py) is the embedded default, as in k3s; etcd is what
Kubernetes itself runs on, and the way to outgrow one machine: a replicated
store that keeps serving while a majority of its members is up. Selected with

    tinykube apiserver --storage etcd://10.0.0.1:2379,10.0.0.2:2379,10.0.0.3:2379 \\
        --etcd-cafile ca.crt --etcd-certfile client.crt --etcd-keyfile client.key

The layers, each in its own module (as k8s.io/apiserver/pkg/storage/etcd3 is
over clientv3):

* etcd_client.py  -- the gRPC connection: endpoints, TLS, failover, errors.
  Our own proto subset (protos/etcd.proto) rather than a Python etcd
  library, which would pin grpcio/protobuf releases years behind the rest.
* etcd_mapping.py -- keys, the revision offset, events, transaction guards.
* etcd_watch.py   -- one watch: a Watch stream into a bounded buffer.
* etcd_cacher.py  -- the watch cache: one etcd watch per server fanned out to
  every watcher (watchcache.py's hub), history replayed from etcd.
* here            -- `EtcdStorage`, the calls for each interface method, and
  the periodic compactor.

Each interface call but watch is one etcd request (revisions in the
interface's numbers, one less than etcd's: etcd_mapping.py); no value is
cached, so several API servers can share one etcd and each sees every
other's writes. Watches share one etcd watch per server (etcd_cacher.py),
which sees every server's writes too:

    get(key)                 Range(key)                                   linearizable
    list(prefix)             Range([prefix, prefix_end), limit 500) pages, later pages
                             at the first page's revision: one consistent snapshot
    list_page(prefix, R, K, N)  Range([max(prefix, K), prefix_end), revision R, limit N):
                             kvs, more and count as etcd answers them; a compacted R
                             is Compacted (etcd does not say to which revision)
    create(key, v)           Txn(If create_revision(key) == 0 Then Put)
    update(key, v, N)        Txn(If mod_revision(key) == N Then Put(prev_kv) Else Range(key))
    delete(key, N)           Txn(If mod_revision(key) == N Then DeleteRange(prev_kv)
                                 Else Range(key))
    watch(prefix, after)     the cacher's hub; its one Watch(every key, prev_kv) from the
                             revision read at its start; from the past, first a
                             Watch(every key, start_revision = after) up to the hub's
                             revision (etcd_cacher.py, etcd_watch.py)
    current_revision()       Range(count_only): the response header's revision
    compact(C)               Compact(C, physical)

Acknowledged means durable: etcd answers a write once a majority of members
has it in their fsynced raft logs, so a `kill -9` of any minority loses
nothing that was acknowledged.

A failed compare turns into the interface's errors from the failure
branch's read: create -> KeyExists; update/delete -> KeyNotFound when the
read found no key, else RevisionMismatch(expected, the key's mod_revision).

Compaction. kube-apiserver compacts every 5 minutes (--etcd-compaction-interval)
and, when several API servers share one etcd, only one of them does it per
interval: they race on a transaction over the key `compact_rev_key`, whose
version counts the compactions and whose value is the revision recorded at the
last one. Each interval, a server runs

    Txn(If version(compact_rev_key) == the version it last saw
        Then Put(compact_rev_key, <the revision it recorded last time>)
        Else Range(compact_rev_key))

The winner compacts up to the revision recorded one interval ago (so at least
one interval of history is always kept, for watchers to resume from); the
losers learn the new version and try again next interval. Worked example,
interval 5 min: at 10:00 server A's Txn succeeds (version 0 -> 1) with nothing
recorded yet, so it compacts nothing and remembers revision 500; B's Txn at
10:01 expected version 0, fails, and B learns version 1. At 10:05 A expects
version 1, succeeds (-> 2) and compacts at 500; B at 10:06 expects 1 and
fails again. Only one compaction per interval, always to a revision at
least one interval old.

Events' TTL: kube-apiserver writes each Event under an etcd lease of
--event-ttl. The storage interface has no TTL, so here Events expire the way
they do on SQLite, through the API server's reaper (registry/eventttl.py),
whose compare-and-swap deletes are ordinary etcd transactions. The client
has LeaseGrant/Revoke/KeepAlive ready for when the interface takes a TTL.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator

import apiserver.storage.etcd_mapping as mapping
from apiserver.storage.etcd_cacher import Cacher
from apiserver.storage.etcd_client import (
    COMPACT_REV_KEY,
    EtcdClient,
    EtcdConfig,
    FutureRevision,
    RevisionCompacted,
)
from apiserver.storage.interface import (
    Compacted,
    Event,
    KeyExists,
    KeyNotFound,
    KeyValue,
    ListPage,
    RevisionMismatch,
    Storage,
    StorageError,
)
from apiserver.storage.watchcache import DEFAULT_BUFFER_BYTES, DEFAULT_BUFFER_SIZE
from protos import etcd_pb2 as pb

log = logging.getLogger(__name__)

# Keys per Range page of a list (Kubernetes' default page size for its pager).
LIST_PAGE = 500
# How often a list starts over when a compaction overtakes its pages.
_LIST_ATTEMPTS = 3
DEFAULT_COMPACTION_INTERVAL = 300.0


class EtcdStorage(Storage):
    """A `Storage` on an etcd cluster. Belongs to the event loop that first uses it.

    Use::

        store = EtcdStorage(EtcdConfig(("127.0.0.1:2379",)))
        kv = await store.create("/registry/pods/default/web", b"...")
        await store.close()

    The constructor reads the TLS files (a missing one fails here) but does no network
    I/O; the first call connects.
    """

    name = "etcd"
    backend = "etcd"  # what the snapshot service names: its snapshots are etcd's

    def __init__(
        self,
        config: EtcdConfig,
        *,
        watch_buffer_size: int = DEFAULT_BUFFER_SIZE,
        watch_buffer_bytes: int = DEFAULT_BUFFER_BYTES,
    ):
        if watch_buffer_size < 1 or watch_buffer_bytes < 1:
            raise ValueError("watch buffer limits must be at least 1")
        self.config = config
        self._client = EtcdClient(config)
        self._cacher = Cacher(self._client, (watch_buffer_size, watch_buffer_bytes))
        self._compactor: asyncio.Task[None] | None = None
        self._closed = False

    def _live(self) -> EtcdClient:
        if self._closed:
            raise StorageError("storage is closed")
        return self._client

    # ----------------------------------------------------------------- reads

    async def get(self, key: str) -> KeyValue | None:
        response = await self._live().range(pb.RangeRequest(key=mapping.encode_key(key)))
        return mapping.key_value(response.kvs[0]) if response.kvs else None

    async def list(self, prefix: str) -> tuple[builtins.list[KeyValue], int]:
        for _ in range(_LIST_ATTEMPTS):
            with contextlib.suppress(Compacted):  # overtaken by a compaction: again
                return await self._list_pages(prefix)
        raise StorageError(f"etcd: list of {prefix!r} kept being overtaken by compactions")

    async def _list_pages(self, prefix: str) -> tuple[builtins.list[KeyValue], int]:
        items: builtins.list[KeyValue] = []
        revision, start = 0, ""  # 0 reads the newest, then every page reads the first one's
        while True:
            page = await self.list_page(prefix, revision=revision, start=start, limit=LIST_PAGE)
            revision = page.revision
            items.extend(page.items)
            if not page.more or not page.items:
                return items, revision
            start = page.items[-1].key + "\0"  # the next key after the last one read

    async def list_page(
        self, prefix: str, *, revision: int = 0, start: str = "", limit: int = 0
    ) -> ListPage:
        begin, end = mapping.key_range(prefix)
        if start:
            begin = max(begin, mapping.encode_key(start))
        request = pb.RangeRequest(
            key=begin,
            range_end=end,
            limit=max(limit, 0),
            revision=mapping.to_etcd(revision) if revision else 0,
        )
        try:
            response = await self._live().range(request)
        except RevisionCompacted:
            raise Compacted(revision, 0) from None  # etcd does not say its compaction revision
        except FutureRevision:
            current = await self.current_revision()
            raise StorageError(
                f"revision {revision} is a future revision (newest: {current})"
            ) from None
        items = [mapping.key_value(kv) for kv in response.kvs]
        read_at = revision or mapping.from_etcd(response.header.revision)
        return ListPage(items, read_at, bool(response.more), int(response.count))

    async def current_revision(self) -> int:
        return mapping.from_etcd(await self._live().revision())

    # ---------------------------------------------------------------- writes

    async def create(self, key: str, value: bytes) -> KeyValue:
        k = mapping.encode_key(key)
        put = pb.RequestOp(request_put=pb.PutRequest(key=k, value=value))
        response = await self._live().txn(
            pb.TxnRequest(compare=[mapping.key_absent(k)], success=[put])
        )
        if not response.succeeded:
            raise KeyExists(key)
        revision = mapping.from_etcd(response.header.revision)
        return KeyValue(key, value, revision, revision)

    async def update(self, key: str, value: bytes, expected_revision: int | None) -> KeyValue:
        k = mapping.encode_key(key)
        put = pb.RequestOp(request_put=pb.PutRequest(key=k, value=value, prev_kv=True))
        response = await self._guarded(k, expected_revision, put)
        if not response.succeeded:
            raise self._refusal(key, expected_revision, response)
        prev = response.responses[0].response_put.prev_kv
        revision = mapping.from_etcd(response.header.revision)
        return KeyValue(key, value, mapping.from_etcd(prev.create_revision), revision)

    async def delete(self, key: str, expected_revision: int | None = None) -> KeyValue:
        k = mapping.encode_key(key)
        op = pb.RequestOp(request_delete_range=pb.DeleteRangeRequest(key=k, prev_kv=True))
        response = await self._guarded(k, expected_revision, op)
        if not response.succeeded:
            raise self._refusal(key, expected_revision, response)
        prev = response.responses[0].response_delete_range.prev_kvs[0]
        revision = mapping.from_etcd(response.header.revision)
        return KeyValue(key, prev.value, mapping.from_etcd(prev.create_revision), revision)

    async def _guarded(
        self, key: bytes, expected_revision: int | None, op: pb.RequestOp
    ) -> pb.TxnResponse:
        """`op` if the key is at `expected_revision` (or merely exists, for None)."""
        request = pb.TxnRequest(
            compare=[mapping.precondition(key, expected_revision)],
            success=[op],
            failure=[mapping.read_key(key)],
        )
        return await self._live().txn(request)

    @staticmethod
    def _refusal(key: str, expected: int | None, response: pb.TxnResponse) -> StorageError:
        """Why a guarded write's compare failed, from its failure branch's read."""
        kvs = response.responses[0].response_range.kvs
        if not kvs:
            return KeyNotFound(key)
        actual = mapping.from_etcd(kvs[0].mod_revision)
        if expected is None:  # cannot happen: the key exists, so create_revision > 0 held
            return StorageError(f"etcd: write to {key} refused although it exists")
        return RevisionMismatch(key, expected, actual)

    # ----------------------------------------------------------------- watch

    async def watch(self, prefix: str, after_revision: int) -> AsyncIterator[Event]:
        batches = self._batches(prefix, after_revision)
        try:
            async for batch in batches:
                for event in batch:
                    yield event
        finally:
            await batches.aclose()

    def watch_batches(
        self, prefix: str, after_revision: int
    ) -> AsyncIterator[builtins.list[Event]]:
        return self._batches(prefix, after_revision)

    async def _batches(
        self, prefix: str, after_revision: int
    ) -> AsyncGenerator[builtins.list[Event], None]:
        self._live()
        batches = self._cacher.watch_batches(prefix, after_revision)
        try:
            async for batch in batches:
                yield batch
        finally:
            await batches.aclose()

    @property
    def watcher_count(self) -> int:
        return self._cacher.hub.watcher_count

    @property
    def cacher(self) -> Cacher:
        """The watch cache (etcd_cacher.py): its hub, replays and restarts."""
        return self._cacher

    # ------------------------------------------------------------ compaction

    async def compact(self, revision: int) -> None:
        target = max(min(revision, await self.current_revision()), 0)
        try:
            await self._live().compact(mapping.to_etcd(target))
        except RevisionCompacted:
            return  # at or below an earlier compaction: nothing to do
        except FutureRevision:  # cannot happen after the clamp, unless etcd went back
            raise StorageError(f"etcd: compaction at {target} is beyond etcd's revision") from None
        self._cacher.compacted(target)
        log.info("compacted", extra={"revision": target})

    def start_compactor(self, interval: float = DEFAULT_COMPACTION_INTERVAL) -> None:
        """Every `interval` seconds, take part in the shared compaction (module docstring)."""
        if self._compactor is None:
            self._compactor = asyncio.get_running_loop().create_task(
                self._compact_forever(interval), name="etcd-compactor"
            )

    async def _compact_forever(self, interval: float) -> None:
        version, recorded = 0, 0  # compact_rev_key's version, and the etcd revision we put there
        while True:
            await asyncio.sleep(interval)
            try:
                version, recorded = await self.compact_round(version, recorded)
            except StorageError as err:
                log.warning("compaction failed", extra={"error": str(err)})

    async def compact_round(self, version: int, recorded: int) -> tuple[int, int]:
        """One interval's turn: returns the key's version and the etcd revision recorded now."""
        client = self._live()
        put = pb.PutRequest(key=COMPACT_REV_KEY, value=str(recorded).encode())
        response = await client.txn(
            pb.TxnRequest(
                compare=[
                    pb.Compare(
                        target=pb.Compare.VERSION,
                        result=pb.Compare.EQUAL,
                        key=COMPACT_REV_KEY,
                        version=version,
                    )
                ],
                success=[pb.RequestOp(request_put=put)],
                failure=[pb.RequestOp(request_range=pb.RangeRequest(key=COMPACT_REV_KEY))],
            )
        )
        now = response.header.revision
        if not response.succeeded:  # another server compacted this interval
            kvs = response.responses[0].response_range.kvs
            return (kvs[0].version if kvs else 0), now
        if recorded:
            with contextlib.suppress(RevisionCompacted):
                await client.compact(recorded)
            self._cacher.compacted(mapping.from_etcd(recorded))
            log.info("compacted", extra={"revision": mapping.from_etcd(recorded)})
        return version + 1, now

    # -------------------------------------------------------------- snapshot

    async def snapshot(self, dest: str) -> int:
        """etcd's Maintenance.Snapshot into `dest` (etcd_snapshot.py); the revision it holds."""
        return mapping.from_etcd(await self._live().snapshot(dest))

    # --------------------------------------------------------------- closing

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._compactor is not None:
            self._compactor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._compactor
            self._compactor = None
        await self._cacher.close()
        await self._client.close()
        log.info("closed etcd storage", extra={"endpoints": ",".join(self.config.endpoints)})


def new_etcd_storage(location: str, data_dir: str) -> EtcdStorage:
    """The registry factory: `location` is the `etcd://...` spec (data_dir is unused)."""
    return EtcdStorage(EtcdConfig.parse(location))
