"""Snapshot files: check one, and restore one into a new data directory (offline).

A tinykube snapshot of the SQLite backend is a SQLite database file, as an
etcd snapshot is a bbolt file: the store's tables exactly as they were at
one revision -- every object with its resourceVersion, the history a watch
replays, the revision counter. So restoring is copying the file into place,
after checking it:

    tinykube snapshot restore backup.db --data-dir /var/lib/tinykube-restored
        1. the data directory must not hold a database already (etcdctl
           refuses an existing data dir too: a restore never overwrites)
        2. copy to <dir>/tinykube.db.restoring, open it as the server would
           (sqlite_check: integrity and revision invariants), close
        3. rename to <dir>/tinykube.db (atomic), mode 0600

Start `tinykube apiserver --data-dir DIR` there and the cluster is back at
the snapshot's revision, every object at its resourceVersion.

One hazard, the same as etcd's: writes made after the snapshot are gone, and
the restored store would hand out their revisions again, so a client that
had seen revision R (newer than the snapshot) and resumes its watch from R
would silently miss changes. `--bump-revision N --mark-compacted` (etcdctl's
flags) moves the revision counter N ahead and marks everything before it
compacted: every such client gets 410 Expired and re-lists, as it must.

`status` answers what `etcdctl snapshot status` does: revision, keys, size.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from dataclasses import dataclass

from apiserver.storage.sqlite import DB_FILE
from apiserver.storage.sqlite_log import RevisionLog


@dataclass(frozen=True)
class SnapshotStatus:
    revision: int
    keys: int
    compacted: int
    size: int


class SnapshotError(Exception):
    """A snapshot that cannot be read or restored; the message says why."""


def status(path: str) -> SnapshotStatus:
    """Open a copy of the snapshot (checked as a server would) and describe it."""
    if not os.path.isfile(path):
        raise SnapshotError(f"snapshot file {path} does not exist")
    scratch = path + ".status"
    shutil.copyfile(path, scratch)
    try:
        return _describe(scratch, os.path.getsize(path))
    finally:
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(scratch + suffix):
                os.unlink(scratch + suffix)


def _has_tables(path: str) -> bool:
    """Does the file hold our three tables? (An empty file is an empty SQLite database.)"""
    db = sqlite3.connect(path)
    try:
        rows = db.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
            " AND name IN ('log', 'current', 'meta')"
        ).fetchone()
        return bool(rows and rows[0] == 3)
    except sqlite3.DatabaseError as err:
        raise SnapshotError(f"snapshot is not usable: {err}") from None
    finally:
        db.close()


def _describe(path: str, size: int) -> SnapshotStatus:
    if not _has_tables(path):
        raise SnapshotError("snapshot is not usable: it holds no tinykube store (no revision log)")
    try:
        revision_log = RevisionLog(path)
    except Exception as err:  # StorageCorrupt names the file and the problem
        raise SnapshotError(f"snapshot is not usable: {err}") from None
    try:
        items, revision = revision_log.list("")
        return SnapshotStatus(revision, len(items), revision_log.compacted, size)
    finally:
        revision_log.close()


def restore(
    path: str, data_dir: str, *, bump_revision: int = 0, mark_compacted: bool = False
) -> SnapshotStatus:
    """Put the snapshot at `path` into `data_dir` as its database (see the module docstring)."""
    if bump_revision < 0:
        raise SnapshotError("--bump-revision must be 0 or more")
    if not os.path.isfile(path):
        raise SnapshotError(f"snapshot file {path} does not exist")
    target = os.path.join(data_dir, DB_FILE)
    if os.path.exists(target):
        raise SnapshotError(
            f"data-dir {data_dir} already holds a database ({DB_FILE}): "
            "restore into a new directory"
        )
    os.makedirs(data_dir, mode=0o700, exist_ok=True)
    staging = target + ".restoring"
    shutil.copyfile(path, staging)
    os.chmod(staging, 0o600)
    try:
        if bump_revision or mark_compacted:
            _bump(staging, bump_revision, mark_compacted)
        found = _describe(staging, os.path.getsize(path))
        os.replace(staging, target)
    finally:
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(staging + suffix):
                os.unlink(staging + suffix)
    return found


def _bump(path: str, by: int, mark_compacted: bool) -> None:
    """Move the revision counter `by` ahead; with `mark_compacted`, compact up to it."""
    db = sqlite3.connect(path)
    try:
        row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'log'").fetchone()
        revision = (int(row[0]) if row else 0) + by
        if row:
            db.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'log'", (revision,))
        else:
            db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('log', ?)", (revision,))
        if mark_compacted:
            db.execute(
                "INSERT INTO meta (name, value) VALUES ('compacted', ?)"
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (revision,),
            )
        db.commit()
    except sqlite3.DatabaseError as err:
        raise SnapshotError(f"snapshot is not usable: {err}") from None
    finally:
        db.close()
