"""The storage interface: a revisioned key-value store with watch.

This is the contract Kubernetes' apiserver has with etcd (storage.Interface),
cut down to what an apiserver needs:

* Every successful write (create, update, delete) advances one global,
  strictly increasing **revision**. An object's resourceVersion is the
  revision of the write that produced it (its `mod_revision`).
* `update` and `delete` may name the revision they expect the key to be at;
  when it has moved on, they raise `RevisionMismatch` and change nothing.
  This compare-and-swap is the whole of optimistic concurrency: the API
  server turns a mismatch into a 409 Conflict.
* `watch(prefix, after)` yields every change to keys under `prefix` with a
  revision greater than `after`, in revision order, each once. History older
  than the last `compact(revision)` is gone: asking for it raises `Compacted`
  (the API's 410 Expired), and the watcher must list again.
* A watcher that does not keep up is not allowed to hold the server back: its
  buffer is bounded, and when it overflows the watch ends with
  `WatcherTooSlow`; the consumer resumes from the last revision it saw.
* A write is acknowledged (the coroutine returns) only once it is durable:
  a `kill -9` right after loses nothing that was acknowledged.
* `list_page(prefix, revision=R, start=K, limit=N)` reads a list in pages, each
  page the keys as they were at revision R, so the pages of one list are one
  consistent snapshot however many writes land between them (etcd's Range with
  `revision` and `limit`; Kubernetes' limit/continue rests on it). Old
  revisions are readable until compacted: asking for one older than the last
  `compact` raises `Compacted`, as a watch does. Worked example:

      rev 1 create a   rev 2 create b   rev 3 create c
      list_page("", limit=2)                 -> [a, b], revision 3, more, count 3
      rev 4 delete a   rev 5 create aa   rev 6 update c
      list_page("", revision=3, start="b\0") -> [c at rev 3], revision 3, no more
      (a, b, c as they were at 3: aa is not there yet and c is its old value)
      compact(5); list_page("", revision=3, ...) -> Compacted(3, 5)

Values are opaque bytes here; the registry above encodes objects.

Errors (all subclasses of StorageError):

    StorageError
    ├── KeyExists          create of a key that exists
    ├── KeyNotFound        update/delete of a key that does not exist
    ├── RevisionMismatch   update/delete with a stale expected revision
    ├── Compacted          watch/list_page from a revision older than the compaction
    └── WatcherTooSlow     a watch's bounded buffer overflowed
"""

from __future__ import annotations

import abc
import builtins
from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import Enum


class StorageError(Exception):
    """Base of every storage failure."""


class KeyExists(StorageError):
    def __init__(self, key: str) -> None:
        super().__init__(f"key exists: {key}")
        self.key = key


class KeyNotFound(StorageError):
    def __init__(self, key: str) -> None:
        super().__init__(f"key not found: {key}")
        self.key = key


class RevisionMismatch(StorageError):
    def __init__(self, key: str, expected: int, actual: int) -> None:
        super().__init__(f"revision mismatch on {key}: expected {expected}, is {actual}")
        self.key = key
        self.expected = expected
        self.actual = actual


class Compacted(StorageError):
    """`compacted` is the oldest revision still kept, 0 when the backend does not say
    (etcd reports a compacted read without naming its compaction revision)."""

    def __init__(self, requested: int, compacted: int) -> None:
        kept = f" (oldest kept: {compacted})" if compacted else ""
        super().__init__(f"revision {requested} is compacted{kept}")
        self.requested = requested
        self.compacted = compacted


class WatcherTooSlow(StorageError):
    def __init__(self, last_revision: int) -> None:
        super().__init__(f"watcher fell behind after revision {last_revision}")
        self.last_revision = last_revision


@dataclass(frozen=True)
class KeyValue:
    """A key's value at a revision. `stale`: read under an old encryption key (encrypted.py)."""

    key: str
    value: bytes
    create_revision: int
    mod_revision: int
    stale: bool = False


@dataclass(frozen=True)
class ListPage:
    """One page of a list (etcd's RangeResponse: kvs, more, count).

    `revision` is the revision the page was read at: the next page of the same list
    asks for it. `count` is how many keys the range held at that revision from the
    page's start on, this page's included; `more` says keys remain after the page."""

    items: list[KeyValue]
    revision: int
    more: bool
    count: int


class EventType(Enum):
    ADDED = "ADDED"
    MODIFIED = "MODIFIED"
    DELETED = "DELETED"


@dataclass(frozen=True)
class Event:
    """One change. For DELETED, `value` is the last value the key had."""

    type: EventType
    key: str
    value: bytes
    revision: int
    create_revision: int
    prev_value: bytes | None = None


class Storage(abc.ABC):
    """A revisioned key-value store. Implementations: sqlite (default), etcd (later)."""

    name: str = "abstract"

    @abc.abstractmethod
    async def get(self, key: str) -> KeyValue | None:
        """The current value of `key`, or None."""

    @abc.abstractmethod
    async def list(self, prefix: str) -> tuple[list[KeyValue], int]:
        """Every key under `prefix` in key order, and the revision the list was read at."""

    async def list_page(
        self, prefix: str, *, revision: int = 0, start: str = "", limit: int = 0
    ) -> ListPage:
        """Up to `limit` keys (0: every key) under `prefix`, in key order, from `start` on
        (inclusive; "" or anything before `prefix` means the prefix's first key), as they
        were at `revision` (0: the current revision, which the page then names).

        Raises Compacted when `revision` is older than the last compaction, StorageError
        when it is newer than the current revision. Backends that keep history (SQLite,
        etcd) override this; this default has none to read, so it serves the current
        revision only, from `list`, and answers an older one as compacted.
        """
        items, current = await self.list(prefix)
        if revision > current:
            raise StorageError(f"revision {revision} is a future revision (newest: {current})")
        if revision and revision < current:
            raise Compacted(revision, current)
        rest = [kv for kv in items if kv.key >= start]
        page = rest[:limit] if limit > 0 else rest
        return ListPage(page, current, len(page) < len(rest), len(rest))

    @abc.abstractmethod
    async def create(self, key: str, value: bytes) -> KeyValue:
        """Store a new key; KeyExists if present. Returns what was stored."""

    @abc.abstractmethod
    async def update(self, key: str, value: bytes, expected_revision: int | None) -> KeyValue:
        """Replace `key`'s value; RevisionMismatch if `expected_revision` is stale."""

    @abc.abstractmethod
    async def delete(self, key: str, expected_revision: int | None = None) -> KeyValue:
        """Remove `key`, returning its last value (with the deletion's revision as mod_revision)."""

    @abc.abstractmethod
    def watch(self, prefix: str, after_revision: int) -> AsyncIterator[Event]:
        """Every change under `prefix` with revision > `after_revision`, in order, once.

        Raises Compacted (on first iteration) if `after_revision` is older than the oldest
        kept history, WatcherTooSlow if the consumer falls behind its bounded buffer.
        The iterator ends when the consumer stops iterating or the store closes.

        After `compact(C)`, `after_revision >= C` is served and `after_revision < C` raises
        Compacted(after_revision, C). An `after_revision` beyond the current revision is
        allowed: the watch waits for the revisions after it. Cancelling a pending
        `__anext__` ends the watch (as with any async generator); resume from the last
        revision received.
        """

    async def watch_batches(
        self, prefix: str, after_revision: int
    ) -> AsyncIterator[builtins.list[Event]]:
        """`watch`, in lists of whatever is ready at once (each non-empty, in order).

        The API server sends one message per list, so a watcher that falls behind
        catches up in a few large steps. This default yields lists of one; a backend
        with its own buffering (SQLite's watch hub) hands over its whole buffer.
        """
        events = self.watch(prefix, after_revision)
        try:
            async for event in events:
                yield [event]
        finally:
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()

    @abc.abstractmethod
    async def current_revision(self) -> int:
        """The revision of the newest write (0 for an empty store)."""

    @abc.abstractmethod
    async def compact(self, revision: int) -> None:
        """Forget history at and before `revision` (current values are kept).

        The value each key had at `revision` is kept too (it is the `prev_value` of the
        key's next event), so every watch starting at `revision` or later still sees
        complete history. A `revision` beyond the current one is clamped to it; one at or
        below an earlier compaction changes nothing.
        """

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop watches and release the database."""
