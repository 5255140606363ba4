"""SPDY/3.1 as spdy.py and spdysession.py implement it: frames byte by byte, headers, a session.

The byte layouts come from the SPDY/3 draft (2.2 framing, 2.6 control
frames, 2.6.10 header blocks); the dictionary is checked by its SHA-256
against the draft's 1423 bytes. A session runs over an in-memory conduit, so
each test sees exactly the frames a client would.
"""

from __future__ import annotations

import asyncio
import hashlib
import struct
import zlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from apiserver.httpapi import spdy
from apiserver.httpapi.spdysession import Session, Stream

DICTIONARY_SHA256 = "51d27341373f923f3cd88e1eb7162aeaa3723d7585ff2399201dc06498407f02"


def test_the_dictionary_is_the_drafts() -> None:
    assert len(spdy.DICTIONARY) == 1423
    assert hashlib.sha256(spdy.DICTIONARY).hexdigest() == DICTIONARY_SHA256


def test_header_blocks_share_one_compression_context() -> None:
    sender, inflate = spdy.HeaderCodec(), zlib.decompressobj(zdict=spdy.DICTIONARY)
    first = sender.encode({"streamType": ["error"], "port": ["80"]})
    raw = inflate.decompress(first)
    assert raw == (
        struct.pack("!I", 2)
        + struct.pack("!I", 10) + b"streamtype" + struct.pack("!I", 5) + b"error"
        + struct.pack("!I", 4) + b"port" + struct.pack("!I", 2) + b"80"
    )  # fmt: skip
    second = sender.encode({"streamtype": ["data"], "x": ["a", "b"]})
    assert len(second) < len(first)  # the context remembers the names already sent
    receiver = spdy.HeaderCodec()
    assert receiver.decode(first) == {"streamtype": ["error"], "port": ["80"]}
    assert receiver.decode(second) == {"streamtype": ["data"], "x": ["a", "b"]}


def test_frames_byte_by_byte() -> None:
    codec = spdy.HeaderCodec()
    assert spdy.encode(spdy.Data(3, b"hi", fin=True), codec) == bytes.fromhex(
        "00000003010000026869"
    )
    assert spdy.encode(spdy.Ping(7), codec) == bytes.fromhex("800300060000000400000007")
    rst = spdy.encode(spdy.RstStream(5, spdy.CANCEL), codec)
    assert rst == bytes.fromhex("80030003000000080000000500000005")
    assert spdy.encode(spdy.GoAway(9, 0), codec) == bytes.fromhex(
        "80030007000000080000000900000000"
    )
    update = spdy.encode(spdy.WindowUpdate(0, 65536), codec)
    assert update == bytes.fromhex("80030009000000080000000000010000")
    settings = spdy.encode(spdy.Settings([(0, 7, 65536)]), codec)
    assert settings == bytes.fromhex("800300040000000c000000010000000700010000")
    reply = spdy.encode(spdy.SynReply(1, {}), codec)
    assert reply[:5] == bytes.fromhex("8003000200") and reply[8:12] == bytes.fromhex("00000001")


async def read_all(data: bytes) -> list[Any]:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    codec, out = spdy.HeaderCodec(), []
    with pytest.raises(asyncio.IncompleteReadError):
        while True:
            out.append(await spdy.read_frame(reader.readexactly, codec))
    return out


async def test_every_frame_reads_back() -> None:
    frames: list[spdy.Frame] = [
        spdy.SynStream(1, {"streamtype": ["stdin"]}, priority=3, fin=True, unidirectional=True),
        spdy.SynReply(2, {"a": ["b"]}, fin=True),
        spdy.RstStream(3, spdy.REFUSED_STREAM),
        spdy.Settings([(1, 4, 100), (0, 7, 65536)], clear=True),
        spdy.Ping(11),
        spdy.GoAway(13, 1),
        spdy.HeadersFrame(15, {"late": ["yes"]}, fin=True),
        spdy.WindowUpdate(17, 1024),
        spdy.Data(19, b"x" * 70000, fin=True),
    ]
    codec = spdy.HeaderCodec()
    data = b"".join(spdy.encode(f, codec) for f in frames)
    assert await read_all(data) == frames


async def test_frames_that_cannot_be_read() -> None:
    unknown = struct.pack("!HHI", 0x8003, 0x00FF, 4) + b"abcd"
    assert await read_all(unknown) == [None]  # a type SPDY/3 does not define: skipped
    with pytest.raises(spdy.FrameError, match="unsupported SPDY version 2"):
        await read_all(struct.pack("!HHI", 0x8002, spdy.PING, 4) + b"abcd")
    with pytest.raises(spdy.FrameError, match="too short"):
        await read_all(struct.pack("!HHI", 0x8003, spdy.PING, 2) + b"ab")
    garbage = struct.pack("!HHI", 0x8003, spdy.SYN_REPLY, 8) + b"\0\0\0\1junk"
    with pytest.raises(spdy.FrameError, match="undecodable header block"):
        await read_all(garbage)
    deflate = zlib.compressobj(zdict=spdy.DICTIONARY)
    huge = struct.pack("!I", 1) + struct.pack("!I", 1) + b"a" + struct.pack("!I", 300000)
    block = deflate.compress(huge + b"v" * 300000) + deflate.flush(zlib.Z_SYNC_FLUSH)
    frame = struct.pack("!HHI", 0x8003, spdy.SYN_REPLY, 4 + len(block)) + b"\0\0\0\1" + block
    with pytest.raises(spdy.FrameError, match="header block too large"):
        await read_all(frame)
    lying = deflate.compress(struct.pack("!II", 1, 50) + b"ab") + deflate.flush(zlib.Z_SYNC_FLUSH)
    with pytest.raises(spdy.FrameError):
        spdy.HeaderCodec().decode(lying)


class Pipe:
    """An in-memory conduit: the client feeds `incoming`, the server's bytes go to `sent`."""

    def __init__(self) -> None:
        self.incoming = asyncio.StreamReader()
        self.sent = asyncio.StreamReader()

    async def read_exactly(self, n: int) -> bytes:
        return await self.incoming.readexactly(n)

    async def write(self, data: bytes) -> None:
        self.sent.feed_data(data)


class Client:
    def __init__(self, pipe: Pipe) -> None:
        self.pipe, self.out, self.back = pipe, spdy.HeaderCodec(), spdy.HeaderCodec()

    def send(self, frame: Any) -> None:
        self.pipe.incoming.feed_data(spdy.encode(frame, self.out))

    async def frame(self) -> Any:
        return await asyncio.wait_for(spdy.read_frame(self.pipe.sent.readexactly, self.back), 5)


@pytest.fixture
async def session() -> AsyncIterator[tuple[Session, Client, list[Stream]]]:
    pipe = Pipe()
    server, accepted = Session(pipe), []

    def accept(stream: Stream) -> bool:
        accepted.append(stream)
        return stream.header("streamtype") != "refuse"

    task = asyncio.ensure_future(server.run(accept))
    try:
        yield server, Client(pipe), accepted
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_session_opens_reads_and_closes_streams(
    session: tuple[Session, Client, list[Stream]],
) -> None:
    server, client, accepted = session
    client.send(spdy.SynStream(1, {"streamtype": ["stdin"]}))
    assert await client.frame() == spdy.SynReply(1, {})
    stream = accepted[0]
    client.send(spdy.Data(1, b"abc"))
    client.send(spdy.Data(1, b"def", fin=True))
    assert [await stream.read(), await stream.read(), await stream.read()] == [b"abc", b"def", b""]
    await stream.write(b"x" * 40000)
    assert [len((await client.frame()).data) for _ in range(2)] == [32768, 7232]
    await stream.close()
    assert await client.frame() == spdy.Data(1, b"", fin=True)
    assert 1 not in server.streams  # both halves closed: forgotten
    client.send(spdy.Data(1, b"late"))
    assert await client.frame() == spdy.RstStream(1, spdy.INVALID_STREAM)


async def test_a_session_answers_control_frames(
    session: tuple[Session, Client, list[Stream]],
) -> None:
    server, client, accepted = session
    client.send(spdy.Settings([(0, 7, 65536)]))
    client.send(spdy.Ping(2))  # an even id would be the server's own ping: no answer
    client.send(spdy.Ping(5))
    assert await client.frame() == spdy.Ping(5)
    client.send(spdy.SynStream(3, {"streamtype": ["refuse"]}))
    assert await client.frame() == spdy.RstStream(3, spdy.REFUSED_STREAM)
    client.send(spdy.SynStream(2, {}))
    assert await client.frame() == spdy.RstStream(2, spdy.PROTOCOL_ERROR)
    client.send(spdy.SynStream(7, {"streamtype": ["data"]}))
    assert await client.frame() == spdy.SynReply(7, {})
    client.send(spdy.RstStream(7, spdy.CANCEL))
    stream = accepted[-1]
    assert await stream.read() == b""
    await stream.write(b"dropped")
    client.send(spdy.GoAway(7, 0))
    await asyncio.wait_for(server.closed.wait(), 5)


async def test_consumed_data_opens_the_window(
    session: tuple[Session, Client, list[Stream]],
) -> None:
    _, client, accepted = session
    client.send(spdy.SynStream(1, {}))
    assert await client.frame() == spdy.SynReply(1, {})
    for _ in range(2):
        client.send(spdy.Data(1, b"y" * 20000))
    assert await accepted[0].read() == b"y" * 20000
    assert await accepted[0].read() == b"y" * 20000
    assert await client.frame() == spdy.WindowUpdate(1, 40000)
    assert await client.frame() == spdy.WindowUpdate(0, 40000)


async def test_a_bad_frame_ends_the_session_with_goaway(
    session: tuple[Session, Client, list[Stream]],
) -> None:
    server, client, _ = session
    client.send(spdy.SynStream(1, {}))
    assert await client.frame() == spdy.SynReply(1, {})
    client.pipe.incoming.feed_data(struct.pack("!HHI", 0x8002, spdy.PING, 4) + b"abcd")
    assert await client.frame() == spdy.GoAway(1, spdy.PROTOCOL_ERROR)
    await asyncio.wait_for(server.closed.wait(), 5)
