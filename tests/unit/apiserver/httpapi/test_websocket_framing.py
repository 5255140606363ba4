"""RFC 6455 framing as websocket.py implements it: the RFC's own examples, then the edge cases.

The byte strings are RFC 6455's (section 1.3 for the handshake key, 5.7 for
frames), so the encoder and decoder are checked against the standard, not
against each other. A WebSocket is run over a StreamReader fed by hand and a
writer that records what the server sends.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any, cast

import pytest

from apimachinery import errors
from apiserver.httpapi import websocket as ws
from tests.unit.apiserver.httpapi.streamclient import client_frame

HELLO_MASKED = bytes.fromhex("818537fa213d7f9f4d5158")  # RFC 6455 5.7: "Hello", masked


class Recorder:
    """A StreamWriter's write/drain, keeping the bytes."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data

    async def drain(self) -> None:
        return None


def socket_of(*frames: bytes, eof: bool = True, **kwargs: Any) -> tuple[ws.WebSocket, Recorder]:
    reader = asyncio.StreamReader()
    for frame in frames:
        reader.feed_data(frame)
    if eof:
        reader.feed_eof()
    recorder = Recorder()
    return ws.WebSocket(reader, cast(asyncio.StreamWriter, recorder), **kwargs), recorder


def test_the_accept_key_of_the_rfc() -> None:
    assert ws.accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_frames_of_the_rfc() -> None:
    assert ws.encode_frame(ws.TEXT, b"Hello") == bytes.fromhex("810548656c6c6f")
    key = bytes.fromhex("37fa213d")
    assert ws.encode_frame(ws.TEXT, b"Hello", key=key) == HELLO_MASKED
    assert ws.encode_frame(ws.BINARY, bytes(256))[:4] == bytes.fromhex("827e0100")
    assert ws.encode_frame(ws.BINARY, bytes(65536))[:10] == bytes.fromhex("827f0000000000010000")
    assert ws.encode_frame(ws.TEXT, b"Hel", fin=False) == bytes.fromhex("010348656c")
    assert ws.encode_frame(ws.CONTINUATION, b"lo") == bytes.fromhex("80026c6f")


async def test_a_masked_message_and_a_fragmented_one_around_a_ping() -> None:
    frames = (
        HELLO_MASKED,
        client_frame(ws.BINARY, b"\x00ab", fin=False),
        client_frame(ws.PING, b"are you there"),
        client_frame(ws.CONTINUATION, b"c" * 300, fin=False),
        client_frame(ws.CONTINUATION, b"d"),
    )
    sock, sent = socket_of(*frames)
    assert await sock.receive() == (ws.TEXT, b"Hello")
    assert await sock.receive() == (ws.BINARY, b"\x00ab" + b"c" * 300 + b"d")
    assert bytes(sent.data) == ws.encode_frame(ws.PONG, b"are you there")
    assert await sock.receive() is None  # EOF


async def test_a_close_is_answered_with_its_code() -> None:
    sock, sent = socket_of(client_frame(ws.CLOSE, struct.pack("!H", 1001) + b"bye"), eof=False)
    assert await sock.receive() is None
    assert bytes(sent.data) == bytes.fromhex("880203e9")
    assert sock.closed
    with pytest.raises(ConnectionResetError):
        await sock.send(b"too late")


@pytest.mark.parametrize(
    ("frame", "code", "text"),
    [
        (client_frame(ws.BINARY, b"x", masked=False), 1002, "must be masked"),
        (client_frame(ws.PING, b"x" * 126), 1002, "at most 125 bytes"),
        (client_frame(ws.PING, b"x", fin=False), 1002, "must be whole"),
        (client_frame(0x3, b"x"), 1002, "unknown opcode"),
        (bytes([0xC2]) + client_frame(ws.BINARY, b"x")[1:], 1002, "reserved bits"),
        (client_frame(ws.CONTINUATION, b"x"), 1002, "must follow an unfinished message"),
        (client_frame(ws.BINARY, b"x" * 2000), 1009, "over the limit"),
    ],
)
async def test_protocol_errors_close_with_their_code(frame: bytes, code: int, text: str) -> None:
    sock, sent = socket_of(frame, max_message=1024)
    with pytest.raises(ws.ProtocolError, match=text) as caught:
        await sock.receive()
    assert caught.value.code == code
    assert sent.data[:1] == b"\x88"
    assert struct.unpack("!H", sent.data[2:4])[0] == code


async def test_a_message_too_big_in_fragments() -> None:
    frames = [
        client_frame(ws.BINARY, b"x" * 600, fin=False),
        client_frame(ws.CONTINUATION, b"x" * 600),
    ]
    sock, sent = socket_of(*frames, max_message=1000)
    with pytest.raises(ws.ProtocolError, match="message too big"):
        await sock.receive()
    assert struct.unpack("!H", sent.data[2:4])[0] == 1009


def headers(**extra: str) -> dict[str, str]:
    base = {
        "upgrade": "websocket",
        "connection": "keep-alive, Upgrade",
        "sec-websocket-version": "13",
        "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
        "sec-websocket-protocol": "v5.channel.k8s.io, v4.channel.k8s.io",
    }
    return {**base, **extra}


def test_the_handshake() -> None:
    assert ws.is_upgrade(headers())
    assert not ws.is_upgrade(headers(connection="keep-alive"))
    chosen, reply = ws.handshake("GET", headers(), ["v4.channel.k8s.io", "v5.channel.k8s.io"])
    assert chosen == "v5.channel.k8s.io"  # the client's order
    assert ("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") in reply
    assert ("Sec-WebSocket-Protocol", "v5.channel.k8s.io") in reply


@pytest.mark.parametrize(
    ("method", "changed", "text"),
    [
        ("POST", {}, "must be a GET request"),
        ("GET", {"sec-websocket-version": "8"}, "only version 13"),
        ("GET", {"sec-websocket-key": "c2hvcnQ="}, "must be 16 bytes in base64"),
        ("GET", {"sec-websocket-key": "not base64!"}, "must be 16 bytes in base64"),
        ("GET", {"sec-websocket-protocol": "chat"}, "requested protocol(s) are not supported"),
    ],
)
def test_bad_handshakes(method: str, changed: dict[str, str], text: str) -> None:
    with pytest.raises(errors.BadRequest, match=text.replace("(", r"\(").replace(")", r"\)")):
        ws.handshake(method, headers(**changed), ["v5.channel.k8s.io"])


async def test_a_tunnel_reads_bytes_across_messages() -> None:
    frames = [client_frame(ws.BINARY, b"abc"), client_frame(ws.BINARY, b"defg")]
    sock, sent = socket_of(*frames)
    conduit = ws.MessageConduit(sock)
    assert await conduit.read_exactly(2) == b"ab"
    assert await conduit.read_exactly(4) == b"cdef"
    with pytest.raises(asyncio.IncompleteReadError):
        await conduit.read_exactly(2)
    await conduit.write(b"xyz")
    assert bytes(sent.data) == ws.encode_frame(ws.BINARY, b"xyz")


async def test_a_tunnel_refuses_text() -> None:
    sock, sent = socket_of(client_frame(ws.TEXT, b"abc"))
    with pytest.raises(ws.ProtocolError):
        await ws.MessageConduit(sock).read_exactly(1)
    assert struct.unpack("!H", sent.data[2:4])[0] == 1002
