"""A test client for the streaming subresources: an HTTP upgrade, then WebSocket or SPDY frames.

kubectl's side of pods/exec and pods/portforward, written small and by hand
so the tests see every byte: `upgrade()` sends the request over TLS (with
the identity of an `HTTPS` client: its certificate or token) and reads the
answer; after a 101 the same connection carries frames. The WebSocket frames
here are built with this module's own masking and length encoding (not the
server's), as a client must send them; the SPDY frames use the spdy codec
with a compression context of the client's own.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
from dataclasses import dataclass, field
from typing import Any

from apiserver.httpapi import spdy
from tests.unit.apiserver.httpapi.client import HTTPS

TIMEOUT = 10.0


@dataclass
class Upgraded:
    status: int
    headers: dict[str, str]
    body: bytes
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    def close(self) -> None:
        self.writer.close()


async def upgrade(
    client: HTTPS, path: str, headers: dict[str, str], method: str = "GET"
) -> Upgraded:
    """Send an upgrade request; read the status and headers (and the body if not a 101)."""
    ctx = client.context()
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", client.port, ssl=ctx, server_hostname="127.0.0.1"
    )
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{client.port}"]
    if client.token:
        lines.append(f"Authorization: Bearer {client.token}")
    for name, value in headers.items():
        lines.extend(f"{name}: {v.strip()}" for v in value.split("\n"))
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    got: dict[str, str] = {}
    for line in header_lines:
        if ":" in line:
            name, _, value = line.partition(":")
            got[name.strip().lower()] = value.strip()
    status = int(status_line.split(" ")[1])
    body = b""
    if status != 101:
        body = await reader.readexactly(int(got.get("content-length", "0")))
        writer.close()
    return Upgraded(status, got, body, reader, writer)


def websocket_headers(*protocols: str) -> dict[str, str]:
    key = base64.b64encode(os.urandom(16)).decode()
    return {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": key,
        "Sec-WebSocket-Protocol": ", ".join(protocols),
    }


def spdy_headers(*protocols: str) -> dict[str, str]:
    return {
        "Connection": "Upgrade",
        "Upgrade": "SPDY/3.1",
        "X-Stream-Protocol-Version": "\n".join(protocols),  # one header line each
    }


def client_frame(opcode: int, payload: bytes, *, fin: bool = True, masked: bool = True) -> bytes:
    """A client's WebSocket frame: masked with a random key (RFC 6455 5.3)."""
    head = bytes([(0x80 if fin else 0) | opcode])
    size = len(payload)
    bit = 0x80 if masked else 0
    if size < 126:
        head += bytes([bit | size])
    elif size < 65536:
        head += bytes([bit | 126]) + struct.pack("!H", size)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", size)
    if not masked:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


@dataclass
class WSClient:
    up: Upgraded

    async def send(self, opcode: int, payload: bytes, *, fin: bool = True) -> None:
        self.up.writer.write(client_frame(opcode, payload, fin=fin))
        await self.up.writer.drain()

    async def binary(self, payload: bytes) -> None:
        await self.send(0x2, payload)

    async def frame(self) -> tuple[int, bytes]:
        """(opcode, payload) of the server's next frame (which must be unmasked and whole)."""
        reader = self.up.reader
        first, second = await asyncio.wait_for(reader.readexactly(2), TIMEOUT)
        assert first & 0x80, "the server sends whole messages"
        assert not second & 0x80, "a server must not mask"
        size = second & 0x7F
        if size == 126:
            (size,) = struct.unpack("!H", await reader.readexactly(2))
        elif size == 127:
            (size,) = struct.unpack("!Q", await reader.readexactly(8))
        return first & 0x0F, await reader.readexactly(size)

    async def messages_until_close(self) -> tuple[list[bytes], int]:
        """Every binary message up to the server's close frame, and the close code."""
        out: list[bytes] = []
        while True:
            opcode, payload = await self.frame()
            if opcode == 0x8:
                return out, struct.unpack("!H", payload[:2])[0]
            if opcode == 0x2:
                out.append(payload)


@dataclass
class SpdyClient:
    """The client's end of a SPDY session (odd stream ids, its own compression context)."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    codec: spdy.HeaderCodec = field(default_factory=spdy.HeaderCodec)
    # A tunnel: the SPDY bytes go in WebSocket messages of `chunk` bytes (0: a frame each),
    # and come back in the `tunnel`'s messages.
    chunk: int = 0
    tunnel: WSClient | None = None
    _buffer: bytearray = field(default_factory=bytearray)

    async def send(self, frame: Any) -> None:
        data = spdy.encode(frame, self.codec)
        if self.tunnel is not None:
            size = self.chunk or len(data)  # 0: one message per frame
            for start in range(0, len(data), size):
                self.writer.write(client_frame(0x2, data[start : start + size]))
        else:
            self.writer.write(data)
        await self.writer.drain()

    async def open(self, stream_id: int, fin: bool = False, **headers: str) -> None:
        await self.send(spdy.SynStream(stream_id, {k: [v] for k, v in headers.items()}, fin=fin))

    async def frame(self) -> Any:
        frame = None
        while frame is None:
            frame = await asyncio.wait_for(spdy.read_frame(self._read, self.codec), TIMEOUT)
        return frame

    async def _read(self, n: int) -> bytes:
        if self.tunnel is None:
            return await self.reader.readexactly(n)
        while len(self._buffer) < n:
            opcode, payload = await self.tunnel.frame()
            if opcode == 0x8:
                raise asyncio.IncompleteReadError(bytes(self._buffer), n)
            self._buffer += payload
        out = bytes(self._buffer[:n])
        del self._buffer[:n]
        return out
