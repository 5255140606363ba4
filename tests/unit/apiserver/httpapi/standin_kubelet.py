"""A stand-in kubelet for the streaming tests: ExecStream and PortForward over gRPC.

The API server relays exec and port-forward to the pod's kubelet
(apiserver/proxy_streams.py); this stand-in is that kubelet, on a loopback
port, plain (as the API server dials kubelets without --kubelet-client-*
flags). What its exec runs depends on the command's first word:

    cat      stdin back as stdout, upper-cased; exit 0 at stdin's end
    print    "out\\n" on stdout, "err\\n" on stderr; exit with the second word
    tty      each resize as "WxH" on stderr; exit 0 at stdin's end
    sleep    runs until cancelled (the cancellation is recorded)
    missing  refuses before it starts (container not running)

Its port-forward echoes data upper-cased and ends at close_write or at the
end of the requests (the caller's half-close); port 81
refuses (connection refused, as a closed port does); port 82 sends a banner
first and ends at once. Every start is recorded, so a test sees what reached
the kubelet. `kubelet_with_pods` makes the Node that names it and the pods:
`p` (containers a, b) and `one` (container c) on it, and `pending` on none.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio

from apimachinery import errors
from protos import kubelet_pb2, kubelet_pb2_grpc
from tests.unit.apiserver.httpapi.client import HTTPS, PODS

ExecReq = kubelet_pb2.ExecStreamRequest
ExecResp = kubelet_pb2.ExecStreamResponse
PFReq = kubelet_pb2.PortForwardRequest
PFResp = kubelet_pb2.PortForwardResponse


class StandInKubelet(kubelet_pb2_grpc.KubeletServicer):
    def __init__(self) -> None:
        self.starts: list[Any] = []
        self.requests: list[str] = []
        self.cancelled = asyncio.Event()  # an exec's call was cancelled
        self.ended = asyncio.Event()  # a port-forward's call ended, however

    async def ExecStream(
        self, request_iterator: AsyncIterator[ExecReq], context: Any
    ) -> AsyncIterator[ExecResp]:
        requests = request_iterator.__aiter__()
        start = (await requests.__anext__()).start
        self.starts.append(start)
        word = start.command[0]
        if word == "missing":
            status = errors.to_grpc_status(errors.BadRequest('container "c" is not running'))
            await context.abort_with_status(status)
        await context.send_initial_metadata(())
        try:
            if word == "print":
                yield ExecResp(stdout=b"out\n")
                yield ExecResp(stderr=b"err\n")
                yield ExecResp(exit_code=int(start.command[1]))
                return
            if word == "sleep":
                await asyncio.Event().wait()
            async for request in requests:
                kind = request.WhichOneof("payload")
                self.requests.append(kind or "")
                if kind == "stdin":
                    yield ExecResp(stdout=request.stdin.upper())
                elif kind == "resize":
                    size = f"{request.resize.width}x{request.resize.height}"
                    yield ExecResp(stderr=size.encode())
                elif kind == "stdin_close":
                    break
            yield ExecResp(exit_code=0)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise

    async def PortForward(
        self, request_iterator: AsyncIterator[PFReq], context: Any
    ) -> AsyncIterator[PFResp]:
        requests = request_iterator.__aiter__()
        start = (await requests.__anext__()).start
        self.starts.append(start)
        if start.port == 81:
            refused = errors.ServiceUnavailable("dial tcp 127.0.0.1:81: connection refused")
            await context.abort_with_status(errors.to_grpc_status(refused))
        await context.send_initial_metadata(())
        if start.port == 82:
            yield PFResp(data=b"banner\n")
            return
        try:
            async for request in requests:
                if request.WhichOneof("payload") == "close_write":
                    self.requests.append("close_write")
                    return
                yield PFResp(data=request.data.upper())
            self.requests.append("end")  # the caller half-closed: the echo ends too
        finally:
            self.ended.set()

    async def Logs(self, request: Any, context: Any) -> AsyncIterator[Any]:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not this stand-in's")
        yield

    async def Exec(self, request: Any, context: Any) -> Any:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not this stand-in's")


def pod(name: str, node: str, *containers: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": c, "image": "i"} for c in containers]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


@contextlib.asynccontextmanager
async def kubelet_with_pods(admin: HTTPS) -> AsyncIterator[StandInKubelet]:
    """The stand-in on a loopback port, the Node that names it, and the pods on it."""
    server = grpc.aio.server()
    stand_in = StandInKubelet()
    kubelet_pb2_grpc.add_KubeletServicer_to_server(stand_in, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}}
        assert (await admin.call("POST", "/api/v1/nodes", node)).status == 201
        current = (await admin.call("GET", "/api/v1/nodes/n1")).data
        current["status"] = {
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        }
        assert (await admin.call("PUT", "/api/v1/nodes/n1/status", current)).status == 200
        for obj in (pod("p", "n1", "a", "b"), pod("one", "n1", "c"), pod("pending", "", "c")):
            assert (await admin.call("POST", PODS, obj)).status == 201
        yield stand_in
    finally:
        await server.stop(0)
