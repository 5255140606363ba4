"""The Proxier's loop: informer events batched into as few `nft -f` transactions as allowed.

The API side is the fake API server (tests/unit/fake_apiserver.py: real gRPC,
real watch streams); the kernel side is RecordingNft, which keeps each script
instead of running nft, so these tests need no root. The same Proxier against
the real kernel is tested in tests/integration/network/test_proxy.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import time
from collections.abc import AsyncIterator, Callable

import pytest

from apimachinery.client import Client
from apimachinery.factory import SharedInformerFactory
from localcluster.netcluster_objects import endpoints, service
from netplugin.commands import CommandLog
from netplugin.proxy import Proxier, cleanup
from netplugin.proxy.nft import Nft, NftError
from tests.unit.fake_apiserver import FakeApiServer


class RecordingNft(Nft):
    """Nft whose changes are recorded, not made (a fake beside the real one)."""

    def __init__(self, cmds: CommandLog) -> None:
        super().__init__(cmds)
        self.scripts: list[str] = []
        self.fail_next = 0
        self.reads = 0

    def apply(self, script: str) -> bool:
        if self.fail_next:
            self.fail_next -= 1
            raise NftError("-f -: /dev/stdin:1:1: Error: injected")
        self.cmds.script("nft -f -", script)
        self.scripts.append(script)
        return True

    def list_table(self, table: str) -> tuple[set[str], set[str]] | None:
        self.reads += 1
        return None

    def read_sysctl(self, key: str) -> str | None:
        return "1"

    def set_sysctl(self, key: str, value: str) -> None:
        pass

    def ensure_route(self, cidr: str, dev: str) -> bool:
        return True


@pytest.fixture
async def api() -> AsyncIterator[FakeApiServer]:
    server = FakeApiServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def running_proxier(
    api: FakeApiServer, min_sync_interval: float
) -> tuple[Proxier, RecordingNft, Callable[[], asyncio.Future[None]]]:
    client = Client(api.address, timeout=10)
    factory = SharedInformerFactory(client)
    cmds = CommandLog()
    proxier = Proxier(
        factory,
        node_name="node1",
        node_ips=["10.201.0.11"],
        cluster_cidr="10.244.0.0/16",
        cmds=cmds,
        min_sync_interval=min_sync_interval,
    )
    nft = RecordingNft(cmds)
    proxier.nft = nft
    factory.start()
    task = asyncio.ensure_future(proxier.run())

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await factory.stop()
        await client.close()

    return proxier, nft, lambda: asyncio.ensure_future(stop())


async def until(
    cond: Callable[[], bool], timeout: float = 10.0, why: Callable[[], str] = lambda: ""
) -> None:
    """Until `cond()` holds; past `timeout` the assertion says `why()` (the last error, say)."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"condition not reached in time; {why()}"
        await asyncio.sleep(0.02)


async def test_a_burst_of_1000_service_changes_is_one_transaction(api: FakeApiServer) -> None:
    proxier, nft, stop = await running_proxier(api, min_sync_interval=1.0)
    try:
        await until(lambda: proxier.transactions == 1)  # the initial (empty) sync
        base = ipaddress.IPv4Address("10.96.1.0")
        for i in range(1000):
            api.resources.put(service(f"s{i}", str(base + i), [{"port": 80}]))
        await until(lambda: "10.96.4.231 . tcp . 80" in (nft.scripts[-1] if nft.scripts else ""))
        await asyncio.sleep(1.5)  # anything left over would show up as a third transaction
        assert proxier.transactions == 2
        assert nft.scripts[-1].count("goto reject-chain,") == 1000  # no endpoints: refused
    finally:
        await stop()


async def test_syncs_are_rate_limited_by_min_sync_interval(api: FakeApiServer) -> None:
    proxier, _nft, stop = await running_proxier(api, min_sync_interval=0.3)
    try:
        await until(lambda: proxier.transactions == 1)
        started = time.monotonic()
        for i in range(30):  # a change every 50 ms for 1.5 s
            api.resources.put(service(f"s{i}", f"10.96.2.{i + 1}", [{"port": 80}]))
            await asyncio.sleep(0.05)
        await until(lambda: "10.96.2.30 " in proxier.last_script)
        elapsed = time.monotonic() - started
        syncs = proxier.transactions - 1
        assert 2 <= syncs <= elapsed / 0.3 + 2, (syncs, elapsed)
    finally:
        await stop()


async def test_endpoints_change_resyncs_and_an_unchanged_state_does_not(
    api: FakeApiServer,
) -> None:
    api.resources.put(service("web", "10.96.0.10", [{"name": "http", "port": 80}]))
    proxier, nft, stop = await running_proxier(api, min_sync_interval=0.05)
    try:
        await until(lambda: proxier.transactions == 1)
        assert "10.96.0.10 . tcp . 80 : goto reject-chain" in nft.scripts[-1]
        ep = endpoints("web", [(["10.244.1.5"], [], [("http", 8080, "TCP")])])
        api.resources.put(ep)
        await until(lambda: proxier.transactions == 2)
        assert "dnat to 10.244.1.5:8080" in nft.scripts[-1]
        api.resources.put(ep)  # a new resourceVersion, the same content
        await asyncio.sleep(0.5)
        assert proxier.transactions == 2
        api.resources.remove("endpoints", "web", "default")
        await until(lambda: proxier.transactions == 3)
        assert (
            "delete chain ip tinykube endpoint-default/web/tcp/80__10.244.1.5/8080"
            in (nft.scripts[-1])
        )
        api.resources.put(service("web", "10.96.0.10", [{"name": "http", "port": 80}]))
        await asyncio.sleep(0.5)  # the same state again: nothing to delete, nothing to do
        assert proxier.transactions == 3
    finally:
        await stop()


async def test_a_failed_transaction_is_retried_after_rereading_the_table(
    api: FakeApiServer,
) -> None:
    api.resources.put(service("web", "10.96.0.10", [{"port": 80}]))
    client = Client(api.address, timeout=10)
    factory = SharedInformerFactory(client)
    cmds = CommandLog()
    proxier = Proxier(
        factory, node_name="n", node_ips=[], cluster_cidr="", cmds=cmds, min_sync_interval=0.01
    )
    nft = RecordingNft(cmds)
    nft.fail_next = 1
    proxier.nft = nft
    factory.start()
    task = asyncio.ensure_future(proxier.run())
    try:
        await until(lambda: proxier.transactions == 1, timeout=5)
        assert nft.reads == 2  # once at start, once more after the failure
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await factory.stop()
        await client.close()


async def test_sync_once_and_dry_run_cleanup_only_log() -> None:
    factory = SharedInformerFactory(Client("127.0.0.1:1"))
    cmds = CommandLog(dry_run=True)
    proxier = Proxier(
        factory, node_name="n", node_ips=["10.201.0.11"], cluster_cidr="10.244.0.0/16", cmds=cmds
    )
    proxier.nft = RecordingNft(cmds)
    script = proxier.sync_once()
    assert script.startswith("# tinykube service proxy: 0 service ports")
    dry = CommandLog(dry_run=True)
    cleanup(dry)
    assert dry.commands[0] == (
        "nft -f - <<'EOF'\nadd table ip tinykube\ndelete table ip tinykube\nEOF"
    )


def test_bad_arguments_are_named() -> None:
    factory = SharedInformerFactory(Client("127.0.0.1:1"))
    with pytest.raises(ValueError, match="node_ips: 'eth1' is not an IPv4 address"):
        Proxier(factory, node_name="n", node_ips=["eth1"], cluster_cidr="", cmds=CommandLog())
    with pytest.raises(ValueError, match="cluster_cidr: 'pods' is not an IPv4 network"):
        Proxier(factory, node_name="n", node_ips=[], cluster_cidr="pods", cmds=CommandLog())


def test_dry_run_shows_the_route_even_before_the_bridge_exists() -> None:
    cmds = CommandLog(dry_run=True)
    assert Nft(cmds).ensure_route("10.96.0.0/12", "tknobridge0")
    assert cmds.commands == ["ip route replace 10.96.0.0/12 dev tknobridge0"]
