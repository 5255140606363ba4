"""A fake `tinykube.api.Resources` server for client-side tests: a TEST SEAM only.

The real API server (apiserver/) has its own tests; this fake lets the client,
the informer and controllers be tested without it, over a real gRPC channel on
a loopback port, so the transport, the error details and watch streaming are
the genuine article. It keeps objects in a dict and an event log, and gives
the test control over what the real server does only under stress:

* `fail_next("Update", errors.Conflict(...))` makes the next call of a method
  fail with that error (as a rich status, exactly as the real server sends it);
* `break_watches(err)` ends every open watch, cleanly (None) or with an error,
  e.g. `errors.Expired.too_old(...)` to force clients to relist;
* `remove(..., silently=True)` deletes an object without telling watchers, as
  if the change happened while a client was disconnected;
* `compact()` forgets the event log, so a watch resuming from an older
  revision fails with Expired, as after the real store's compaction;
* `stop()` / `start(port)` take the server away and bring it back on the same port.

Selectors are deliberately simple: label and field selectors support only
`key=value` terms joined by commas (fields: metadata.name, metadata.namespace,
spec.nodeName). Use it as:

    async with FakeApiServer() as api:
        client = Client(api.address)
        api.resources.put(pod)
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, NoReturn

import grpc
import grpc.aio
from google.protobuf import any_pb2

from apimachinery import errors, scheme
from protos import api_pb2, api_pb2_grpc, kubelet_pb2


@dataclass(frozen=True)
class _Break:
    error: errors.StatusError | None


def _matches(obj: Any, label_selector: str, field_selector: str) -> bool:
    for term in filter(None, label_selector.split(",")):
        key, _, value = term.partition("=")
        if obj.metadata.labels.get(key.strip()) != value.strip():
            return False
    fields = {"metadata.name": obj.metadata.name, "metadata.namespace": obj.metadata.namespace}
    if hasattr(obj, "spec") and hasattr(obj.spec, "node_name"):
        fields["spec.nodeName"] = obj.spec.node_name
    for term in filter(None, field_selector.split(",")):
        key, _, value = term.partition("=")
        if fields.get(key.strip()) != value.strip():
            return False
    return True


async def _abort(context: grpc.aio.ServicerContext[Any, Any], err: errors.StatusError) -> NoReturn:
    status = errors.to_grpc_status(err)
    await context.abort(status.code, status.details, status.trailing_metadata)
    raise AssertionError("context.abort returned")


class FakeResources(api_pb2_grpc.ResourcesServicer):
    """The in-memory servicer. Tests drive it through the public methods below."""

    def __init__(self) -> None:
        self.objects: dict[str, Any] = {}
        self.revision = 0
        self.log: list[tuple[int, str, scheme.KindInfo, Any]] = []
        self.compacted = 0
        self.calls: dict[str, int] = {}
        self._failures: dict[str, list[errors.StatusError]] = {}
        self._watchers: list[asyncio.Queue[tuple[str, scheme.KindInfo, Any] | _Break]] = []

    # ---- test controls --------------------------------------------------------------------

    def put(self, obj: Any, *, silently: bool = False) -> Any:
        """Store (create or replace) `obj` at a new revision; watchers see ADDED/MODIFIED."""
        info = scheme.for_message(obj)
        stored = type(obj)()
        stored.CopyFrom(obj)
        stored.api_version, stored.kind = info.api_version, info.kind
        if info.namespaced and not stored.metadata.namespace:
            stored.metadata.namespace = "default"
        key = scheme.object_key(info, stored.metadata.namespace, stored.metadata.name)
        old = self.objects.get(key)
        if old is not None:
            stored.metadata.uid = old.metadata.uid
        elif not stored.metadata.uid:
            stored.metadata.uid = str(uuid.uuid4())
        self.revision += 1
        stored.metadata.resource_version = str(self.revision)
        self.objects[key] = stored
        if not silently:
            self._publish("MODIFIED" if old is not None else "ADDED", info, stored)
        return stored

    def remove(
        self, resource: str, name: str, namespace: str = "", *, silently: bool = False
    ) -> Any:
        """Delete an object at a new revision; `silently` skips telling watchers."""
        info = scheme.for_resource(resource)
        key = scheme.object_key(info, namespace or "default", name)
        old = self.objects.pop(key, None)
        if old is None:
            raise errors.NotFound.for_object(info.full_resource, name)
        self.revision += 1
        old.metadata.resource_version = str(self.revision)
        if not silently:
            self._publish("DELETED", info, old)
        return old

    def fail_next(self, method: str, err: errors.StatusError) -> None:
        self._failures.setdefault(method, []).append(err)

    def break_watches(self, err: errors.StatusError | None = None) -> None:
        for queue in list(self._watchers):
            queue.put_nowait(_Break(err))

    def compact(self) -> None:
        self.log.clear()
        self.compacted = self.revision

    @property
    def open_watches(self) -> int:
        return len(self._watchers)

    # ---- internals ------------------------------------------------------------------------

    def _publish(self, kind: str, info: scheme.KindInfo, obj: Any) -> None:
        self.log.append((self.revision, kind, info, obj))
        for queue in self._watchers:
            queue.put_nowait((kind, info, obj))

    async def _enter(self, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        self.calls[method] = self.calls.get(method, 0) + 1
        pending = self._failures.get(method)
        if pending:
            await _abort(context, pending.pop(0))

    def _lookup(self, resource: str, namespace: str, name: str) -> tuple[scheme.KindInfo, str]:
        info = scheme.for_resource(resource)
        return info, scheme.object_key(info, namespace, name)

    # ---- the service ----------------------------------------------------------------------

    async def Create(self, request: api_pb2.CreateRequest, context: Any) -> any_pb2.Any:
        await self._enter("Create", context)
        obj = scheme.unpack(request.object)
        info = scheme.for_message(obj)
        key = scheme.object_key(info, obj.metadata.namespace, obj.metadata.name)
        if key in self.objects:
            await _abort(
                context, errors.AlreadyExists.for_object(info.full_resource, obj.metadata.name)
            )
        obj.metadata.uid = ""
        return scheme.pack(self.put(obj))

    async def Get(self, request: api_pb2.GetRequest, context: Any) -> any_pb2.Any:
        await self._enter("Get", context)
        info, key = self._lookup(request.resource, request.namespace, request.name)
        if key not in self.objects:
            await _abort(context, errors.NotFound.for_object(info.full_resource, request.name))
        return scheme.pack(self.objects[key])

    async def List(self, request: api_pb2.ListRequest, context: Any) -> api_pb2.ListResponse:
        await self._enter("List", context)
        info = scheme.for_resource(request.resource)
        prefix = scheme.prefix_key(info, request.namespace)
        items = [
            scheme.pack(obj)
            for key, obj in sorted(self.objects.items())
            if key.startswith(prefix)
            and _matches(obj, request.label_selector, request.field_selector)
        ]
        return api_pb2.ListResponse(resource_version=str(self.revision), items=items)

    async def _update(self, method: str, request: api_pb2.UpdateRequest, context: Any) -> Any:
        await self._enter(method, context)
        obj = scheme.unpack(request.object)
        info = scheme.for_message(obj)
        key = scheme.object_key(info, obj.metadata.namespace, obj.metadata.name)
        current = self.objects.get(key)
        if current is None:
            await _abort(context, errors.NotFound.for_object(info.full_resource, obj.metadata.name))
        rv = obj.metadata.resource_version
        if rv and rv != current.metadata.resource_version:
            await _abort(context, errors.Conflict.for_object(info.full_resource, obj.metadata.name))
        return scheme.pack(self.put(obj))

    async def Update(self, request: api_pb2.UpdateRequest, context: Any) -> any_pb2.Any:
        return await self._update("Update", request, context)  # type: ignore[no-any-return]

    async def UpdateStatus(self, request: api_pb2.UpdateRequest, context: Any) -> any_pb2.Any:
        return await self._update("UpdateStatus", request, context)  # type: ignore[no-any-return]

    async def Apply(self, request: api_pb2.ApplyRequest, context: Any) -> api_pb2.ApplyResponse:
        await self._enter("Apply", context)
        obj = scheme.unpack(request.object)
        info = scheme.for_message(obj)
        key = scheme.object_key(info, obj.metadata.namespace, obj.metadata.name)
        current = self.objects.get(key)
        if current is None:
            if request.dry_run:
                return api_pb2.ApplyResponse(object=scheme.pack(obj), result="created")
            return api_pb2.ApplyResponse(object=scheme.pack(self.put(obj)), result="created")
        probe = type(obj)()
        probe.CopyFrom(obj)
        probe.metadata.uid = current.metadata.uid
        probe.metadata.resource_version = current.metadata.resource_version
        if probe == current:
            return api_pb2.ApplyResponse(object=scheme.pack(current), result="unchanged")
        if request.dry_run:
            return api_pb2.ApplyResponse(object=scheme.pack(obj), result="configured")
        return api_pb2.ApplyResponse(object=scheme.pack(self.put(obj)), result="configured")

    async def Bind(self, request: api_pb2.BindRequest, context: Any) -> any_pb2.Any:
        await self._enter("Bind", context)
        b = request.binding
        info, key = self._lookup("pods", b.metadata.namespace, b.metadata.name)
        current = self.objects.get(key)
        if current is None:
            await _abort(context, errors.NotFound.for_object(info.full_resource, b.metadata.name))
        pod = type(current)()
        pod.CopyFrom(current)
        pod.spec.node_name = b.target.name
        return scheme.pack(self.put(pod))

    async def PodLogs(
        self, request: api_pb2.PodLogsRequest, context: Any
    ) -> AsyncIterator[api_pb2.PodLogsChunk]:
        """Logs need a kubelet; the fake has none (the real proxy has its own tests)."""
        await _abort(context, errors.ServiceUnavailable("the fake API server has no kubelets"))
        yield api_pb2.PodLogsChunk()  # pragma: no cover - unreachable, makes this a generator

    async def PodExec(
        self, request: api_pb2.PodExecRequest, context: Any
    ) -> api_pb2.PodExecResponse:
        await _abort(context, errors.ServiceUnavailable("the fake API server has no kubelets"))

    async def PodExecStream(
        self, request_iterator: Any, context: Any
    ) -> AsyncIterator[kubelet_pb2.ExecStreamResponse]:
        await _abort(context, errors.ServiceUnavailable("the fake API server has no kubelets"))
        yield kubelet_pb2.ExecStreamResponse()  # pragma: no cover - unreachable

    async def PodPortForward(
        self, request_iterator: Any, context: Any
    ) -> AsyncIterator[kubelet_pb2.PortForwardResponse]:
        await _abort(context, errors.ServiceUnavailable("the fake API server has no kubelets"))
        yield kubelet_pb2.PortForwardResponse()  # pragma: no cover - unreachable

    async def Delete(self, request: api_pb2.DeleteRequest, context: Any) -> any_pb2.Any:
        await self._enter("Delete", context)
        info, key = self._lookup(request.resource, request.namespace, request.name)
        current = self.objects.get(key)
        if current is None:
            await _abort(context, errors.NotFound.for_object(info.full_resource, request.name))
        want = request.precondition_resource_version
        if want and want != current.metadata.resource_version:
            await _abort(context, errors.Conflict.for_object(info.full_resource, request.name))
        return scheme.pack(self.remove(info.resource, request.name, request.namespace))

    async def Watch(
        self, request: api_pb2.WatchRequest, context: Any
    ) -> AsyncIterator[api_pb2.WatchResponse]:
        await self._enter("Watch", context)
        info = scheme.for_resource(request.resource)
        prefix = scheme.prefix_key(info, request.namespace)

        def wanted(kind_info: scheme.KindInfo, obj: Any) -> bool:
            key = scheme.object_key(kind_info, obj.metadata.namespace, obj.metadata.name)
            return (
                kind_info == info
                and key.startswith(prefix)
                and _matches(obj, request.label_selector, request.field_selector)
            )

        backlog: list[tuple[str, scheme.KindInfo, Any]]
        if not request.resource_version:
            backlog = [("ADDED", info, obj) for _, obj in sorted(self.objects.items())]
        else:
            since = int(request.resource_version)
            if since < self.compacted:
                await _abort(context, errors.Expired.too_old(since, self.compacted))
            backlog = [(kind, i, obj) for rev, kind, i, obj in self.log if rev > since]
        queue: asyncio.Queue[tuple[str, scheme.KindInfo, Any] | _Break] = asyncio.Queue()
        self._watchers.append(queue)
        try:
            for kind, kind_info, obj in backlog:
                if wanted(kind_info, obj):
                    yield self._event(kind, obj)
            while True:
                item = await queue.get()
                if isinstance(item, _Break):
                    if item.error is not None:
                        await _abort(context, item.error)
                    return
                kind, kind_info, obj = item
                if wanted(kind_info, obj):
                    yield self._event(kind, obj)
        finally:
            self._watchers.remove(queue)

    @staticmethod
    def _event(kind: str, obj: Any) -> api_pb2.WatchResponse:
        event = api_pb2.WatchEvent(
            type=kind, object=scheme.pack(obj), resource_version=obj.metadata.resource_version
        )
        return api_pb2.WatchResponse(events=[event])

    async def Version(self, request: api_pb2.VersionRequest, context: Any) -> api_pb2.VersionInfo:
        await self._enter("Version", context)
        return api_pb2.VersionInfo(git_version="v0.0.0-fake", storage_backend="memory")

    async def AccessReview(
        self, request: api_pb2.AccessReviewRequest, context: Any
    ) -> api_pb2.AccessReviewResponse:
        """The fake has no authorization: everything is allowed to everyone."""
        await self._enter("AccessReview", context)
        return api_pb2.AccessReviewResponse(allowed=True, user="fake")

    async def ServerResources(
        self, request: api_pb2.ServerResourcesRequest, context: Any
    ) -> api_pb2.APIResourceList:
        await self._enter("ServerResources", context)
        return api_pb2.APIResourceList(
            resources=[
                api_pb2.APIResource(
                    name=k.resource,
                    short_names=list(k.short_names),
                    kind=k.kind,
                    namespaced=k.namespaced,
                    group_version=k.api_version,
                )
                for k in scheme.KINDS
            ]
        )


class FakeApiServer:
    """A grpc.aio server on 127.0.0.1 serving one FakeResources; an async context manager."""

    def __init__(self) -> None:
        self.resources = FakeResources()
        self.port = 0
        self._server: grpc.aio.Server | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self, port: int = 0) -> None:
        """Serve on `port` (0: a free one; pass the old port to come back after stop())."""
        server = grpc.aio.server(
            options=[
                ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
                ("grpc.keepalive_permit_without_calls", 1),
            ]
        )
        api_pb2_grpc.add_ResourcesServicer_to_server(self.resources, server)
        self.port = server.add_insecure_port(f"127.0.0.1:{port or self.port}")
        await server.start()
        self._server = server

    async def stop(self) -> None:
        if self._server is not None:
            self.resources.break_watches()
            await self._server.stop(grace=None)
            self._server = None

    async def __aenter__(self) -> FakeApiServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
