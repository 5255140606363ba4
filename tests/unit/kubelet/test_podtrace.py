"""The kubelet's spans of a traced pod, through the real exporter into a real API server's span
store: SyncPod only when the sync acts, the CNI ADD from the plugin's journal under
RunPodSandbox, and status writes continuing from the sync or from the probe result that
caused them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from apimachinery import tracecontext, tracing
from apimachinery.client import Client
from apimachinery.tracecontext import ANNOTATION, TraceParent
from kubelet import podtrace
from netplugin.cni import journal
from protos import core_pb2, trace_pb2, trace_pb2_grpc

BIND = TraceParent("d" * 32, "2" * 16)


@pytest.fixture
async def traced(client: Client, tmp_path: Path) -> AsyncIterator[Client]:
    tracing.shutdown()  # a provider left by another test would name another service
    assert tracing.configure(client, "kubelet")
    podtrace.configure(client, "node1")
    podtrace.use_cni_data_dir(str(tmp_path / "cni"))
    try:
        yield client
    finally:
        tracing.shutdown()


def _pod(uid: str = "uid-1") -> core_pb2.Pod:
    pod = core_pb2.Pod(api_version="v1", kind="Pod")
    pod.metadata.name = "web-0"
    pod.metadata.namespace = "default"
    pod.metadata.uid = uid
    pod.metadata.annotations[ANNOTATION] = BIND.header()
    pod.spec.containers.add(name="web", image="nginx:latest")
    return pod


async def _trace(client: Client) -> dict[str, trace_pb2.Span]:
    assert await asyncio.to_thread(tracing.flush)
    stub = trace_pb2_grpc.TracesStub(client._connection.channel())
    got = await stub.Get(trace_pb2.GetTraceRequest(trace_id=BIND.trace_id), timeout=10)
    return {s.name: s for s in got.spans}


async def test_a_sync_that_acts_is_one_syncpod_with_its_runtime_calls(
    traced: Client, tmp_path: Path
) -> None:
    pod = _pod()
    entry = {
        "pod": "default/web-0",
        "netns": "/var/run/netns/cni-1",
        "ifname": "eth0",
        "ip": "10.244.0.2/24",
        "start_ns": 1_000,
        "end_ns": 5_000,
        "commands": ["ip link add tk0 type bridge", "ip addr add 10.244.0.1/24 dev tk0"],
        "error": "",
    }
    journal.record(str(tmp_path / "cni"), "sandbox-1", entry)
    with podtrace.syncing(_pod()):  # nothing done: no span at all
        pass
    with podtrace.syncing(pod):
        with podtrace.sandbox(pod, 0):
            pass
        podtrace.network_added(pod, "sandbox-1")
        with podtrace.pulling(pod, "nginx:latest", "Always"):
            pass
        with podtrace.starting(pod, pod.spec.containers[0], 0, "sandbox-1"):
            pass
        status = core_pb2.PodStatus(phase="Running", pod_ip="10.244.0.2")
        status.conditions.add(type="Ready", status="True")
        with podtrace.status_write(pod, status):
            sent = tracecontext.outgoing()
    spans = await _trace(traced)
    assert set(spans) == {
        "SyncPod",
        "RunPodSandbox",
        "CNI ADD",
        "PullImage",
        "StartContainer",
        "UpdatePodStatus",
    }
    sync = spans["SyncPod"]
    assert (sync.parent_span_id, sync.component, sync.node) == (BIND.span_id, "kubelet", "node1")
    assert sync.why == "RunPodSandbox; PullImage nginx:latest; StartContainer web"
    for name in ("RunPodSandbox", "PullImage", "StartContainer", "UpdatePodStatus"):
        assert spans[name].parent_span_id == sync.span_id, name
    cni = spans["CNI ADD"]
    assert cni.parent_span_id == spans["RunPodSandbox"].span_id
    assert (cni.component, cni.start_time_unix_nano, cni.end_time_unix_nano) == (
        "tinykube-cni",
        1_000,
        5_000,
    )
    assert cni.why == "eth0 10.244.0.2/24 on the node's bridge: 2 kernel change(s)"
    commands = {a.key: list(a.values) for a in cni.attributes}["tinykube.cni.commands"]
    assert commands == entry["commands"]
    status_span = spans["UpdatePodStatus"]
    assert status_span.why == "phase Running, Ready True, podIP 10.244.0.2"
    assert sent == f"00-{BIND.trace_id}-{status_span.span_id}-01"


async def test_a_probe_result_is_the_parent_of_the_status_write_it_causes(
    traced: Client,
) -> None:
    pod = _pod("uid-2")
    status = core_pb2.PodStatus(phase="Running")
    with podtrace.status_write(pod, status):  # outside a sync: under the pod's context
        pass
    podtrace.probe_changed(pod, "readiness", "web", "success", "HTTP 200\nmore", 10)
    status.conditions.add(type="Ready", status="True")
    with podtrace.status_write(pod, status):
        pass
    spans = await _trace(traced)
    assert set(spans) == {"UpdatePodStatus", "Probe"}  # two status writes share a name
    probe = spans["Probe"]
    assert probe.why == "readiness probe of web: success (HTTP 200)"
    assert spans["UpdatePodStatus"].parent_span_id == probe.span_id  # the later write
    stub = trace_pb2_grpc.TracesStub(traced._connection.channel())
    got = await stub.Get(trace_pb2.GetTraceRequest(trace_id=BIND.trace_id), timeout=10)
    first = next(
        s for s in got.spans if s.name == "UpdatePodStatus" and s.parent_span_id == BIND.span_id
    )
    assert probe.parent_span_id == first.span_id  # the probe follows the kubelet's last span


def test_the_journal_is_written_atomically_and_removed_by_del(tmp_path: Path) -> None:
    data = str(tmp_path)
    journal.record(data, "c1", {"commands": ["ip link set eth0 up"]})
    assert podtrace.read_journal(tmp_path / "journal", "c1") == {
        "commands": ["ip link set eth0 up"]
    }
    assert [p.name for p in (tmp_path / "journal").iterdir()] == ["c1.json"]
    journal.remove(data, "c1")
    journal.remove(data, "c1")  # twice is fine
    assert podtrace.read_journal(tmp_path / "journal", "c1") is None
    assert journal.ip_of({"ips": [{"address": "10.244.0.5/24"}]}) == "10.244.0.5/24"
    assert journal.ip_of(None) == ""
