"""`tinykube get -w` as a real process: the listed objects, then one row per change, on any
kind (configmaps, events), in the table and in the other output forms."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from pathlib import Path

import pytest

from apimachinery.client import Client
from protos import core_pb2
from tests.unit.cli_node import ClusterProcess, watching

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ClusterProcess]:
    c = ClusterProcess(tmp_path)
    try:
        yield c
    finally:
        c.stop()


def _configmap(name: str, **data: str) -> core_pb2.ConfigMap:
    cm = core_pb2.ConfigMap(api_version="v1", kind="ConfigMap")
    cm.metadata.name = name
    cm.metadata.namespace = "default"
    cm.data.update(data)
    return cm


def _event(name: str, reason: str) -> core_pb2.Event:
    ev = core_pb2.Event(api_version="v1", kind="Event", reason=reason, type="Normal")
    ev.metadata.name = name
    ev.metadata.namespace = "default"
    ev.involved_object.kind = "Pod"
    ev.involved_object.name = "web"
    ev.involved_object.namespace = "default"
    ev.message = f"{reason} happened"
    ev.count = 1
    return ev


def test_watch_configmaps_lists_then_follows(cluster: ClusterProcess) -> None:
    async def first(c: Client) -> object:
        return await c.create(_configmap("one", a="1"))

    cluster.call(first)
    with watching(cluster.address, "get", "cm", "-w", "-L", "tier") as w:
        assert w.next_line().split() == ["NAME", "DATA", "AGE", "TIER"]
        assert w.next_line().split()[:2] == ["one", "1"]

        async def changes(c: Client) -> None:
            created = await c.create(_configmap("two", a="1", b="2"))
            created.metadata.labels["tier"] = "front"
            await c.update(created)

        cluster.call(changes)
        assert w.next_line().split()[:2] == ["two", "2"]
        relabelled = w.next_line().split()
        assert relabelled[:2] == ["two", "2"] and relabelled[-1] == "front"


def test_watch_events_prints_the_event_stream(cluster: ClusterProcess) -> None:
    with watching(cluster.address, "get", "events", "-w") as w:

        async def record(c: Client) -> None:
            await c.create(_event("web.1", "Scheduled"))
            await c.create(_event("web.2", "Pulled"))

        cluster.call(record)
        header = w.next_line()
        assert header.split()[:4] == ["LAST", "SEEN", "TYPE", "REASON"]
        rows = [w.next_line(), w.next_line()]
        assert "Scheduled" in rows[0] and "pod/web" in rows[0] and "Scheduled happened" in rows[0]
        assert "Pulled" in rows[1]


def test_watch_with_jsonpath_and_watch_only(cluster: ClusterProcess) -> None:
    async def create(c: Client) -> None:
        await c.create(_configmap("listed"))

    cluster.call(create)
    template = 'jsonpath={.metadata.name}{"\\n"}'
    with watching(cluster.address, "get", "cm", "-w", "-o", template) as names:
        assert names.next_line() == "listed"
    with watching(cluster.address, "get", "cm", "--watch-only", "-o", "name") as only:
        # Nothing is listed; the watch starts "now", so keep changing an object until the
        # watcher, whenever it is ready, reports it.
        created: list[str] = []

        async def another(c: Client) -> None:
            name = f"new-{len(created)}"
            await c.create(_configmap(name))
            created.append(name)

        line = ""
        for _ in range(20):
            cluster.call(another)
            try:
                line = only.lines.get(timeout=0.5)
                break
            except queue.Empty:
                continue
        assert line in {f"configmap/{n}" for n in created}, (line, created)
