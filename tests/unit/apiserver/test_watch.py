"""Watch: ordered, once, resumable from any resourceVersion; Expired when compacted."""

from __future__ import annotations

import asyncio
import random

import pytest

from apimachinery import errors
from apimachinery.client import Client
from apiserver.server import APIServer

from .objects import configmap, pod

History = list[tuple[int, str, str]]  # (revision, type, name)


async def _write_history(client: Client, count: int, seed: int) -> History:
    """Random creates, updates and deletes of config maps; what each acknowledged write was."""
    rng = random.Random(seed)
    live: dict[str, int] = {}
    history: History = []
    for i in range(count):
        op = rng.random()
        if not live or op < 0.4:
            name = f"cm-{i}"
            obj = await client.create(configmap(name, i=str(i)))
            live[name] = 0
            history.append((int(obj.metadata.resource_version), "ADDED", name))
        elif op < 0.8:
            name = rng.choice(sorted(live))
            cm = await client.get("configmaps", name)
            cm.data["i"] = str(i)
            obj = await client.update(cm)
            history.append((int(obj.metadata.resource_version), "MODIFIED", name))
        else:
            name = rng.choice(sorted(live))
            del live[name]
            obj = await client.delete("configmaps", name)
            history.append((int(obj.metadata.resource_version), "DELETED", name))
    return history


async def _collect(client: Client, start: int, last: int, rng: random.Random) -> History:
    """Watch from `start` until revision `last`, dropping the stream at random and resuming."""
    seen: History = []
    rv = start
    while rv < last:
        budget = rng.randint(1, 15)
        async for ev in client.watch("configmaps", "default", resource_version=str(rv)):
            got = int(ev.resource_version)
            seen.append((got, ev.type, ev.object.metadata.name))
            rv = got
            budget -= 1
            if budget == 0 or rv >= last:
                break
    return seen


async def test_resume_from_any_revision_with_random_disconnects(client: Client) -> None:
    history = await _write_history(client, 120, seed=7)
    first, last = history[0][0], history[-1][0]
    rng = random.Random(11)
    starts = [first - 1, last - 1, *rng.sample(range(first, last), 12)]
    for start in starts:
        expected = [h for h in history if h[0] > start]
        got = await asyncio.wait_for(_collect(client, start, last, rng), 30)
        assert got == expected, f"resume from {start}"


async def test_concurrent_writes_and_disconnecting_watcher(client: Client) -> None:
    start = int((await client.list("configmaps"))[1])
    writer = asyncio.ensure_future(_write_history(client, 150, seed=3))
    history = await writer
    got = await asyncio.wait_for(_collect(client, start, history[-1][0], random.Random(5)), 30)
    assert got == history


async def test_watch_from_empty_version_sends_current_state_first(client: Client) -> None:
    await client.create(configmap("existing"))
    stream = client.watch("configmaps", "default")
    first = await asyncio.wait_for(stream.__anext__(), 5)
    assert (first.type, first.object.metadata.name) == ("ADDED", "existing")
    await client.create(configmap("later"))
    second = await asyncio.wait_for(stream.__anext__(), 5)
    assert (second.type, second.object.metadata.name) == ("ADDED", "later")
    await stream.aclose()  # type: ignore[attr-defined]


async def test_filtered_watch_sees_objects_enter_and_leave(client: Client) -> None:
    start = (await client.list("pods"))[1]
    stream = client.watch("pods", label_selector="app=web", resource_version=start)
    p = await client.create(pod("p1", labels={"app": "other"}))
    p.metadata.labels["app"] = "web"
    p = await client.update(p)
    p.metadata.labels["app"] = "gone"
    await client.update(p)
    types = []
    for _ in range(2):
        ev = await asyncio.wait_for(stream.__anext__(), 5)
        types.append((ev.type, ev.object.metadata.labels["app"]))
    assert types == [("ADDED", "web"), ("DELETED", "gone")]
    await stream.aclose()  # type: ignore[attr-defined]


async def test_watch_from_compacted_revision_is_expired(server: APIServer, client: Client) -> None:
    first = await client.create(configmap("old"))
    for i in range(5):
        await client.create(configmap(f"n{i}"))
    now = int((await client.list("configmaps"))[1])
    await server.storage.compact(now - 1)
    with pytest.raises(errors.Expired, match="too old resource version"):
        async for _ in client.watch("configmaps", resource_version=first.metadata.resource_version):
            break


async def test_bookmark_reports_filtered_progress(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    import apiserver.servicer

    monkeypatch.setattr(apiserver.servicer, "BOOKMARK_INTERVAL_SECONDS", 0.2)
    start = (await client.list("pods"))[1]
    stream = client.watch(
        "pods", label_selector="app=watched", resource_version=start, allow_bookmarks=True
    )
    other = await client.create(pod("elsewhere", labels={"app": "other"}))
    ev = await asyncio.wait_for(stream.__anext__(), 5)
    assert ev.type == "BOOKMARK"
    assert ev.resource_version == other.metadata.resource_version
    await stream.aclose()  # type: ignore[attr-defined]
