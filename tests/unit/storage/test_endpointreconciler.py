"""The `kubernetes` Service's Endpoints list the live API servers (two servers, one etcd).

In-process: two APIServers with advertise addresses share a real etcd; both
appear in default/kubernetes once started, a stopped one leaves at once, and
(on a clock the test moves) a dead one's Lease expires after 15 s and the
survivor's next round drops it and deletes the Lease. As processes: two
`tinykube apiserver --advertise-address` on one etcd, one killed with
SIGKILL, is gone from the Endpoints within interval + TTL (25 s).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from apimachinery import errors
from apimachinery.client import Client
from apimachinery.clock import FakeClock
from apiserver.endpointreconciler import (
    ADDRESS_ANNOTATION,
    EndpointReconciler,
    advertised_endpoint,
    lease_name,
)
from apiserver.server import APIServer
from apiserver.storage.etcd import EtcdStorage
from apiserver.storage.etcd_client import EtcdConfig
from localcluster.processes import ApiServerProcess, free_port
from protos import coordination_pb2, core_pb2

from .etcd_server import EtcdServer, needs_etcd

pytestmark = [needs_etcd, pytest.mark.timeout(90)]
TIMEOUT = 10.0


async def endpoints(client: Client) -> list[tuple[str, int]]:
    try:
        found = await client.get(core_pb2.Endpoints, "kubernetes", "default")
    except errors.NotFound:
        return []
    return [(a.ip, p.port) for s in found.subsets for a in s.addresses for p in s.ports]


async def listed(client: Client, expected: list[tuple[str, int]], timeout: float = 10) -> None:
    """Wait until the Endpoints list `expected` (a server's rounds run beside it)."""
    deadline = time.monotonic() + timeout
    while (found := await endpoints(client)) != expected:
        assert time.monotonic() < deadline, found
        await asyncio.sleep(0.05)


async def start(etcd: EtcdServer, socket: Path, ip: str) -> APIServer:
    server = APIServer(
        EtcdStorage(EtcdConfig((etcd.endpoint,))), f"unix:{socket}", advertise=(ip, 6443)
    )
    await server.start()
    return server


@pytest.fixture
async def admin(etcd_server: EtcdServer, tmp_path: Path) -> AsyncIterator[Client]:
    """The admin of a plain third server on the same etcd, to read what the others wrote."""
    server = APIServer(EtcdStorage(EtcdConfig((etcd_server.endpoint,))), f"unix:{tmp_path}/r.sock")
    await server.start()
    client = Client(server.local_address, timeout=TIMEOUT)
    try:
        yield client
    finally:
        await client.close()
        await server.stop(grace=0)


async def test_started_servers_are_listed_and_a_stopped_one_leaves(
    etcd_server: EtcdServer, tmp_path: Path, admin: Client
) -> None:
    a = await start(etcd_server, tmp_path / "a.sock", "127.0.0.2")
    b = await start(etcd_server, tmp_path / "b.sock", "127.0.0.3")
    try:
        await listed(admin, [("127.0.0.2", 6443), ("127.0.0.3", 6443)])
        service = await admin.get(core_pb2.Service, "kubernetes", "default")
        assert service.spec.cluster_ip == "10.96.0.1" and not service.spec.selector
        [port] = service.spec.ports
        assert (port.name, port.port, port.target_port.int_val) == ("https", 443, 6443)
        leases, _ = await admin.list(
            coordination_pb2.Lease,
            "kube-system",
            label_selector="apiserver.kubernetes.io/identity=kube-apiserver",
        )
        assert sorted(x.metadata.name for x in leases) == sorted(
            [lease_name("127.0.0.2", 6443), lease_name("127.0.0.3", 6443)]
        )
        assert {x.metadata.annotations[ADDRESS_ANNOTATION] for x in leases} == {
            "127.0.0.2:6443",
            "127.0.0.3:6443",
        }
        await b.stop(grace=0)
        assert await endpoints(admin) == [("127.0.0.2", 6443)]
        with pytest.raises(errors.NotFound):
            await admin.get(coordination_pb2.Lease, lease_name("127.0.0.3", 6443), "kube-system")
    finally:
        await b.stop(grace=0)
        await a.stop(grace=0)


async def test_a_dead_servers_lease_expires_and_the_survivor_drops_it(admin: Client) -> None:
    clock = FakeClock()
    alive = EndpointReconciler(admin, "10.0.0.11", 6443, clock=clock)
    dead = EndpointReconciler(admin, "10.0.0.12", 6443, clock=clock)
    await alive.reconcile()
    await dead.reconcile()  # its last round: then it is killed (no stop, nothing removed)
    assert await endpoints(admin) == [("10.0.0.11", 6443), ("10.0.0.12", 6443)]
    clock.step(10.0)
    await alive.reconcile()
    assert await endpoints(admin) == [("10.0.0.11", 6443), ("10.0.0.12", 6443)]  # 10 s < 15 s
    clock.step(10.0)
    await alive.reconcile()  # 20 s after its last renewal: expired
    assert await endpoints(admin) == [("10.0.0.11", 6443)]
    with pytest.raises(errors.NotFound):
        await admin.get(coordination_pb2.Lease, dead.name, "kube-system")
    await dead.reconcile()  # it comes back: listed again at its first round
    assert await endpoints(admin) == [("10.0.0.11", 6443), ("10.0.0.12", 6443)]


def test_the_advertised_endpoint_needs_an_ip_and_a_tcp_port() -> None:
    assert advertised_endpoint("10.0.0.1", ["unix:/a.sock", "10.0.0.1:6443"]) == ("10.0.0.1", 6443)
    with pytest.raises(ValueError, match="is not an IP address"):
        advertised_endpoint("node1", ["10.0.0.1:6443"])
    with pytest.raises(ValueError, match="needs a TCP --listen"):
        advertised_endpoint("10.0.0.1", ["unix:/a.sock"])


async def test_killed_apiserver_process_leaves_the_endpoints(
    etcd_server: EtcdServer, tmp_path: Path, admin: Client
) -> None:
    port = free_port()
    servers = [
        ApiServerProcess(
            tmp_path / name,
            port=port,
            host=ip,
            extra_args=(
                "--storage",
                f"etcd://{etcd_server.endpoint}",
                "--advertise-address",
                ip,
                "--no-scheduler",
                "--no-controllers",
            ),
        )
        for name, ip in (("s1", "127.0.0.2"), ("s2", "127.0.0.3"))
    ]
    try:
        for server in servers:
            await asyncio.to_thread(server.start)
        both = [("127.0.0.2", port), ("127.0.0.3", port)]
        await listed(admin, both, 15)
        await asyncio.to_thread(servers[1].kill9)
        killed = time.monotonic()
        while await endpoints(admin) != both[:1]:
            assert time.monotonic() - killed < 30, await endpoints(admin)
            await asyncio.sleep(0.5)
        assert time.monotonic() - killed >= 5  # not before its lease could expire
    finally:
        for server in servers:
            await asyncio.to_thread(server.stop)
