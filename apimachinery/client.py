"""The typed asynchronous API client: tinykube's client-go.

Every component (CLI, scheduler, controllers, kubelet, netplugin) talks to the
API server through this one class, as every Kubernetes component goes through
client-go. It is a thin layer over the generic `tinykube.api.Resources` gRPC
service that adds what callers should not have to repeat:

* naming a kind any way a user would (`"pods"`, `"deploy"`, `core_pb2.Pod`,
  a `scheme.KindInfo`), resolved by `scheme_info`;
* typed answers: a kind named by its message class comes back as that class
  (`await client.get(core_pb2.Pod, "web")` is a `core_pb2.Pod`, a watch of
  `core_pb2.Node` yields `WatchEvent[core_pb2.Node]`), as client-go's typed
  clientsets do; a kind named by a word comes back untyped, for code that
  treats every kind alike (the CLI, the garbage collector);
* packing objects into `google.protobuf.Any` and unpacking typed messages back;
* namespace defaulting: a namespaced get/create/update/delete with an empty
  namespace means `default`, as kubectl does; list and watch with an empty
  namespace mean all namespaces, as the API does;
* error mapping: every failed call raises an `errors.StatusError` subclass, so
  callers write `except errors.Conflict:` where client-go code writes
  `apierrors.IsConflict(err)`. An unreachable server (refused, or a failed TLS
  handshake) is `errors.ServiceUnavailable` with one readable line, e.g.
  `cannot reach the API server at 127.0.0.1:6443: connection refused`;
* warnings from admission (trailing metadata) go to `on_warning`;
* a busy server's 429 is retried after its retry-after, up to `max_retries`
  times (10, as client-go; 0 turns it off), for every verb (channel.py);
* trace context: every write (create, update, update_status, apply, delete,
  bind) made while a traced step is open in the calling task carries the
  step's W3C `traceparent` in the request's `traceparent` field
  (tracecontext.py); the server stores it on the object, so the component
  acting next continues the trace. (A field, not gRPC metadata: one more
  metadata entry costs grpc.aio about 30 us of CPU per call; the server still
  reads a `traceparent` metadata entry from callers that send one.)

Credentials: `Client(server)` dials a plain channel. With `credentials=
channel.Credentials(ca_pem, cert_pem, key_pem, token)` it dials TLS, verifies
the server against the CA and presents the client certificate and/or bearer
token; `Client.from_config(kubeconfig.load(path))` takes them from a
kubeconfig, as client-go's clientcmd builds a rest.Config.

Design notes and failure modes:

* The channel (channel.Connection) is opened lazily in the running event loop
  and reopened for another loop. Unary calls carry a deadline (`timeout`),
  watches do not: keepalive pings find a dead peer within about 40 s.
* `watch` is an async generator. Leaving the `async for` (break, exception,
  task cancellation) cancels the underlying gRPC call, so an abandoned watch
  never keeps a server-side watcher alive.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

import grpc
import grpc.aio
from google.protobuf.message import Message

from apimachinery import errors, scheme, tracecontext
from apimachinery.channel import MAX_RETRIES, Connection, Credentials
from apimachinery.client_calls import DEFAULT_NAMESPACE, ServerCalls
from protos import api_pb2, api_pb2_grpc

if TYPE_CHECKING:
    from apimachinery.kubeconfig import ClientConfig

log = logging.getLogger(__name__)

ResourceRef = str | scheme.KindInfo | type[Message]
# A kind named by a word or a scheme row: its objects come back untyped (`Any`), for code that
# handles every kind alike (the CLI, the garbage collector). Named by its message class, a kind's
# objects come back as that class: `await client.get(core_pb2.Pod, "web")` is a `core_pb2.Pod`.
DynamicRef = str | scheme.KindInfo
M = TypeVar("M", bound=Message)
T = TypeVar("T")

DEFAULT_SERVER = "127.0.0.1:6443"
LIST_CHUNK_SIZE = 500  # objects per page of a list (client-go's pager and kubectl's --chunk-size)


class _PageExpired(Exception):
    """A later page of a list was 410 Expired (its snapshot was compacted)."""

    def __init__(self, error: errors.StatusError) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(frozen=True)
class WatchEvent(Generic[M]):
    """One change seen by a watch: ADDED, MODIFIED, DELETED or BOOKMARK.

    For BOOKMARK the object is an empty object of the kind whose
    metadata.resourceVersion is the bookmark's revision.
    """

    type: str
    object: M
    resource_version: str


def scheme_info(ref: ResourceRef | Message) -> scheme.KindInfo:
    """The kind a caller means: a resource word, a KindInfo, a message class or instance."""
    if isinstance(ref, scheme.KindInfo):
        return ref
    if isinstance(ref, str):
        return scheme.for_resource(ref)
    return scheme.for_message(ref)


class Client(ServerCalls):
    """An async client for one API server address. Also an async context manager."""

    def __init__(
        self,
        server: str = DEFAULT_SERVER,
        *,
        timeout: float = 30.0,
        credentials: Credentials | None = None,
        max_retries: int = MAX_RETRIES,
    ) -> None:
        self.server = server
        self.timeout = timeout
        self.credentials = credentials
        # max_retries: how many 429s are retried (channel.py); 0: a 429 is raised at once.
        self._connection = Connection(server, timeout=timeout, credentials=credentials)
        self._connection.max_retries = max_retries

    def on_warning(self, handler: Callable[[str], None]) -> None:
        """Where the server's warnings go (by default: the log). The CLI prints them."""
        self._connection.on_warning = handler

    @classmethod
    def from_config(
        cls, config: ClientConfig, *, timeout: float = 30.0, max_retries: int = MAX_RETRIES
    ) -> Client:
        """A client for a kubeconfig's chosen context (`kubeconfig.load(path)`)."""
        creds = config.credentials()
        return cls(config.target, timeout=timeout, credentials=creds, max_retries=max_retries)

    def use_credentials(self, credentials: Credentials | None) -> Connection:
        """Dial every new call with `credentials` (a rotated client certificate).

        Returns the previous connection: streams open on it (watches) carry on
        where they were authenticated until they end; the caller closes it."""
        previous = self._connection
        self.credentials = credentials
        self._connection = Connection(self.server, timeout=self.timeout, credentials=credentials)
        self._connection.on_warning = previous.on_warning
        self._connection.max_retries = previous.max_retries
        return previous

    # ---- plumbing -------------------------------------------------------------------------

    def _resources(self) -> api_pb2_grpc.ResourcesStub:
        return self._connection.stub()

    async def _unary(self, make: Callable[[], Awaitable[T]]) -> T:
        """`make()` a unary call and await it: made again after a 429 (channel.py)."""
        return await self._connection.unary(make)

    @staticmethod
    def _prepared(obj: M) -> M:
        """A copy with apiVersion/kind filled in and the namespace defaulted."""
        info = scheme.for_message(obj)
        out = type(obj)()
        out.CopyFrom(obj)
        if not out.api_version:  # type: ignore[attr-defined]
            out.api_version = info.api_version  # type: ignore[attr-defined]
        if not out.kind:  # type: ignore[attr-defined]
            out.kind = info.kind  # type: ignore[attr-defined]
        if info.namespaced and not out.metadata.namespace:  # type: ignore[attr-defined]
            out.metadata.namespace = DEFAULT_NAMESPACE  # type: ignore[attr-defined]
        return out

    @staticmethod
    def _namespace(info: scheme.KindInfo, namespace: str) -> str:
        if not info.namespaced:
            return ""
        return namespace or DEFAULT_NAMESPACE

    # ---- verbs ----------------------------------------------------------------------------

    async def create(self, obj: M, *, dry_run: bool = False) -> M:
        request = api_pb2.CreateRequest(
            object=scheme.pack(self._prepared(obj)),
            dry_run=dry_run,
            traceparent=tracecontext.outgoing(),
        )
        reply = await self._unary(lambda: self._resources().Create(request, timeout=self.timeout))
        created: M = scheme.unpack(reply)
        return created

    @overload
    async def get(self, resource: type[M], name: str, namespace: str = "") -> M: ...
    @overload
    async def get(self, resource: DynamicRef, name: str, namespace: str = "") -> Any: ...
    async def get(self, resource: ResourceRef, name: str, namespace: str = "") -> Any:
        info = scheme_info(resource)
        request = api_pb2.GetRequest(
            resource=info.resource, namespace=self._namespace(info, namespace), name=name
        )
        reply = await self._unary(lambda: self._resources().Get(request, timeout=self.timeout))
        return scheme.unpack(reply)

    @overload
    async def list(
        self,
        resource: type[M],
        namespace: str = "",
        *,
        label_selector: str = "",
        field_selector: str = "",
        chunk_size: int = LIST_CHUNK_SIZE,
    ) -> tuple[builtins.list[M], str]: ...
    @overload
    async def list(
        self,
        resource: DynamicRef,
        namespace: str = "",
        *,
        label_selector: str = "",
        field_selector: str = "",
        chunk_size: int = LIST_CHUNK_SIZE,
    ) -> tuple[builtins.list[Any], str]: ...
    async def list(
        self,
        resource: ResourceRef,
        namespace: str = "",
        *,
        label_selector: str = "",
        field_selector: str = "",
        chunk_size: int = LIST_CHUNK_SIZE,
    ) -> tuple[builtins.list[Any], str]:
        """Every matching object and the list's resourceVersion (to watch from).

        Asked for in pages of `chunk_size` objects (0: all in one answer) and joined,
        as client-go's pager does; every page is the server's snapshot at the first
        page's revision, which is the resourceVersion returned. If the server has
        compacted that revision before the last page (410 Expired on a continue
        token), the list starts over once, as client-go's pager falls back to a full
        list for informers; a second expiry is raised.
        """
        info = scheme_info(resource)
        for attempt in range(2):
            try:
                return await self._list_pages(
                    info, namespace, label_selector, field_selector, chunk_size
                )
            except _PageExpired as expired:
                if attempt:
                    raise expired.error from None
                log.info("list expired between pages, listing again", extra={"kind": info.kind})
        raise AssertionError("unreachable")

    async def _list_pages(
        self, info: scheme.KindInfo, namespace: str, lsel: str, fsel: str, chunk_size: int
    ) -> tuple[builtins.list[Any], str]:
        items: builtins.list[Any] = []
        version = ""
        token = ""
        while True:
            request = api_pb2.ListRequest(
                resource=info.resource,
                namespace=namespace if info.namespaced else "",
                label_selector=lsel,
                field_selector=fsel,
                limit=max(chunk_size, 0),
            )
            setattr(request, "continue", token)  # `continue` is a Python keyword
            try:
                call = partial(self._resources().List, request, timeout=self.timeout)
                reply = await self._unary(call)
            except errors.Expired as err:
                if token:  # the snapshot went while paging: the caller may start over
                    raise _PageExpired(err) from None
                raise
            items.extend(scheme.unpack(item) for item in reply.items)
            version = version or reply.resource_version
            token = getattr(reply, "continue")
            if not token:
                return items, version

    async def update(self, obj: M, *, dry_run: bool = False) -> M:
        request = api_pb2.UpdateRequest(
            object=scheme.pack(self._prepared(obj)),
            dry_run=dry_run,
            traceparent=tracecontext.outgoing(),
        )
        reply = await self._unary(lambda: self._resources().Update(request, timeout=self.timeout))
        updated: M = scheme.unpack(reply)
        return updated

    async def update_status(self, obj: M) -> M:
        request = api_pb2.UpdateRequest(
            object=scheme.pack(self._prepared(obj)), traceparent=tracecontext.outgoing()
        )
        reply = await self._unary(
            lambda: self._resources().UpdateStatus(request, timeout=self.timeout)
        )
        updated: M = scheme.unpack(reply)
        return updated

    async def apply(
        self, obj: M, *, field_manager: str = "tinykube", dry_run: bool = False
    ) -> tuple[M, str]:
        """Create or reconcile `obj`; the result word is created, configured or unchanged."""
        request = api_pb2.ApplyRequest(
            object=scheme.pack(self._prepared(obj)),
            field_manager=field_manager,
            dry_run=dry_run,
            traceparent=tracecontext.outgoing(),
        )
        reply = await self._unary(lambda: self._resources().Apply(request, timeout=self.timeout))
        applied: M = scheme.unpack(reply.object)
        return applied, reply.result

    @overload
    async def delete(
        self,
        resource: type[M],
        name: str,
        namespace: str = "",
        *,
        grace_period_seconds: int | None = None,
        propagation_policy: str = "",
        precondition_resource_version: str = "",
        precondition_uid: str = "",
    ) -> M: ...
    @overload
    async def delete(
        self,
        resource: DynamicRef,
        name: str,
        namespace: str = "",
        *,
        grace_period_seconds: int | None = None,
        propagation_policy: str = "",
        precondition_resource_version: str = "",
        precondition_uid: str = "",
    ) -> Any: ...
    async def delete(
        self,
        resource: ResourceRef,
        name: str,
        namespace: str = "",
        *,
        grace_period_seconds: int | None = None,
        propagation_policy: str = "",
        precondition_resource_version: str = "",
        precondition_uid: str = "",
    ) -> Any:
        """Delete; returns the object as the server last stored it (maybe only marked deleting)."""
        info = scheme_info(resource)
        request = api_pb2.DeleteRequest(
            resource=info.resource,
            namespace=self._namespace(info, namespace),
            name=name,
            propagation_policy=propagation_policy,
            precondition_resource_version=precondition_resource_version,
            precondition_uid=precondition_uid,
            traceparent=tracecontext.outgoing(),
        )
        if grace_period_seconds is not None:
            request.grace_period_seconds = grace_period_seconds
        reply = await self._unary(lambda: self._resources().Delete(request, timeout=self.timeout))
        return scheme.unpack(reply)

    @overload
    def watch(
        self,
        resource: type[M],
        namespace: str = "",
        *,
        resource_version: str = "",
        label_selector: str = "",
        field_selector: str = "",
        allow_bookmarks: bool = False,
    ) -> AsyncIterator[WatchEvent[M]]: ...
    @overload
    def watch(
        self,
        resource: DynamicRef,
        namespace: str = "",
        *,
        resource_version: str = "",
        label_selector: str = "",
        field_selector: str = "",
        allow_bookmarks: bool = False,
    ) -> AsyncIterator[WatchEvent[Any]]: ...
    def watch(
        self,
        resource: ResourceRef,
        namespace: str = "",
        *,
        resource_version: str = "",
        label_selector: str = "",
        field_selector: str = "",
        allow_bookmarks: bool = False,
    ) -> AsyncIterator[WatchEvent[Any]]:
        """Changes to matching objects, in order; see api.proto WatchRequest for `resource_version`.

        Raises (from the iteration) errors.Expired when resource_version has
        been compacted away: the caller must list again. The stream may also
        end cleanly (the server closed it); the caller resumes from the last
        resourceVersion it saw.
        """
        info = scheme_info(resource)
        request = api_pb2.WatchRequest(
            resource=info.resource,
            namespace=namespace if info.namespaced else "",
            label_selector=label_selector,
            field_selector=field_selector,
            resource_version=resource_version,
            allow_bookmarks=allow_bookmarks,
        )
        return self._watch(info, request)

    async def _watch(
        self, info: scheme.KindInfo, request: api_pb2.WatchRequest
    ) -> AsyncIterator[WatchEvent[Any]]:
        call = self._resources().Watch(request)
        try:
            async for batch in call:
                for event in batch.events:
                    if event.object.type_url:
                        obj = scheme.unpack(event.object)
                    else:
                        obj = scheme.new_object(info)
                        obj.metadata.resource_version = event.resource_version
                    version = event.resource_version or obj.metadata.resource_version
                    yield WatchEvent(event.type, obj, version)
        except grpc.aio.AioRpcError as exc:
            raise self._connection.error(exc) from None
        finally:
            call.cancel()

    async def close(self) -> None:
        await self._connection.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


async def retry_on_conflict(fn: Callable[[], Awaitable[T]], attempts: int = 10) -> T:
    """Run `fn` again while it fails with errors.Conflict, as client-go's RetryOnConflict.

    `fn` must re-read the object each time (a get, then the change, then the
    update): retrying a stale write would only conflict again. The pause
    between attempts starts at 10 ms and doubles, with jitter, up to 0.5 s;
    after `attempts` tries the last Conflict is raised. Other errors pass
    through at once.
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    delay = 0.01
    for attempt in range(1, attempts + 1):
        try:
            return await fn()
        except errors.Conflict:
            if attempt >= attempts:
                raise
            log.debug("update conflicted, retrying", extra={"attempt": attempt})
        await asyncio.sleep(delay * (1.0 + 0.1 * random.random()))
        delay = min(delay * 2, 0.5)
    raise AssertionError("unreachable")  # pragma: no cover
