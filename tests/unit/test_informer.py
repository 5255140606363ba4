"""The informer and its indexed cache.

The API side is `fake_apiserver.FakeResources`, an in-memory TEST SEAM served
over real gRPC on a loopback port (the real API server has its own tests). It
lets these tests do what a real cluster does only under stress: end watches,
expire revisions, change objects while the informer is disconnected, and go
away entirely.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from apimachinery import errors
from apimachinery.cache import Indexer
from apimachinery.client import Client
from apimachinery.informer import Informer, meta_namespace_key, split_key, wait_for_cache_sync
from protos import core_pb2, meta_pb2
from tests.unit.fake_apiserver import FakeApiServer


def pod(name: str, namespace: str = "default", node: str = "", **labels: str) -> core_pb2.Pod:
    return core_pb2.Pod(
        metadata=meta_pb2.ObjectMeta(name=name, namespace=namespace, labels=labels),
        spec=core_pb2.PodSpec(node_name=node),
    )


class Recorder:
    """Handlers that record what they were told, as (event, key[, old rv, new rv])."""

    def __init__(self) -> None:
        self.events: list[tuple[str, ...]] = []

    def on_add(self, obj: Any) -> None:
        self.events.append(("add", meta_namespace_key(obj)))

    def on_update(self, old: Any, new: Any) -> None:
        self.events.append(
            (
                "update",
                meta_namespace_key(new),
                old.metadata.resource_version,
                new.metadata.resource_version,
            )
        )

    def on_delete(self, obj: Any) -> None:
        self.events.append(("delete", meta_namespace_key(obj)))

    def register(self, informer: Informer[Any]) -> None:
        informer.add_handlers(self.on_add, self.on_update, self.on_delete)

    def kinds(self) -> list[tuple[str, str]]:
        return [(e[0], e[1]) for e in self.events]


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


@pytest.fixture
async def api() -> AsyncIterator[FakeApiServer]:
    async with FakeApiServer() as server:
        yield server


@pytest.fixture
async def client(api: FakeApiServer) -> AsyncIterator[Client]:
    async with Client(api.address, timeout=2.0) as c:
        yield c


@contextlib.asynccontextmanager
async def running(informer: Informer[Any]) -> AsyncIterator[Informer[Any]]:
    informer.initial_backoff = 0.02
    informer.max_backoff = 0.1
    task = asyncio.ensure_future(informer.run())
    try:
        yield informer
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# ---- keys and the indexer --------------------------------------------------------------------


def test_keys() -> None:
    assert meta_namespace_key(pod("web", "prod")) == "prod/web"
    assert meta_namespace_key(core_pb2.Node(metadata=meta_pb2.ObjectMeta(name="n1"))) == "n1"
    assert split_key("prod/web") == ("prod", "web")
    assert split_key("n1") == ("", "n1")
    for bad in ("/web", "prod/", "a/b/c"):
        with pytest.raises(ValueError):
            split_key(bad)


def test_indexer_files_and_refiles_objects() -> None:
    store: Indexer[core_pb2.Pod] = Indexer()
    store.add(pod("a", node="n1"))
    store.add_index("node", lambda p: p.spec.node_name)  # existing objects are filed at once
    store.add(pod("b", node="n1"))
    store.add(pod("c"))
    assert [p.metadata.name for p in store.by_index("node", "n1")] == ["a", "b"]
    assert [p.metadata.name for p in store.by_index("node", "")] == ["c"]
    store.update(pod("c", node="n2"))  # refiled: no longer under ""
    assert store.by_index("node", "") == []
    assert [p.metadata.name for p in store.by_index("node", "n2")] == ["c"]
    store.delete_key("default/a")
    assert [p.metadata.name for p in store.by_index("node", "n1")] == ["b"]
    store.replace([pod("z", node="n9")])
    assert store.keys() == ["default/z"]
    assert store.by_index("node", "n1") == []
    assert store.index_keys("node", "n9") == {"default/z"}
    with pytest.raises(KeyError):
        store.by_index("nope", "x")


def test_indexer_multi_value_index() -> None:
    store: Indexer[core_pb2.Pod] = Indexer()
    store.add_index("labels", lambda p: [f"{k}={v}" for k, v in p.metadata.labels.items()])
    store.add(pod("a", app="web", tier="front"))
    store.add(pod("b", app="web"))
    assert len(store.by_index("labels", "app=web")) == 2
    assert [p.metadata.name for p in store.by_index("labels", "tier=front")] == ["a"]
    assert store.get("default/a") is not None and "default/a" in store and len(store) == 2


# ---- list, watch, relist ---------------------------------------------------------------------


async def test_initial_sync_fills_store_and_calls_on_add(
    client: Client, api: FakeApiServer
) -> None:
    api.resources.put(pod("a"))
    api.resources.put(pod("b", "other"))
    informer = Informer(client, "pods")
    rec = Recorder()
    rec.register(informer)
    assert not informer.has_synced()
    async with running(informer):
        assert await informer.wait_for_sync(5)
        assert sorted(informer.store.keys()) == ["default/a", "other/b"]
        assert sorted(rec.kinds()) == [("add", "default/a"), ("add", "other/b")]
        late = Recorder()
        late.register(informer)  # registered after sync: told about the cache at once
        assert sorted(late.kinds()) == [("add", "default/a"), ("add", "other/b")]


async def test_namespace_and_selector_scope(client: Client, api: FakeApiServer) -> None:
    api.resources.put(pod("a", app="web"))
    api.resources.put(pod("b", app="db"))
    api.resources.put(pod("c", "other", app="web"))
    informer = Informer(client, "pods", "default", label_selector="app=web")
    async with running(informer):
        assert await wait_for_cache_sync(informer, timeout=5)
        assert informer.store.keys() == ["default/a"]


async def test_watch_events_update_store_and_handlers(client: Client, api: FakeApiServer) -> None:
    informer = Informer(client, core_pb2.Pod)
    rec = Recorder()
    rec.register(informer)
    async with running(informer):
        assert await informer.wait_for_sync(5)
        await eventually(lambda: api.resources.open_watches == 1)
        created = await client.create(pod("web", node="n1"))
        created.metadata.labels["v"] = "2"
        updated = await client.update(created)
        await eventually(lambda: len(rec.events) == 2)
        cached = informer.store.get("default/web")
        assert cached is not None and cached.metadata.labels["v"] == "2"
        await client.delete("pods", "web")
        await eventually(lambda: len(rec.events) == 3)
        assert rec.events == [
            ("add", "default/web"),
            (
                "update",
                "default/web",
                created.metadata.resource_version,
                updated.metadata.resource_version,
            ),
            ("delete", "default/web"),
        ]
        assert informer.store.get("default/web") is None
        assert informer.resource_version == str(api.resources.revision)


async def test_relist_on_expired_synthesises_missed_changes(
    client: Client, api: FakeApiServer
) -> None:
    kept = api.resources.put(pod("kept"))
    api.resources.put(pod("changed"))
    api.resources.put(pod("gone"))
    informer = Informer(client, "pods")
    rec = Recorder()
    rec.register(informer)
    async with running(informer):
        assert await informer.wait_for_sync(5)
        await eventually(lambda: api.resources.open_watches == 1)
        rec.events.clear()
        # Changes nobody is told about, then the revision they were made after is compacted.
        api.resources.remove("pods", "gone", silently=True)
        api.resources.put(pod("changed", app="v2"), silently=True)
        api.resources.put(pod("born"), silently=True)
        api.resources.compact()
        api.resources.break_watches(errors.Expired.too_old(1, api.resources.revision))
        await eventually(lambda: len(rec.events) == 3)
        assert api.resources.calls["List"] == 2
        assert sorted(rec.kinds()) == [
            ("add", "default/born"),
            ("delete", "default/gone"),
            ("update", "default/changed"),
        ]
        assert sorted(informer.store.keys()) == ["default/born", "default/changed", "default/kept"]
        assert informer.store.get("default/kept") is not None
        assert informer.store.get("default/kept").metadata == kept.metadata  # type: ignore[union-attr]


async def test_clean_watch_end_resumes_without_relist(client: Client, api: FakeApiServer) -> None:
    informer = Informer(client, "pods")
    rec = Recorder()
    rec.register(informer)
    async with running(informer):
        assert await informer.wait_for_sync(5)
        await eventually(lambda: api.resources.open_watches == 1)
        api.resources.break_watches()  # the server closes the stream normally
        api.resources.put(pod("during"))  # made while no watch is open: replayed from the log
        await eventually(lambda: rec.kinds() == [("add", "default/during")])
        assert api.resources.calls["List"] == 1
        assert api.resources.calls["Watch"] >= 2


async def test_recreated_object_is_delete_then_add(client: Client, api: FakeApiServer) -> None:
    api.resources.put(pod("web"))
    informer = Informer(client, "pods")
    rec = Recorder()
    rec.register(informer)
    async with running(informer):
        assert await informer.wait_for_sync(5)
        await eventually(lambda: api.resources.open_watches == 1)
        rec.events.clear()
        api.resources.remove("pods", "web", silently=True)
        api.resources.put(pod("web"), silently=True)  # same name, new uid
        api.resources.break_watches(errors.InternalError("stream broke"))
        await eventually(lambda: len(rec.events) == 2)
        assert rec.kinds() == [("delete", "default/web"), ("add", "default/web")]


async def test_server_outage_backs_off_and_recovers(client: Client, api: FakeApiServer) -> None:
    api.resources.put(pod("a"))
    api.resources.put(pod("b"))
    informer = Informer(client, "pods")
    rec = Recorder()
    rec.register(informer)
    async with running(informer):
        assert await informer.wait_for_sync(5)
        await eventually(lambda: api.resources.open_watches == 1)
        rec.events.clear()
        await api.stop()
        api.resources.remove("pods", "a", silently=True)
        api.resources.put(pod("c"), silently=True)
        await asyncio.sleep(0.3)  # several failed attempts, each backed off
        assert rec.events == []
        await api.start(api.port)
        await eventually(lambda: len(rec.events) == 2)
        assert sorted(rec.kinds()) == [("add", "default/c"), ("delete", "default/a")]
        assert sorted(informer.store.keys()) == ["default/b", "default/c"]


async def test_resync_calls_update_for_every_object(client: Client, api: FakeApiServer) -> None:
    api.resources.put(pod("a"))
    informer = Informer(client, "pods", resync_period=0.05)
    rec = Recorder()
    rec.register(informer)
    async with running(informer):
        await eventually(lambda: sum(1 for e in rec.events if e[0] == "update") >= 2)
        updates = [e for e in rec.events if e[0] == "update"]
        assert all(e[1] == "default/a" and e[2] == e[3] for e in updates)


async def test_failing_handler_does_not_stop_informer(client: Client, api: FakeApiServer) -> None:
    informer = Informer(client, "pods")

    def broken(obj: Any) -> None:
        raise RuntimeError("handler bug")

    informer.add_handlers(on_add=broken)
    rec = Recorder()
    rec.register(informer)
    async with running(informer):
        assert await informer.wait_for_sync(5)
        await eventually(lambda: api.resources.open_watches == 1)
        await client.create(pod("a"))
        await client.create(pod("b"))
        await eventually(lambda: len(rec.events) == 2)
        assert sorted(informer.store.keys()) == ["default/a", "default/b"]


async def test_wait_for_sync_times_out_when_server_is_down(api: FakeApiServer) -> None:
    await api.stop()
    async with Client(api.address, timeout=1.0) as client:
        informer = Informer(client, "pods")
        async with running(informer):
            assert not await informer.wait_for_sync(0.2)
            assert not await wait_for_cache_sync(informer, timeout=0.1)
            assert not informer.has_synced()
