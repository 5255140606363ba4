"""Cluster DNS on every node: Service names to addresses (CoreDNS's kubernetes plugin, small).

Why per node, on a link-local address. Kubernetes runs CoreDNS as pods behind
the kube-dns Service, and NodeLocal DNSCache puts a resolver on every node at
the link-local 169.254.20.10 so pods never leave their node to ask. tinykube
does the second only: the node agent (`tinykube netplugin`) puts
169.254.20.10/32 on the loopback link of the node's network namespace (an
address on any link is local to the whole namespace) and answers there,
from its own informers; the kubelet (`--cluster-dns 169.254.20.10`) writes that
address into every pod's resolv.conf with the search path

    nameserver 169.254.20.10
    search <namespace>.svc.cluster.local svc.cluster.local cluster.local
    options ndots:5

A pod's packet to 169.254.20.10 follows its default route to the node's
bridge address and is delivered locally: the same address works on every
node, and no Service or Endpoints object is needed for DNS itself.

What it answers (cluster domain `cluster.local`):

    web-app-service.default.svc.cluster.local  A  the Service's clusterIP
    db.default.svc.cluster.local               A  each ready endpoint (a headless Service)
    nothing.default.svc.cluster.local          NXDOMAIN
    web-app-service.default.svc.cluster.local  AAAA  no data (NOERROR, no answers)
    example.com                                forwarded to the node's own resolvers
                                               (SERVFAIL if none answers within 2 s)

so `wget -qO- http://web-app-service/` in a pod of `default` resolves through
the first search domain. Answers carry TTL 5 s, as CoreDNS's default: a
changed clusterIP is seen within seconds.

The equivalent command for the address, as logged:

    ip addr add 169.254.20.10/32 dev lo
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import struct
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import netplugin.dns.message as message  # the module, not the package: dns/__init__ imports us
from netplugin.dns.message import MessageError, Query

log = logging.getLogger(__name__)

UPSTREAM_TIMEOUT = 2.0
TTL = 5

Lookup = Callable[[str], Any]  # "namespace/name" -> the object in an informer's store, or None


class ServiceRecords:
    """Answers names under the cluster domain from Service and Endpoints stores."""

    def __init__(self, services: Lookup, endpoints: Lookup, domain: str = "cluster.local") -> None:
        self.services = services
        self.endpoints = endpoints
        self.domain = domain.strip(".").lower()

    def owns(self, name: str) -> bool:
        return name == self.domain or name.endswith("." + self.domain)

    def lookup(self, name: str) -> tuple[int, list[str]]:
        """(rcode, addresses) for a name this server owns."""
        rest = name[: -len(self.domain)].rstrip(".")
        parts = rest.split(".") if rest else []
        if len(parts) != 3 or parts[2] != "svc":
            return message.RCODE_NXDOMAIN, []
        service_name, namespace = parts[0], parts[1]
        svc = self.services(f"{namespace}/{service_name}")
        if svc is None:
            return message.RCODE_NXDOMAIN, []
        ip = svc.spec.cluster_ip
        if ip and ip != "None":
            return message.RCODE_NOERROR, [ip]
        eps = self.endpoints(f"{namespace}/{service_name}")
        addresses: list[str] = []
        for subset in eps.subsets if eps is not None else ():
            addresses.extend(a.ip for a in subset.addresses if a.ip not in addresses)
        return message.RCODE_NOERROR, addresses


def upstream_servers(resolv_conf: Path = Path("/etc/resolv.conf"), skip: str = "") -> list[str]:
    """The node's own nameservers, without loopback ones (unreachable from a pod's view)."""
    servers: list[str] = []
    with contextlib.suppress(OSError):
        for line in resolv_conf.read_text().splitlines():
            fields = line.split()
            if len(fields) >= 2 and fields[0] == "nameserver" and fields[1] != skip:
                with contextlib.suppress(ValueError):
                    if not ipaddress.ip_address(fields[1]).is_loopback:
                        servers.append(fields[1])
    return servers


class ClusterDNS:
    """The resolver: cluster names from `records`, everything else forwarded upstream."""

    def __init__(self, records: ServiceRecords, upstreams: Sequence[str] = ()) -> None:
        self.records = records
        self.upstreams = list(upstreams)

    async def answer(self, data: bytes) -> bytes | None:
        """The response to one query packet (None: not worth answering)."""
        try:
            query = message.parse_query(data)
        except MessageError as err:
            log.debug("bad query", extra={"error": str(err)})
            if len(data) >= 12:  # a header to answer to: say it was malformed
                ident = struct.unpack_from("!H", data)[0]
                return struct.pack("!HHHHHH", ident, 0x8000 | message.RCODE_FORMERR, 0, 0, 0, 0)
            return None
        q = query.question
        if not self.records.owns(q.name):
            return await self.forward(query, data)
        if q.qclass != message.CLASS_IN:
            return message.build_response(query, message.RCODE_REFUSED)
        rcode, addresses = self.records.lookup(q.name)
        if rcode != message.RCODE_NOERROR or q.qtype != message.TYPE_A:
            addresses = []
        return message.build_response(query, rcode, addresses, TTL)

    async def forward(self, query: Query, data: bytes) -> bytes:
        for server in self.upstreams:
            try:
                return await asyncio.wait_for(_exchange(server, data), UPSTREAM_TIMEOUT)
            except (OSError, asyncio.TimeoutError):
                continue
        return message.build_response(query, message.RCODE_SERVFAIL)


async def _exchange(server: str, data: bytes) -> bytes:
    """One UDP question and answer with an upstream given as "ADDRESS" or "ADDRESS:PORT"."""
    host, _, port = server.partition(":")
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, (host, int(port or 53)))
        await loop.sock_sendall(sock, data)
        return await loop.sock_recv(sock, 4096)
    finally:
        sock.close()


class _UDP(asyncio.DatagramProtocol):
    def __init__(self, dns: ClusterDNS) -> None:
        self.dns = dns
        self.transport: asyncio.DatagramTransport | None = None
        self.pending: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        task = asyncio.ensure_future(self._reply(data, addr))
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def _reply(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        reply = await self.dns.answer(data)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)


async def _serve_tcp(dns: ClusterDNS, reader: asyncio.StreamReader, writer: Any) -> None:
    """DNS over TCP: each message is prefixed with its length (16 bits)."""
    try:
        while True:
            size = struct.unpack("!H", await reader.readexactly(2))[0]
            reply = await dns.answer(await reader.readexactly(size))
            if reply is None:
                break
            writer.write(struct.pack("!H", len(reply)) + reply)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def serve(dns: ClusterDNS, address: str, port: int = 53) -> Callable[[], None]:
    """Answer on address:port over UDP and TCP; returns a function that stops both."""
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _UDP(dns), local_addr=(address, port)
    )
    server = await asyncio.start_server(lambda r, w: _serve_tcp(dns, r, w), host=address, port=port)
    log.info("cluster DNS serving", extra={"address": address, "port": port})

    def stop() -> None:
        transport.close()
        server.close()

    return stop
