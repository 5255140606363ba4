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
a dict per stream), so the follow loop in `read_log` only deals with files:
read what was appended, parse, yield; at end of file check whether the
container has exited (the `exited` callback) and stop if so, else sleep
0.2 s. A line half-written at the end of the file (no newline yet) is
left for the next read. That loop, `follow_records`, takes the parser as an
argument: docker_logs.py runs it over Docker's json-file format.
"""

from __future__ import annotations

import asyncio
import calendar
import functools
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from kubelet.runtime.interface import LogLine

POLL_INTERVAL = 0.2


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


def _read_from(file: Path, offset: int) -> bytes:
    """The file's bytes from `offset` on; b"" while it does not exist yet."""
    try:
        with file.open("rb") as f:
            f.seek(offset)
            return f.read()
    except FileNotFoundError:
        return b""


async def follow_records(
    path: str | Path,
    *,
    parse: ParseRecords,
    follow: bool,
    tail: int | None,
    exited: Callable[[], Awaitable[bool]],
) -> AsyncIterator[LogLine]:
    """The read/parse/yield loop for a record-per-line log file, whatever the format.

    `parse` turns complete lines into LogLines (this module's parse_records, or
    docker_logs' for Docker's json-file). Reads go through a thread, so a slow
    disk never blocks the event loop.
    """
    file = Path(path)
    partial: dict[str, str] = {}
    offset = 0
    first = True
    while True:
        chunk = await asyncio.to_thread(_read_from, file, offset)
        end = chunk.rfind(b"\n") + 1  # keep an unfinished record for later
        lines = parse(chunk[:end], partial)
        offset += end
        if first and tail is not None:
            lines = list(deque(lines, maxlen=tail)) if tail > 0 else []
        first = False
        for line in lines:
            yield line
        if not follow:
            return
        if end == 0:
            if await exited():
                # One last read: the runtime may have flushed after we looked.
                rest = await asyncio.to_thread(_read_from, file, offset)
                for line in parse(rest, partial):
                    yield line
                return
            await asyncio.sleep(POLL_INTERVAL)


# read_log(path, follow=, tail=, exited=): the log's lines (the last `tail` when given);
# with `follow`, on until `exited()` says the container is gone and the file is drained.
read_log = functools.partial(follow_records, parse=parse_records)
