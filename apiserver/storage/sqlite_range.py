"""Range reads of the SQLite store at a revision: one page of a list, as etcd's MVCC Range.

etcd answers `Range(key, range_end, revision=R, limit=N)` from its MVCC index:
for each key in the range, the newest version at or before R, unless that
version is a deletion. The SQLite revision log (sqlite_log.py) keeps the same
history until compaction, so a list can be read at an old revision the same
way, which is what makes a paged list one consistent snapshot: every page of
it is read at the first page's revision, however many writes land between
the pages.

Two ways to read, chosen by the revision asked for:

* At the current revision, the `current` table holds exactly the live keys:
  one range scan of its primary key, as `list` does.
* At an older revision R, from `log`: per key, the newest row at or before R,
  dropped when that row is a tombstone. With the index on log(key, revision)
  this is one ordered walk of the key range, grouped by key; SQLite fills the
  other columns of a `max(revision)` group from the row that holds the
  maximum, so the group *is* the key's version at R::

      SELECT key, value, create_revision, max(revision), deleted FROM log
       WHERE key >= start AND key < end AND revision <= R
       GROUP BY key HAVING deleted = 0 ORDER BY key LIMIT n

Why history at or after the compaction revision C is complete for this:
compaction keeps every row after C and, for each key, its newest row at or
before C, and drops a tombstone at or before C only with the rows it
superseded. So for R >= C, the newest row at or before R of every key is
still there, or the key did not exist at R. Worked example, one key `a`:

    rev 1 create a=x   rev 3 update a=y   rev 5 delete a   (rev 2, 4: other keys)
    at 2: rows <= 2 of a: {1}      -> a=x
    at 4: rows <= 4 of a: {1, 3}   -> a=y (3 is the max)
    at 5: rows <= 5 of a: {.., 5}  -> 5 is a tombstone: no a
    compact(4) drops row 1 (superseded by 3 <= 4); at 4 the max is still 3: a=y.
    A read at 3 < 4 is refused (Compacted): the row that said a=x at 2 is gone.

`count` (how many keys the range holds from `start` on at that revision) is
what etcd returns beside a limited Range; the API server turns it into a
list's remainingItemCount. It costs one more walk of the same range.

Everything here runs on the storage's one worker thread, inside no
transaction of its own: each call is a few statements that a write cannot
land between (the writer is the same thread).
"""

from __future__ import annotations

import sqlite3

from apiserver.storage.interface import KeyValue, ListPage


def prefix_end(prefix: str) -> str | None:
    """The smallest string greater than every string starting with `prefix`.

    SQLite compares TEXT as UTF-8 bytes, which orders like code points, so
    bumping the last code point gives an exclusive upper bound: prefix
    "/registry/pods/" -> "/registry/pods0". None means "no upper bound" (the
    empty prefix, or a last code point with no successor).
    """
    if not prefix:
        return None
    nxt = ord(prefix[-1]) + 1
    if 0xD800 <= nxt <= 0xDFFF:  # surrogates cannot be encoded; skip over them
        nxt = 0xE000
    if nxt > 0x10FFFF:
        return None
    return prefix[:-1] + chr(nxt)


def _bounds(prefix: str, start: str) -> tuple[str, tuple[object, ...]]:
    """The WHERE terms of the keys under `prefix` from `start` on, and their parameters."""
    low = max(prefix, start)
    end = prefix_end(prefix)
    if end is not None:
        return "key >= ? AND key < ?", (low, end)
    if prefix:  # no successor to bound by: compare the leading characters themselves
        return "key >= ? AND substr(key, 1, ?) = ?", (low, len(prefix), prefix)
    return "key >= ?", (low,)


def read_page(
    db: sqlite3.Connection, prefix: str, start: str, limit: int, at: int, current: int
) -> ListPage:
    """The keys under `prefix` from `start` on as they were at revision `at` (<= current)."""
    where, args = _bounds(prefix, start)
    limit_sql = " LIMIT ?" if limit > 0 else ""
    limit_args: tuple[object, ...] = (limit,) if limit > 0 else ()
    if at == current:
        rows = db.execute(
            "SELECT key, value, create_revision, mod_revision FROM current WHERE "
            + where
            + " ORDER BY key"
            + limit_sql,
            (*args, *limit_args),
        ).fetchall()
        (count,) = db.execute("SELECT count(*) FROM current WHERE " + where, args).fetchone()
    else:
        versions = (
            "SELECT key, value, create_revision, max(revision), deleted FROM log WHERE "
            + where
            + " AND revision <= ? GROUP BY key HAVING deleted = 0"
        )
        grouped = db.execute(versions + " ORDER BY key" + limit_sql, (*args, at, *limit_args))
        rows = [row[:4] for row in grouped]
        (count,) = db.execute("SELECT count(*) FROM (" + versions + ")", (*args, at)).fetchone()
    items = [KeyValue(r[0], r[1], r[2], r[3]) for r in rows]
    return ListPage(items, at, count > len(items), int(count))
