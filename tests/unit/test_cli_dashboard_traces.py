"""The dashboard's waterfall: the newest trace of the API server's span store, kept current.

The timeline's shape (depth, order, the critical path) is checked on hand-made
spans; the feed against a real API server's `Traces` service, with spans
exported as the components export them, and once as a user who may not read
traces, who is told so in the server's words.
"""

from __future__ import annotations

import time
from typing import Any

from apimachinery.channel import Credentials
from apimachinery.client import Client
from cli.dashboard.traces import critical_path, timeline
from protos import trace_pb2, trace_pb2_grpc
from tests.unit.apiserver.httpapi.client import TOKEN, Cluster
from tests.unit.apiserver.httpapi.conftest import cluster as cluster  # the TLS server
from tests.unit.cli_apiserver import ApiServerProcess
from tests.unit.cli_apiserver import apiserver as apiserver  # the module's server
from tests.unit.dashboard_http import events, next_state, request, running_dashboard

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
T0 = 1_700_000_000 * 10**9
MS = 10**6


def span(sid: str, parent: str, name: str, start_ms: int, end_ms: int, **fields: Any) -> Any:
    return trace_pb2.Span(
        trace_id=fields.pop("trace_id", TRACE),
        span_id=sid * 16,
        parent_span_id=parent * 16 if parent else "",
        name=name,
        start_time_unix_nano=T0 + start_ms * MS,
        end_time_unix_nano=T0 + end_ms * MS,
        **fields,
    )


# apply -> CreateReplicaSet -> CreatePod -> {Bind -> RunPodSandbox, ...}; the sandbox ends last.
SPANS = [
    span("1", "", "apply", 0, 40, component="cli", object="deployments/default/web-app"),
    span("2", "1", "CreateReplicaSet", 5, 10, component="deployment-controller"),
    span("3", "2", "CreatePod", 12, 15, component="replicaset-controller"),
    span("4", "3", "Bind", 20, 22, component="default-scheduler", why="chosen node2: 2 feasible"),
    span("5", "4", "RunPodSandbox", 30, 300, component="kubelet", node="node2"),
    span("6", "3", "UpdateEndpoints", 25, 26, component="endpoints-controller"),
    span("7", "9", "ProxySync", 27, 29, component="proxy", node="node1"),  # its cause evicted
]


def test_the_timeline_is_a_tree_on_one_time_axis() -> None:
    data = timeline(trace_pb2.Trace(trace_id=TRACE, spans=SPANS))
    names = [(s["name"], s["depth"]) for s in data["spans"]]
    assert names == [
        ("apply", 0),
        ("CreateReplicaSet", 1),
        ("CreatePod", 2),
        ("Bind", 3),
        ("RunPodSandbox", 4),
        ("UpdateEndpoints", 3),
        ("ProxySync", 0),
    ]
    assert data["title"] == "apply deployments/default/web-app"
    assert abs(data["duration"] - 0.300) < 1e-9
    sandbox = next(s for s in data["spans"] if s["name"] == "RunPodSandbox")
    assert abs(sandbox["start"] - 0.030) < 1e-9 and sandbox["node"] == "node2"
    critical = [s["name"] for s in data["spans"] if s["critical"]]
    assert critical == ["apply", "CreateReplicaSet", "CreatePod", "Bind", "RunPodSandbox"]


def test_the_critical_path_of_nothing_is_empty_and_survives_a_parent_loop() -> None:
    assert critical_path([]) == set()
    loop = [span("a", "b", "x", 0, 5), span("b", "a", "y", 1, 9)]
    assert critical_path(loop) == {"a" * 16, "b" * 16}


async def _export(client: Client, spans: list[Any]) -> None:
    stub = trace_pb2_grpc.TracesStub(client._connection.channel())
    await stub.Export(trace_pb2.ExportRequest(spans=spans), timeout=10)


async def test_the_waterfall_follows_the_span_store(apiserver: ApiServerProcess) -> None:
    async with (
        Client(apiserver.address) as client,
        running_dashboard(client, traces=True) as dash,
    ):
        stream = events(dash.port, dash.cookie)
        await _export(client, SPANS[:4])
        doc = await next_state(stream)
        deadline = time.monotonic() + 5
        while not (doc["trace"] and len(doc["trace"].get("spans", [])) == 4):
            doc = await next_state(stream, timeout=max(0.1, deadline - time.monotonic()))
        assert doc["trace"]["traceId"] == TRACE
        await _export(client, SPANS[4:])
        while len(doc["trace"]["spans"]) != len(SPANS):
            doc = await next_state(stream, timeout=max(0.1, deadline - time.monotonic()))
        assert [s["name"] for s in doc["trace"]["spans"] if s["critical"]][-1] == "RunPodSandbox"
        await stream.aclose()


async def test_a_user_who_may_not_read_traces_is_told_so(cluster: Cluster) -> None:
    ca = (cluster.pki / "pki" / "ca.crt").read_bytes()
    credentials = Credentials(ca_pem=ca, token=TOKEN, server_name="localhost")
    async with (
        Client(f"127.0.0.1:{cluster.port}", credentials=credentials) as bob,
        running_dashboard(bob, traces=True) as dash,
    ):
        deadline = time.monotonic() + 5
        trace = None
        while trace is None and time.monotonic() < deadline:
            trace = (await request(dash.port, "/api/state", cookie=dash.cookie)).data["trace"]
        assert trace is not None
        assert 'User "bob" cannot get path "/traces"' in trace["error"]
