"""The span store: its bounds and expiry (a worked example), what it refuses, who may write and
read it -- real identities over real TLS -- and spans made with the OpenTelemetry SDK arriving
through the exporter."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from apimachinery import errors, kubeconfig, tracecontext, tracing
from apimachinery.channel import Credentials
from apimachinery.client import Client
from apimachinery.tracecontext import TraceParent
from apiserver.auth.authorizer import UserInfo
from apiserver.server import APIServer
from apiserver.storage import open_storage
from apiserver.traces import SpanStore, validate
from protos import core_pb2, rbac_pb2, trace_pb2, trace_pb2_grpc
from tests.unit.apiserver.objects import tls_serving

TRACE_A, TRACE_B = "a" * 32, "b" * 32


def span(trace_id: str, n: int, start: int = 0, parent: str = "") -> trace_pb2.Span:
    return trace_pb2.Span(
        trace_id=trace_id,
        span_id=f"{n:016x}",
        parent_span_id=parent,
        name=f"step-{n}",
        start_time_unix_nano=start or n,
        end_time_unix_nano=(start or n) + 1,
    )


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_worked_example_evicts_the_least_recently_touched_trace() -> None:
    store = SpanStore(max_spans=5, clock=Clock())
    store.add([span(TRACE_A, i) for i in (1, 2, 3)])
    store.add([span(TRACE_B, i) for i in (1, 2)])
    assert len(store) == 5
    store.add([span(TRACE_A, 4)])
    assert len(store) == 4
    assert store.get(TRACE_B) == []
    assert [s.name for s in store.get(TRACE_A)] == ["step-1", "step-2", "step-3", "step-4"]
    # A span sent again replaces itself; it does not count twice.
    store.add([span(TRACE_A, 4)])
    assert len(store) == 4


def test_one_trace_larger_than_the_bound_keeps_its_latest_spans() -> None:
    store = SpanStore(max_spans=3, clock=Clock())
    store.add([span(TRACE_A, i) for i in range(1, 8)])
    assert [s.name for s in store.get(TRACE_A)] == ["step-5", "step-6", "step-7"]
    assert len(store) == 3


def test_traces_expire_an_hour_after_their_last_span() -> None:
    clock = Clock()
    store = SpanStore(clock=clock)
    store.add([span(TRACE_A, 1)])
    clock.now += 1800
    store.add([span(TRACE_B, 1)])
    clock.now += 1800  # A: an hour since its last span; B: half an hour
    assert store.get(TRACE_A) == []
    assert len(store.get(TRACE_B)) == 1
    store.add([span(TRACE_B, 2)])  # touched again: another hour
    clock.now += 3599
    assert [s.trace_id for s in store.summaries()] == [TRACE_B]
    clock.now += 1
    assert store.summaries() == [] and len(store) == 0


def test_summaries_list_the_latest_started_first() -> None:
    store = SpanStore(clock=Clock())
    store.add([span(TRACE_A, 1, start=500), span(TRACE_A, 2, start=900)])
    store.add([span(TRACE_B, 1, start=700)])
    summaries = store.summaries()
    assert [(s.trace_id, s.root_name, s.span_count) for s in summaries] == [
        (TRACE_B, "step-1", 1),
        (TRACE_A, "step-1", 2),
    ]
    assert summaries[1].end_time_unix_nano == 901
    assert len(store.summaries(limit=1)) == 1


def test_bad_spans_are_refused_naming_the_field() -> None:
    bad = span("XYZ", 1)
    bad.span_id = "0" * 16
    bad.end_time_unix_nano = 0
    bad.start_time_unix_nano = 5
    bad.attributes.add(key="k", values=["x" * 5000])
    messages = [str(c) for c in validate([span(TRACE_A, 1), bad])]
    assert messages == [
        'spans[1].traceId: Invalid value: "XYZ": 32 lowercase hex digits',
        'spans[1].spanId: Invalid value: "0000000000000000": 16 lowercase hex digits',
        "spans[1].endTimeUnixNano: Invalid value: 0: before its start",
        "spans[1].attributes[0].values: Too long: must have at most 4096 bytes",
    ]
    assert validate([span(TRACE_A, 1)] * 4097)[0].type == "Too many"
    with pytest.raises(ValueError):
        SpanStore(max_spans=0)


# ---- through a real server, with real identities ------------------------------------------------


@dataclasses.dataclass
class Secured:
    server: APIServer
    pki: Path
    target: str

    def client(self, conf: str) -> Client:
        config = kubeconfig.load(self.pki / conf)
        return Client.from_config(dataclasses.replace(config, target=self.target), timeout=10)

    def bob(self) -> Client:
        ca = (self.pki / "pki" / "ca.crt").read_bytes()
        return Client(self.target, timeout=10, credentials=Credentials(ca_pem=ca, token="bob"))


@pytest.fixture
async def secured(tmp_path: Path) -> AsyncIterator[Secured]:
    pki, serving = tls_serving(tmp_path)
    storage = await open_storage("sqlite", str(tmp_path / "data"))
    tokens = {"bob": UserInfo("bob", ("developers",))}
    server = APIServer(storage, f"unix:{tmp_path}/api.sock", serving=serving, static_tokens=tokens)
    await server.start()
    try:
        yield Secured(server, pki, f"127.0.0.1:{server.ports[1]}")
    finally:
        await server.stop(grace=0)


async def _export(client: Client, spans: list[trace_pb2.Span]) -> int:
    stub = trace_pb2_grpc.TracesStub(client._connection.channel())
    request = trace_pb2.ExportRequest(spans=spans)
    reply = await client._unary(lambda: stub.Export(request, timeout=10))
    return int(reply.accepted)


async def _get(client: Client, **kwargs: object) -> trace_pb2.Trace:
    stub = trace_pb2_grpc.TracesStub(client._connection.channel())
    reply: trace_pb2.Trace = await client._unary(
        lambda: stub.Get(trace_pb2.GetTraceRequest(**kwargs), timeout=10)  # type: ignore[arg-type]
    )
    return reply


async def test_components_export_and_only_readers_read(secured: Secured) -> None:
    for n, conf in enumerate(("kubelet-node1.conf", "scheduler.conf", "controller-manager.conf")):
        async with secured.client(conf) as component:
            assert await _export(component, [span(TRACE_A, n + 1)]) == 1
            with pytest.raises(errors.Forbidden, match=r'cannot get path "/traces"'):
                await _get(component, trace_id=TRACE_A)
    async with secured.bob() as bob:
        with pytest.raises(errors.Forbidden, match=r'User "bob" cannot create path "/traces"'):
            await _export(bob, [span(TRACE_B, 1)])
        with pytest.raises(errors.Forbidden, match=r'User "bob" cannot get path "/traces"'):
            await _get(bob, last=True)
    async with secured.client("admin.conf") as admin:
        got = await _get(admin, trace_id=TRACE_A)
        assert [s.name for s in got.spans] == ["step-1", "step-2", "step-3"]
        with pytest.raises(errors.Invalid, match=r"spans\[0\].traceId"):
            await _export(admin, [span("nope", 1)])
        with pytest.raises(errors.BadRequest, match="exactly one"):
            await _get(admin, trace_id=TRACE_A, last=True)
        with pytest.raises(errors.NotFound, match="expired"):
            await _get(admin, trace_id=TRACE_B)
        binding = rbac_pb2.ClusterRoleBinding(api_version="rbac.authorization.k8s.io/v1")
        binding.kind = "ClusterRoleBinding"
        binding.metadata.name = "bob-reads-traces"
        binding.role_ref.api_group = "rbac.authorization.k8s.io"
        binding.role_ref.kind = "ClusterRole"
        binding.role_ref.name = "system:tinykube:trace-reader"
        binding.subjects.add(kind="User", name="bob", api_group="rbac.authorization.k8s.io")
        await admin.create(binding)
    async with secured.bob() as bob:
        for _ in range(100):  # the RBAC index follows the store's watch
            try:
                got = await _get(bob, last=True)
                break
            except errors.Forbidden:
                await asyncio.sleep(0.05)
        assert got.trace_id == TRACE_A
        # By object: also `get` on that object, which bob does not have.
        ref = trace_pb2.ObjectRef(resource="configmaps", name="x")
        with pytest.raises(errors.Forbidden, match="configmaps"):
            await _get(bob, object=ref)


async def test_spans_made_with_the_sdk_arrive_through_the_exporter(secured: Secured) -> None:
    async with secured.client("admin.conf") as admin, secured.client("kubelet-node1.conf") as node:
        cm = core_pb2.ConfigMap(api_version="v1", kind="ConfigMap")
        cm.metadata.name = "traced"
        root = TraceParent("c" * 32, "1" * 16)
        with tracecontext.sending(root):
            await admin.create(cm)
        tracing.shutdown()  # a provider left by another test would name another service
        assert tracing.configure(node, "kubelet")
        try:
            with tracing.step(
                "RunPodSandbox",
                parent=await admin.get(core_pb2.ConfigMap, "traced"),
                component="kubelet",
                node="node1",
                why="no sandbox for the pod yet",
                obj="configmaps/default/traced",
                attributes={"tinykube.cni.commands": ["ip link add tk0 type bridge"]},
            ) as sandbox:
                mine = tracing.parent_of(sandbox)
                assert mine is not None and tracecontext.outgoing() == mine.header()
                child = tracing.record(
                    "CNI ADD",
                    parent=tracing.CURRENT,
                    start_ns=10,
                    end_ns=20,
                    component="tinykube-cni",
                    error="no IP left",
                )
            assert child is not None
            # Without a trace on the parent there is no span at all.
            with tracing.step("Nothing", parent=cm, component="kubelet") as none:
                assert none is None
            # Off the loop: the exporter's blocking call is served by this loop's server.
            assert await asyncio.to_thread(tracing.flush)
            exporter = tracing.exporter()
            assert exporter is not None and exporter.exported == 2
        finally:
            tracing.shutdown()
        ref = trace_pb2.ObjectRef(resource="configmaps", name="traced")
        got = await _get(admin, object=ref)
    assert got.trace_id == "c" * 32 and got.object_span_id == "1" * 16
    by_name = {s.name: s for s in got.spans}
    run = by_name["RunPodSandbox"]
    assert (run.parent_span_id, run.component, run.node, run.service) == (
        "1" * 16,
        "kubelet",
        "node1",
        "kubelet",
    )
    assert run.why == "no sandbox for the pod yet" and run.object == "configmaps/default/traced"
    assert [(a.key, list(a.values)) for a in run.attributes] == [
        ("tinykube.cni.commands", ["ip link add tk0 type bridge"])
    ]
    cni = by_name["CNI ADD"]
    assert cni.parent_span_id == run.span_id and cni.error == "no IP left"
    assert (cni.start_time_unix_nano, cni.end_time_unix_nano) == (10, 20)
