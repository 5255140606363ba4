"""SPDY/3.1 frames: what `kubectl exec` and `kubectl port-forward` multiplex their streams with.

Before WebSockets, and still as their fallback, client-go upgrades an exec or
port-forward request to SPDY/3.1 (apimachinery's util/httpstream/spdy over
moby/spdystream): one TCP connection then carries many streams, each a pair
of byte pipes opened by the client with headers that say what it is for:

    POST .../pods/web/exec?command=cat&stdin=true&stdout=true&stderr=true
    Connection: Upgrade
    Upgrade: SPDY/3.1
    X-Stream-Protocol-Version: v4.channel.k8s.io         (one header per version offered)
    -> 101 Switching Protocols, X-Stream-Protocol-Version: v4.channel.k8s.io
    client: SYN_STREAM 1 {streamtype: error}   SYN_STREAM 3 {streamtype: stdin} ...
    server: SYN_REPLY 1, SYN_REPLY 3 ...       DATA 5 "hello\\n" ... DATA 1 FIN

Every frame starts with 8 bytes (the SPDY/3 draft, section 2.2):

    control: |1| version=3 (15) | type (16) | flags (8) | length (24) | data
    data:    |0| stream id (31)             | flags (8) | length (24) | data     flag FIN = 1

    type  1 SYN_STREAM    stream id, associated stream id, priority (3 bits), slot, headers
          2 SYN_REPLY     stream id, headers
          3 RST_STREAM    stream id, status code (1 protocol error ... 5 cancel ...)
          4 SETTINGS      count, then (flags 8, id 24, value 32) per entry
          6 PING          id (32): the receiver sends the same frame back
          7 GOAWAY        last good stream id, status code
          8 HEADERS       stream id, headers
          9 WINDOW_UPDATE stream id (0 = the whole session, 3.1), delta (31)

A header block is a 32-bit count and, per header, a 32-bit length and the
lower-case name, a 32-bit length and the value (several values joined by
NUL). It travels zlib-compressed, and the compression context lives as long
as the connection: each direction has one deflate stream, primed with the
SPDY/3 dictionary (the draft's section 2.6.10.1: common header names, status
lines and tokens), and each block ends with a sync flush. So blocks must be
compressed in the order they are sent, and decompressed in the order they
arrive. Python's zlib takes the dictionary as `zdict`.

This module is the codec only: `encode()` turns a frame into bytes,
`read_frame()` reads one, and `HeaderCodec` holds one connection's two
compression contexts. The streams and their lifecycle are spdysession.py.
Limits: a frame longer than `MAX_FRAME` (16 MiB, the format's own maximum)
or a header block that inflates past 256 KiB is a `FrameError`.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS = 1, 2, 3, 4
PING, GOAWAY, HEADERS, WINDOW_UPDATE = 6, 7, 8, 9
FLAG_FIN, FLAG_UNIDIRECTIONAL = 0x01, 0x02
# RST_STREAM status codes (draft 3, 2.6.3).
PROTOCOL_ERROR, INVALID_STREAM, REFUSED_STREAM, CANCEL, INTERNAL_ERROR = 1, 2, 3, 5, 6
STREAM_IN_USE, STREAM_ALREADY_CLOSED = 8, 9
MAX_FRAME = (1 << 24) - 1
MAX_HEADER_BLOCK = 256 * 1024
INITIAL_WINDOW = 64 * 1024

Headers = dict[str, list[str]]
ReadExactly = Callable[[int], Awaitable[bytes]]


def _dictionary() -> bytes:
    """The SPDY/3 header dictionary (draft 3, 2.6.10.1): length-prefixed words, then text."""
    words = (
        "options head post put delete trace accept accept-charset accept-encoding"
        " accept-language accept-ranges age allow authorization cache-control connection"
        " content-base content-encoding content-language content-length content-location"
        " content-md5 content-range content-type date etag expect expires from host if-match"
        " if-modified-since if-none-match if-range if-unmodified-since last-modified location"
        " max-forwards pragma proxy-authenticate proxy-authorization range referer retry-after"
        " server te trailer transfer-encoding upgrade user-agent vary via warning"
        " www-authenticate method get status 200|OK version HTTP/1.1 url public set-cookie"
        " keep-alive origin"
    )
    out = bytearray()
    for word in words.split(" "):
        text = word.replace("|", " ").encode()
        out += struct.pack("!I", len(text)) + text
    tail = (
        "100101201202205206300302303304305306307402405406407408409410411412413414415416417"
        "502504505203 Non-Authoritative Information204 No Content301 Moved Permanently"
        "400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error"
        "501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct"
        " Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,"
        "image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,"
        "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8"
        "charset=iso-8859-1,utf-,*,enq=0."
    )
    return bytes(out) + tail.encode()


DICTIONARY = _dictionary()


class FrameError(Exception):
    """A frame this side cannot read: the session ends (GOAWAY PROTOCOL_ERROR)."""


@dataclass
class SynStream:
    stream_id: int
    headers: Headers
    associated: int = 0
    priority: int = 0
    fin: bool = False
    unidirectional: bool = False


@dataclass
class SynReply:
    stream_id: int
    headers: Headers = field(default_factory=dict)
    fin: bool = False


@dataclass
class RstStream:
    stream_id: int
    status: int


@dataclass
class Settings:
    entries: list[tuple[int, int, int]]  # (flags, id, value)
    clear: bool = False


@dataclass
class Ping:
    ping_id: int


@dataclass
class GoAway:
    last_good: int
    status: int = 0


@dataclass
class HeadersFrame:
    stream_id: int
    headers: Headers
    fin: bool = False


@dataclass
class WindowUpdate:
    stream_id: int
    delta: int


@dataclass
class Data:
    stream_id: int
    data: bytes
    fin: bool = False


Frame = (
    SynStream | SynReply | RstStream | Settings | Ping | GoAway | HeadersFrame | WindowUpdate | Data
)


class HeaderCodec:
    """One connection's header compression: a deflate and an inflate context, both primed."""

    def __init__(self) -> None:
        self._deflate = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zdict=DICTIONARY)
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)

    def encode(self, headers: Headers) -> bytes:
        raw = bytearray(struct.pack("!I", len(headers)))
        for name, values in headers.items():
            key, value = name.lower().encode(), "\0".join(values).encode()
            raw += struct.pack("!I", len(key)) + key + struct.pack("!I", len(value)) + value
        return self._deflate.compress(bytes(raw)) + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    def decode(self, block: bytes) -> Headers:
        try:
            raw = self._inflate.decompress(block, MAX_HEADER_BLOCK + 1)
        except zlib.error as err:
            raise FrameError(f"undecodable header block: {err}") from None
        if len(raw) > MAX_HEADER_BLOCK or self._inflate.unconsumed_tail:
            raise FrameError("header block too large")
        return _parse_block(raw)


def _parse_block(raw: bytes) -> Headers:
    try:
        (count,) = struct.unpack_from("!I", raw, 0)
        pos, out = 4, {}  # type: tuple[int, Headers]
        for _ in range(count):
            name, pos = _string(raw, pos)
            value, pos = _string(raw, pos)
            out.setdefault(name.lower(), []).extend(value.split("\0"))
    except (struct.error, UnicodeDecodeError) as err:
        raise FrameError(f"malformed header block: {err}") from None
    return out


def _string(raw: bytes, pos: int) -> tuple[str, int]:
    (size,) = struct.unpack_from("!I", raw, pos)
    if pos + 4 + size > len(raw):
        raise FrameError("header block shorter than its lengths")
    return raw[pos + 4 : pos + 4 + size].decode(), pos + 4 + size


def _control(kind: int, flags: int, body: bytes) -> bytes:
    return struct.pack("!HHI", 0x8000 | VERSION, kind, (flags << 24) | len(body)) + body


def encode(frame: Frame, codec: HeaderCodec) -> bytes:
    """The bytes of a frame; header blocks go through `codec` (so encode in sending order)."""
    if isinstance(frame, Data):
        flags = FLAG_FIN if frame.fin else 0
        head = struct.pack("!II", frame.stream_id & 0x7FFFFFFF, (flags << 24) | len(frame.data))
        return head + frame.data
    if isinstance(frame, SynStream):
        flags = (FLAG_FIN if frame.fin else 0) | (
            FLAG_UNIDIRECTIONAL if frame.unidirectional else 0
        )
        body = struct.pack("!IIBB", frame.stream_id, frame.associated, frame.priority << 5, 0)
        return _control(SYN_STREAM, flags, body + codec.encode(frame.headers))
    if isinstance(frame, SynReply):
        body = struct.pack("!I", frame.stream_id) + codec.encode(frame.headers)
        return _control(SYN_REPLY, FLAG_FIN if frame.fin else 0, body)
    if isinstance(frame, HeadersFrame):
        body = struct.pack("!I", frame.stream_id) + codec.encode(frame.headers)
        return _control(HEADERS, FLAG_FIN if frame.fin else 0, body)
    if isinstance(frame, RstStream):
        return _control(RST_STREAM, 0, struct.pack("!II", frame.stream_id, frame.status))
    if isinstance(frame, Settings):
        body = struct.pack("!I", len(frame.entries)) + b"".join(
            struct.pack("!II", (flags << 24) | key, value) for flags, key, value in frame.entries
        )
        return _control(SETTINGS, 1 if frame.clear else 0, body)
    if isinstance(frame, Ping):
        return _control(PING, 0, struct.pack("!I", frame.ping_id))
    if isinstance(frame, GoAway):
        return _control(GOAWAY, 0, struct.pack("!II", frame.last_good, frame.status))
    return _control(WINDOW_UPDATE, 0, struct.pack("!II", frame.stream_id, frame.delta))


async def read_frame(read_exactly: ReadExactly, codec: HeaderCodec) -> Frame | None:
    """The next frame (None for a control frame of a type SPDY/3 does not define, skipped)."""
    first, second = struct.unpack("!II", await read_exactly(8))
    flags, length = second >> 24, second & 0xFFFFFF
    body = await read_exactly(length) if length else b""
    if not first & 0x80000000:
        return Data(first & 0x7FFFFFFF, body, bool(flags & FLAG_FIN))
    version, kind = (first >> 16) & 0x7FFF, first & 0xFFFF
    if version != VERSION:
        raise FrameError(f"unsupported SPDY version {version}")
    try:
        return _control_frame(kind, flags, body, codec)
    except struct.error:
        raise FrameError(f"control frame of type {kind} too short ({length} bytes)") from None


def _control_frame(kind: int, flags: int, body: bytes, codec: HeaderCodec) -> Frame | None:
    fin = bool(flags & FLAG_FIN)
    if kind == SYN_STREAM:
        stream_id, associated, priority, _ = struct.unpack_from("!IIBB", body)
        return SynStream(
            stream_id & 0x7FFFFFFF,
            codec.decode(body[10:]),
            associated & 0x7FFFFFFF,
            priority >> 5,
            fin,
            bool(flags & FLAG_UNIDIRECTIONAL),
        )
    if kind in (SYN_REPLY, HEADERS):
        (stream_id,) = struct.unpack_from("!I", body)
        headers = codec.decode(body[4:])
        if kind == SYN_REPLY:
            return SynReply(stream_id & 0x7FFFFFFF, headers, fin)
        return HeadersFrame(stream_id & 0x7FFFFFFF, headers, fin)
    if kind == RST_STREAM:
        stream_id, status = struct.unpack_from("!II", body)
        return RstStream(stream_id & 0x7FFFFFFF, status)
    if kind == SETTINGS:
        (count,) = struct.unpack_from("!I", body)
        entries = []
        for i in range(count):
            key, value = struct.unpack_from("!II", body, 4 + 8 * i)
            entries.append((key >> 24, key & 0xFFFFFF, value))
        return Settings(entries, bool(flags & 1))
    if kind == PING:
        return Ping(struct.unpack_from("!I", body)[0])
    if kind == GOAWAY:
        last_good, status = struct.unpack_from("!I", body)[0], 0
        if len(body) >= 8:
            status = struct.unpack_from("!I", body, 4)[0]
        return GoAway(last_good & 0x7FFFFFFF, status)
    if kind == WINDOW_UPDATE:
        stream_id, delta = struct.unpack_from("!II", body)
        return WindowUpdate(stream_id & 0x7FFFFFFF, delta & 0x7FFFFFFF)
    return None
