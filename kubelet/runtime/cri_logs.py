"""Reading CRI container log files (the kubelet's side of `kubectl logs`).

CRI has no "get logs" call. The runtime (containerd's CRI plugin) writes each
container's stdout and stderr into the file named by the sandbox's
log_directory and the container's log_path, one record per line:

    2024-05-01T10:00:00.123456789Z stdout F hello world
    2024-05-01T10:00:00.223456789Z stderr P a very long line that was
    2024-05-01T10:00:00.223456790Z stderr F  split by the runtime

`F` closes a line, `P` is a partial one: the runtime splits lines longer
than its buffer, and the reader joins the pieces of one stream (so above,
stderr says "a very long line that was split by the runtime").
Kubernetes' kuberuntime/logs does the same parsing in Go.

`parse_records` is pure (bytes in, LogLines out, leftover partials kept in
a dict per stream), so `follow_records`, the loop behind `read_log`, only
deals with files. It takes the parser as an argument: docker_logs.py runs it
over Docker's json-file format. The loop, every file call in a thread:

1. `tail=N`: read *backwards* from the end in blocks (64 KiB, then 128 KiB,
   256 KiB, ...: each block's records are parsed again with the ones after
   it, so doubling keeps the total work linear) until the blocks hold N full
   lines, each one whole -- see `tail_records` for when a line may still be
   missing its first pieces. `--tail=10` of a 50 MB log reads 64 KiB, not
   50 MB. Without `tail`, read forwards from the start, 1 MiB at a time.
2. Yield the lines; a record half-written at the end (no newline yet) is
   left for the next read. Without `follow`, stop at the end of the file.
3. `follow`: at the end of the file, look whether the log was rotated --
   the kubelet's log manager (kubelet/logrotation.py) renames the file aside
   and the runtime opens a new one at the same path; Docker's json-file
   driver does the same by itself. The open handle still reads the old file,
   so the loop notices the rotation by the path naming another inode. It
   switches once the new file has bytes (then the writer has moved to it)
   and the old one has had one more poll interval for the last bytes still
   on their way to it (containerd flushes the old file's pipe after the swap):
   the old handle is drained to its end, then the new file is read from
   offset 0. The new file is opened as soon as it is seen, so a writer that
   rotates again meanwhile (a fast one, on Docker) cannot make the reader
   skip it. A file that shrank (truncated in place) is read again from 0.
   Otherwise ask `exited()`: stop once the container is gone and the file
   drained, else sleep 0.2 s and read on.

Worked example, `logs -f --tail=2` while the manager rotates `0.log`:

    0.log (inode 7): a b c d          read backwards: yield c, d; hold inode 7
    ... the container writes e        read on: yield e
    mv 0.log 0.log.20240501-100000    (the handle still reads inode 7)
    ... the container writes f        still to inode 7 (not yet reopened)
    ReopenContainerLog; writes g      0.log is inode 9, with g in it
    at the end of inode 7: rotated    drain inode 7: yield f; open 0.log: yield g

Like Kubernetes, `logs` reads the current file only: rotated files (the
newest plain, older ones gzipped, `.gz`) stay for node log agents.
"""

from __future__ import annotations

import asyncio
import calendar
import functools
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import BinaryIO

from kubelet.runtime.interface import LogLine

POLL_INTERVAL = 0.2
READ_CHUNK = 1 << 20  # forward reads: at most 1 MiB at a time
TAIL_BLOCK = 64 << 10  # backward reads: the first block, doubled each time


def parse_time(text: str) -> float:
    """RFC 3339 with nanoseconds (`2024-05-01T10:00:00.123456789Z`) -> Unix seconds."""
    main, _, frac = text.rstrip("Z").partition(".")
    offset = 0
    if "+" in main[10:] or "-" in main[10:]:  # an explicit offset instead of Z
        sign = 1 if "+" in main[10:] else -1
        main, _, tz = main.rpartition("+" if sign == 1 else "-")
        hours, _, minutes = tz.partition(":")
        offset = sign * (int(hours) * 3600 + int(minutes or 0) * 60)
    if "+" in frac or "-" in frac:
        sign = 1 if "+" in frac else -1
        frac, _, tz = frac.partition("+" if sign == 1 else "-")
        hours, _, minutes = tz.partition(":")
        offset = sign * (int(hours) * 3600 + int(minutes or 0) * 60)
    base = calendar.timegm(time.strptime(main, "%Y-%m-%dT%H:%M:%S"))
    return base - offset + (float("0." + frac) if frac else 0.0)


def parse_records(data: bytes, partial: dict[str, str]) -> list[LogLine]:
    """Full lines from complete records in `data`; P pieces wait in `partial` per stream."""
    out = []
    for raw in data.split(b"\n"):
        if not raw:
            continue
        fields = raw.decode(errors="replace").split(" ", 3)
        if len(fields) < 3:
            continue  # not a CRI record
        stamp, stream, tag = fields[0], fields[1], fields[2]
        text = fields[3] if len(fields) > 3 else ""
        if tag == "P":
            partial[stream] = partial.get(stream, "") + text
            continue
        text = partial.pop(stream, "") + text
        try:
            when = parse_time(stamp)
        except ValueError:
            when = 0.0
        out.append(LogLine(when, stream, text))
    return out


ParseRecords = Callable[[bytes, dict[str, str]], list[LogLine]]
# Opens a log file for reading; the seam through which tests count the bytes read.
Opener = Callable[[Path], BinaryIO]


def open_log(path: Path) -> BinaryIO:
    return path.open("rb")


def _whole(lines: list[LogLine], want: int) -> bool:
    """Whether the last `want` lines are surely whole: none is the first of its stream."""
    if len(lines) < want:
        return False
    first_of_stream: dict[str, int] = {}
    for index, line in enumerate(lines):
        first_of_stream.setdefault(line.stream, index)
    return all(index < len(lines) - want for index in first_of_stream.values())


def tail_records(
    f: BinaryIO, parse: ParseRecords, tail: int, block: int = TAIL_BLOCK
) -> tuple[list[LogLine], dict[str, str], int]:
    """The last `tail` full lines of `f`, read backwards from its end in growing blocks.

    Returns the lines, the partial pieces that follow them (a line not yet
    closed), and the offset where a follower reads on (after the last
    complete record). The blocks start at a record boundary (the record cut
    by a block's start is skipped), but a *line* may still have begun in an
    earlier block: only the first line of each stream in the blocks can be
    missing pieces, since every later one starts right after a line of its
    own stream that closed inside them. So reading goes on until none of the
    last `tail` lines is such a first line, or the start of the file.
    """
    end = f.seek(0, os.SEEK_END)
    start, buf = end, b""
    while True:
        begin = max(0, start - block)
        f.seek(begin)
        buf = f.read(start - begin) + buf
        start, block = begin, block * 2
        stop = buf.rfind(b"\n") + 1  # after the last complete record
        first = 0 if start == 0 else buf.find(b"\n") + 1  # skip the record the block cut
        if start > 0 and first >= stop:
            continue  # not one whole record yet
        partial: dict[str, str] = {}
        lines = parse(buf[first:stop], partial)
        if start == 0 or tail == 0 or _whole(lines, tail):
            return (lines[-tail:] if tail else []), partial, start + stop


class LogFile:
    """An open log file, where reading stands, and whether its path was rotated away."""

    def __init__(self, path: Path, opener: Opener) -> None:
        self.path = path
        self.opener = opener
        self.handle: BinaryIO | None = None
        self.successor: BinaryIO | None = None  # the new file at the path, once rotated
        self.pending = b""  # an unfinished record at the end, kept for the next read

    def open(self) -> bool:
        """Open the file at the path; False while it does not exist yet."""
        try:
            self.handle = self.opener(self.path)
        except FileNotFoundError:
            return False
        self.pending = b""
        return True

    def close(self) -> None:
        for f in (self.handle, self.successor):
            if f is not None:
                f.close()
        self.handle = self.successor = None

    def read(self, limit: int = READ_CHUNK) -> tuple[bytes, bool]:
        """Complete records from where reading stands (at most ~`limit` bytes), and whether
        the end of the file was reached."""
        assert self.handle is not None
        chunk = self.handle.read(limit)
        data = self.pending + chunk
        stop = data.rfind(b"\n") + 1
        self.pending = data[stop:]
        return data[:stop], len(chunk) < limit

    def drain(self) -> bytes:
        """Every complete record left in the open file."""
        out = []
        while True:
            data, eof = self.read()
            out.append(data)
            if eof:
                return b"".join(out)

    def rotated(self) -> bool:
        """Whether reading must move on: the path names a new file that has bytes (the writer
        moved there), or this file shrank below where reading stands (truncated in place).

        The new file is opened at once and held as the successor: should it be rotated
        away too before the switch (Docker renames `.1` to `.2` as it makes a new file),
        it is still read, not skipped.
        """
        assert self.handle is not None
        if self.successor is not None:
            return True
        own = os.fstat(self.handle.fileno())
        if own.st_size < self.handle.tell():
            return True
        try:
            named = os.stat(self.path)
            if (named.st_dev, named.st_ino) == (own.st_dev, own.st_ino) or not named.st_size:
                return False  # ours still, or renamed and reopened but not yet written to
            new = self.opener(self.path)
        except FileNotFoundError:
            return False  # renamed, not yet reopened: the writer still writes to ours
        if os.path.sameopenfile(new.fileno(), self.handle.fileno()):
            new.close()
            return False
        self.successor = new
        return True

    def switch(self) -> bytes:
        """After a rotation: the old file's last records, then the successor from offset 0
        (or, truncated in place, the same file from 0)."""
        assert self.handle is not None
        if self.successor is None:
            self.handle.seek(0)
            self.pending = b""
            return b""
        rest = self.drain()
        self.handle.close()
        self.handle, self.successor, self.pending = self.successor, None, b""
        return rest


async def follow_records(
    path: str | Path,
    *,
    parse: ParseRecords,
    follow: bool,
    tail: int | None,
    exited: Callable[[], Awaitable[bool]],
    opener: Opener = open_log,
) -> AsyncIterator[LogLine]:
    """The read/parse/yield loop for a record-per-line log file, whatever the format.

    `parse` turns complete lines into LogLines (this module's parse_records, or
    docker_logs' for Docker's json-file). Reads go through a thread, so a slow
    disk never blocks the event loop; see the module docstring for the steps.
    """
    log = LogFile(Path(path), opener)
    try:
        while not await asyncio.to_thread(log.open):  # the runtime has not made it yet
            if not follow or await exited():
                return
            await asyncio.sleep(POLL_INTERVAL)
        partial: dict[str, str] = {}
        if tail is not None:
            assert log.handle is not None
            lines, partial, offset = await asyncio.to_thread(tail_records, log.handle, parse, tail)
            log.handle.seek(offset)
            for line in lines:
                yield line
            if not follow:
                return  # the tail, to the end as it stood; later lines were not asked for
        async for line in _read_on(log, parse, partial, follow, exited):
            yield line
    finally:
        log.close()


async def _read_on(
    log: LogFile,
    parse: ParseRecords,
    partial: dict[str, str],
    follow: bool,
    exited: Callable[[], Awaitable[bool]],
) -> AsyncIterator[LogLine]:
    """Steps 2 and 3 of the module docstring: read forwards, across rotations when following."""
    rotation_seen = False
    while True:
        data, eof = await asyncio.to_thread(log.read)
        for line in parse(data, partial):
            yield line
        if not eof:
            continue
        if not follow:
            return
        if await asyncio.to_thread(log.rotated):
            if not rotation_seen:  # give the old file one poll interval for its last bytes
                rotation_seen = True
                await asyncio.sleep(POLL_INTERVAL)
                continue
            rotation_seen = False
            for line in parse(await asyncio.to_thread(log.switch), partial):
                yield line
            continue
        if await exited():
            # One last read: the runtime may have flushed, or rotated, after we looked.
            rest = await asyncio.to_thread(log.drain)
            if await asyncio.to_thread(log.rotated):
                rest += await asyncio.to_thread(log.switch)
                rest += await asyncio.to_thread(log.drain)
            for line in parse(rest, partial):
                yield line
            return
        await asyncio.sleep(POLL_INTERVAL)


# read_log(path, follow=, tail=, exited=): the log's lines (the last `tail` when given);
# with `follow`, on until `exited()` says the container is gone and the file is drained.
read_log = functools.partial(follow_records, parse=parse_records)
