"""Several API servers behind one client: calls move to the next server when one is gone.

Kubernetes gives its clients one address: a load balancer in front of the
API servers (or the `kubernetes` Service's ClusterIP, inside the cluster).
tinykube's clients also accept the servers themselves, as a list --
`--server 10.0.0.1:6443,10.0.0.2:6443,10.0.0.3:6443`, or a kubeconfig
`server:` holding such a list (a tinykube extension) -- and do the
balancer's work: every call goes to the current server until that server
fails, then to the next (apimachinery/channel.py's Connection keeps one
channel per server and the current one).

A unary call, with the client's timeout as the budget for all attempts:

    for each server, starting at the current one:
        its channel not connected (refused, TLS failure, no answer within 5 s)
            -> the next server becomes current; the request was never sent: next
        send the request
            UNAVAILABLE (the connection broke)
                a read (Get, List, Version, ServerResources, AccessReview)
                    -> repeating it is harmless: next server
                a write -> the next server becomes current and the call fails with
                    ServiceUnavailable "... may or may not have been applied":
                    the API server may have stored it, so it is not sent twice
                    (client-go retries only idempotent requests, too); the caller
                    (a controller's compare-and-swap loop) re-reads and decides
            anything else -> the caller's error, as with one server
    no server connected -> ServiceUnavailable naming each server and why

A watch with a resourceVersion that breaks with UNAVAILABLE is opened again
on the next server from the last resourceVersion it delivered (an event's or
a bookmark's), so the consumer sees a pause, not a gap: every API server on
one etcd numbers revisions alike. If the new server has compacted that
revision it answers 410 Expired, and the informer re-lists, as after any
expired watch. A watch without a resourceVersion (first the ADDED events of
every existing object, in no revision order) has no point to resume from and
fails as it would with one server. Streams to kubelets (logs, exec,
port-forward) are not repeated: they go to the current server.

With a single server none of this applies: calls fail fast, as before.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any, Protocol

import grpc
import grpc.aio

from apimachinery import errors
from protos import api_pb2, api_pb2_grpc

log = logging.getLogger(__name__)

DIAL_TIMEOUT = 5.0
READ_METHODS = frozenset({"Get", "List", "Version", "ServerResources", "AccessReview"})
_METHODS = api_pb2.DESCRIPTOR.services_by_name["Resources"].methods_by_name
UNARY_METHODS = frozenset(
    name for name, m in _METHODS.items() if not (m.client_streaming or m.server_streaming)
)


class Connection(Protocol):
    """What failing over needs of apimachinery/channel.py's Connection."""

    server: str
    servers: list[str]
    timeout: float

    @property
    def current_server(self) -> str: ...

    def failed(self, server: str) -> None: ...

    def server_channel(self, server: str) -> grpc.aio.Channel: ...

    def server_stub(self, server: str) -> api_pb2_grpc.ResourcesStub: ...

    def error(self, exc: grpc.aio.AioRpcError, server: str = "") -> errors.StatusError: ...

    async def why_unreachable(self, server: str) -> str: ...


def is_transport_failure(exc: grpc.aio.AioRpcError) -> bool:
    """UNAVAILABLE from the transport itself (not a server's rich ServiceUnavailable)."""
    if exc.code() != grpc.StatusCode.UNAVAILABLE:
        return False
    return not any(key == "grpc-status-details-bin" for key, _ in (exc.trailing_metadata() or ()))


async def connected(channel: grpc.aio.Channel, limit: float) -> bool:
    """Whether the channel is (or within `limit` seconds becomes) READY; False as soon
    as it fails to connect."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    state = channel.get_state(try_to_connect=True)
    while state is not grpc.ChannelConnectivity.READY:
        if state in (
            grpc.ChannelConnectivity.TRANSIENT_FAILURE,
            grpc.ChannelConnectivity.SHUTDOWN,
        ):
            return False
        remaining = deadline - loop.time()
        if remaining <= 0:
            return False
        try:
            await asyncio.wait_for(channel.wait_for_state_change(state), remaining)
        except asyncio.TimeoutError:
            return False
        state = channel.get_state(try_to_connect=True)
    return True


class FailoverStub:
    """Stands in for a ResourcesStub over several servers (module docstring)."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def __getattr__(self, method: str) -> Any:
        connection = self._connection
        if method == "Watch":
            return lambda request, **kwargs: ResumingWatch(connection, request, kwargs)
        if method in UNARY_METHODS:
            return lambda request, **kwargs: FailoverCall(connection, method, request, kwargs)
        return getattr(connection.server_stub(connection.current_server), method)


class FailoverCall:
    """One unary call, awaitable, tried on each server in turn as the docstring says."""

    def __init__(
        self, connection: Connection, method: str, request: Any, kwargs: dict[str, Any]
    ) -> None:
        self._connection = connection
        self._method = method
        self._request = request
        self._kwargs = kwargs
        self._last: grpc.aio.UnaryUnaryCall[Any, Any] | None = None

    def __await__(self) -> Any:
        return self._run().__await__()

    async def trailing_metadata(self) -> Any:
        return await self._last.trailing_metadata() if self._last is not None else None

    async def _run(self) -> Any:
        conn = self._connection
        loop = asyncio.get_running_loop()
        kwargs = dict(self._kwargs)
        budget = kwargs.pop("timeout", None) or conn.timeout
        deadline = loop.time() + budget
        failures: list[str] = []
        for _ in range(len(conn.servers)):
            target = conn.current_server
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            channel = conn.server_channel(target)
            if not await connected(channel, min(DIAL_TIMEOUT, remaining)):
                failures.append(f"{target}: {await conn.why_unreachable(target)}")
                conn.failed(target)
                continue
            call = getattr(conn.server_stub(target), self._method)
            self._last = call(self._request, timeout=deadline - loop.time(), **kwargs)
            try:
                return await self._last
            except grpc.aio.AioRpcError as exc:
                if not is_transport_failure(exc):
                    raise conn.error(exc, target) from None
                conn.failed(target)
                reason = conn.error(exc, target).message
                if self._method not in READ_METHODS:
                    raise errors.ServiceUnavailable(
                        f"the API server at {target} became unavailable during {self._method},"
                        f" which may or may not have been applied: {reason}"
                    ) from None
                failures.append(reason)
        raise errors.ServiceUnavailable(
            f"cannot reach the API server at {conn.server}: {'; '.join(failures) or 'timed out'}"
        )


class ResumingWatch:
    """A Watch stream that moves to the next server from its last resourceVersion."""

    def __init__(
        self, connection: Connection, request: api_pb2.WatchRequest, kwargs: dict[str, Any]
    ) -> None:
        self._connection = connection
        self._request = api_pb2.WatchRequest()
        self._request.CopyFrom(request)
        self._kwargs = kwargs
        self._call: Any = None
        self._cancelled = False

    def cancel(self) -> None:
        self._cancelled = True
        if self._call is not None:
            self._call.cancel()

    def __aiter__(self) -> AsyncIterator[api_pb2.WatchResponse]:
        return self._batches()

    async def _batches(self) -> AsyncIterator[api_pb2.WatchResponse]:
        conn = self._connection
        failures: list[str] = []
        while not self._cancelled:
            target = conn.current_server
            if not await connected(conn.server_channel(target), DIAL_TIMEOUT):
                failures.append(f"{target}: {await conn.why_unreachable(target)}")
                conn.failed(target)
                self._give_up_after(failures)
                continue
            self._call = conn.server_stub(target).Watch(self._request, **self._kwargs)
            try:
                async for batch in self._call:
                    failures.clear()  # this server answered: count failures afresh
                    self._advance(batch)
                    yield batch
                return  # the server ended the watch cleanly: the caller resumes
            except grpc.aio.AioRpcError as exc:
                if self._cancelled:
                    return
                if not is_transport_failure(exc) or not self._request.resource_version:
                    raise conn.error(exc, target) from None
                conn.failed(target)
                failures.append(conn.error(exc, target).message)
                log.info(
                    "watch moves to the next API server",
                    extra={
                        "from": target,
                        "to": conn.current_server,
                        "resource": self._request.resource,
                        "resourceVersion": self._request.resource_version,
                    },
                )
                self._give_up_after(failures)

    def _advance(self, batch: api_pb2.WatchResponse) -> None:
        if not self._request.resource_version:
            return  # no revision order to resume in (module docstring)
        for event in batch.events:
            if event.resource_version:
                self._request.resource_version = event.resource_version

    def _give_up_after(self, failures: list[str]) -> None:
        if len(failures) >= len(self._connection.servers):
            raise errors.ServiceUnavailable(
                f"cannot reach the API server at {self._connection.server}: " + "; ".join(failures)
            )
