"""How the storage interface maps onto etcd's data model: keys, revisions, events, guards.

Kubernetes' etcd3 store (k8s.io/apiserver/pkg/storage/etcd3) is a thin layer:
etcd already is a revisioned key-value store with watch, so most of the
mapping is a renaming. This module holds the pure functions of that layer; the
calls themselves are in etcd.py.

Keys. The registry's keys are used as they are, UTF-8 encoded:
`/registry/pods/default/web` is the etcd key `/registry/pods/default/web`,
exactly the key the SQLite backend stores and the key kube-apiserver would
write (its --etcd-prefix /registry plus `pods/default/web`). A prefix becomes
the range [prefix, prefix_end) where prefix_end is the prefix with its last
byte incremented (trailing 0xff bytes dropped first), as clientv3's WithPrefix
does; the empty prefix is every key, ["\\0", "\\0").

Revisions. etcd numbers every write with its store revision, one per
transaction that changes something; a key's `mod_revision` is the revision
of its last write, and it is what Kubernetes hands out as resourceVersion.
The one difference is the origin: a new etcd store is already at revision 1
(no write has that number; the first write is revision 2), while the
interface calls the empty store 0 and numbers writes from 1, as the SQLite
backend does. So one constant offset is applied at this boundary, in both
directions, to every revision (mod, create, header, compaction):

    interface revision = etcd revision - 1

    etcd      1 (empty)   2 (first write)   3   ...   compact_revision C+1
    here      0           1                 2   ...   compacted C

It is a bijection: the order, the gaps (none, when only tinykube writes) and
the equalities of revisions are etcd's own, and a resourceVersion still names
exactly one etcd revision.

Events. etcd has two event types, PUT and DELETE; Kubernetes tells a create
from an update by `create_revision == mod_revision` (the key was created by
this very write). With `prev_kv` set on the watch, a MODIFIED event carries
the previous value, and a DELETE, whose kv holds only the key and the
deletion's revision, gets its last value and create_revision from prev_kv.

Guards. Each conditional write is one transaction whose compare is the
precondition and whose failure branch reads the key, so a failed write comes
back with what it needs to say why (Kubernetes' GuaranteedUpdate reads the
current object the same way):

    create              If create_revision(key) == 0   Then Put   Else -
    update(expected N)  If mod_revision(key) == N      Then Put   Else Range(key)
    update(None)        If create_revision(key) > 0    Then Put   Else Range(key)
    delete(...)         same compares                  Then DeleteRange   Else Range(key)

A transaction whose compare fails writes nothing and takes no revision.
"""

from __future__ import annotations

from apiserver.storage.interface import Event, EventType, KeyValue, StorageError
from protos import etcd_pb2 as pb

# etcd's revision of a store that has never been written to.
ETCD_FIRST_REVISION = 1
_OFFSET = ETCD_FIRST_REVISION


def to_etcd(revision: int) -> int:
    """The etcd revision of an interface revision."""
    return revision + _OFFSET


def from_etcd(revision: int) -> int:
    """The interface revision of an etcd revision (0 for the empty store)."""
    return max(revision - _OFFSET, 0)


def encode_key(key: str) -> bytes:
    return key.encode("utf-8")


def key_range(prefix: str) -> tuple[bytes, bytes]:
    """[start, end) covering every key that starts with `prefix`."""
    start = encode_key(prefix)
    if not start:
        return b"\0", b"\0"
    end = bytearray(start)
    while end and end[-1] == 0xFF:
        end.pop()
    if not end:  # all 0xff bytes: no upper bound
        return start, b"\0"
    end[-1] += 1
    return start, bytes(end)


def key_value(kv: pb.KeyValue) -> KeyValue:
    """An etcd KeyValue as the interface's."""
    return KeyValue(
        kv.key.decode("utf-8"),
        kv.value,
        from_etcd(kv.create_revision),
        from_etcd(kv.mod_revision),
    )


def event(ev: pb.Event) -> Event:
    """An etcd watch event (from a watch with prev_kv) as the interface's."""
    kv = ev.kv
    key = kv.key.decode("utf-8")
    revision = from_etcd(kv.mod_revision)
    prev = ev.prev_kv if ev.HasField("prev_kv") else None
    if ev.type == pb.Event.DELETE:
        if prev is None:
            # etcd read the previous value after it was compacted away: the watch cannot
            # say what was deleted, so it must not pretend to.
            raise StorageError(f"etcd: delete of {key} at {revision} came without its last value")
        return Event(
            EventType.DELETED,
            key,
            prev.value,
            revision,
            from_etcd(prev.create_revision),
            prev.value,
        )
    if kv.create_revision == kv.mod_revision:
        return Event(EventType.ADDED, key, kv.value, revision, revision)
    return Event(
        EventType.MODIFIED,
        key,
        kv.value,
        revision,
        from_etcd(kv.create_revision),
        None if prev is None else prev.value,
    )


# ------------------------------------------------------------------ guards


def key_absent(key: bytes) -> pb.Compare:
    """The key does not exist (it was never created, or was deleted since)."""
    return pb.Compare(target=pb.Compare.CREATE, result=pb.Compare.EQUAL, key=key, create_revision=0)


def key_present(key: bytes) -> pb.Compare:
    return pb.Compare(
        target=pb.Compare.CREATE, result=pb.Compare.GREATER, key=key, create_revision=0
    )


def key_at(key: bytes, revision: int) -> pb.Compare:
    """The key's last write was the interface revision `revision`."""
    return pb.Compare(
        target=pb.Compare.MOD, result=pb.Compare.EQUAL, key=key, mod_revision=to_etcd(revision)
    )


def precondition(key: bytes, expected_revision: int | None) -> pb.Compare:
    """The compare of an update or delete: at `expected_revision`, or merely present."""
    return key_present(key) if expected_revision is None else key_at(key, expected_revision)


def read_key(key: bytes) -> pb.RequestOp:
    """The failure branch of a guarded write: the key's current revisions (no value)."""
    return pb.RequestOp(request_range=pb.RangeRequest(key=key, keys_only=True))
