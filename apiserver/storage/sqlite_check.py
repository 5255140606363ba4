"""Is this database fit to serve? The checks the API server runs before it opens its port.

A store that is silently wrong is worse than one that is down: a lost row
is a pod that no controller will ever see again, a revision that went
backwards makes every watcher skip or repeat events. etcd refuses to start
on a corrupt backend (its bbolt file is checked by the "corrupt check" and
every member hashes its keyspace); tinykube's SQLite store does the same
at open, in two layers:

1. SQLite's own `PRAGMA integrity_check`: the file's b-trees, pages and
   indexes are consistent. This is what catches a torn or overwritten
   page, a truncated file, or a file that is not a database at all.
2. Our revision invariants, which SQLite cannot know:

       current.create_revision <= current.mod_revision <= revision
           (no object claims a write that never happened)
       every live key's mod_revision has its row in the log, same key, not a tombstone
           (the history a watch replays agrees with what a list returns)
       compacted <= revision, and no log row above the revision counter
           (the counter in sqlite_sequence never fell behind the log)

Each check is one query over an index, so a store of 100 000 objects is
checked in well under a second. A failure raises StorageCorrupt naming the
file, what is wrong, and how to get back: restore a snapshot taken with
`tinykube snapshot save`.
"""

from __future__ import annotations

import sqlite3

from apiserver.storage.interface import StorageError

# At most this many lines of integrity_check's report go into the message.
MAX_REPORTED = 5


class StorageCorrupt(StorageError):
    """The database failed a check at open; the server must not serve it."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        shown = "; ".join(problems[:MAX_REPORTED])
        more = f" (and {len(problems) - MAX_REPORTED} more)" if len(problems) > MAX_REPORTED else ""
        super().__init__(
            f"the database {path} is corrupt: {shown}{more}. The API server will not serve it. "
            f"Restore the last snapshot into a new data directory with "
            f"`tinykube snapshot restore SNAPSHOT --data-dir DIR` and start the server there, "
            f"or move the file away to start empty."
        )


def integrity_problems(db: sqlite3.Connection) -> list[str]:
    """SQLite's own check of the file's structure ([] when it answers 'ok')."""
    rows = db.execute("PRAGMA integrity_check").fetchall()
    report = [str(r[0]) for r in rows]
    return [] if report == ["ok"] else [f"integrity_check: {line}" for line in report]


def revision_problems(db: sqlite3.Connection, revision: int, compacted: int) -> list[str]:
    """Our invariants between `current`, `log` and the counters (see the module docstring)."""
    problems: list[str] = []
    if compacted > revision:
        problems.append(f"compacted revision {compacted} is above the current revision {revision}")
    row = db.execute("SELECT MAX(revision) FROM log").fetchone()
    if row and row[0] is not None and int(row[0]) > revision:
        problems.append(f"the log has revision {row[0]} above the revision counter {revision}")
    for key, create, mod in db.execute(
        "SELECT key, create_revision, mod_revision FROM current"
        " WHERE mod_revision > ? OR create_revision > mod_revision OR create_revision < 1"
        " LIMIT 10",
        (revision,),
    ):
        problems.append(
            f"key {key} has create_revision {create} and mod_revision {mod} "
            f"(the store is at revision {revision})"
        )
    for key, mod in db.execute(
        "SELECT c.key, c.mod_revision FROM current AS c"
        " LEFT JOIN log AS l ON l.revision = c.mod_revision"
        " WHERE l.revision IS NULL OR l.key != c.key OR l.deleted != 0"
        " LIMIT 10"
    ):
        problems.append(f"key {key} is live at revision {mod}, but the log has no such write")
    return problems


def check(db: sqlite3.Connection, path: str, revision: int, compacted: int) -> None:
    """Raise StorageCorrupt unless the database passes both layers."""
    try:
        problems = integrity_problems(db)
        if not problems:
            problems = revision_problems(db, revision, compacted)
    except sqlite3.DatabaseError as err:  # the check itself could not read the file
        problems = [str(err)]
    if problems:
        raise StorageCorrupt(path, problems)
