"""The SQLite revision log: the synchronous half of the SQLite backend.

`RevisionLog` owns one `sqlite3` connection and is only ever touched from the
single worker thread of `SQLiteStorage` (see sqlite.py): that thread *is* the
one writer, so the revision counter can live in a Python int and every write
is one short transaction with no lock contention.

Schema (the same idea as etcd's MVCC store, and as kine, the SQL shim k3s uses
in place of etcd)::

    log(revision INTEGER PRIMARY KEY AUTOINCREMENT,   -- one row per write
        key, value, create_revision, prev_revision, deleted)
    current(key PRIMARY KEY, value, create_revision, mod_revision)
    meta(name PRIMARY KEY, value)                    -- 'compacted'

* `log` is the history that watches replay. `prev_revision` points at the row
  this write superseded (0 for a create), which gives watch events their
  `prev_value` and lets compaction find superseded rows without a scan.
  A delete writes a tombstone row (`deleted = 1`) that carries the key's last
  value, so a DELETED event replayed from history has it too.
* `current` is the live state: `get` is one primary-key lookup and `list` one
  range scan (`key >= prefix AND key < next(prefix)`), never a scan of `log`.
* The index on log(key, revision) serves reads of the past: a page of a list at
  an older revision takes, per key, its newest row at or before that revision
  (sqlite_range.py). It is created at open, so a file made before it gets it too.
* AUTOINCREMENT keeps the high-water mark in `sqlite_sequence`, so the
  revision never goes backwards after a reopen, even when compaction has
  deleted every row or the newest rows.

Space: compaction deletes history rows, and the storage then runs an
incremental vacuum (auto_vacuum=INCREMENTAL, set when the file is made), so
the file shrinks after a burst of writes is compacted away, without the full
rewrite a VACUUM would cost.

Checked at open (sqlite_check.py): SQLite's integrity_check and our revision invariants;
a corrupt file is refused with StorageCorrupt, never served.

Durability: WAL with `synchronous=FULL` fsyncs the WAL at each COMMIT, so a
write that returned survives `kill -9` (and power loss). Writes arrive in
groups (group commit, see sqlite.py): `apply(ops)` runs a whole group in one
transaction, each op behind its own SAVEPOINT and compare-and-swap check, so
one COMMIT and one fsync cover them all. `locking_mode=
EXCLUSIVE` holds the database lock for the connection's lifetime: a second
API server pointed at the same data directory fails at open instead of
keeping its own revision counter.

Compaction at C keeps, for each key, its newest row at or before C (what
etcd calls "the value at C") and every row after C; it deletes rows at or
before C that a later row at or before C superseded, and tombstones at or
before C. Worked example, one key `a`:

    rev 1 create a=x   rev 3 update a=y   rev 5 update a=z   rev 6 delete a
    compact(4): row 1 is superseded by row 3 (3 <= 4)   -> deleted
                row 3 is superseded by row 5, but 5 > 4 -> kept (the value at 4)
    watch(after=4) replays 5 (MODIFIED, prev y) and 6 (DELETED, value z): complete.
    watch(after=3) raises Compacted: revision 4 may have been a write to another
    key that a later write superseded, now dropped, so history after 3 has a hole.

Each compaction step only looks at rows in (previous C, new C] and their
`prev_revision`s, both primary-key lookups, so its cost is proportional to
the history being dropped, not to the size of the store.
"""

from __future__ import annotations

import builtins
import contextlib
import logging
import os
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from apiserver.storage.interface import (
    Compacted,
    Event,
    EventType,
    KeyExists,
    KeyNotFound,
    KeyValue,
    ListPage,
    RevisionMismatch,
    StorageError,
)
from apiserver.storage.sqlite_check import StorageCorrupt
from apiserver.storage.sqlite_check import check as check_database
from apiserver.storage.sqlite_range import prefix_end as prefix_end  # re-exported
from apiserver.storage.sqlite_range import read_page

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WriteOp:
    """One queued write. `kind` names the event it produces: ADDED is a create,
    MODIFIED an update, DELETED a delete. `expected_revision` is the compare-
    and-swap of update and delete (None: unconditional); `value` is unused by
    delete."""

    kind: EventType
    key: str
    value: bytes = b""
    expected_revision: int | None = None


# What `RevisionLog.apply` returns per op: what was stored and its event, or the error.
WriteResult = tuple[KeyValue, Event] | StorageError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS log (
    revision INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    create_revision INTEGER NOT NULL,
    prev_revision INTEGER NOT NULL,
    deleted INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS current (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    create_revision INTEGER NOT NULL,
    mod_revision INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS log_key_revision ON log (key, revision);
"""

_INSERT_LOG = (
    "INSERT INTO log (revision, key, value, create_revision, prev_revision, deleted)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
_SELECT_CURRENT = "SELECT value, create_revision, mod_revision FROM current WHERE key = ?"
_UPSERT_CURRENT = (
    "INSERT INTO current (key, value, create_revision, mod_revision) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (key) DO UPDATE SET value = excluded.value, mod_revision = excluded.mod_revision"
)
_HISTORY = (
    "SELECT l.revision, l.key, l.value, l.create_revision, l.prev_revision, l.deleted, p.value"
    " FROM log AS l LEFT JOIN log AS p ON p.revision = l.prev_revision"
    " WHERE l.revision > ? AND l.revision <= ?"
)


def _range_clause(prefix: str, column: str) -> tuple[str, tuple[str, ...]]:
    end = prefix_end(prefix)
    if not prefix:
        return "", ()
    if end is None:
        return f" AND {column} >= ?", (prefix,)
    return f" AND {column} >= ? AND {column} < ?", (prefix, end)


def _private_file(path: str) -> None:
    """The database and its directory readable by the server's user alone (0600 in 0700).

    Every Secret of the cluster is in this file. SQLite gives its -wal and -shm
    files the database file's own mode, so creating the file 0600 before SQLite
    opens it covers all three; an existing install is tightened on the next start.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    os.chmod(directory, 0o700)
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    for name in (path, f"{path}-wal", f"{path}-shm"):
        if os.path.exists(name):
            os.chmod(name, 0o600)


class RevisionLog:
    """A revisioned key-value log in one SQLite file. Not thread-safe by design:
    exactly one thread (the storage's worker) may call it."""

    def __init__(self, path: str) -> None:
        _private_file(path)
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, timeout=0.5)
        try:
            # Before any table exists (a new file), or converted once below: freed pages
            # can then be handed back to the filesystem a few at a time (vacuum()).
            self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA locking_mode=EXCLUSIVE")
            self._db.execute("PRAGMA foreign_keys=OFF")
            self._db.executescript("BEGIN IMMEDIATE;" + _SCHEMA + "COMMIT;")
        except sqlite3.OperationalError as err:
            self._db.close()
            raise StorageError(f"cannot open {path}: {err} (is another server using it?)") from err
        except sqlite3.DatabaseError as err:  # "file is not a database", a damaged header
            self._db.close()
            raise StorageCorrupt(path, [str(err)]) from err
        try:
            row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'log'").fetchone()
            self.revision: int = int(row[0]) if row else 0
            row = self._db.execute("SELECT value FROM meta WHERE name = 'compacted'").fetchone()
            self.compacted: int = int(row[0]) if row else 0
            check_database(self._db, path, self.revision, self.compacted)
            if self._db.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:
                self._db.execute("VACUUM")  # a file made before incremental vacuum: convert once
        except (sqlite3.DatabaseError, StorageError) as err:
            self._db.close()
            if isinstance(err, StorageError):
                raise
            raise StorageCorrupt(path, [str(err)]) from err
        log.info(
            "opened revision log",
            extra={"path": path, "revision": self.revision, "compacted": self.compacted},
        )

    # ----------------------------------------------------------------- reads

    def get(self, key: str) -> KeyValue | None:
        row = self._db.execute(_SELECT_CURRENT, (key,)).fetchone()
        if row is None:
            return None
        return KeyValue(key, row[0], row[1], row[2])

    def list(self, prefix: str) -> tuple[list[KeyValue], int]:
        clause, args = _range_clause(prefix, "key")
        sql = "SELECT key, value, create_revision, mod_revision FROM current WHERE 1" + clause
        rows = self._db.execute(sql + " ORDER BY key", args).fetchall()
        items = [KeyValue(r[0], r[1], r[2], r[3]) for r in rows if r[0].startswith(prefix)]
        return items, self.revision

    def list_page(self, prefix: str, revision: int, start: str, limit: int) -> ListPage:
        """A page of keys under `prefix` as they were at `revision` (0: now); sqlite_range.py."""
        if revision > self.revision:
            raise StorageError(
                f"revision {revision} is a future revision (newest: {self.revision})"
            )
        if 0 < revision < self.compacted:
            raise Compacted(revision, self.compacted)
        return read_page(self._db, prefix, start, limit, revision or self.revision, self.revision)

    def history(
        self, prefix: str, after: int, limit: int = 0
    ) -> tuple[builtins.list[Event], int, bool]:
        """Logged changes under `prefix` after `after`: (events, revision read up to, more?).

        With `limit`, at most that many log rows are read (a watch replays a
        long history chunk by chunk instead of holding it all at once); `more`
        says the read stopped before the newest revision and should go on
        from the revision it read up to."""
        if after < self.compacted:
            raise Compacted(after, self.compacted)
        clause, args = _range_clause(prefix, "l.key")
        sql = _HISTORY + clause + " ORDER BY l.revision"
        params: tuple[object, ...] = (after, self.revision, *args)
        if limit > 0:
            sql += " LIMIT ?"
            params = (*params, limit)
        rows = self._db.execute(sql, params).fetchall()
        events: builtins.list[Event] = []
        for rev, key, value, create_rev, prev_rev, deleted, prev_value in rows:
            if not key.startswith(prefix):
                continue
            if deleted:
                kind = EventType.DELETED
            elif prev_rev:
                kind = EventType.MODIFIED
            else:
                kind = EventType.ADDED
            events.append(Event(kind, key, value, rev, create_rev, prev_value))
        if limit > 0 and len(rows) == limit and rows[-1][0] < self.revision:
            return events, int(rows[-1][0]), True
        return events, self.revision, False

    # ---------------------------------------------------------------- writes

    def apply(self, ops: Sequence[WriteOp]) -> builtins.list[WriteResult]:
        """Apply `ops` in order in ONE transaction (one COMMIT, one fsync).

        Each op gets its own outcome: `(KeyValue, Event)` or the StorageError it
        failed with. An op sees the effects of the ops before it (they share the
        transaction), so its compare-and-swap check is against the newest state.
        A failed check raises before the op writes anything; a SQLite error in
        the middle of an op is undone by rolling back to its SAVEPOINT. Either
        way only that op fails and it consumes no revision, so the revisions of
        the ops that succeed are consecutive.

        If the COMMIT itself fails (or SQLite aborted the whole transaction),
        nothing in the batch happened: StorageError is raised and the revision
        counter is unchanged.
        """
        db = self._db
        results: builtins.list[WriteResult] = []
        rev = self.revision
        with self._transaction():
            for op in ops:
                db.execute("SAVEPOINT write")
                try:
                    result = self._apply_one(op, rev + 1)
                except sqlite3.Error as err:
                    if not db.in_transaction:  # SQLite rolled back everything
                        raise
                    db.execute("ROLLBACK TO write")
                    db.execute("RELEASE write")
                    results.append(StorageError(f"sqlite: {err}"))
                    continue
                except StorageError as err:  # the check failed before any change
                    db.execute("RELEASE write")
                    results.append(err)
                    continue
                db.execute("RELEASE write")
                rev += 1
                results.append(result)
        self.revision = rev
        return results

    def _apply_one(self, op: WriteOp, rev: int) -> tuple[KeyValue, Event]:
        db, key, value = self._db, op.key, op.value
        if op.kind is EventType.ADDED:
            if db.execute(_SELECT_CURRENT, (key,)).fetchone() is not None:
                raise KeyExists(key)
            db.execute(_INSERT_LOG, (rev, key, value, rev, 0, 0))
            db.execute(_UPSERT_CURRENT, (key, value, rev, rev))
            return KeyValue(key, value, rev, rev), Event(EventType.ADDED, key, value, rev, rev)
        old = self._current_for_write(key, op.expected_revision)
        if op.kind is EventType.MODIFIED:
            db.execute(_INSERT_LOG, (rev, key, value, old.create_revision, old.mod_revision, 0))
            db.execute(_UPSERT_CURRENT, (key, value, old.create_revision, rev))
            kv = KeyValue(key, value, old.create_revision, rev)
            return kv, Event(EventType.MODIFIED, key, value, rev, old.create_revision, old.value)
        db.execute(_INSERT_LOG, (rev, key, old.value, old.create_revision, old.mod_revision, 1))
        db.execute("DELETE FROM current WHERE key = ?", (key,))
        kv = KeyValue(key, old.value, old.create_revision, rev)
        event = Event(EventType.DELETED, key, old.value, rev, old.create_revision, old.value)
        return kv, event

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """One write transaction; a storage error rolls it back and changes nothing."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            yield
            self._db.execute("COMMIT")
        except BaseException as err:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            if isinstance(err, sqlite3.Error):
                raise StorageError(f"sqlite: {err}") from err
            raise

    def _current_for_write(self, key: str, expected_revision: int | None) -> KeyValue:
        row = self._db.execute(_SELECT_CURRENT, (key,)).fetchone()
        if row is None:
            raise KeyNotFound(key)
        if expected_revision is not None and expected_revision != row[2]:
            raise RevisionMismatch(key, expected_revision, row[2])
        return KeyValue(key, row[0], row[1], row[2])

    # ------------------------------------------------------------ compaction

    def compact(self, revision: int, max_step: int) -> int:
        """Compact up to min(revision, compacted + max_step); returns the new boundary.

        Called repeatedly by the storage so that a large compaction is a series
        of short transactions the writes can interleave with.
        """
        target = min(revision, self.revision, self.compacted + max_step)
        if target <= self.compacted:
            return self.compacted
        low = self.compacted
        db = self._db
        with self._transaction():
            superseded = db.execute(
                "DELETE FROM log WHERE revision IN (SELECT prev_revision FROM log"
                " WHERE revision > ? AND revision <= ? AND prev_revision > 0)",
                (low, target),
            ).rowcount
            tombstones = db.execute(
                "DELETE FROM log WHERE revision > ? AND revision <= ? AND deleted = 1",
                (low, target),
            ).rowcount
            db.execute(
                "INSERT INTO meta (name, value) VALUES ('compacted', ?)"
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (target,),
            )
        self.compacted = target
        log.debug(
            "compacted revision log",
            extra={"revision": target, "superseded": superseded, "tombstones": tombstones},
        )
        return target

    def backup(self, dest: str) -> int:
        """A consistent copy of the whole database in `dest` (SQLite's online backup); its revision.

        Runs on the worker thread like every call, so no write lands halfway
        through: the copy is the store exactly at the returned revision."""
        target = sqlite3.connect(dest)
        try:
            self._db.backup(target)
        finally:
            target.close()
        return self.revision

    def vacuum(self, max_pages: int = 0) -> tuple[int, int]:
        """Return free pages to the filesystem; (pages freed, file size after).

        Compaction and deletes leave free pages inside the file: SQLite reuses
        them but never shrinks the file by itself. With auto_vacuum=INCREMENTAL
        `incremental_vacuum` moves them to the end and truncates (up to
        `max_pages`, 0 meaning all), and a TRUNCATE checkpoint folds the WAL in
        and empties it, so the bytes on disk go down."""
        free = int(self._db.execute("PRAGMA freelist_count").fetchone()[0])
        if free:
            # executescript steps the pragma to the end (each step frees one page;
            # a plain execute() would take one step and free a single page).
            self._db.executescript(f"PRAGMA incremental_vacuum({int(max_pages)});")
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        after = int(self._db.execute("PRAGMA freelist_count").fetchone()[0])
        return free - after, os.path.getsize(self.path)

    def log_rows(self) -> int:
        """How many history rows are kept (for tests and metrics)."""
        return int(self._db.execute("SELECT count(*) FROM log").fetchone()[0])

    def close(self) -> None:
        self._db.close()
