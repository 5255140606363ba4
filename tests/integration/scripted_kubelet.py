"""A scripted kubelet for kubectl's exec and port-forward: the node's gRPC server, in a thread.

The API server reaches a node's kubelet at its InternalIP and kubelet port
with mutual TLS (its kubelet-client certificate; the kubelet's serving
certificate checked against the CA). This stand-in serves exactly that, with
the node's serving certificate from pki init, on a grpc.aio server whose loop
runs in a thread of its own, so a synchronous test (kubectl is a subprocess)
can run beside it. What it does:

    exec   `cat /etc/nginx/nginx.conf`  the file's text
           `cat`                        stdin back on stdout, until stdin ends
           `sh -c "exit N"`             "leaving" on stderr, exit code N
           anything else                `sh: 1: CMD: not found` on stderr, exit 127
    port-forward to port 80             a real TCP connection to `http_port` on loopback
                                        (the pod's port, played by a small HTTP server),
                                        bytes copied both ways; close_write is a half-close
    port-forward to another port        refused: connection refused

Every start is recorded in `starts`.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

from apimachinery import errors
from protos import kubelet_pb2, kubelet_pb2_grpc

NGINX_CONF = "user www-data;\nworker_processes auto;\nevents {\n\tworker_connections 768;\n}\n"
ExecResp = kubelet_pb2.ExecStreamResponse


class ScriptedKubelet(kubelet_pb2_grpc.KubeletServicer):
    """The node's kubelet as far as exec and port-forward go (module docstring)."""

    def __init__(self, http_port: int) -> None:
        self.http_port = http_port
        self.port = 0  # where it serves, once `serving` has started it
        self.starts: list[Any] = []

    async def ExecStream(
        self, request_iterator: AsyncIterator[Any], context: Any
    ) -> AsyncIterator[Any]:
        requests = request_iterator.__aiter__()
        start = (await requests.__anext__()).start
        self.starts.append(start)
        await context.send_initial_metadata(())
        command = list(start.command)
        if command == ["cat", "/etc/nginx/nginx.conf"]:
            yield ExecResp(stdout=NGINX_CONF.encode())
        elif command == ["cat"]:
            async for request in requests:
                if request.WhichOneof("payload") == "stdin_close":
                    break
                if request.WhichOneof("payload") == "stdin":
                    yield ExecResp(stdout=request.stdin)
        elif command[:2] == ["sh", "-c"] and command[2].startswith("exit "):
            yield ExecResp(stderr=b"leaving\n")
            yield ExecResp(exit_code=int(command[2].split()[1]))
            return
        else:
            yield ExecResp(stderr=f"sh: 1: {command[0]}: not found\n".encode())
            yield ExecResp(exit_code=127)
            return
        yield ExecResp(exit_code=0)

    async def PortForward(
        self, request_iterator: AsyncIterator[Any], context: Any
    ) -> AsyncIterator[Any]:
        requests = request_iterator.__aiter__()
        start = (await requests.__anext__()).start
        self.starts.append(start)
        if start.port != 80:
            refused = errors.ServiceUnavailable(
                f"dial tcp 127.0.0.1:{start.port}: connection refused"
            )
            await context.abort_with_status(errors.to_grpc_status(refused))
        reader, writer = await asyncio.open_connection("127.0.0.1", self.http_port)
        await context.send_initial_metadata(())

        async def upstream() -> None:
            with contextlib.suppress(OSError):  # the pod's side may end first
                async for request in requests:
                    if request.WhichOneof("payload") == "close_write":
                        break
                    writer.write(request.data)
                    await writer.drain()
                if writer.can_write_eof():
                    writer.write_eof()

        pump = asyncio.ensure_future(upstream())
        try:
            while data := await reader.read(65536):
                yield kubelet_pb2.PortForwardResponse(data=data)
        finally:
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)
            writer.close()

    async def Logs(self, request: Any, context: Any) -> AsyncIterator[Any]:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not this stand-in's")
        yield

    async def Exec(self, request: Any, context: Any) -> Any:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not this stand-in's")


@contextlib.contextmanager
def serving(stand_in: ScriptedKubelet, cert: str, key: str, ca: str) -> Iterator[int]:
    """Serve `stand_in` on a loopback port with mutual TLS, in a thread; yields the port."""
    credentials = grpc.ssl_server_credentials(
        [(Path(key).read_bytes(), Path(cert).read_bytes())],
        root_certificates=Path(ca).read_bytes(),
        require_client_auth=True,
    )
    loop = asyncio.new_event_loop()
    started: futures.Future[int] = futures.Future()
    stop = asyncio.Event()

    async def run() -> None:
        server = grpc.aio.server()
        kubelet_pb2_grpc.add_KubeletServicer_to_server(stand_in, server)
        port = server.add_secure_port("127.0.0.1:0", credentials)
        await server.start()
        started.set_result(port)
        await stop.wait()
        await server.stop(0)

    thread = threading.Thread(target=loop.run_until_complete, args=(run(),), daemon=True)
    thread.start()
    try:
        yield started.result(10)
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()
