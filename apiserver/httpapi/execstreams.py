"""pods/exec's two transports: a WebSocket of channel-prefixed messages, or SPDY streams.

remotecommand.py runs an exec over `Channels`; this module is the two kinds
of channel kubectl brings (Kubernetes' remotecommand/websocket.go and
httpstream.go in the kubelet's streaming server):

WebSocket (kubectl 1.30+, `v5.channel.k8s.io`): one read loop takes every
message off the socket and routes it by its first byte -- stdin's data to
the stdin queue, resize JSON to the resize queue, `[255, 0]` (v5's close
signal) ends stdin. Writes are `[1] + data`, `[2] + data`; the end is
`[3] + status`, then a close frame (1000), after which client-go's readers
see EOF. Like the kubelet, the server first sends an empty message on the
lowest channel it will write, so the client knows the streams are up.

SPDY (the fallback, and every client-go before 1.30): after the 101 the
client opens one stream per channel, the error stream first; the exec waits
until all it asked for (the query's stdin/stdout/stderr/tty) are open, as
the kubelet does, for at most 30 s. stdin's FIN is its EOF. The end is the
status on the error stream, FIN on every stream, and GOAWAY.

Both then wait a little (`LINGER`) for the client to hang up first: closing
a TCP connection that still has unread bytes from the peer resets it, and a
reset can destroy the status the client has not read yet. A client that
goes away mid-exec cancels the relay, which cancels the kubelet's stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable
from typing import Any

from apiserver.httpapi import remotecommand as rc
from apiserver.httpapi import spdysession, websocket

log = logging.getLogger(__name__)

LINGER = 5.0
STREAM_CREATION_TIMEOUT = 30.0
# SPDY's streamtype header -> the channel it is.
KINDS = {
    "error": rc.ERROR,
    "stdin": rc.STDIN,
    "stdout": rc.STDOUT,
    "stderr": rc.STDERR,
    "resize": rc.RESIZE,
}


async def _queued(queue: asyncio.Queue[bytes | None]) -> AsyncIterator[bytes]:
    while (item := await queue.get()) is not None:
        yield item


async def _race(relay: Awaitable[None], client: asyncio.Future[Any]) -> None:
    """Run the relay while the client stays; if it leaves first, cancel the relay; if the
    relay finishes first, give the client LINGER seconds to hang up."""
    task = asyncio.ensure_future(relay)
    try:
        await asyncio.wait({task, client}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(client), LINGER)
    finally:
        for pending in (task, client):
            pending.cancel()
        await asyncio.gather(task, client, return_exceptions=True)


class WebSocketChannels:
    """The channels of an exec over a WebSocket (remotecommand.Channels)."""

    def __init__(self, ws: websocket.WebSocket, protocol: str) -> None:
        self.ws = ws
        self.protocol = protocol
        self._stdin: asyncio.Queue[bytes | None] = asyncio.Queue(64)
        self._resize: asyncio.Queue[bytes | None] = asyncio.Queue(16)
        self._open = {rc.STDIN: True, rc.RESIZE: True}

    def stdin(self) -> AsyncIterator[bytes]:
        return _queued(self._stdin)

    def resizes(self) -> AsyncIterator[bytes]:
        return _queued(self._resize)

    async def output(self, channel: int, data: bytes) -> None:
        if data:
            await self.ws.send(bytes([channel]) + data)

    async def _end(self, channel: int) -> None:
        if self._open.get(channel):
            self._open[channel] = False
            await (self._stdin if channel == rc.STDIN else self._resize).put(None)

    async def read_loop(self) -> None:
        """Route the client's messages until it closes; then end stdin and resizes."""
        try:
            while (message := await self.ws.receive()) is not None:
                opcode, data = message
                if opcode != websocket.BINARY or not data:
                    continue
                channel, payload = data[0], data[1:]
                if channel == rc.CLOSE and self.protocol == rc.V5 and payload:
                    await self._end(payload[0])
                elif channel == rc.STDIN and self._open[rc.STDIN] and payload:
                    await self._stdin.put(payload)
                elif channel == rc.RESIZE and self._open[rc.RESIZE] and payload:
                    await self._resize.put(payload)
        except ConnectionError:
            pass
        finally:
            for channel in (rc.STDIN, rc.RESIZE):
                with contextlib.suppress(asyncio.QueueFull):
                    if self._open[channel]:
                        self._open[channel] = False
                        queue = self._stdin if channel == rc.STDIN else self._resize
                        queue.put_nowait(None)

    async def finish(self, status: dict[str, Any]) -> None:
        payload = rc.encode_status(status, self.protocol)
        with contextlib.suppress(ConnectionError):
            if payload:
                await self.ws.send(bytes([rc.ERROR]) + payload)
            await self.ws.close(websocket.NORMAL_CLOSURE)


async def serve_websocket(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    stream: rc.ExecStream,
    options: rc.ExecOptions,
    protocol: str,
) -> None:
    """Run an exec whose 101 (WebSocket) has been sent."""
    ws = websocket.WebSocket(reader, writer)
    channels = WebSocketChannels(ws, protocol)
    client = asyncio.ensure_future(channels.read_loop())
    try:
        first = rc.STDOUT if options.stdout else rc.STDERR if options.stderr else rc.ERROR
        await ws.send(bytes([first]))
        await _race(rc.relay(stream, channels, options, channels.finish), client)
    except ConnectionError:
        pass
    finally:
        client.cancel()
        await stream.aclose()


class SpdyChannels:
    """The channels of an exec over SPDY streams (remotecommand.Channels)."""

    def __init__(self, session: spdysession.Session, protocol: str) -> None:
        self.session = session
        self.protocol = protocol
        self.streams: dict[int, spdysession.Stream] = {}
        self.ready = asyncio.Event()
        self.expected: set[int] = set()

    def accept(self, stream: spdysession.Stream) -> bool:
        """A stream the client opened: one of each kind, the rest refused."""
        channel = KINDS.get(stream.header("streamtype"))
        if channel is None or channel in self.streams:
            return False
        self.streams[channel] = stream
        if self.expected <= self.streams.keys():
            self.ready.set()
        return True

    async def _read(self, channel: int) -> AsyncIterator[bytes]:
        stream = self.streams.get(channel)
        while stream is not None and (data := await stream.read()):
            yield data

    def stdin(self) -> AsyncIterator[bytes]:
        return self._read(rc.STDIN)

    def resizes(self) -> AsyncIterator[bytes]:
        return self._read(rc.RESIZE)

    async def output(self, channel: int, data: bytes) -> None:
        if (stream := self.streams.get(channel)) is not None:
            await stream.write(data)

    async def finish(self, status: dict[str, Any]) -> None:
        error = self.streams.get(rc.ERROR)
        payload = rc.encode_status(status, self.protocol)
        if error is not None and payload:
            await error.write(payload)
        for stream in self.streams.values():
            await stream.close()
        await self.session.go_away()


def expected_streams(options: rc.ExecOptions, protocol: str) -> set[int]:
    """The streams the client opens for these options (the kubelet waits for them all)."""
    wanted = {rc.ERROR}
    wanted |= {rc.STDIN} if options.stdin else set()
    wanted |= {rc.STDOUT} if options.stdout else set()
    wanted |= {rc.STDERR} if options.stderr and not options.tty else set()
    wanted |= {rc.RESIZE} if options.tty and protocol != rc.V2 else set()
    return wanted


async def serve_spdy(
    conduit: spdysession.Conduit,
    stream: rc.ExecStream,
    options: rc.ExecOptions,
    protocol: str,
) -> None:
    """Run an exec whose 101 (SPDY/3.1) has been sent."""
    session = spdysession.Session(conduit)
    channels = SpdyChannels(session, protocol)
    channels.expected = expected_streams(options, protocol)
    client = asyncio.ensure_future(session.run(channels.accept))
    try:
        closed = asyncio.ensure_future(session.closed.wait())
        ready = asyncio.ensure_future(channels.ready.wait())
        await asyncio.wait(
            {ready, closed}, timeout=STREAM_CREATION_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
        )
        for waiter in (ready, closed):
            waiter.cancel()
        if not channels.ready.is_set():
            if not session.closed.is_set():
                log.info("exec: timed out waiting for client to create streams")
                await session.go_away()
            return
        await _race(rc.relay(stream, channels, options, channels.finish), client)
    finally:
        client.cancel()
        await asyncio.gather(client, return_exceptions=True)
        await stream.aclose()
