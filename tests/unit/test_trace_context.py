"""The trace context's travel: W3C traceparent parsing, the client's request field (tied to the
task that opened the step; metadata from other callers), and the API server writing it onto
objects -- a new context alone is no change, a write without one keeps the stored one, a Binding
carries it onto the pod."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from apimachinery import errors, scheme, tracecontext
from apimachinery.client import Client
from apimachinery.tracecontext import ANNOTATION, TraceParent
from apiserver.registry import tracecontext as server_side
from apiserver.server import APIServer
from protos import api_pb2, core_pb2

ROOT = TraceParent("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")
CHILD = TraceParent("4bf92f3577b34da6a3ce929d0e0e4736", "b7ad6b7169203331")


def configmap(name: str, **data: str) -> core_pb2.ConfigMap:
    cm = core_pb2.ConfigMap(api_version="v1", kind="ConfigMap")
    cm.metadata.name = name
    cm.data.update(data)
    return cm


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", ROOT),
        ("  00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 ", ROOT),
        ("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", ROOT),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", None),
        ("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", None),
        ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", None),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", None),
        ("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", None),
        ("00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01", None),
        ("", None),
    ],
)
def test_traceparent_is_parsed_as_the_w3c_spec_says(text: str, want: TraceParent | None) -> None:
    assert tracecontext.parse(text) == want


def test_a_traceparent_round_trips_and_reads_from_objects() -> None:
    assert tracecontext.parse(ROOT.header()) == ROOT
    assert ROOT.sampled
    cm = configmap("x")
    assert tracecontext.of_object(cm) is None
    cm.metadata.annotations[ANNOTATION] = ROOT.header()
    assert tracecontext.of_object(cm) == ROOT
    cm.metadata.annotations[ANNOTATION] = "garbage"
    assert tracecontext.of_object(cm) is None
    assert tracecontext.from_metadata([("traceparent", ROOT.header())]) == ROOT.header()
    assert tracecontext.from_metadata([("traceparent", b"nonsense")]) == ""
    assert tracecontext.from_metadata(None) == ""


async def test_the_outgoing_context_belongs_to_the_task_that_opened_the_step() -> None:
    assert tracecontext.outgoing() == ""
    seen: list[str] = []

    async def background() -> None:  # created inside the step: inherits the variable
        await asyncio.sleep(0)
        seen.append(tracecontext.outgoing())

    with tracecontext.sending(ROOT):
        assert tracecontext.outgoing() == ROOT.header()
        task = asyncio.get_running_loop().create_task(background())
        await task
    assert seen == [""]  # a task started during a step does not send the step's context
    assert tracecontext.outgoing() == ""
    with tracecontext.sending(None):
        assert tracecontext.outgoing() == ""


async def _annotation(client: Client, name: str) -> str:
    cm = await client.get(core_pb2.ConfigMap, name)
    return str(cm.metadata.annotations.get(ANNOTATION, ""))


async def test_the_server_stores_the_calls_context_and_owns_the_annotation(
    client: Client,
) -> None:
    with tracecontext.sending(ROOT):
        created = await client.create(configmap("traced", a="1"))
    assert created.metadata.annotations[ANNOTATION] == ROOT.header()

    # A new context alone changes nothing: no write, the stored context stays.
    with tracecontext.sending(CHILD):
        same = await client.update(created)
    assert same.metadata.resource_version == created.metadata.resource_version
    assert await _annotation(client, "traced") == ROOT.header()

    # A real change with a context: written, with the new context.
    changed = configmap("traced", a="2")
    with tracecontext.sending(CHILD):
        updated = await client.update(changed)
    assert updated.metadata.annotations[ANNOTATION] == CHILD.header()

    # Without one, the client's copy of the annotation is not written back.
    stale = configmap("traced", a="3")
    stale.metadata.annotations[ANNOTATION] = ROOT.header()
    await client.update(stale)
    assert await _annotation(client, "traced") == CHILD.header()

    # A create without a context drops whatever annotation the manifest carried.
    imported = configmap("imported")
    imported.metadata.annotations[ANNOTATION] = ROOT.header()
    assert ANNOTATION not in (await client.create(imported)).metadata.annotations

    # An invalid context is no context.
    server_side.receive([("traceparent", "00-nope")])
    assert server_side.incoming() == ""


async def test_apply_twice_with_new_contexts_stays_unchanged(client: Client) -> None:
    with tracecontext.sending(ROOT):
        _, word = await client.apply(configmap("applied", a="1"))
    assert word == "created"
    with tracecontext.sending(CHILD):
        applied, word = await client.apply(configmap("applied", a="1"))
    assert word == "unchanged"
    assert applied.metadata.annotations[ANNOTATION] == ROOT.header()
    assert "tinykube.io/trace-context" not in applied.metadata.annotations.get(
        "kubectl.kubernetes.io/last-applied-configuration", ""
    )


def _pod(name: str) -> core_pb2.Pod:
    pod = core_pb2.Pod(api_version="v1", kind="Pod")
    pod.metadata.name = name
    pod.spec.containers.add(name="c", image="nginx")
    return pod


async def test_status_writes_and_bindings_carry_the_context(
    client: Client, server: APIServer
) -> None:
    with tracecontext.sending(ROOT):
        pod = await client.create(_pod("web"))
    with tracecontext.sending(CHILD):
        bound = await client.bind("web", "node1", uid=pod.metadata.uid)
    assert bound.metadata.annotations[ANNOTATION] == CHILD.header()

    # A binding's own copy of the annotation never reaches the pod.
    other = await client.create(_pod("other"))
    forged: dict[str, Any] = {ANNOTATION: ROOT.header()}
    bound = await client.bind("other", "node1", annotations=forged)
    assert ANNOTATION not in bound.metadata.annotations

    third = TraceParent(ROOT.trace_id, "1111111111111111")
    fresh = await client.get(core_pb2.Pod, "web")
    fresh.status.phase = "Running"
    with tracecontext.sending(third):
        written = await client.update_status(fresh)
    assert written.metadata.annotations[ANNOTATION] == third.header()
    assert written.status.phase == "Running"
    # A deletion that marks the pod (graceful) stores the deleter's context.
    with tracecontext.sending(ROOT):
        marked = await client.delete(core_pb2.Pod, "web")
    assert marked.metadata.HasField("deletion_timestamp")
    assert marked.metadata.annotations[ANNOTATION] == ROOT.header()
    with pytest.raises(errors.NotFound):
        await client.get(core_pb2.Pod, "missing")
    assert other.metadata.name == "other"


async def test_the_field_carries_the_context_and_metadata_is_read_when_it_is_empty(
    client: Client,
) -> None:
    stub = client._resources()

    async def create(name: str, field: str = "", metadata: str = "") -> str:
        request = api_pb2.CreateRequest(object=scheme.pack(configmap(name)), traceparent=field)
        sent = (("traceparent", metadata),) if metadata else None
        reply = await stub.Create(request, metadata=sent)
        return str(scheme.unpack(reply).metadata.annotations.get(ANNOTATION, ""))

    with tracecontext.sending(ROOT):  # what our client sends: the field, no metadata entry
        request = api_pb2.CreateRequest(traceparent=tracecontext.outgoing())
    assert request.traceparent == ROOT.header()
    # An instrumented caller's metadata entry (OpenTelemetry's gRPC carrier) is read too...
    assert await create("by-metadata", metadata=CHILD.header()) == CHILD.header()
    # ...but the field, when there is one, is the context.
    assert await create("both", field=ROOT.header(), metadata=CHILD.header()) == ROOT.header()
    # A field that is no traceparent is no context (the W3C rule: ignore it, start afresh).
    assert await create("garbage", field="00-nope", metadata=CHILD.header()) == ""
