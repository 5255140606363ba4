"""pods/log over HTTP: the API server proxies to the pod's kubelet, as the gRPC PodLogs does.

A stand-in kubelet (a gRPC Kubelet service on a loopback port, plain, as the
API server dials a kubelet without --kubelet-client-* flags) records what it
was asked and answers with numbered lines; a Node names it as its kubelet
endpoint. So the test sees both ends of the proxy: which options reached the
kubelet, and what kubectl (here, an HTTPS client) reads.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from protos import kubelet_pb2, kubelet_pb2_grpc
from tests.unit.apiserver.httpapi.client import HTTPS, PODS


class StandInKubelet(kubelet_pb2_grpc.KubeletServicer):
    def __init__(self) -> None:
        self.asked: list[kubelet_pb2.ContainerLogsRequest] = []

    async def Logs(
        self, request: kubelet_pb2.ContainerLogsRequest, context: Any
    ) -> AsyncIterator[kubelet_pb2.ContainerLogsChunk]:
        self.asked.append(request)
        lines = [f"line {i}\n" for i in range(1, 6)]
        if request.HasField("tail_lines"):
            lines = lines[-request.tail_lines :]
        yield kubelet_pb2.ContainerLogsChunk(lines=lines)
        if request.follow:
            await asyncio.sleep(0.2)
            yield kubelet_pb2.ContainerLogsChunk(lines=["later\n"])

    async def Exec(
        self, request: kubelet_pb2.ContainerExecRequest, context: Any
    ) -> kubelet_pb2.ContainerExecResponse:
        raise NotImplementedError  # pods/exec is not served over HTTP

    def ExecStream(self, request_iterator: Any, context: Any) -> Any:
        raise NotImplementedError  # the stream tests have their own stand-in

    def PortForward(self, request_iterator: Any, context: Any) -> Any:
        raise NotImplementedError


@pytest.fixture
async def kubelet(admin: HTTPS) -> AsyncIterator[StandInKubelet]:
    server = grpc.aio.server()
    stand_in = StandInKubelet()
    kubelet_pb2_grpc.add_KubeletServicer_to_server(stand_in, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "n1"},
    }
    assert (await admin.call("POST", "/api/v1/nodes", node)).status == 201
    status = (await admin.call("GET", "/api/v1/nodes/n1")).data
    status["status"] = {
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
    }
    assert (await admin.call("PUT", "/api/v1/nodes/n1/status", status)).status == 200
    pod = {
        "metadata": {"name": "p"},
        "spec": {
            "nodeName": "n1",
            "containers": [{"name": "a", "image": "i"}, {"name": "b", "image": "i"}],
        },
    }
    assert (await admin.call("POST", PODS, pod)).status == 201
    try:
        yield stand_in
    finally:
        await server.stop(0)


async def test_logs_pass_their_options_to_the_kubelet(
    admin: HTTPS, kubelet: StandInKubelet
) -> None:
    two = await admin.call("GET", f"{PODS}/p/log")
    assert two.status == 400
    assert "a container name must be specified for pod p" in two.data["message"]
    answer = await admin.call("GET", f"{PODS}/p/log?container=b&tailLines=2&previous=true")
    assert answer.status == 200
    assert answer.headers["content-type"] == "text/plain"
    assert answer.body == b"line 4\nline 5\n"
    asked = kubelet.asked[-1]
    assert (asked.pod, asked.container, asked.tail_lines, asked.previous) == ("p", "b", 2, True)
    cut = await admin.call("GET", f"{PODS}/p/log?container=a&limitBytes=10")
    assert cut.body == b"line 1\nlin"
    query = "container=a&timestamps=true&sinceSeconds=30&sinceTime=2026-12-05T10:00:00Z"
    stamped = await admin.call("GET", f"{PODS}/p/log?{query}")
    assert stamped.status == 200
    assert "warning" not in stamped.headers
    asked = kubelet.asked[-1]  # PodLogOptions reach the kubelet, which applies them
    assert asked.timestamps and asked.since_seconds == 30
    assert asked.since_time == "2026-12-05T10:00:00Z"


async def test_follow_streams_until_the_kubelet_ends(admin: HTTPS, kubelet: StandInKubelet) -> None:
    stream = await admin.open_stream(f"{PODS}/p/log?container=a&follow=true")
    try:
        assert stream.response.getheader("Transfer-Encoding") == "chunked"
        got = [await asyncio.wait_for(stream.line(), 10) for _ in range(6)]
    finally:
        stream.close()
    assert got[0] == b"line 1\n"
    assert got[-1] == b"later\n"
    assert kubelet.asked[-1].follow is True


async def test_an_unreachable_kubelet_is_503(admin: HTTPS, kubelet: StandInKubelet) -> None:
    node = (await admin.call("GET", "/api/v1/nodes/n1")).data
    node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] = 1  # nothing listens there
    assert (await admin.call("PUT", "/api/v1/nodes/n1/status", node)).status == 200
    answer = await admin.call("GET", f"{PODS}/p/log?container=a")
    assert (answer.status, answer.data["reason"]) == (503, "ServiceUnavailable")
    assert "cannot reach the kubelet at 127.0.0.1:1" in answer.data["message"]
