"""A SPDY/3.1 session, the server's side: the streams a client opens, and their data.

spdy.py reads and writes frames; this module keeps the state kube's streaming
servers keep through moby/spdystream (apimachinery's util/httpstream/spdy
wraps it): which streams are open, which half of each is closed, and what
to answer each control frame. kubectl is always the side that opens streams
(odd ids, ascending); the server accepts or refuses each:

    client                              server (Session.run)
    SYN_STREAM 1 {streamtype: error}    accept(stream) -> True: SYN_REPLY 1
                                        accept(stream) -> False: RST_STREAM 1 REFUSED_STREAM
    DATA 3 "abc"                        queued for stream 3's read()
    DATA 3 FIN                          stream 3's read() returns b"" (the client's EOF)
    PING 1                              PING 1 (the same id, back at once)
    RST_STREAM 3                        stream 3 is reset: read() returns b"", writes are dropped
    GOAWAY / EOF                        run() returns; every stream's read() returns b""
    SETTINGS, WINDOW_UPDATE             noted (no state to keep, see below)

and the handler writes back with `Stream.write()` (DATA frames of at most
32 KiB) and half-closes with `Stream.close()` (an empty DATA frame with FIN).
A stream is finished when both halves are closed or it was reset.

Flow control (SPDY/3.1's per-stream and per-session windows of 64 KiB):
spdystream, and so kubectl, never sends WINDOW_UPDATE and ignores the ones
it receives, so a sender that waited for its window to open would stall
after 64 KiB; this server therefore does not wait either. It does announce
what it has consumed (WINDOW_UPDATE for the stream and the session once
half a window has been read), so a peer that keeps the rules never stalls
on it. What bounds memory instead is back-pressure: each stream queues at
most 64 frames, and while one is full the session stops reading the
connection (spdystream's own frame handler blocks the same way).

`Conduit` is the byte pipe underneath: the upgraded TCP connection of an
`Upgrade: SPDY/3.1` request, or a WebSocket carrying SPDY in its binary
messages (`SPDY/3.1+portforward.k8s.io`, websocket.py's MessageConduit).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Protocol

from apiserver.httpapi import spdy

log = logging.getLogger(__name__)

DATA_CHUNK = 32 * 1024
QUEUED_FRAMES = 64


class Conduit(Protocol):
    """A byte pipe: read exactly n bytes (IncompleteReadError at its end), write bytes."""

    async def read_exactly(self, n: int) -> bytes: ...

    async def write(self, data: bytes) -> None: ...


class StreamConduit:
    """The conduit of an upgraded HTTP connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def read_exactly(self, n: int) -> bytes:
        return await self.reader.readexactly(n)

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()


class Stream:
    """One stream: the client's headers, its data in, this side's data out."""

    def __init__(self, session: Session, stream_id: int, headers: spdy.Headers) -> None:
        self.session = session
        self.id = stream_id
        self.headers = headers
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(QUEUED_FRAMES)
        self.remote_closed = False  # the client sent FIN (or the stream/session ended)
        self.local_closed = False  # this side sent FIN
        self.reset = False
        self._unannounced = 0

    def header(self, name: str) -> str:
        values = self.headers.get(name.lower())
        return values[0] if values else ""

    async def read(self) -> bytes:
        """The client's next data; b"" once it closed its half (or the stream ended)."""
        if self._queue.empty() and self.remote_closed:
            return b""
        data = await self._queue.get()
        if data:
            self._unannounced += len(data)
            if self._unannounced >= spdy.INITIAL_WINDOW // 2 and not self.reset:
                delta, self._unannounced = self._unannounced, 0
                await self.session.send(spdy.WindowUpdate(self.id, delta))
                await self.session.send(spdy.WindowUpdate(0, delta))
        return data

    async def write(self, data: bytes) -> None:
        """Send data on this stream (dropped once it is reset or this half is closed)."""
        for start in range(0, len(data), DATA_CHUNK):
            if self.reset or self.local_closed:
                return
            await self.session.send(spdy.Data(self.id, data[start : start + DATA_CHUNK]))

    async def close(self) -> None:
        """Half-close: FIN, once."""
        if self.reset or self.local_closed:
            return
        self.local_closed = True
        await self.session.send(spdy.Data(self.id, b"", fin=True))
        self.session.forget_if_finished(self)

    async def refuse(self, status: int = spdy.CANCEL) -> None:
        """RST_STREAM: both halves end at once."""
        if not self.reset:
            self.reset = True
            self.ended()
            await self.session.send(spdy.RstStream(self.id, status))

    def ended(self) -> None:
        """The client's half is over (FIN, reset, or the session ended): wake the reader."""
        if not self.remote_closed:
            self.remote_closed = True
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait(b"")
        self.session.forget_if_finished(self)

    async def receive(self, data: bytes, fin: bool) -> None:
        if data and not self.remote_closed:
            await self._queue.put(data)
        if fin:
            self.ended()


Accept = Callable[[Stream], bool]


class Session:
    """The server's end of one SPDY connection."""

    def __init__(self, conduit: Conduit) -> None:
        self.conduit = conduit
        self.codec = spdy.HeaderCodec()
        self.streams: dict[int, Stream] = {}
        self.last_stream_id = 0
        self.going_away = False
        self.closed = asyncio.Event()  # the client went away (EOF, GOAWAY, a protocol error)
        self._lock = asyncio.Lock()

    async def send(self, frame: spdy.Frame) -> None:
        """Encode and write under one lock: header blocks share a compression context."""
        async with self._lock:
            if self.closed.is_set() and isinstance(frame, spdy.Data):
                return
            data = spdy.encode(frame, self.codec)
            try:
                await self.conduit.write(data)
            except (ConnectionError, RuntimeError):
                self._end()

    def forget_if_finished(self, stream: Stream) -> None:
        if stream.reset or (stream.remote_closed and stream.local_closed):
            self.streams.pop(stream.id, None)

    async def go_away(self) -> None:
        """GOAWAY (status OK): this side opens nothing more and accepts no new streams."""
        if not self.going_away:
            self.going_away = True
            await self.send(spdy.GoAway(self.last_stream_id, 0))

    def _end(self) -> None:
        self.closed.set()
        for stream in list(self.streams.values()):
            stream.ended()

    async def run(self, accept: Accept) -> None:
        """Read frames until the client goes away; `accept` decides on each new stream."""
        try:
            while True:
                frame = await spdy.read_frame(self.conduit.read_exactly, self.codec)
                if frame is None:
                    continue
                if isinstance(frame, spdy.GoAway):
                    return
                await self._handle(frame, accept)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except spdy.FrameError as err:
            log.info("spdy session ended", extra={"error": str(err)})
            await self.send(spdy.GoAway(self.last_stream_id, spdy.PROTOCOL_ERROR))
        finally:
            self._end()

    async def _handle(self, frame: spdy.Frame, accept: Accept) -> None:
        if isinstance(frame, spdy.SynStream):
            await self._open(frame, accept)
        elif isinstance(frame, spdy.Data):
            stream = self.streams.get(frame.stream_id)
            if stream is None:
                await self.send(spdy.RstStream(frame.stream_id, spdy.INVALID_STREAM))
            elif stream.remote_closed and not stream.reset:
                await self.send(spdy.RstStream(frame.stream_id, spdy.STREAM_ALREADY_CLOSED))
            else:
                await stream.receive(frame.data, frame.fin)
        elif isinstance(frame, spdy.HeadersFrame):
            if (stream := self.streams.get(frame.stream_id)) is not None:
                for name, values in frame.headers.items():
                    stream.headers.setdefault(name, []).extend(values)
                if frame.fin:
                    stream.ended()
        elif isinstance(frame, spdy.RstStream):
            if (stream := self.streams.get(frame.stream_id)) is not None:
                stream.reset = True
                stream.ended()
        elif isinstance(frame, spdy.Ping) and frame.ping_id % 2 == 1:
            await self.send(frame)  # the client's ping (a server's own ids would be even)
        # SETTINGS, WINDOW_UPDATE, SYN_REPLY: nothing to keep (module docstring).

    async def _open(self, frame: spdy.SynStream, accept: Accept) -> None:
        sid = frame.stream_id
        if sid in self.streams:
            await self.send(spdy.RstStream(sid, spdy.STREAM_IN_USE))
            return
        if sid % 2 == 0 or sid <= self.last_stream_id:
            await self.send(spdy.RstStream(sid, spdy.PROTOCOL_ERROR))
            return
        self.last_stream_id = sid
        stream = Stream(self, sid, frame.headers)
        if self.going_away:
            await self.send(spdy.RstStream(sid, spdy.REFUSED_STREAM))
            return
        self.streams[sid] = stream
        if frame.fin or frame.unidirectional:
            stream.remote_closed = True
        if not accept(stream):
            stream.reset = True
            self.streams.pop(sid, None)
            await self.send(spdy.RstStream(sid, spdy.REFUSED_STREAM))
            return
        await self.send(spdy.SynReply(sid, {}))
