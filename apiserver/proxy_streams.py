"""pods/exec with streams and pods/portforward: the API server relays both directions.

`kubectl exec -i`, `kubectl cp` and `kubectl port-forward` need a pipe, not
a request and an answer: stdin goes one way while stdout comes back, and a
forwarded TCP connection carries bytes both ways until either end closes.
Kubernetes upgrades the HTTP request (SPDY, or WebSocket with the
`v4.channel.k8s.io` / `v5.channel.k8s.io` subprotocols) and its API server
proxies the upgraded connection to the kubelet's streaming server
(pkg/registry/core/pod/rest/subresources.go, ExecREST and PortForwardREST).
tinykube's pipe is a bidirectional gRPC stream, relayed the same way:

    CLI --PodExecStream: ExecStreamRequest(start) stdin... stdin_close--> API server
        1. the caller authenticated (its first message is read first, as an
           HTTP request is), then that message must be `start` (BadRequest otherwise)
        2. authorize `create` on pods/exec (pods/portforward for PodPortForward),
           as Kubernetes' ExecREST and PortForwardREST are reached by a POST
        3. the pod, its node and its kubelet's address, the container chosen
           as PodExec chooses it (proxy.py): the only one when unnamed,
           BadRequest listing the names otherwise; the pod uid filled in
        4. open the kubelet's ExecStream, send it `start`, and wait for its
           response headers: the kubelet sends them once the process runs
           (or, for PortForward, once the pod's port is connected), so an
           error there -- container not running, connection refused -- is
           the answer to the open, not a broken stream
    API server --ExecStream(start) ...--> kubelet; stdout/stderr/exit_code flow back

After the open, two things run at once: a pump copies the caller's later
messages (stdin, stdin_close, resize; data, close_write) to the kubelet,
and the caller iterates the kubelet's responses. The end of the caller's
requests half-closes the kubelet's side (stdin's EOF for exec, a TCP
half-close for a forwarded port); the end of the kubelet's responses ends
the relay.

How a stream ends. The kubelet's last message says "nothing more": the
exit code for an exec, a PortForwardResponse with empty `data` for a
forward (the pod closed its side). The caller answers it by ending its
requests, which the pump passes on as the kubelet call's half-close, and
only then does the kubelet end its call (after at most 5 s without the
half-close: kubelet/streams.py, "Ending"); the relay ends with it. Every
hop closes in that order because a gRPC client still writing when the
server's status arrives can see its call fail as INTERNAL instead of OK.
An in-process caller does the same: once it has the exit code (or the
empty data), it lets its `requests` iterator end.

A caller that goes away (its stream cancelled, its iteration abandoned)
cancels the kubelet call, which the kubelet sees as its own cancellation
and cleans up after (drops the exec session's connection, closes the
pod-side socket). Errors keep PodExec's rules: the kubelet's status
errors pass through unchanged, a kubelet that cannot be reached is
ServiceUnavailable "cannot reach the kubelet at 10.0.0.11:10250: ...".

The in-process entry (the HTTP API's WebSocket front, apiserver/httpapi,
uses it without gRPC). Both are methods of the ResourcesServicer, and the
caller authenticates first (`user = await guard.authenticator.authenticate(ctx)`):

    stream = await servicer.open_exec_stream(user, start)      # kubelet_pb2.ExecStart
    stream = await servicer.open_port_forward(user, start)     # kubelet_pb2.PortForwardStart
        -> KubeletStream; raises StatusError (Forbidden, NotFound, BadRequest,
           ServiceUnavailable, the kubelet's own errors) before anything flows,
           so an HTTP caller can answer with a status before upgrading
    async for response in stream.relay(requests):              # requests: AsyncIterator
        ...   # ExecStreamResponse (stdout | stderr | exit_code, last) or PortForwardResponse
        # raises StatusError if the kubelet fails mid-stream; relay() closes the stream
        # when it ends, fails or is cancelled
    await stream.aclose()      # in a `finally`: idempotent; cancels the kubelet call if it
                               # still runs (a caller that broke out of the loop, or never
                               # started relay(), must call it)

and, in one step, `servicer.exec_stream(user, start, requests)` and
`servicer.port_forward(user, start, requests)`: async generators of the
responses that open on their first iteration (so an open's error is raised
there); `aclose()` on one, or cancelling its consumer, cancels the kubelet
call. `requests` holds the messages after the first: ExecStreamRequest with
stdin / stdin_close / resize, PortForwardRequest with data / close_write; a
second `start` among them is a BadRequest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, Generic, TypeVar

import grpc
import grpc.aio

from apimachinery import errors, scheme
from apiserver.auth.authorizer import UserInfo
from apiserver.auth.filters import RequestGuard
from apiserver.proxy import PodProxy, kubelet_address, kubelet_error
from protos import kubelet_pb2, kubelet_pb2_grpc

log = logging.getLogger(__name__)

# How long the kubelet may take to start the process (or connect the port) before the
# open fails: it answers in milliseconds unless the node is in trouble.
OPEN_TIMEOUT = 30.0

Req = TypeVar("Req", kubelet_pb2.ExecStreamRequest, kubelet_pb2.PortForwardRequest)
Resp = TypeVar("Resp", kubelet_pb2.ExecStreamResponse, kubelet_pb2.PortForwardResponse)
AnyRequest = kubelet_pb2.ExecStreamRequest | kubelet_pb2.PortForwardRequest


class KubeletStream(Generic[Req, Resp]):
    """One open stream to a kubelet (ExecStream or PortForward), its channel and address."""

    def __init__(self, channel: grpc.aio.Channel, call: Any, address: str) -> None:
        self._channel = channel
        self._call = call
        self.address = address
        self._pump_error: errors.StatusError | None = None

    async def send(self, request: Req) -> bool:
        """Pass one message on; False once the kubelet has ended the stream."""
        if self._call.done():
            return False
        try:
            await self._call.write(request)
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
            return False  # the kubelet's status is what receive() reports
        return True

    async def close_send(self) -> None:
        """No more messages from the caller (the kubelet reads the end of its requests)."""
        if not self._call.done():
            with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
                await self._call.done_writing()

    async def receive(self) -> Resp | None:
        """The kubelet's next response; None at its end; StatusError if it failed."""
        try:
            message = await self._call.read()
        except (grpc.aio.AioRpcError, asyncio.CancelledError) as exc:
            # The pump cancels the call when the caller's messages are wrong: a read of a
            # cancelled call raises CancelledError, and that error is the answer.
            if self._pump_error is not None:
                raise self._pump_error from None
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise kubelet_error(exc, self.address) from None
        if message is grpc.aio.EOF:
            return None
        out: Resp = message
        return out

    async def relay(self, requests: AsyncIterator[Req]) -> AsyncIterator[Resp]:
        """Pump `requests` to the kubelet while yielding its responses; closes the stream."""
        pump = asyncio.ensure_future(self._pump(requests))
        try:
            while (response := await self.receive()) is not None:
                yield response
            if self._pump_error is not None:
                raise self._pump_error
        finally:
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)
            await self.aclose()

    async def _pump(self, requests: AsyncIterator[Req]) -> None:
        try:
            async for request in requests:
                if request.WhichOneof("payload") == "start":
                    raise errors.BadRequest("only the first message of a stream may be a start")
                if not await self.send(request):
                    return
            await self.close_send()
        except errors.StatusError as err:
            self._pump_error = err
            self._call.cancel()
        except grpc.aio.AioRpcError:
            # The caller's own stream failed (it went away): drop the kubelet's call too.
            self._call.cancel()

    async def aclose(self) -> None:
        """Cancel the kubelet call if it still runs, and close the channel. Idempotent."""
        self._call.cancel()
        await self._channel.close()


async def _open(
    channel: grpc.aio.Channel, method: str, first: AnyRequest, address: str
) -> KubeletStream[Any, Any]:
    """Start `method` on the kubelet with `first` and wait until the kubelet has accepted it."""
    stub = kubelet_pb2_grpc.KubeletStub(channel)
    call = getattr(stub, method)()
    try:
        with contextlib.suppress(asyncio.InvalidStateError):  # finished: read below
            await call.write(first)
        await asyncio.wait_for(call.initial_metadata(), OPEN_TIMEOUT)
        if call.done() and await call.code() != grpc.StatusCode.OK:
            await call.read()  # raises the call's AioRpcError
    except grpc.aio.AioRpcError as exc:
        await channel.close()
        raise kubelet_error(exc, address) from None
    except asyncio.TimeoutError:
        call.cancel()
        await channel.close()
        raise errors.ServiceUnavailable(
            f"the kubelet at {address} did not start the stream within {OPEN_TIMEOUT:g}s"
        ) from None
    except BaseException:
        call.cancel()
        await channel.close()
        raise
    return KubeletStream(channel, call, address)


async def opening(requests: AsyncIterator[Req]) -> Req | None:
    """The stream's first message (None if the stream ended first), read before any answer.

    It is read before the caller is authenticated, as an HTTP server reads the request
    before its 401: answering first would race the caller's write of it, and grpc's client
    reports a write that meets an already finished call as "Internal error from Core".
    """
    try:
        return await requests.__anext__()
    except StopAsyncIteration:
        return None


def first_message(first: Req | None, kind: str) -> Req:
    """The stream's first message, which must be its start (BadRequest otherwise)."""
    if first is None:
        raise errors.BadRequest(f"the stream ended before its {kind} message")
    if first.WhichOneof("payload") != "start":
        raise errors.BadRequest(f"the first message of the stream must be its {kind}")
    return first


class PodStreams(PodProxy):
    """PodExecStream and PodPortForward (gRPC), and their in-process entries."""

    guard: RequestGuard

    async def open_exec_stream(
        self, user: UserInfo, start: kubelet_pb2.ExecStart
    ) -> KubeletStream[kubelet_pb2.ExecStreamRequest, kubelet_pb2.ExecStreamResponse]:
        """Authorize `create` pods/exec for `user`, find the kubelet, start the exec there."""
        namespace = start.namespace or "default"
        pods = scheme.for_resource("pods")
        await self.guard.authorize(user, "create", pods, namespace, start.pod, "exec")
        pod, container, address = await self._target(namespace, start.pod, start.container)
        _check_uid(pod, start.pod_uid)
        forwarded = kubelet_pb2.ExecStart()
        forwarded.CopyFrom(start)
        forwarded.namespace = namespace
        forwarded.container = container
        forwarded.pod_uid = pod.metadata.uid
        first = kubelet_pb2.ExecStreamRequest(start=forwarded)
        channel = self.kubelet_client.channel(address)
        return await _open(channel, "ExecStream", first, address)

    async def open_port_forward(
        self, user: UserInfo, start: kubelet_pb2.PortForwardStart
    ) -> KubeletStream[kubelet_pb2.PortForwardRequest, kubelet_pb2.PortForwardResponse]:
        """Authorize `create` pods/portforward for `user`, connect the pod's port on its node."""
        namespace = start.namespace or "default"
        pods = scheme.for_resource("pods")
        await self.guard.authorize(user, "create", pods, namespace, start.pod, "portforward")
        if not 0 < start.port < 65536:
            raise errors.BadRequest(
                f"invalid port {start.port}: must be between 1 and 65535, inclusive"
            )
        pod = await self.store.get(pods, namespace, start.pod)
        if not pod.spec.node_name:
            raise errors.BadRequest(f"pod {start.pod} does not have a host assigned")
        _check_uid(pod, start.pod_uid)
        node = await self.store.get(scheme.for_resource("nodes"), "", pod.spec.node_name)
        address = kubelet_address(node)
        forwarded = kubelet_pb2.PortForwardStart(
            namespace=namespace, pod=start.pod, pod_uid=pod.metadata.uid, port=start.port
        )
        first = kubelet_pb2.PortForwardRequest(start=forwarded)
        channel = self.kubelet_client.channel(address)
        return await _open(channel, "PortForward", first, address)

    async def exec_stream(
        self,
        user: UserInfo,
        start: kubelet_pb2.ExecStart,
        requests: AsyncIterator[kubelet_pb2.ExecStreamRequest],
    ) -> AsyncGenerator[kubelet_pb2.ExecStreamResponse, None]:
        """open_exec_stream + relay in one: see the module docstring."""
        stream = await self.open_exec_stream(user, start)
        async for response in stream.relay(requests):
            yield response

    async def port_forward(
        self,
        user: UserInfo,
        start: kubelet_pb2.PortForwardStart,
        requests: AsyncIterator[kubelet_pb2.PortForwardRequest],
    ) -> AsyncGenerator[kubelet_pb2.PortForwardResponse, None]:
        """open_port_forward + relay in one: see the module docstring."""
        stream = await self.open_port_forward(user, start)
        async for response in stream.relay(requests):
            yield response

    async def PodExecStream(
        self, request_iterator: AsyncIterator[kubelet_pb2.ExecStreamRequest], context: Any
    ) -> AsyncIterator[kubelet_pb2.ExecStreamResponse]:
        requests = request_iterator.__aiter__()
        stream: KubeletStream[Any, Any] | None = None
        try:
            received = await opening(requests)
            user = await self.guard.authenticator.authenticate(context)
            first = first_message(received, "start")
            stream = await self.open_exec_stream(user, first.start)
        except errors.StatusError as err:
            await context.abort_with_status(errors.to_grpc_status(err))
        async for response in _relayed(stream, requests, context):
            yield response

    async def PodPortForward(
        self, request_iterator: AsyncIterator[kubelet_pb2.PortForwardRequest], context: Any
    ) -> AsyncIterator[kubelet_pb2.PortForwardResponse]:
        requests = request_iterator.__aiter__()
        stream: KubeletStream[Any, Any] | None = None
        try:
            received = await opening(requests)
            user = await self.guard.authenticator.authenticate(context)
            first = first_message(received, "start")
            stream = await self.open_port_forward(user, first.start)
        except errors.StatusError as err:
            await context.abort_with_status(errors.to_grpc_status(err))
        async for response in _relayed(stream, requests, context):
            yield response


def _check_uid(pod: Any, uid: str) -> None:
    """A caller that names the pod's uid means that pod, not a newer one of the same name."""
    if uid and pod.metadata.uid != uid:
        raise errors.Conflict(
            f"the UID in the request ({uid}) does not match the pod's"
            f" ({pod.metadata.uid}): pod {pod.metadata.name} was replaced"
        )


async def _relayed(
    stream: KubeletStream[Any, Any] | None, requests: AsyncIterator[Any], context: Any
) -> AsyncIterator[Any]:
    """The gRPC side of a relay: headers once open (the caller's own "accepted"), then the
    kubelet's responses; a failure mid-stream ends the call with its status."""
    assert stream is not None  # abort_with_status raised otherwise
    try:
        await context.send_initial_metadata(())
        async for response in stream.relay(requests):
            yield response
    except errors.StatusError as err:
        await context.abort_with_status(errors.to_grpc_status(err))
    finally:
        await stream.aclose()
