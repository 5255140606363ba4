"""The in-flight limit through a real server: 429 over gRPC and HTTP, who is never refused,
and a client that waits out the Retry-After.

The server has `--max-requests-inflight 1 --max-mutating-requests-inflight 1`
(and the default `--max-loop-lag-ms`, whose monitor a test makes report a lag),
TLS with the PKI `tinykube pki init` writes, and a static token for bob (not
in system:masters), whom a Role lets work with ConfigMaps in `default`. A
write is held in flight by a store seam: creates of objects named `held-*`
wait at the store until the test opens the gate, so the write has passed
authentication, admission of the limit and authorization, and holds its slot.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from apimachinery import errors
from apimachinery.channel import Credentials
from apimachinery.client import Client
from apiserver.auth.authorizer import UserInfo
from apiserver.inflight import MUTATING, READ_ONLY, InflightLimits
from apiserver.registry.store import Store
from apiserver.server import APIServer
from apiserver.storage import open_storage
from tests.unit.apiserver.httpapi.client import CONFIGMAPS, HTTPS, configmap
from tests.unit.apiserver.objects import configmap as configmap_pb
from tests.unit.apiserver.objects import tls_serving
from tests.unit.apiserver.rbac_objects import role, role_binding, rule, subject

TOKEN = "bob-token"
MESSAGE = "Too many requests, please try again later."


class HeldCreates:
    """The store's create, holding objects named held-* until `gate` is set."""

    def __init__(self, store: Store) -> None:
        self.create = store.create
        self.gate = asyncio.Event()
        self.waiting = 0

    async def __call__(self, obj: Any, *, dry_run: bool = False) -> Any:
        if obj.metadata.name.startswith("held"):
            self.waiting += 1
            try:
                await self.gate.wait()
            finally:
                self.waiting -= 1
        return await self.create(obj, dry_run=dry_run)


@dataclasses.dataclass
class Limited:
    server: APIServer
    pki: Path
    held: HeldCreates

    @property
    def port(self) -> int:
        return self.server.ports[1]

    def bob(self, **kwargs: Any) -> Client:
        """bob over TLS with his token: not a member of system:masters."""
        ca = (self.pki / "pki" / "ca.crt").read_bytes()
        creds = Credentials(ca_pem=ca, token=TOKEN)
        return Client(f"127.0.0.1:{self.port}", timeout=10, credentials=creds, **kwargs)

    def bob_http(self) -> HTTPS:
        return HTTPS(self.port, self.pki / "pki" / "ca.crt", None, token=TOKEN)

    def admin(self) -> Client:
        """The local admin on the unix socket: system:masters."""
        return Client(self.server.local_address, timeout=10)


async def eventually(check: Callable[[], Awaitable[bool] | bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, "not within the deadline"
        await asyncio.sleep(0.01)


@pytest.fixture
async def limited(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Limited]:
    pki, serving = tls_serving(tmp_path)
    storage = await open_storage("sqlite", str(tmp_path / "data"))
    server = APIServer(
        storage,
        f"unix:{tmp_path}/api.sock",
        serving=serving,
        static_tokens={TOKEN: UserInfo("bob", ("developers",), uid="42")},
        inflight=InflightLimits(max_requests_inflight=1, max_mutating_requests_inflight=1),
    )
    await server.start()
    held = HeldCreates(server.store)
    monkeypatch.setattr(server.store, "create", held)
    env = Limited(server, pki, held)
    try:
        async with env.admin() as admin:
            verbs = ["create", "get", "list", "watch", "update"]
            await admin.create(role("cm-writer", "default", rule(verbs, ["configmaps"])))
            binding = role_binding("bob", "default", "Role", "cm-writer", subject("User", "bob"))
            await admin.create(binding)
        async with env.bob() as bob:

            async def bob_may_list() -> bool:
                try:
                    await bob.list("configmaps", "default")
                except errors.Forbidden:
                    return False
                return True

            await eventually(bob_may_list)
        yield env
    finally:
        held.gate.set()
        await server.stop(grace=0)


async def hold_a_write(env: Limited, client: Client) -> asyncio.Task[Any]:
    """bob's create of held-1, waiting in the store with the one mutating slot."""
    task = asyncio.ensure_future(client.create(configmap_pb("held-1")))
    await eventually(lambda: env.held.waiting == 1)
    assert env.server.inflight.in_flight[MUTATING] == 1
    return task


async def test_grpc_refuses_the_next_write_at_once(limited: Limited) -> None:
    async with limited.bob(max_retries=0) as bob, limited.bob(max_retries=0) as other:
        holder = await hold_a_write(limited, bob)
        started = time.monotonic()
        with pytest.raises(errors.TooManyRequests) as refused:
            await other.create(configmap_pb("refused"))
        assert time.monotonic() - started < 1.0  # at once, not queued
        assert refused.value.message == MESSAGE
        assert refused.value.retry_after_seconds == 1
        assert limited.server.inflight.dropped[MUTATING] == 1
        assert len((await other.list("configmaps", "default"))[0]) == 0  # reads: their own pool
        limited.held.gate.set()
        await holder
        await eventually(lambda: limited.server.inflight.in_flight[MUTATING] == 0)
        await other.create(configmap_pb("accepted"))  # the slot is free again


async def test_http_answers_429_with_retry_after(limited: Limited) -> None:
    async with limited.bob(max_retries=0) as bob:
        holder = await hold_a_write(limited, bob)
        answer = await limited.bob_http().call("POST", CONFIGMAPS, configmap("refused"))
        assert answer.status == 429
        assert answer.headers["retry-after"] == "1"
        status = answer.data
        assert (status["kind"], status["reason"], status["code"]) == (
            "Status",
            "TooManyRequests",
            429,
        )
        assert status["message"] == MESSAGE
        assert status["details"]["retryAfterSeconds"] == 1
        listed = await limited.bob_http().call("GET", CONFIGMAPS)  # a read is still served
        assert listed.status == 200
        limited.held.gate.set()
        await holder
    created = await limited.bob_http().call("POST", CONFIGMAPS, configmap("accepted"))
    assert created.status == 201
    assert limited.server.inflight.in_flight == {READ_ONLY: 0, MUTATING: 0}


async def test_watches_do_not_count_and_the_admin_is_never_refused(limited: Limited) -> None:
    async with limited.bob(max_retries=0) as bob, limited.admin() as admin:
        watches = [bob.watch("configmaps", "default").__aiter__() for _ in range(3)]
        first = [asyncio.ensure_future(w.__anext__()) for w in watches]
        try:
            await asyncio.sleep(0.2)  # the watches are open on the server
            assert limited.server.inflight.in_flight[READ_ONLY] == 0
            assert len((await bob.list("configmaps", "default"))[0]) == 0  # one read slot: free
            holder = await hold_a_write(limited, bob)
            for i in range(3):  # the pool is full, and the admin is served anyway
                await admin.create(configmap_pb(f"by-admin-{i}"))
            with pytest.raises(errors.TooManyRequests):
                await bob.create(configmap_pb("by-bob"))
            limited.held.gate.set()
            await holder
            seen = await asyncio.wait_for(asyncio.gather(*first), 10)
            assert all(ev.type == "ADDED" for ev in seen)
        finally:
            for task in first:
                task.cancel()
            await asyncio.gather(*first, return_exceptions=True)
            for w in watches:
                await w.aclose()  # type: ignore[attr-defined]


async def test_a_cancelled_or_failed_write_gives_its_slot_back(limited: Limited) -> None:
    async with limited.bob(max_retries=0) as bob:
        holder = await hold_a_write(limited, bob)
        holder.cancel()  # the client goes away while its write waits in the store
        await asyncio.gather(holder, return_exceptions=True)
        await eventually(lambda: limited.server.inflight.in_flight[MUTATING] == 0)
        bad = configmap_pb("Not_A_Name")
        with pytest.raises(errors.Invalid):
            await bob.create(bad)
        assert limited.server.inflight.in_flight[MUTATING] == 0
        await bob.create(configmap_pb("after"))


async def test_the_client_retries_a_429_after_its_retry_after(limited: Limited) -> None:
    async with limited.bob(max_retries=0) as holder_client, limited.bob() as patient:
        holder = await hold_a_write(limited, holder_client)
        started = time.monotonic()
        retried = asyncio.ensure_future(patient.create(configmap_pb("patient")))
        await eventually(lambda: limited.server.inflight.dropped[MUTATING] == 1)
        limited.held.gate.set()  # the slot frees while the client waits out its Retry-After
        await holder
        created = await asyncio.wait_for(retried, 10)
        assert created.metadata.name == "patient"
        assert time.monotonic() - started >= 0.9  # it waited for the server's 1 s
        assert limited.server.inflight.dropped[MUTATING] == 1


async def test_a_lagging_loop_refuses_bobs_writes_and_nothing_else(
    limited: Limited, monkeypatch: pytest.MonkeyPatch
) -> None:
    monitor = limited.server.inflight.loop_lag
    assert monitor is not None
    await eventually(lambda: monitor.samples > 0)  # started with the server
    lag = [0.5]  # seconds: over the default 100 ms
    monkeypatch.setattr(monitor, "lag", lambda: lag[0])
    async with limited.bob(max_retries=0) as bob, limited.admin() as admin:
        watch = bob.watch("configmaps", "default").__aiter__()
        first = asyncio.ensure_future(watch.__anext__())
        try:
            started = time.monotonic()
            with pytest.raises(errors.TooManyRequests) as refused:
                await bob.create(configmap_pb("lagged"))
            assert time.monotonic() - started < 1.0
            assert refused.value.message == MESSAGE
            assert refused.value.retry_after_seconds == 1
            answer = await limited.bob_http().call("POST", CONFIGMAPS, configmap("lagged-http"))
            assert (answer.status, answer.headers["retry-after"]) == (429, "1")
            assert answer.data["message"] == MESSAGE
            assert limited.server.inflight.dropped == {READ_ONLY: 0, MUTATING: 2}
            assert len((await bob.list("configmaps", "default"))[0]) == 0  # reads are served
            await admin.create(configmap_pb("by-admin"))  # system:masters is served
            event = await asyncio.wait_for(first, 10)  # bob's watch was opened and serves
            assert (event.type, event.object.metadata.name) == ("ADDED", "by-admin")
            lag[0] = 0.002  # the loop caught up
            await bob.create(configmap_pb("after"))
            assert limited.server.inflight.dropped[MUTATING] == 2
        finally:
            first.cancel()
            await asyncio.gather(first, return_exceptions=True)
            await watch.aclose()  # type: ignore[attr-defined]
