"""The SPDY client's codec and the v4 exec status, without a server (the real one is in
tests/integration/runtime/test_streams_runtime.py): the dictionary servers' blocks name, a
header block through the connection's two deflate contexts, frames on the wire, statuses."""

from __future__ import annotations

import struct
import zlib

import pytest

from kubelet.errors import ContainerRuntimeError
from kubelet.runtime import spdy
from kubelet.runtime.cri_exec import exit_status


def test_the_dictionary_is_spdy3s() -> None:
    assert len(spdy.DICTIONARY) == 1423
    assert zlib.adler32(spdy.DICTIONARY) == 0xE3C6A7C2  # the DICTID a server's block carries
    assert spdy.DICTIONARY.startswith(b"\x00\x00\x00\x07options\x00\x00\x00\x04head")
    assert spdy.DICTIONARY.endswith(b"charset=iso-8859-1,utf-,*,enq=0.")


def test_header_blocks_share_one_context_per_direction() -> None:
    ours = zlib.compressobj(zdict=spdy.DICTIONARY)
    theirs = zlib.decompressobj(zdict=spdy.DICTIONARY)
    for kind in ("error", "stdin", "stdout"):
        block = ours.compress(spdy.header_block({"streamType": kind}))
        block += ours.flush(zlib.Z_SYNC_FLUSH)
        assert spdy.parse_block(theirs.decompress(block)) == {"streamtype": kind}
    with pytest.raises(spdy.SpdyError, match="malformed"):
        spdy.parse_block(struct.pack(">I", 2) + b"\x00\x00\x00\x09abc")


def test_frames_on_the_wire() -> None:
    assert spdy.data_frame(3, b"hi") == b"\x00\x00\x00\x03\x00\x00\x00\x02hi"
    assert spdy.data_frame(3, b"", fin=True) == b"\x00\x00\x00\x03\x01\x00\x00\x00"
    ping = spdy.control(spdy.PING, 0, struct.pack(">I", 2))
    assert ping == b"\x80\x03\x00\x06\x00\x00\x00\x04\x00\x00\x00\x02"


def test_the_v4_exit_status() -> None:
    assert exit_status(b'{"metadata":{},"status":"Success"}') == (0, "")
    nonzero = (
        b'{"status":"Failure","message":"command terminated with non-zero exit code",'
        b'"reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}'
    )
    assert exit_status(nonzero) == (3, "")
    missing = b'{"status":"Failure","message":"exec: \\"x\\": executable file not found in $PATH"}'
    code, message = exit_status(missing)
    assert code == 127 and "executable file not found" in message
    with pytest.raises(ContainerRuntimeError, match="container is not running"):
        exit_status(b'{"status":"Failure","message":"container is not running"}')
    with pytest.raises(ContainerRuntimeError, match="without an exit status"):
        exit_status(b"")
