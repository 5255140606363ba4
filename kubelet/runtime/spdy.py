"""A small SPDY/3.1 client: how a CRI runtime's streaming server is spoken to.

containerd answers CRI Exec with a URL of its streaming server (k8s.io's
cri/streaming, the same code Kubernetes' kubelet once served itself). That
server speaks two upgrades: WebSocket with the channel.k8s.io subprotocols,
and SPDY/3.1 -- the one client-go's `kubectl exec` used for years. Only SPDY
lets a client end stdin and still read the command's output and exit status
(a stream is half-closed with a FIN; containerd 1.6's WebSocket side knows
no v5.channel.k8s.io close signal, so `cat` and `tar x` would never see
EOF). So this is the client the kubelet uses (cri_exec.py builds the exec
protocol on it):

    POST /exec/<token> HTTP/1.1                 -> HTTP/1.1 101 Switching Protocols
    Connection: Upgrade, Upgrade: SPDY/3.1         X-Stream-Protocol-Version: v4.channel.k8s.io
    X-Stream-Protocol-Version: v4.channel.k8s.io
    then frames, both ways, on the same TCP connection:
    SYN_STREAM 1 {streamtype: error} -> SYN_REPLY 1      (one stream per purpose,
    SYN_STREAM 3 {streamtype: stdin} -> SYN_REPLY 3       client ids odd)
    DATA 3 "hello"  DATA 3 FIN (stdin's end)   <- DATA 5 "hello" (stdout) ... DATA 1 status FIN

Every frame has an 8-byte head (the SPDY/3 draft, section 2.2):

    control |1| version 3 (15 bits) | type (16) | flags (8) | length (24) | body
    data    |0| stream id (31 bits)             | flags (8) | length (24) | payload

    1 SYN_STREAM  id, associated id, priority, slot, header block     flag FIN = 1
    2 SYN_REPLY   id, header block                                    (on either kind)
    3 RST_STREAM  id, status   4 SETTINGS   6 PING id (echoed back)   7 GOAWAY
    8 HEADERS     id, header block          9 WINDOW_UPDATE id, delta

A header block -- a 32-bit count, then each name and value with a 32-bit
length -- travels zlib-compressed, one deflate stream per direction for the
connection's life, primed with the SPDY/3 dictionary (section 2.6.10.1:
the common header names as length-prefixed strings, then status codes,
reason phrases, dates and content types). Python's zlib takes it as
`zdict`; blocks are compressed in send order, each ended with a sync flush.

What this client leaves out, as client-go's does against these servers:
server-initiated streams (refused), flow control (the Go implementation,
moby/spdystream, sends no WINDOW_UPDATE and honours none), priorities.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import zlib
from collections.abc import Sequence
from urllib.parse import urlsplit

from kubelet.errors import ContainerRuntimeError

SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS = 1, 2, 3, 4
PING, GOAWAY, HEADERS, WINDOW_UPDATE = 6, 7, 8, 9
FLAG_FIN = 0x01
REFUSED_STREAM = 3
REPLY_TIMEOUT = 30.0
MAX_HEADER_BLOCK = 256 * 1024

_WORDS = (  # the header names and tokens, each to go in with its length
    "options head post put delete trace accept accept-charset accept-encoding accept-language"
    " accept-ranges age allow authorization cache-control connection content-base"
    " content-encoding content-language content-length content-location content-md5"
    " content-range content-type date etag expect expires from host if-match"
    " if-modified-since if-none-match if-range if-unmodified-since last-modified location"
    " max-forwards pragma proxy-authenticate proxy-authorization range referer retry-after"
    " server te trailer transfer-encoding upgrade user-agent vary via warning"
    " www-authenticate method get status"
)
_NAMES = [*_WORDS.split(), "200 OK", "version", "HTTP/1.1", "url", "public", "set-cookie"]
_NAMES += ["keep-alive", "origin"]
_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request"
    "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented"
    "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00"
    " Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,"
    "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age="
    "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)
# 1423 bytes; zlib's DICTID (its Adler-32) is 0xe3c6a7c2, which servers' blocks name.
DICTIONARY = b"".join(struct.pack(">I", len(n)) + n.encode() for n in _NAMES) + _TAIL.encode()


class SpdyError(ContainerRuntimeError):
    """The streaming server broke the protocol, refused the upgrade, or went away."""


def header_block(headers: dict[str, str]) -> bytes:
    """The uncompressed block: count, then length-prefixed lower-case names and values."""
    out = [struct.pack(">I", len(headers))]
    for name, value in headers.items():
        for text in (name.lower().encode(), value.encode()):
            out.append(struct.pack(">I", len(text)) + text)
    return b"".join(out)


def parse_block(raw: bytes) -> dict[str, str]:
    try:
        (count,) = struct.unpack_from(">I", raw)
        pos, headers = 4, {}
        for _ in range(count):
            pair = []
            for _ in range(2):
                (size,) = struct.unpack_from(">I", raw, pos)
                pair.append(raw[pos + 4 : pos + 4 + size].decode())
                pos += 4 + size
            headers[pair[0]] = pair[1]
    except (struct.error, UnicodeDecodeError) as exc:
        raise SpdyError(f"a malformed SPDY header block: {exc}") from None
    return headers


def control(kind: int, flags: int, body: bytes) -> bytes:
    return struct.pack(">HHI", 0x8000 | 3, kind, (flags << 24) | len(body)) + body


def data_frame(stream_id: int, payload: bytes, fin: bool = False) -> bytes:
    flags = FLAG_FIN if fin else 0
    return struct.pack(">II", stream_id & 0x7FFFFFFF, (flags << 24) | len(payload)) + payload


class Stream:
    """One SPDY stream: its reply headers, the bytes that arrived, our write side."""

    def __init__(self, session: SpdyClient, stream_id: int) -> None:
        self.session = session
        self.id = stream_id
        self.replied = asyncio.Event()
        self.inbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.ended = False  # the remote side sent FIN (or reset the stream)

    async def read(self) -> bytes:
        """The next bytes from the server; b"" once it has ended its side."""
        chunk = await self.inbox.get()
        if chunk is None:
            self.inbox.put_nowait(None)
            return b""
        return chunk

    async def write(self, data: bytes) -> None:
        await self.session.send(data_frame(self.id, data))

    async def close_write(self) -> None:
        """Our half-close: a FIN with no data (the server reads EOF)."""
        await self.session.send(data_frame(self.id, b"", fin=True))

    def remote_end(self) -> None:
        if not self.ended:
            self.ended = True
            self.inbox.put_nowait(None)


class SpdyClient:
    """A connection upgraded to SPDY/3.1: open streams, read what the server sends."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, protocol: str
    ) -> None:
        self.protocol = protocol  # what the server chose of X-Stream-Protocol-Version
        self._reader, self._writer = reader, writer
        self._deflate = zlib.compressobj(zdict=DICTIONARY)
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)
        self._streams: dict[int, Stream] = {}
        self._next_id = 1
        self._lock = asyncio.Lock()
        self._pump = asyncio.ensure_future(self._read_frames())
        self.closed = asyncio.Event()

    @classmethod
    async def connect(cls, url: str, protocols: Sequence[str]) -> SpdyClient:
        """POST `url` asking for SPDY/3.1 and one of `protocols`; the upgraded connection."""
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise SpdyError(f"cannot stream from {url!r}: only http:// URLs are supported")
        try:
            reader, writer = await asyncio.open_connection(parts.hostname, parts.port or 80)
        except OSError as exc:
            raise SpdyError(f"cannot reach the streaming server at {url}: {exc}") from None
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        lines = [f"POST {path} HTTP/1.1", f"Host: {parts.netloc}", "Content-Length: 0"]
        lines += ["Connection: Upgrade", "Upgrade: SPDY/3.1"]
        lines += [f"X-Stream-Protocol-Version: {p}" for p in protocols]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REPLY_TIMEOUT)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError):
            writer.close()
            raise SpdyError(f"the streaming server at {url} did not upgrade") from None
        status, *fields = head.decode(errors="replace").split("\r\n")
        if " 101 " not in f"{status} ":
            body = await _rest(reader)
            writer.close()
            raise SpdyError(f"the streaming server refused the upgrade: {status} {body}".strip())
        chosen = ""
        for field in fields:
            name, _, value = field.partition(":")
            if name.strip().lower() == "x-stream-protocol-version":
                chosen = value.strip()
        return cls(reader, writer, chosen)

    async def send(self, frame: bytes) -> None:
        async with self._lock:
            if self._writer.is_closing():
                raise SpdyError("the streaming connection is closed")
            self._writer.write(frame)
            try:
                await self._writer.drain()
            except ConnectionError as exc:
                raise SpdyError(f"the streaming connection broke: {exc}") from None

    async def open_stream(self, headers: dict[str, str]) -> Stream:
        """SYN_STREAM with `headers`; returns once the server has replied."""
        async with self._lock:  # ids and compressed blocks must go out in order
            stream = Stream(self, self._next_id)
            self._streams[stream.id] = stream
            self._next_id += 2
            block = self._deflate.compress(header_block(headers))
            block += self._deflate.flush(zlib.Z_SYNC_FLUSH)
            body = struct.pack(">IIBB", stream.id, 0, 0, 0) + block
            self._writer.write(control(SYN_STREAM, 0, body))
            try:
                await self._writer.drain()
            except ConnectionError as exc:
                raise SpdyError(f"the streaming connection broke: {exc}") from None
        waiter = asyncio.ensure_future(stream.replied.wait())
        gone = asyncio.ensure_future(self.closed.wait())
        try:
            await asyncio.wait({waiter, gone}, timeout=REPLY_TIMEOUT, return_when="FIRST_COMPLETED")
        finally:
            waiter.cancel()
            gone.cancel()
        if not stream.replied.is_set():
            raise SpdyError(f"the streaming server did not accept stream {headers}")
        return stream

    async def _read_frames(self) -> None:
        try:
            while True:
                head = await self._reader.readexactly(8)
                first, second = struct.unpack(">II", head)
                flags, length = second >> 24, second & 0xFFFFFF
                body = await self._reader.readexactly(length)
                if first & 0x80000000:
                    await self._on_control((first >> 16) & 0x7FFF, first & 0xFFFF, flags, body)
                    continue
                stream = self._streams.get(first & 0x7FFFFFFF)
                if stream is not None and not stream.ended:
                    if body:
                        stream.inbox.put_nowait(body)
                    if flags & FLAG_FIN:
                        stream.remote_end()
        except (asyncio.IncompleteReadError, ConnectionError, SpdyError):
            pass  # the server closed the connection: every stream has ended
        finally:
            for stream in self._streams.values():
                stream.remote_end()
            self.closed.set()

    async def _on_control(self, version: int, kind: int, flags: int, body: bytes) -> None:
        if version != 3:
            raise SpdyError(f"SPDY version {version} is not 3")
        if kind in (SYN_REPLY, HEADERS, SYN_STREAM):
            offset = 10 if kind == SYN_STREAM else 4
            (stream_id,) = struct.unpack_from(">I", body)
            self._inflate_block(body[offset:])
            stream = self._streams.get(stream_id & 0x7FFFFFFF)
            if kind == SYN_STREAM:  # the server may not open streams here: refuse it
                refuse = struct.pack(">II", stream_id & 0x7FFFFFFF, REFUSED_STREAM)
                await self.send(control(RST_STREAM, 0, refuse))
            elif stream is not None:
                stream.replied.set()
                if flags & FLAG_FIN:
                    stream.remote_end()
        elif kind == RST_STREAM:
            (stream_id,) = struct.unpack_from(">I", body)
            stream = self._streams.get(stream_id & 0x7FFFFFFF)
            if stream is not None:
                stream.replied.set()
                stream.remote_end()
        elif kind == PING:
            await self.send(control(PING, 0, body))
        elif kind == GOAWAY:
            return  # the server opens nothing; our streams finish or the socket closes
        # SETTINGS, WINDOW_UPDATE: nothing to keep (no flow control; module docstring)

    def _inflate_block(self, compressed: bytes) -> dict[str, str]:
        try:
            raw = self._inflate.decompress(compressed, MAX_HEADER_BLOCK)
        except zlib.error as exc:
            raise SpdyError(f"a SPDY header block does not inflate: {exc}") from None
        return parse_block(raw) if raw else {}

    async def close(self) -> None:
        """Drop the connection (idempotent); the server sees its streams end."""
        self._writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.wait_closed()
        self._pump.cancel()
        await asyncio.gather(self._pump, return_exceptions=True)


async def _rest(reader: asyncio.StreamReader) -> str:
    """A refusal's body, briefly, for the error message."""
    with contextlib.suppress(asyncio.TimeoutError, ConnectionError):
        data = await asyncio.wait_for(reader.read(512), 2)
        return data.decode(errors="replace").strip()
    return ""
