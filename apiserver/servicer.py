"""The gRPC `Resources` service: every verb for every kind, each call guarded.

Each RPC is a thin adapter (Kubernetes' REST handlers are the same):
authenticate and authorize the caller (auth/filters.py; in between, the
in-flight limit takes the request's slot or refuses it with 429 TooManyRequests,
inflight.py: `_call` is the request's scope), unpack the request,
call the generic store, pack the answer. An error anywhere becomes a
`StatusError`, and leaves here as a gRPC status with the Kubernetes reason
and field causes attached (apimachinery/errors.py); an unexpected exception
is logged with its traceback and reported as an InternalError, never as a
dropped connection.

What each RPC asks the authorizers, in Kubernetes' request verbs:

    Create                create      the object's resource
    Get / List / Watch    get / list / watch
    Update                update
    UpdateStatus          update      <resource>/status
    Apply                 patch, or create when the object does not exist yet
    Bind                  create      pods/binding
    Delete                delete
    PodLogs / PodExec     get pods/log / create pods/exec
    PodExecStream         create      pods/exec (its first message; proxy_streams.py)
    PodPortForward        create      pods/portforward
    Version               get         the path /version
    ServerResources       get         the path /api
    AccessReview          (any authenticated caller: it asks about itself)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import platform
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message

from apimachinery import errors, scheme
from apiserver import encoding, inflight
from apiserver.admission import warnings as admission_warnings
from apiserver.auth.authorizer import AUTHENTICATED, Attributes, UserInfo, forbidden_message
from apiserver.auth.escalation import confirm_no_escalation
from apiserver.auth.filters import RequestGuard, attributes
from apiserver.auth.rbac import RBACIndex
from apiserver.auth.requester import stamp_if_csr
from apiserver.proxy_streams import PodStreams
from apiserver.registry import apply as apply_mod
from apiserver.registry import binding as binding_mod
from apiserver.registry import tracecontext
from apiserver.registry.paging import ListOptions
from apiserver.registry.store import Store
from apiserver.registry.watch import ApiBatch, ApiEvent, watch
from apiserver.storage.interface import StorageError
from protos import api_pb2, api_pb2_grpc

log = logging.getLogger(__name__)

VERSION = "v0.1.0"
BOOKMARK_INTERVAL_SECONDS = 5.0
T = TypeVar("T")


def storage_failure(err: StorageError) -> errors.InternalError:
    """What a client is told when the store itself fails (Kubernetes answers etcd's
    failures, e.g. `mvcc: database space exceeded`, with 500 and etcd's words)."""
    return errors.InternalError(f"storage error: {err}")


class ResourcesServicer(PodStreams, api_pb2_grpc.ResourcesServicer):
    """The generic resource API: every verb for every kind in the scheme, behind the guard."""

    def __init__(self, store: Store, guard: RequestGuard, rbac: RBACIndex) -> None:
        self.store = store
        self.guard = guard
        self.rbac = rbac

    async def _admit_writer(self, user: UserInfo, obj: Message) -> None:
        """What depends on who writes: a CSR records its requester, and a role or binding may
        grant only what its writer holds (Kubernetes' RBAC escalation check)."""
        stamp_if_csr(obj, user)
        await confirm_no_escalation(self.guard.authorizer, self.rbac, user, obj)

    async def _call(
        self,
        context: grpc.aio.ServicerContext,
        fn: Callable[[], Awaitable[T]],
        traceparent: str = "",
    ) -> T:
        """Serve one call: `fn()` under the request's scope, its errors as gRPC statuses.

        `traceparent` is a write request's field of that name (reads have none)."""
        try:
            with (
                inflight.request_scope(),  # a slot the guard takes is given back on the way out
                admission_warnings.collecting() as gathered,
                tracecontext.receiving(tracecontext.of_call(traceparent, context)),
            ):
                result = await fn()
            if gathered:  # admission's warnings travel as trailing metadata, one per text
                context.set_trailing_metadata(
                    tuple((admission_warnings.METADATA_KEY, text) for text in gathered)
                )
            return result
        except errors.StatusError as err:
            await context.abort_with_status(errors.to_grpc_status(err))
        except asyncio.CancelledError:
            raise
        except StorageError as err:  # the store failed (a full disk): 500, its reason, no bug
            log.error("storage failed", extra={"error": str(err)})
            await context.abort_with_status(errors.to_grpc_status(storage_failure(err)))
        except Exception as exc:  # every other failure is a bug: say so, keep serving
            log.exception("request failed", extra={"error": repr(exc)})
            await context.abort_with_status(
                errors.to_grpc_status(errors.InternalError(f"internal error: {exc!r}"))
            )
        raise AssertionError("unreachable: abort_with_status raises")

    async def Create(self, request: api_pb2.CreateRequest, context: Any) -> Any:
        async def run() -> Any:
            obj = scheme.unpack(request.object)
            info = scheme.for_message(obj)
            namespace = obj.metadata.namespace or "default"
            user = await self.guard.check(context, "create", info, namespace, obj.metadata.name)
            await self._admit_writer(user, obj)
            obj = await self.store.create(obj, dry_run=request.dry_run)
            return scheme.pack(obj)

        return await self._call(context, run, request.traceparent)

    async def Get(self, request: api_pb2.GetRequest, context: Any) -> Any:
        async def run() -> Any:
            info = scheme.for_resource(request.resource)
            await self.guard.check(context, "get", info, request.namespace, request.name)
            return await self.store.get_packed(info, request.namespace, request.name)

        return await self._call(context, run)

    async def List(self, request: api_pb2.ListRequest, context: Any) -> api_pb2.ListResponse:
        async def run() -> api_pb2.ListResponse:
            info = scheme.for_resource(request.resource)
            await self.guard.check(context, "list", info, request.namespace)
            options = ListOptions(
                label_selector=request.label_selector,
                field_selector=request.field_selector,
                limit=request.limit,
                continue_token=getattr(request, "continue"),  # a Python keyword
                resource_version=request.resource_version,
                resource_version_match=request.resource_version_match,
            )
            page = await self.store.list_page(info, request.namespace, options)
            reply = api_pb2.ListResponse(resource_version=str(page.revision), items=page.items)
            setattr(reply, "continue", page.continue_token)
            if page.remaining_item_count is not None:
                reply.remaining_item_count = page.remaining_item_count
            return reply

        return await self._call(context, run)

    async def Update(self, request: api_pb2.UpdateRequest, context: Any) -> Any:
        return await self._update(request, context, status=False)

    async def UpdateStatus(self, request: api_pb2.UpdateRequest, context: Any) -> Any:
        return await self._update(request, context, status=True)

    async def _update(self, request: api_pb2.UpdateRequest, context: Any, *, status: bool) -> Any:
        async def run() -> Any:
            obj = scheme.unpack(request.object)
            info = scheme.for_message(obj)
            namespace = obj.metadata.namespace or "default"
            subresource = "status" if status else ""
            user = await self.guard.check(
                context, "update", info, namespace, obj.metadata.name, subresource
            )
            if not status:
                await confirm_no_escalation(self.guard.authorizer, self.rbac, user, obj)
            updated = await self.store.update(obj, dry_run=request.dry_run, status=status)
            return scheme.pack(updated)

        return await self._call(context, run, request.traceparent)

    async def Apply(self, request: api_pb2.ApplyRequest, context: Any) -> api_pb2.ApplyResponse:
        async def run() -> api_pb2.ApplyResponse:
            obj = scheme.unpack(request.object)
            info = scheme.for_message(obj)
            namespace = obj.metadata.namespace or "default"
            name = obj.metadata.name
            key = scheme.object_key(info, namespace if info.namespaced else "", name)
            verb = "patch" if await self.store.storage.get(key) is not None else "create"
            user = await self.guard.check(context, verb, info, namespace, name)
            if verb == "create":
                stamp_if_csr(obj, user)
            await confirm_no_escalation(self.guard.authorizer, self.rbac, user, obj)
            result, word = await apply_mod.apply(self.store, obj, dry_run=request.dry_run)
            return api_pb2.ApplyResponse(object=scheme.pack(result), result=word)

        return await self._call(context, run, request.traceparent)

    async def Bind(self, request: api_pb2.BindRequest, context: Any) -> Any:
        async def run() -> Any:
            meta = request.binding.metadata
            pods = scheme.for_resource("pods")
            await self.guard.check(
                context, "create", pods, meta.namespace or "default", meta.name, "binding"
            )
            tracecontext.stamp_binding(request.binding)  # the scheduler's span, on the pod
            pod = await binding_mod.bind(self.store, request.binding, dry_run=request.dry_run)
            return scheme.pack(pod)

        return await self._call(context, run, request.traceparent)

    async def Delete(self, request: api_pb2.DeleteRequest, context: Any) -> Any:
        async def run() -> Any:
            info = scheme.for_resource(request.resource)
            await self.guard.check(context, "delete", info, request.namespace, request.name)
            grace = (
                request.grace_period_seconds if request.HasField("grace_period_seconds") else None
            )
            obj = await self.store.delete(
                info,
                request.namespace,
                request.name,
                grace_period_seconds=grace,
                propagation_policy=request.propagation_policy,
                precondition_uid=request.precondition_uid,
                precondition_resource_version=request.precondition_resource_version,
            )
            return scheme.pack(obj)

        return await self._call(context, run, request.traceparent)

    async def Watch(
        self, request: api_pb2.WatchRequest, context: Any
    ) -> AsyncIterator[api_pb2.WatchResponse]:
        async for batch in self.watch_batches(request, context):
            yield _response(batch)

    async def watch_batches(
        self, request: api_pb2.WatchRequest, context: Any
    ) -> AsyncIterator[ApiBatch]:
        """The Watch RPC before its encoding: the batches (and bookmarks) one watcher gets.

        The gRPC Watch sends each as a WatchResponse; the HTTP API's watch
        (httpapi/watchstream.py) encodes the same batches as JSON lines."""
        try:
            info = scheme.for_resource(request.resource)
            await self.guard.check(context, "watch", info, request.namespace)
            events = watch(
                self.store,
                info,
                request.namespace,
                request.resource_version,
                request.label_selector,
                request.field_selector,
            )
            async for out in _wire(events, request.allow_bookmarks):
                yield out
        except errors.StatusError as err:
            await context.abort_with_status(errors.to_grpc_status(err))

    async def PodLogs(
        self, request: api_pb2.PodLogsRequest, context: Any
    ) -> AsyncIterator[api_pb2.PodLogsChunk]:
        try:
            pods = scheme.for_resource("pods")
            await self.guard.check(
                context, "get", pods, request.namespace or "default", request.name, "log"
            )
        except errors.StatusError as err:
            await context.abort_with_status(errors.to_grpc_status(err))
        async for chunk in super().PodLogs(request, context):
            yield chunk

    async def PodExec(
        self, request: api_pb2.PodExecRequest, context: Any
    ) -> api_pb2.PodExecResponse:
        async def check() -> None:
            pods = scheme.for_resource("pods")
            await self.guard.check(
                context, "create", pods, request.namespace or "default", request.name, "exec"
            )

        await self._call(context, check)
        return await super().PodExec(request, context)

    async def AccessReview(
        self, request: api_pb2.AccessReviewRequest, context: Any
    ) -> api_pb2.AccessReviewResponse:
        async def run() -> api_pb2.AccessReviewResponse:
            user = await self.guard.authenticator.authenticate(context)
            if request.user or request.groups:
                user = await self._impersonated(user, request)
            info = _review_kind(request.resource)
            attrs = attributes(
                user,
                request.verb,
                info,
                request.namespace,
                request.name,
                request.subresource,
                path=request.path,
            )
            allowed, reason = await self.guard.allowed(attrs)
            return api_pb2.AccessReviewResponse(
                allowed=allowed, reason=reason, user=user.name, groups=list(user.groups)
            )

        return await self._call(context, run)

    async def _impersonated(
        self, caller: UserInfo, request: api_pb2.AccessReviewRequest
    ) -> UserInfo:
        """The user an access review asks about, if the caller may impersonate them."""
        if not request.user:
            raise errors.BadRequest("groups to review need a user (--as-group needs --as)")
        wanted = [("users", request.user)] + [("groups", g) for g in request.groups]
        for resource, name in wanted:
            attrs = Attributes(caller, "impersonate", resource=resource, name=name)
            allowed, reason = await self.guard.allowed(attrs)
            if not allowed:
                raise errors.Forbidden(forbidden_message(attrs, reason))
        return UserInfo(request.user, (*request.groups, AUTHENTICATED))

    async def Version(self, request: api_pb2.VersionRequest, context: Any) -> api_pb2.VersionInfo:
        async def run() -> api_pb2.VersionInfo:
            await self.guard.check(context, "get", None, path="/version")
            return api_pb2.VersionInfo(
                git_version=VERSION,
                python_version=platform.python_version(),
                platform=f"{sys.platform}/{platform.machine()}",
                storage_backend=self.store.storage.name,
            )

        return await self._call(context, run)

    async def ServerResources(
        self, request: api_pb2.ServerResourcesRequest, context: Any
    ) -> api_pb2.APIResourceList:
        async def run() -> api_pb2.APIResourceList:
            await self.guard.check(context, "get", None, path="/api")
            verbs = ["create", "delete", "get", "list", "update", "watch", "apply"]
            return api_pb2.APIResourceList(
                resources=[
                    api_pb2.APIResource(
                        name=k.resource,
                        short_names=list(k.short_names),
                        kind=k.kind,
                        namespaced=k.namespaced,
                        group_version=k.api_version,
                        verbs=verbs,
                    )
                    for k in scheme.KINDS
                ]
            )

        return await self._call(context, run)


def _review_kind(resource: str) -> scheme.KindInfo | None:
    """The kind an access review asks about; `*` (every resource) as a wildcard kind."""
    if not resource:
        return None
    if resource == "*":
        return scheme.KindInfo("*", "*", "*", (), True, Message, False)
    return scheme.for_resource(resource)


_EVENTS_TAG = bytes([(1 << 3) | 2])  # WatchResponse.events: field 1, length-delimited


def _event_entry(ev: ApiEvent) -> bytes:
    """`ev` as one `events` entry of a WatchResponse's wire form, made once per ApiEvent.

    Repeated fields concatenate on the wire, so a batch's response is its entries
    joined; the registry hands every watcher of an event the same ApiEvent, so a
    hundred watchers share one encoding."""
    entry: bytes | None = ev.encoded.get("grpc")
    if entry is None:
        body = api_pb2.WatchEvent(
            type=ev.type, object=ev.object, resource_version=str(ev.revision)
        ).SerializeToString()
        entry = ev.encoded["grpc"] = _EVENTS_TAG + encoding.varint(len(body)) + body
    return entry


def _response(batch: ApiBatch) -> api_pb2.WatchResponse:
    if batch.bookmark:
        bookmark = api_pb2.WatchEvent(type="BOOKMARK", resource_version=str(batch.revision))
        return api_pb2.WatchResponse(events=[bookmark])
    if len(batch.events) == 1:  # the usual case: one shared, read-only response per event
        ev = batch.events[0]
        response: api_pb2.WatchResponse | None = ev.encoded.get("grpc-response")
        if response is None:
            response = ev.encoded["grpc-response"] = api_pb2.WatchResponse.FromString(
                _event_entry(ev)
            )
        return response
    return api_pb2.WatchResponse.FromString(b"".join(_event_entry(ev) for ev in batch.events))


async def _wire(batches: AsyncIterator[ApiBatch], allow_bookmarks: bool) -> AsyncIterator[ApiBatch]:
    """The batches that carry events; with bookmarks, a bookmark batch after a quiet spell.

    The pending `__anext__` is never cancelled by the bookmark timer (asyncio.wait
    leaves it running), so waiting for a bookmark cannot lose an event. A
    bookmark carries the newest revision the watcher's filter has processed,
    filtered-out events included: the newest point it can resume from.
    """
    it = batches.__aiter__()
    last_seen = 0
    last_sent = 0
    pending: asyncio.Future[ApiBatch] | None = None
    try:
        while True:
            if not allow_bookmarks:
                # No timer to race against: await the next batch directly (no Task per batch).
                try:
                    batch = await it.__anext__()
                except StopAsyncIteration:
                    return
                if batch.events:
                    yield batch
                continue
            if pending is None:
                pending = asyncio.ensure_future(it.__anext__())
            done, _ = await asyncio.wait({pending}, timeout=BOOKMARK_INTERVAL_SECONDS)
            if not done:
                if last_seen > last_sent:
                    last_sent = last_seen
                    yield ApiBatch([], last_seen, bookmark=True)
                continue
            try:
                batch = await pending
            except StopAsyncIteration:
                return
            finally:
                pending = None
            last_seen = batch.revision
            if not batch.events:
                continue
            last_sent = last_seen
            yield batch
    finally:
        # A cancelled watch (client gone, server stopping) may leave an __anext__ running:
        # finish it first, or closing the generator would fail with "already running".
        if pending is not None:
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)
        aclose = getattr(it, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(RuntimeError):
                await aclose()
