"""The DNS wire format, the small part a cluster DNS server needs (RFC 1035).

A query is a 12-byte header and one question; the answer repeats both and
adds resource records. The header, big-endian:

    ID (16)  |QR|Opcode(4)|AA|TC|RD|RA|Z(3)|RCODE(4)|  QDCOUNT ANCOUNT NSCOUNT ARCOUNT (16 each)

A question is a name as length-prefixed labels ending in a zero byte, then
QTYPE and QCLASS (16 bits each). Worked example, `web.default.svc.cluster.local`
type A (1) class IN (1):

    03 'web' 07 'default' 03 'svc' 07 'cluster' 05 'local' 00  00 01  00 01

An A answer points back at the question's name instead of repeating it (a
compression pointer: the two bytes 0xC0 0x0C, "the name at offset 12"), then
TYPE, CLASS, TTL (32 bits), RDLENGTH = 4 and the four address bytes.

What is not here: EDNS (an OPT record in the additional section is ignored,
so answers stay under 512 bytes, which a cluster's A records do), name
compression when parsing answers (this side only parses queries), and record
types other than A (a query for AAAA, SRV, ... of a known name gets an
empty NOERROR answer, "no data", so resolvers do not give up on the name).
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Sequence
from dataclasses import dataclass

TYPE_A = 1
TYPE_AAAA = 28
CLASS_IN = 1

RCODE_NOERROR = 0
RCODE_FORMERR = 1
RCODE_SERVFAIL = 2
RCODE_NXDOMAIN = 3
RCODE_NOTIMP = 4
RCODE_REFUSED = 5

_HEADER = struct.Struct("!HHHHHH")
_FLAG_QR = 0x8000
_FLAG_AA = 0x0400
_FLAG_RD = 0x0100
_FLAG_RA = 0x0080
_OPCODE_MASK = 0x7800


class MessageError(ValueError):
    """A packet that is not a DNS query this server can read."""


@dataclass(frozen=True)
class Question:
    name: str  # lower case, no trailing dot: "web.default.svc.cluster.local"
    qtype: int
    qclass: int


@dataclass(frozen=True)
class Query:
    id: int
    flags: int
    question: Question
    raw_question: bytes  # the question's bytes, echoed into the answer


def _read_name(data: bytes, offset: int) -> tuple[str, int]:
    labels: list[str] = []
    total = 0
    while True:
        if offset >= len(data):
            raise MessageError("name runs past the end of the packet")
        length = data[offset]
        offset += 1
        if length == 0:
            return ".".join(labels).lower(), offset
        if length & 0xC0:
            raise MessageError("compressed names are not expected in a question")
        label = data[offset : offset + length]
        if len(label) != length:
            raise MessageError("label runs past the end of the packet")
        total += length + 1
        if total > 255:
            raise MessageError("name longer than 255 bytes")
        labels.append(label.decode("ascii", errors="replace"))
        offset += length


def parse_query(data: bytes) -> Query:
    """The header and the first question of a query; MessageError when it is not one."""
    if len(data) < _HEADER.size:
        raise MessageError("shorter than a DNS header")
    ident, flags, qdcount, _, _, _ = _HEADER.unpack_from(data)
    if flags & _FLAG_QR:
        raise MessageError("a response, not a query")
    if qdcount < 1:
        raise MessageError("no question")
    name, offset = _read_name(data, _HEADER.size)
    if offset + 4 > len(data):
        raise MessageError("question ends early")
    qtype, qclass = struct.unpack_from("!HH", data, offset)
    return Query(ident, flags, Question(name, qtype, qclass), data[_HEADER.size : offset + 4])


def encode_name(name: str) -> bytes:
    out = bytearray()
    for label in filter(None, name.rstrip(".").split(".")):
        raw = label.encode("ascii")
        if len(raw) > 63:
            raise MessageError(f"label {label!r} is longer than 63 bytes")
        out += bytes([len(raw)]) + raw
    return bytes(out + b"\x00")


def build_query(ident: int, name: str, qtype: int = TYPE_A) -> bytes:
    """A recursive query for `name` (the client side: tests and the upstream forwarder)."""
    header = _HEADER.pack(ident, _FLAG_RD, 1, 0, 0, 0)
    return header + encode_name(name) + struct.pack("!HH", qtype, CLASS_IN)


def build_response(query: Query, rcode: int, addresses: Sequence[str] = (), ttl: int = 5) -> bytes:
    """The answer to `query`: A records for `addresses` (with rcode NOERROR), or just rcode."""
    flags = _FLAG_QR | _FLAG_AA | (query.flags & (_OPCODE_MASK | _FLAG_RD)) | rcode
    answers = bytearray()
    for address in addresses:
        rdata = ipaddress.IPv4Address(address).packed
        answers += b"\xc0\x0c" + struct.pack("!HHIH", TYPE_A, CLASS_IN, ttl, len(rdata)) + rdata
    header = _HEADER.pack(query.id, flags, 1, len(addresses), 0, 0)
    return header + query.raw_question + bytes(answers)


def parse_answer(data: bytes) -> tuple[int, list[str]]:
    """(rcode, A-record addresses) of a response to a question-by-name query (the client side)."""
    if len(data) < _HEADER.size:
        raise MessageError("shorter than a DNS header")
    _, flags, qdcount, ancount, _, _ = _HEADER.unpack_from(data)
    offset = _HEADER.size
    for _ in range(qdcount):
        _, offset = _read_name(data, offset)
        offset += 4
    addresses: list[str] = []
    for _ in range(ancount):
        if data[offset] & 0xC0 == 0xC0:
            offset += 2
        else:
            _, offset = _read_name(data, offset)
        rtype, _, _, length = struct.unpack_from("!HHIH", data, offset)
        offset += 10
        if rtype == TYPE_A and length == 4:
            addresses.append(str(ipaddress.IPv4Address(data[offset : offset + 4])))
        offset += length
    return flags & 0x000F, addresses
