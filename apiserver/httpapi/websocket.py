"""WebSocket (RFC 6455), the server side: the handshake, frames, and messages.

kubectl 1.30+ runs `kubectl exec` over a WebSocket (client-go's
remotecommand/websocket.go, gorilla/websocket underneath) and kubectl 1.31+
runs `kubectl port-forward` over one too (tunnelling SPDY, spdy.py). Both
start as an ordinary HTTP/1.1 request that asks to switch protocols:

    GET /api/v1/namespaces/default/pods/web/exec?command=date&stdout=true HTTP/1.1
    Connection: Upgrade
    Upgrade: websocket
    Sec-WebSocket-Version: 13
    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==
    Sec-WebSocket-Protocol: v5.channel.k8s.io

    HTTP/1.1 101 Switching Protocols
    Upgrade: websocket
    Connection: Upgrade
    Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=     base64(SHA-1(key + GUID))
    Sec-WebSocket-Protocol: v5.channel.k8s.io              the one subprotocol chosen

`handshake()` checks the request and makes those headers; the subprotocol is
the first the client lists that the server serves (the list is the
client's order of preference, as Kubernetes' wsstream reads it). A request
with none in common is refused before the switch, so client-go sees an
upgrade failure and falls back to SPDY.

After the 101 both sides send frames:

    byte 0: FIN(1) RSV(3) opcode(4)      0 continuation, 1 text, 2 binary, 8 close, 9 ping, 10 pong
    byte 1: MASK(1) length(7)            126: 16-bit length follows; 127: 64-bit length follows
    [extended length] [4-byte mask key if MASK] payload (XOR the key, byte i with key[i % 4])

A client must mask every frame and a server must not (RFC 6455 5.1): an
unmasked client frame is a protocol error (close 1002). A message may come
in fragments -- a text or binary frame without FIN, continuation frames,
the last with FIN -- and control frames (ping, pong, close) may arrive
between the fragments. `WebSocket.receive()` returns whole messages:

    ping  -> answered at once with a pong carrying the same payload (client-go
             pings every 5 s and gives up on a connection after 61 s without a pong)
    pong  -> ignored
    close -> answered with a close carrying the same code, then receive() says
             the connection ended (None)

Limits: a message of more than `max_message` bytes (16 MiB) is refused with
close 1009; a control frame longer than 125 bytes or fragmented is 1002.
Errors of the peer end the connection with `ProtocolError`; nothing here
raises for what a client sends except through that exception.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import struct
from dataclasses import dataclass

from apimachinery import errors

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
NORMAL_CLOSURE, GOING_AWAY, PROTOCOL_ERROR, MESSAGE_TOO_BIG = 1000, 1001, 1002, 1009
MAX_MESSAGE = 16 * 1024 * 1024


class ProtocolError(ConnectionError):
    """The peer broke RFC 6455 (so the connection is over); `code` is the close code sent."""

    def __init__(self, message: str, code: int = PROTOCOL_ERROR) -> None:
        super().__init__(message)
        self.code = code


def accept_key(key: str) -> str:
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key: base64(SHA-1(key + GUID))."""
    digest = hashlib.sha1((key + GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


def is_upgrade(headers: dict[str, str]) -> bool:
    """Whether a request asks for a WebSocket (`Upgrade: websocket`, `Connection: upgrade`)."""
    tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
    return headers.get("upgrade", "").strip().lower() == "websocket" and "upgrade" in tokens


def offered_protocols(headers: dict[str, str]) -> list[str]:
    """The subprotocols a request offers, in its order (repeated headers were joined by ',')."""
    text = headers.get("sec-websocket-protocol", "")
    return [p.strip() for p in text.split(",") if p.strip()]


def handshake(
    method: str, headers: dict[str, str], supported: list[str]
) -> tuple[str, list[tuple[str, str]]]:
    """(the chosen subprotocol, the 101's headers); BadRequest naming what is wrong."""
    if method != "GET":
        raise errors.BadRequest(f"a WebSocket upgrade must be a GET request, not {method}")
    if headers.get("sec-websocket-version", "").strip() != "13":
        raise errors.BadRequest("unsupported Sec-WebSocket-Version: only version 13 is served")
    key = headers.get("sec-websocket-key", "").strip()
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            raise ValueError(key)
    except (ValueError, binascii.Error):
        raise errors.BadRequest(
            f"invalid Sec-WebSocket-Key {key[:40]!r}: must be 16 bytes in base64"
        ) from None
    offered = offered_protocols(headers)
    chosen = next((p for p in offered if p in supported), None)
    if chosen is None:
        raise errors.BadRequest(
            f"requested protocol(s) are not supported: [{' '.join(offered)}];"
            f" supports [{' '.join(supported)}]"
        )
    reply = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", accept_key(key)),
        ("Sec-WebSocket-Protocol", chosen),
    ]
    return chosen, reply


def mask(payload: bytes, key: bytes) -> bytes:
    """XOR with the 4-byte key repeated (masking and unmasking are the same)."""
    if not payload:
        return b""
    repeated = (key * (len(payload) // 4 + 1))[: len(payload)]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(
        len(payload), "big"
    )


def encode_frame(opcode: int, payload: bytes, *, fin: bool = True, key: bytes = b"") -> bytes:
    """One frame; `key` (4 bytes) masks it, as a client must."""
    head = bytearray([(0x80 if fin else 0) | opcode])
    bit = 0x80 if key else 0
    size = len(payload)
    if size < 126:
        head.append(bit | size)
    elif size < 1 << 16:
        head.append(bit | 126)
        head += struct.pack("!H", size)
    else:
        head.append(bit | 127)
        head += struct.pack("!Q", size)
    if key:
        return bytes(head) + key + mask(payload, key)
    return bytes(head) + payload


@dataclass(frozen=True)
class Frame:
    fin: bool
    opcode: int
    payload: bytes


async def read_frame(reader: asyncio.StreamReader, *, masked: bool, limit: int) -> Frame:
    """The next frame; `masked` says whether frames must be masked (a server's view)."""
    first, second = await reader.readexactly(2)
    if first & 0x70:
        raise ProtocolError("reserved bits set without a negotiated extension")
    fin, opcode, size = bool(first & 0x80), first & 0x0F, second & 0x7F
    if size == 126:
        (size,) = struct.unpack("!H", await reader.readexactly(2))
    elif size == 127:
        (size,) = struct.unpack("!Q", await reader.readexactly(8))
    if bool(second & 0x80) != masked:
        raise ProtocolError("client frames must be masked" if masked else "unexpected mask")
    if opcode >= CLOSE and (size > 125 or not fin):
        raise ProtocolError("a control frame must be whole and at most 125 bytes")
    if opcode not in (CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG):
        raise ProtocolError(f"unknown opcode {opcode:#x}")
    if size > limit:
        raise ProtocolError(f"a frame of {size} bytes is over the limit", MESSAGE_TOO_BIG)
    key = await reader.readexactly(4) if masked else b""
    payload = await reader.readexactly(size)
    return Frame(fin, opcode, mask(payload, key) if masked else payload)


def close_payload(code: int, reason: str = "") -> bytes:
    return struct.pack("!H", code) + reason.encode()[:123]


class WebSocket:
    """A server's end of an upgraded connection: whole messages in, frames out."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        max_message: int = MAX_MESSAGE,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.max_message = max_message
        self.closed = False  # a close frame was sent
        self._lock = asyncio.Lock()

    async def _write(self, data: bytes) -> None:
        async with self._lock:
            self.writer.write(data)
            await self.writer.drain()

    async def send(self, data: bytes, opcode: int = BINARY) -> None:
        """One message (one frame: a server need not fragment)."""
        if self.closed:
            raise ConnectionResetError("the WebSocket is closed")
        await self._write(encode_frame(opcode, data))

    async def ping(self, payload: bytes = b"") -> None:
        await self._write(encode_frame(PING, payload))

    async def close(self, code: int = NORMAL_CLOSURE, reason: str = "") -> None:
        """Send a close frame once (the peer answers with its own and hangs up)."""
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self._write(encode_frame(CLOSE, close_payload(code, reason)))

    async def receive(self) -> tuple[int, bytes] | None:
        """The next whole message, (TEXT or BINARY, data); None once the peer has closed."""
        opcode, parts, size = 0, bytearray(), 0
        while True:
            try:
                frame = await read_frame(self.reader, masked=True, limit=self.max_message)
            except asyncio.IncompleteReadError:
                return None
            except ProtocolError as err:
                await self.close(err.code, str(err))
                raise
            if frame.opcode == PING:
                await self._write(encode_frame(PONG, frame.payload))
                continue
            if frame.opcode == PONG:
                continue
            if frame.opcode == CLOSE:
                code = frame.payload[:2] if len(frame.payload) >= 2 else b""
                await self.close(struct.unpack("!H", code)[0] if code else NORMAL_CLOSURE)
                return None
            if (frame.opcode == CONTINUATION) != bool(opcode):
                await self.close(PROTOCOL_ERROR, "unexpected continuation")
                raise ProtocolError("a continuation frame must follow an unfinished message")
            opcode = opcode or frame.opcode
            size += len(frame.payload)
            if size > self.max_message:
                await self.close(MESSAGE_TOO_BIG, "message too big")
                raise ProtocolError("message too big", MESSAGE_TOO_BIG)
            parts += frame.payload
            if frame.fin:
                return opcode, bytes(parts)


class MessageConduit:
    """A WebSocket seen as one byte stream: the binary messages in, concatenated; each write
    one binary message. That is how client-go tunnels SPDY through a WebSocket
    (`SPDY/3.1+portforward.k8s.io`): message boundaries mean nothing to the SPDY inside."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self._buffer = bytearray()

    async def read_exactly(self, n: int) -> bytes:
        while len(self._buffer) < n:
            message = await self.ws.receive()
            if message is None:
                raise asyncio.IncompleteReadError(bytes(self._buffer), n)
            opcode, data = message
            if opcode != BINARY:
                await self.ws.close(PROTOCOL_ERROR, "only binary messages carry the tunnel")
                raise ProtocolError("a text message in a tunnel of binary messages")
            self._buffer += data
        out = bytes(self._buffer[:n])
        del self._buffer[:n]
        return out

    async def write(self, data: bytes) -> None:
        await self.ws.send(data)
