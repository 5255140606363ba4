"""The API server process: the gRPC `Resources` service over the registry.

Each RPC is a thin adapter (Kubernetes' REST handlers are the same): unpack
the request, call the generic store, pack the answer. An error anywhere
becomes a `StatusError`, and leaves here as a gRPC status with the
Kubernetes reason and field causes attached (apimachinery/errors.py); an
unexpected exception is logged with its traceback and reported as an
InternalError, never as a dropped connection.

Limits. Requests over 3 MiB are refused by gRPC itself before they are
decoded (`max_receive_message_length`), which the client reports as
`Request entity too large: limit is 3145728`. Responses may be larger (a
list of thousands of pods).

Start-up order matters: storage opens first (a second server on the same
data directory fails here, not later), then the registry rebuilds what it
keeps in memory (ClusterIP / NodePort allocations) from the store, and only
then does the port open, so no request ever sees a half-started server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import platform
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

import grpc

from apimachinery import errors, scheme
from apiserver.admission import warnings as admission_warnings
from apiserver.proxy import PodProxy
from apiserver.registry import apply as apply_mod
from apiserver.registry import binding as binding_mod
from apiserver.registry.store import Store
from apiserver.registry.watch import ApiBatch, watch
from apiserver.storage import open_storage
from apiserver.storage.encrypted import EncryptedStorage
from apiserver.storage.encryption import load as load_encryption
from apiserver.storage.interface import Storage
from protos import api_pb2, api_pb2_grpc

log = logging.getLogger(__name__)

VERSION = "v0.1.0"
BOOKMARK_INTERVAL_SECONDS = 5.0
T = TypeVar("T")


class ResourcesServicer(PodProxy, api_pb2_grpc.ResourcesServicer):
    """The generic resource API: every verb for every kind in the scheme."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def _call(self, context: grpc.aio.ServicerContext, fn: Callable[[], Awaitable[T]]) -> T:
        try:
            with admission_warnings.collecting() as gathered:
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
        except Exception as exc:  # every other failure is a bug: say so, keep serving
            log.exception("request failed", extra={"error": repr(exc)})
            await context.abort_with_status(
                errors.to_grpc_status(errors.InternalError(f"internal error: {exc!r}"))
            )
        raise AssertionError("unreachable: abort_with_status raises")

    async def Create(self, request: api_pb2.CreateRequest, context: Any) -> Any:
        async def run() -> Any:
            obj = await self.store.create(scheme.unpack(request.object), dry_run=request.dry_run)
            return scheme.pack(obj)

        return await self._call(context, run)

    async def Get(self, request: api_pb2.GetRequest, context: Any) -> Any:
        async def run() -> Any:
            info = scheme.for_resource(request.resource)
            return await self.store.get_packed(info, request.namespace, request.name)

        return await self._call(context, run)

    async def List(self, request: api_pb2.ListRequest, context: Any) -> api_pb2.ListResponse:
        async def run() -> api_pb2.ListResponse:
            info = scheme.for_resource(request.resource)
            items, revision = await self.store.list_packed(
                info, request.namespace, request.label_selector, request.field_selector
            )
            return api_pb2.ListResponse(resource_version=str(revision), items=items)

        return await self._call(context, run)

    async def Update(self, request: api_pb2.UpdateRequest, context: Any) -> Any:
        async def run() -> Any:
            obj = scheme.unpack(request.object)
            return scheme.pack(await self.store.update(obj, dry_run=request.dry_run))

        return await self._call(context, run)

    async def UpdateStatus(self, request: api_pb2.UpdateRequest, context: Any) -> Any:
        async def run() -> Any:
            obj = scheme.unpack(request.object)
            return scheme.pack(await self.store.update(obj, dry_run=request.dry_run, status=True))

        return await self._call(context, run)

    async def Apply(self, request: api_pb2.ApplyRequest, context: Any) -> api_pb2.ApplyResponse:
        async def run() -> api_pb2.ApplyResponse:
            obj = scheme.unpack(request.object)
            result, verb = await apply_mod.apply(self.store, obj, dry_run=request.dry_run)
            return api_pb2.ApplyResponse(object=scheme.pack(result), result=verb)

        return await self._call(context, run)

    async def Bind(self, request: api_pb2.BindRequest, context: Any) -> Any:
        async def run() -> Any:
            pod = await binding_mod.bind(self.store, request.binding, dry_run=request.dry_run)
            return scheme.pack(pod)

        return await self._call(context, run)

    async def Delete(self, request: api_pb2.DeleteRequest, context: Any) -> Any:
        async def run() -> Any:
            info = scheme.for_resource(request.resource)
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

        return await self._call(context, run)

    async def Watch(
        self, request: api_pb2.WatchRequest, context: Any
    ) -> AsyncIterator[api_pb2.WatchResponse]:
        try:
            info = scheme.for_resource(request.resource)
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

    async def Version(self, request: api_pb2.VersionRequest, context: Any) -> api_pb2.VersionInfo:
        return api_pb2.VersionInfo(
            git_version=VERSION,
            python_version=platform.python_version(),
            platform=f"{sys.platform}/{platform.machine()}",
            storage_backend=self.store.storage.name,
        )

    async def ServerResources(
        self, request: api_pb2.ServerResourcesRequest, context: Any
    ) -> api_pb2.APIResourceList:
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


def _response(batch: ApiBatch) -> api_pb2.WatchResponse:
    response = api_pb2.WatchResponse()
    for ev in batch.events:
        response.events.add(type=ev.type, object=ev.object, resource_version=str(ev.revision))
    return response


async def _wire(
    batches: AsyncIterator[ApiBatch], allow_bookmarks: bool
) -> AsyncIterator[api_pb2.WatchResponse]:
    """One WatchResponse per batch; with bookmarks, a BOOKMARK after a quiet spell.

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
                    yield _response(batch)
                continue
            if pending is None:
                pending = asyncio.ensure_future(it.__anext__())
            done, _ = await asyncio.wait({pending}, timeout=BOOKMARK_INTERVAL_SECONDS)
            if not done:
                if last_seen > last_sent:
                    last_sent = last_seen
                    bookmark = api_pb2.WatchEvent(type="BOOKMARK", resource_version=str(last_seen))
                    yield api_pb2.WatchResponse(events=[bookmark])
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
            yield _response(batch)
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


class APIServer:
    """The running server: storage, registry and the gRPC port. Used by `serve` and tests."""

    def __init__(
        self,
        storage: Storage,
        listen: str,
        *,
        default_toleration_seconds: int = 300,
        extra_listen: Sequence[str] = (),
    ) -> None:
        self.storage = storage
        self.store = Store(storage, default_toleration_seconds=default_toleration_seconds)
        self.listen = listen
        # More addresses served by the same server, e.g. a unix socket beside a TCP port:
        # `tinykube up` serves node namespaces over TCP and the host's CLI over the socket.
        self.extra_listen = tuple(extra_listen)
        self.port = 0
        self._server: grpc.aio.Server | None = None

    async def start(self) -> None:
        await self.store.start()
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", errors.MAX_REQUEST_BYTES),
                ("grpc.max_send_message_length", 512 * 1024 * 1024),
                ("grpc.so_reuseport", 0),
                # One client connection carries every watch of an informer-heavy process
                # (HTTP/2's default of 100 concurrent streams would starve the 101st).
                ("grpc.max_concurrent_streams", 10_000),
                # Clients ping idle watches every 30 s to find dead peers: allow it.
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
                ("grpc.http2.max_ping_strikes", 0),
            ]
        )
        api_pb2_grpc.add_ResourcesServicer_to_server(ResourcesServicer(self.store), server)
        self.port = server.add_insecure_port(self.listen)
        if self.port == 0:
            raise OSError(f"cannot listen on {self.listen}")
        for address in self.extra_listen:
            if server.add_insecure_port(address) == 0:
                raise OSError(f"cannot listen on {address}")
        await server.start()
        self._server = server
        log.info(
            "apiserver listening",
            extra={"address": self.listen, "port": self.port, "also": ",".join(self.extra_listen)},
        )

    @property
    def local_address(self) -> str:
        """Where processes beside the server (scheduler, controllers) reach it."""
        if self.listen.startswith("unix:"):
            return self.listen
        host = self.listen.rsplit(":", 1)[0] or "127.0.0.1"
        if host in ("0.0.0.0", "[::]"):
            host = "127.0.0.1"
        return f"{host}:{self.port}"

    async def stop(self, grace: float = 1.0) -> None:
        if self._server is not None:
            await self._server.stop(grace)
        await self.store.close()
        await self.storage.close()


async def serve(
    data_dir: str,
    listen: str = "127.0.0.1:6443",
    *,
    extra_listen: Sequence[str] = (),
    storage: str = "sqlite",
    default_toleration_seconds: int = 300,
    encryption_provider_config: str = "",
    beside: Callable[[str], Awaitable[None]] | None = None,
) -> None:
    """Run an API server until cancelled.

    `beside(address)` starts once the port is open and is cancelled when the
    server stops: it is how `controlplane.py` runs the scheduler and the
    controllers in this process without the server knowing what they are.
    """
    os.makedirs(data_dir, mode=0o700, exist_ok=True)
    # A bad encryption config stops the server before it opens anything.
    encryption = load_encryption(encryption_provider_config) if encryption_provider_config else None
    backend: Storage = await open_storage(storage, data_dir)
    if encryption is not None:
        backend = EncryptedStorage(backend, encryption)
    start_compactor = getattr(backend, "start_compactor", None)
    if start_compactor is not None:
        start_compactor()
    server = APIServer(
        backend,
        listen,
        default_toleration_seconds=default_toleration_seconds,
        extra_listen=extra_listen,
    )
    companion: asyncio.Future[None] | None = None
    try:
        await server.start()
        if beside is not None:
            companion = asyncio.ensure_future(beside(server.local_address))
        await asyncio.Event().wait()
    finally:
        if companion is not None:
            companion.cancel()
            await asyncio.gather(companion, return_exceptions=True)
        await asyncio.shield(server.stop())
