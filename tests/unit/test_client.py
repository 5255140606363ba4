"""The async client against a real gRPC channel.

The server side is `fake_apiserver.FakeResources`, an in-memory TEST SEAM on a
loopback port, not the real API server (which has its own tests): what is
under test here is the client's packing, namespace defaulting, error mapping
and watch streaming.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from apimachinery import errors, scheme
from apimachinery.client import Client, WatchEvent, retry_on_conflict, scheme_info
from protos import apps_pb2, core_pb2, meta_pb2
from tests.unit.fake_apiserver import FakeApiServer


def pod(name: str, namespace: str = "", **labels: str) -> core_pb2.Pod:
    return core_pb2.Pod(metadata=meta_pb2.ObjectMeta(name=name, namespace=namespace, labels=labels))


@pytest.fixture
async def api() -> AsyncIterator[FakeApiServer]:
    async with FakeApiServer() as server:
        yield server


@pytest.fixture
async def client(api: FakeApiServer) -> AsyncIterator[Client]:
    async with Client(api.address, timeout=5.0) as c:
        yield c


def test_scheme_info_accepts_every_way_of_naming_a_kind() -> None:
    pods = scheme.for_resource("pods")
    assert scheme_info("po") is pods
    assert scheme_info("pods") is pods
    assert scheme_info(pods) is pods
    assert scheme_info(core_pb2.Pod) is pods
    assert scheme_info(core_pb2.Pod()) is pods
    assert scheme_info("deploy").message is apps_pb2.Deployment
    with pytest.raises(errors.BadRequest, match='resource type "gizmos"'):
        scheme_info("gizmos")


async def test_create_defaults_namespace_and_kind(client: Client, api: FakeApiServer) -> None:
    original = pod("web")
    created = await client.create(original)
    assert isinstance(created, core_pb2.Pod)
    assert created.metadata.namespace == "default"
    assert (created.api_version, created.kind) == ("v1", "Pod")
    assert created.metadata.uid and created.metadata.resource_version
    assert original.metadata.namespace == ""  # the caller's object is not changed
    fetched = await client.get("pods", "web")  # "" -> default
    assert fetched == created
    assert await client.get(core_pb2.Pod, "web", "default") == created


async def test_cluster_scoped_kind_ignores_namespace(client: Client) -> None:
    node = core_pb2.Node(metadata=meta_pb2.ObjectMeta(name="node-1"))
    created = await client.create(node)
    assert created.metadata.namespace == ""
    assert (await client.get("nodes", "node-1", "ignored")).metadata.name == "node-1"


async def test_list_all_namespaces_or_one_with_selector(client: Client, api: FakeApiServer) -> None:
    api.resources.put(pod("a", "default", app="web"))
    api.resources.put(pod("b", "default", app="db"))
    api.resources.put(pod("c", "kube-system", app="web"))
    items, version = await client.list("pods")
    assert sorted(p.metadata.name for p in items) == ["a", "b", "c"]
    assert version == str(api.resources.revision)
    items, _ = await client.list("pods", "default", label_selector="app=web")
    assert [p.metadata.name for p in items] == ["a"]


async def test_not_found_reaches_caller_with_kubernetes_message(client: Client) -> None:
    with pytest.raises(errors.NotFound) as info:
        await client.get("deployments", "web-app")
    assert str(info.value) == 'deployments.apps "web-app" not found'


async def test_already_exists(client: Client) -> None:
    await client.create(pod("web"))
    with pytest.raises(errors.AlreadyExists, match='pods "web" already exists'):
        await client.create(pod("web"))


async def test_stale_update_is_conflict(client: Client) -> None:
    created = await client.create(pod("web"))
    fresh = core_pb2.Pod()
    fresh.CopyFrom(created)
    fresh.metadata.labels["v"] = "2"
    updated = await client.update(fresh)
    assert int(updated.metadata.resource_version) > int(created.metadata.resource_version)
    created.metadata.labels["v"] = "stale"
    with pytest.raises(errors.Conflict) as info:
        await client.update(created)
    assert errors.CONFLICT_MESSAGE in str(info.value)


async def test_invalid_carries_field_causes(client: Client, api: FakeApiServer) -> None:
    cause = errors.invalid("metadata.name", "Bad_Name", "a lowercase RFC 1123 subdomain")
    api.resources.fail_next("Create", errors.Invalid.for_object("Pod", "Bad_Name", [cause]))
    with pytest.raises(errors.Invalid) as info:
        await client.create(pod("Bad_Name"))
    assert 'Pod "Bad_Name" is invalid' in str(info.value)
    assert [c.path for c in info.value.causes] == ["metadata.name"]


async def test_delete_apply_version_resources(client: Client, api: FakeApiServer) -> None:
    applied, result = await client.apply(pod("web", app="x"))
    assert result == "created"
    _, result = await client.apply(pod("web", app="x"))
    assert result == "unchanged"
    _, result = await client.apply(pod("web", app="y"))
    assert result == "configured"
    with pytest.raises(errors.Conflict):
        await client.delete("pods", "web", precondition_resource_version="1")
    deleted = await client.delete("po", "web", grace_period_seconds=0)
    assert deleted.metadata.name == "web"
    with pytest.raises(errors.NotFound):
        await client.get("pods", "web")
    assert (await client.version()).git_version == "v0.0.0-fake"
    names = {r.name for r in await client.server_resources()}
    assert {"pods", "deployments", "nodes"} <= names
    assert applied.metadata.namespace == "default"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_unreachable_server_is_one_clear_line() -> None:
    address = f"127.0.0.1:{free_port()}"
    async with Client(address, timeout=5.0) as client:
        with pytest.raises(errors.ServiceUnavailable) as info:
            await client.get("pods", "web")
        assert str(info.value) == f"cannot reach the API server at {address}: connection refused"
        with pytest.raises(errors.ServiceUnavailable):
            async for _ in client.watch("pods"):
                pass


async def test_watch_streams_typed_events_in_order(client: Client, api: FakeApiServer) -> None:
    api.resources.put(pod("existing"))
    seen: list[WatchEvent[Any]] = []

    async def consume() -> None:
        async for event in client.watch("pods"):
            seen.append(event)
            if len(seen) == 4:
                return

    task = asyncio.ensure_future(consume())
    while api.resources.open_watches == 0:
        await asyncio.sleep(0.01)
    created = await client.create(pod("new"))
    created.metadata.labels["x"] = "1"
    await client.update(created)
    await client.delete("pods", "new")
    await asyncio.wait_for(task, 5)
    assert [(e.type, e.object.metadata.name) for e in seen] == [
        ("ADDED", "existing"),
        ("ADDED", "new"),
        ("MODIFIED", "new"),
        ("DELETED", "new"),
    ]
    assert all(isinstance(e.object, core_pb2.Pod) for e in seen)
    versions = [int(e.resource_version) for e in seen]
    assert versions == sorted(versions)


async def test_leaving_a_watch_cancels_the_call(client: Client, api: FakeApiServer) -> None:
    api.resources.put(pod("a"))
    async for _ in client.watch("pods"):
        break
    for _ in range(100):
        if api.resources.open_watches == 0:
            break
        await asyncio.sleep(0.01)
    assert api.resources.open_watches == 0


async def test_watch_from_compacted_revision_is_expired(client: Client, api: FakeApiServer) -> None:
    api.resources.put(pod("a"))
    api.resources.put(pod("b"))
    api.resources.compact()
    with pytest.raises(errors.Expired, match="too old resource version"):
        async for _ in client.watch("pods", resource_version="1"):
            pass


async def test_watch_resumes_after_revision(client: Client, api: FakeApiServer) -> None:
    first = api.resources.put(pod("a"))
    api.resources.put(pod("b"))
    events = client.watch("pods", resource_version=first.metadata.resource_version)
    event = await asyncio.wait_for(events.__anext__(), 5)
    assert (event.type, event.object.metadata.name) == ("ADDED", "b")
    await events.aclose()  # type: ignore[attr-defined]


async def test_retry_on_conflict_reruns_until_success(client: Client, api: FakeApiServer) -> None:
    await client.create(pod("web"))
    conflict = errors.Conflict.for_object("pods", "web")
    api.resources.fail_next("Update", conflict)
    api.resources.fail_next("Update", conflict)
    attempts = 0

    async def relabel() -> core_pb2.Pod:
        nonlocal attempts
        attempts += 1
        current = await client.get("pods", "web")
        current.metadata.labels["touched"] = "yes"
        result: core_pb2.Pod = await client.update(current)
        return result

    updated = await retry_on_conflict(relabel)
    assert attempts == 3
    assert updated.metadata.labels["touched"] == "yes"


async def test_retry_on_conflict_gives_up_and_passes_other_errors() -> None:
    calls = 0

    async def always_conflicts() -> None:
        nonlocal calls
        calls += 1
        raise errors.Conflict.for_object("pods", "web")

    with pytest.raises(errors.Conflict):
        await retry_on_conflict(always_conflicts, attempts=3)
    assert calls == 3

    async def not_found() -> None:
        nonlocal calls
        calls += 1
        raise errors.NotFound.for_object("pods", "web")

    calls = 0
    with pytest.raises(errors.NotFound):
        await retry_on_conflict(not_found)
    assert calls == 1


async def test_server_reported_unavailable_keeps_its_message(
    client: Client, api: FakeApiServer
) -> None:
    api.resources.fail_next("Get", errors.ServiceUnavailable("storage is not ready"))
    with pytest.raises(errors.ServiceUnavailable) as info:
        await client.get("pods", "web")
    assert str(info.value) == "storage is not ready"
