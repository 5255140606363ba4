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

Values are opaque bytes here; the registry above encodes objects.

Errors (all subclasses of StorageError):

    StorageError
    ├── KeyExists          create of a key that exists
    ├── KeyNotFound        update/delete of a key that does not exist
    ├── RevisionMismatch   update/delete with a stale expected revision
    ├── Compacted          watch/list from a revision older than the compaction
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
    def __init__(self, requested: int, compacted: int) -> None:
        super().__init__(f"revision {requested} is compacted (oldest kept: {compacted})")
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
