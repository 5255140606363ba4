"""The kubelet's streaming server: ExecStream and PortForward (Kubernetes' server/streaming).

Kubernetes' kubelet serves `/exec/...` and `/portForward/...` on :10250:
the API server proxies an upgraded `kubectl exec -i` or `kubectl
port-forward` connection there, and the kubelet asks the runtime for a
streaming URL (CRI Exec, CRI PortForward) and joins the two. tinykube's
kubelet serves the same two operations as bidirectional gRPC streams
(protos/kubelet.proto) and joins them to what the runtime adapter gives
(kubelet/runtime/streaming.py):

    ExecStream  <- ExecStart{namespace, pod, pod_uid, container, command, stdin, tty, ...}
        0. (both) the start read, then the caller authorized from its certificate
        1. the pod among this node's, its uid checked; the container as for
           logs and exec (the only one when unnamed); it must be running
        2. runtime.exec_stream(container id, ExecOptions) -> session
        3. response headers: "the process runs" (the API server waits for them)
        4. stdin / stdin_close / resize -> the session;  session output ->
           stdout / stderr responses; last, exit_code
    PortForward <- PortForwardStart{namespace, pod, pod_uid, port}
        1. the pod, its uid; its newest ready sandbox
        2. runtime.port_forward(sandbox, port): a connection to localhost:port
           made in the sandbox's network namespace
        3. response headers: "connected"
        4. data -> the socket, close_write -> its write side shut; what the pod
           sends -> data responses, until the pod closes its side

Errors before the headers are the call's status, the API's status errors as
for logs and exec (kubelet/server.py); BadRequest when the start is wrong:

    you must specify at least one command for the container
    you must specify at least 1 of stdin, stdout, stderr      (Kubernetes' words)
    error forwarding port 80 to pod 4c1a..., uid : failed to connect to localhost:80
        inside namespace "/var/run/netns/cni-...", IPv4: ... connection refused ...

After the headers, a runtime failure ends the call with InternalError. The
end of the caller's requests counts as stdin's end (a half-closed port);
a cancelled call (the API server's caller went away) closes the session or
the socket in the `finally`s below.

Ending. The last response says "nothing more": the exit code for an exec,
an empty `data` for a forward (the pod closed its side). The caller then
ends its requests, and only then does the kubelet end the call (waiting at
most DRAIN seconds). That order matters to gRPC: a client still writing
when the server's status arrives can have its call failed as INTERNAL
("Internal error from Core") instead of ending with the server's OK, so
whoever sends the final message is the one that closes last.

A TTY merges stderr into stdout, so with `tty` the session is asked for no
stderr, as Kubernetes' kubelet does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio

from apimachinery import errors
from kubelet.errors import ContainerRuntimeError
from kubelet.errors import NotFoundError as RuntimeNotFound
from kubelet.runtime.interface import Container, ContainerRuntime, ContainerState, SandboxState
from kubelet.runtime.streaming import STDOUT, ExecOptions, ExecSession
from protos import core_pb2, kubelet_pb2

log = logging.getLogger(__name__)

_READ_SIZE = 32 * 1024
# After its last response, how long the kubelet waits for the caller's half-close.
DRAIN = 5.0


async def _opening(requests: AsyncIterator[Any]) -> Any | None:
    """The stream's first message (None if it ended first), read before anything is answered.

    The start message is the request, as an exec's URL and headers are in Kubernetes: it is
    read before the caller is authorized, as an HTTP server reads a request before its 401.
    Refusing first would race the caller's own write of it: grpc's client reports a write that
    meets an already finished call as "Internal error from Core", hiding the refusal.
    """
    try:
        return await requests.__anext__()
    except StopAsyncIteration:
        return None


def _start_of(first: kubelet_pb2.ExecStreamRequest | kubelet_pb2.PortForwardRequest | None) -> Any:
    """The first message's start; BadRequest when the stream ended first or began otherwise."""
    if first is None:
        raise errors.BadRequest("the stream ended before its start message")
    if first.WhichOneof("payload") != "start":
        raise errors.BadRequest("the first message of the stream must be its start")
    return first.start


def exec_options(start: kubelet_pb2.ExecStart) -> ExecOptions:
    """The runtime's ExecOptions for a start; BadRequest in Kubernetes' words."""
    if not start.command:
        raise errors.BadRequest("you must specify at least one command for the container")
    if not (start.stdin or start.stdout or start.stderr):
        raise errors.BadRequest("you must specify at least 1 of stdin, stdout, stderr")
    stderr = start.stderr and not start.tty
    return ExecOptions(tuple(start.command), start.stdin, start.stdout, stderr, start.tty)


def _runtime_status(exc: ContainerRuntimeError) -> errors.StatusError:
    if isinstance(exc, RuntimeNotFound):
        return errors.NotFound(str(exc))
    return errors.InternalError(str(exc))


class KubeletStreams:
    """ExecStream and PortForward, mixed into KubeletServicer (which supplies the lookups)."""

    node_name: str

    @property
    def runtime(self) -> ContainerRuntime:
        raise NotImplementedError

    def _authorize(self, context: grpc.aio.ServicerContext, verb: str) -> None:
        raise NotImplementedError

    def _pod(self, namespace: str, name: str, uid: str) -> core_pb2.Pod:
        raise NotImplementedError

    async def _instance(
        self, namespace: str, name: str, uid: str, container: str, previous: bool
    ) -> Container:
        raise NotImplementedError

    async def ExecStream(
        self,
        request_iterator: AsyncIterator[kubelet_pb2.ExecStreamRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[kubelet_pb2.ExecStreamResponse]:
        requests = request_iterator.__aiter__()
        session: ExecSession | None = None
        try:
            first = await _opening(requests)
            self._authorize(context, "create")
            start = _start_of(first)
            options = exec_options(start)
            instance = await self._instance(
                start.namespace, start.pod, start.pod_uid, start.container, False
            )
            if instance.state != ContainerState.RUNNING:
                raise errors.BadRequest(
                    f"cannot exec in a container that is not running: {instance.name}"
                )
            session = await self.runtime.exec_stream(instance.id, options)
        except errors.StatusError as err:
            await context.abort_with_status(errors.to_grpc_status(err))
        except ContainerRuntimeError as exc:
            await context.abort_with_status(errors.to_grpc_status(_runtime_status(exc)))
        assert session is not None
        log.info(
            "exec stream",
            extra={
                "pod": f"{start.namespace}/{start.pod}",
                "container": instance.name,
                "command": start.command[0],
                "stdin": start.stdin,
                "tty": start.tty,
            },
        )
        async for response in _exec_relay(session, requests, context):
            yield response

    async def PortForward(
        self,
        request_iterator: AsyncIterator[kubelet_pb2.PortForwardRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[kubelet_pb2.PortForwardResponse]:
        requests = request_iterator.__aiter__()
        connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            first = await _opening(requests)
            self._authorize(context, "create")
            start = _start_of(first)
            if not 0 < start.port < 65536:
                raise errors.BadRequest(
                    f"invalid port {start.port}: must be between 1 and 65535, inclusive"
                )
            pod = self._pod(start.namespace, start.pod, start.pod_uid)
            sandbox_id = await self._ready_sandbox(pod)
            try:
                connection = await self.runtime.port_forward(sandbox_id, start.port)
            except RuntimeNotFound:
                raise
            except ContainerRuntimeError as exc:
                raise errors.InternalError(
                    f"error forwarding port {start.port} to pod {sandbox_id}, uid : {exc}"
                ) from None
        except errors.StatusError as err:
            await context.abort_with_status(errors.to_grpc_status(err))
        except ContainerRuntimeError as exc:
            await context.abort_with_status(errors.to_grpc_status(_runtime_status(exc)))
        assert connection is not None
        log.info(
            "port forward", extra={"pod": f"{start.namespace}/{start.pod}", "port": start.port}
        )
        async for response in _port_relay(connection, requests, context):
            yield response

    async def _ready_sandbox(self, pod: core_pb2.Pod) -> str:
        sandboxes = await self.runtime.list_pod_sandboxes(pod_uid=pod.metadata.uid)
        ready = [s for s in sandboxes if s.state == SandboxState.READY]
        if not ready:
            raise errors.BadRequest(
                f'pod "{pod.metadata.name}" has no running sandbox on node {self.node_name}'
            )
        return max(ready, key=lambda s: (s.attempt, s.created_at)).id


async def _feed_exec(session: ExecSession, requests: AsyncIterator[Any]) -> None:
    """The caller's messages into the process; their end is stdin's end. Reads on to the
    caller's half-close even when the process is gone (see "Ending" above)."""
    with contextlib.suppress(Exception):  # the call ended: nothing more will come
        async for request in requests:
            kind = request.WhichOneof("payload")
            with contextlib.suppress(ContainerRuntimeError, OSError):
                if kind == "stdin":
                    await session.write_stdin(request.stdin)
                elif kind == "stdin_close":
                    await session.close_stdin()
                elif kind == "resize":
                    await session.resize(request.resize.width, request.resize.height)
    with contextlib.suppress(ContainerRuntimeError, OSError):
        await session.close_stdin()


async def _half_closed(feeder: asyncio.Future[None]) -> None:
    """Wait (at most DRAIN seconds) for the caller to end its requests."""
    await asyncio.wait({feeder}, timeout=DRAIN)


async def _exec_relay(
    session: ExecSession, requests: AsyncIterator[Any], context: grpc.aio.ServicerContext
) -> AsyncIterator[kubelet_pb2.ExecStreamResponse]:
    feeder: asyncio.Future[None] | None = None
    try:
        await context.send_initial_metadata(())
        feeder = asyncio.ensure_future(_feed_exec(session, requests))
        async for stream, data in session.output():
            if stream == STDOUT:
                yield kubelet_pb2.ExecStreamResponse(stdout=data)
            else:
                yield kubelet_pb2.ExecStreamResponse(stderr=data)
        yield kubelet_pb2.ExecStreamResponse(exit_code=await session.exit_code())
        await _half_closed(feeder)
    except ContainerRuntimeError as exc:
        await context.abort_with_status(errors.to_grpc_status(errors.InternalError(str(exc))))
    finally:
        if feeder is not None:
            feeder.cancel()
            await asyncio.gather(feeder, return_exceptions=True)
        await session.close()


async def _feed_port(writer: asyncio.StreamWriter, requests: AsyncIterator[Any]) -> None:
    """The caller's bytes to the pod; close_write (or their end) shuts our write side.
    Reads on to the caller's half-close even when the pod's socket is gone."""
    open_ = True
    with contextlib.suppress(Exception):  # the call ended: nothing more will come
        async for request in requests:
            kind = request.WhichOneof("payload")
            if not open_:
                continue
            try:
                if kind == "data":
                    writer.write(request.data)
                    await writer.drain()
                elif kind == "close_write":
                    open_ = False
                    if writer.can_write_eof():
                        writer.write_eof()
            except (ConnectionError, OSError):
                open_ = False
    if open_:
        with contextlib.suppress(ConnectionError, OSError):
            if writer.can_write_eof():
                writer.write_eof()


async def _port_relay(
    connection: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    requests: AsyncIterator[Any],
    context: grpc.aio.ServicerContext,
) -> AsyncIterator[kubelet_pb2.PortForwardResponse]:
    reader, writer = connection
    feeder: asyncio.Future[None] | None = None
    try:
        await context.send_initial_metadata(())
        feeder = asyncio.ensure_future(_feed_port(writer, requests))
        while True:
            try:
                data = await reader.read(_READ_SIZE)
            except (ConnectionError, OSError):
                break  # a reset: the pod's side is gone, as at its end
            if not data:
                break
            yield kubelet_pb2.PortForwardResponse(data=data)
        yield kubelet_pb2.PortForwardResponse()  # empty: the pod's side has ended
        await _half_closed(feeder)
    finally:
        if feeder is not None:
            feeder.cancel()
            await asyncio.gather(feeder, return_exceptions=True)
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()
