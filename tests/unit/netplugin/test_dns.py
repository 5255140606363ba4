"""Cluster DNS: the wire format, the records, and a server answering over UDP and TCP."""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import Any

import pytest

from netplugin.dns import message
from netplugin.dns.server import ClusterDNS, ServiceRecords, serve, upstream_servers
from protos import core_pb2


def _svc(name: str, ip: str, namespace: str = "default") -> core_pb2.Service:
    svc = core_pb2.Service()
    svc.metadata.name, svc.metadata.namespace = name, namespace
    svc.spec.cluster_ip = ip
    return svc


def _endpoints(name: str, *ips: str) -> core_pb2.Endpoints:
    eps = core_pb2.Endpoints()
    eps.metadata.name, eps.metadata.namespace = name, "default"
    subset = eps.subsets.add()
    for ip in ips:
        subset.addresses.add(ip=ip)
    return eps


SERVICES: dict[str, Any] = {
    "default/web-app-service": _svc("web-app-service", "10.96.0.20"),
    "default/db": _svc("db", "None"),
}
ENDPOINTS: dict[str, Any] = {"default/db": _endpoints("db", "10.244.1.5", "10.244.2.7")}


def records() -> ServiceRecords:
    return ServiceRecords(SERVICES.get, ENDPOINTS.get, "cluster.local")


def test_query_round_trip_and_compressed_answer() -> None:
    packet = message.build_query(0x1234, "Web-App-Service.default.svc.cluster.local.")
    query = message.parse_query(packet)
    assert query.id == 0x1234
    assert query.question == message.Question(
        "web-app-service.default.svc.cluster.local", message.TYPE_A, message.CLASS_IN
    )
    reply = message.build_response(query, message.RCODE_NOERROR, ["10.96.0.20"])
    assert reply[12 : 12 + len(query.raw_question)] == query.raw_question
    assert b"\xc0\x0c" in reply  # the answer's name points back at the question
    assert message.parse_answer(reply) == (message.RCODE_NOERROR, ["10.96.0.20"])


@pytest.mark.parametrize(
    "packet",
    [b"\x00" * 5, struct.pack("!HHHHHH", 1, 0x8000, 1, 0, 0, 0) + b"\x00\x00\x01\x00\x01",
     struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 0) + b"\x05ab"],
)  # fmt: skip
def test_malformed_packets_are_refused(packet: bytes) -> None:
    with pytest.raises(message.MessageError):
        message.parse_query(packet)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("web-app-service.default.svc.cluster.local", (0, ["10.96.0.20"])),
        ("db.default.svc.cluster.local", (0, ["10.244.1.5", "10.244.2.7"])),
        ("nothing.default.svc.cluster.local", (3, [])),
        ("web-app-service.other.svc.cluster.local", (3, [])),
        ("default.svc.cluster.local", (3, [])),
        ("a.b.c.d.cluster.local", (3, [])),
    ],
)
def test_service_records(name: str, expected: tuple[int, list[str]]) -> None:
    assert records().lookup(name) == expected


async def test_answers_by_type_and_forwarding_without_upstream() -> None:
    dns = ClusterDNS(records(), upstreams=[])
    a = await dns.answer(message.build_query(1, "web-app-service.default.svc.cluster.local"))
    assert a is not None and message.parse_answer(a) == (0, ["10.96.0.20"])
    aaaa = await dns.answer(
        message.build_query(2, "web-app-service.default.svc.cluster.local", message.TYPE_AAAA)
    )
    assert aaaa is not None and message.parse_answer(aaaa) == (0, [])  # no data, not NXDOMAIN
    outside = await dns.answer(message.build_query(3, "example.com"))
    assert outside is not None and message.parse_answer(outside)[0] == message.RCODE_SERVFAIL
    garbage = await dns.answer(struct.pack("!HHHHHH", 7, 0, 1, 0, 0, 0) + b"\x09x")
    assert garbage is not None and message.parse_answer(garbage)[0] == message.RCODE_FORMERR


async def test_forwards_other_names_to_an_upstream() -> None:
    upstream_records = {"default/www": _svc("www", "10.0.0.80")}
    upstream = ClusterDNS(ServiceRecords(upstream_records.get, ENDPOINTS.get, "example.com"))
    port = _free_port()
    stop = await serve(upstream, "127.0.0.1", port)
    try:
        dns = ClusterDNS(records(), upstreams=[f"127.0.0.1:{_free_port()}", f"127.0.0.1:{port}"])
        reply = await dns.answer(message.build_query(4, "www.default.svc.example.com"))
        assert reply is not None and message.parse_answer(reply) == (0, ["10.0.0.80"])
    finally:
        stop()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_server_answers_over_udp_and_tcp() -> None:
    port = _free_port()
    stop = await serve(ClusterDNS(records()), "127.0.0.1", port)
    loop = asyncio.get_running_loop()
    try:
        query = message.build_query(9, "db.default.svc.cluster.local")

        def udp() -> bytes:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(2)
                s.sendto(query, ("127.0.0.1", port))
                return s.recv(512)

        reply = await loop.run_in_executor(None, udp)
        assert message.parse_answer(reply) == (0, ["10.244.1.5", "10.244.2.7"])

        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(struct.pack("!H", len(query)) + query)
        size = struct.unpack("!H", await reader.readexactly(2))[0]
        assert message.parse_answer(await reader.readexactly(size))[1] == [
            "10.244.1.5",
            "10.244.2.7",
        ]
        writer.close()
    finally:
        stop()


def test_upstreams_skip_loopback_and_our_own_address(tmp_path: Any) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text(
        "nameserver 127.0.0.53\nnameserver 10.0.2.3\nnameserver 169.254.20.10\nsearch x\n"
    )
    assert upstream_servers(conf, skip="169.254.20.10") == ["10.0.2.3"]
    assert upstream_servers(tmp_path / "missing") == []
