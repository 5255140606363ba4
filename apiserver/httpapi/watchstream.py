"""WATCH over HTTP: one chunked response, one JSON event per chunk, for as long as it lasts.

    GET /api/v1/namespaces/default/pods?watch=1&resourceVersion=120&allowWatchBookmarks=true

    HTTP/1.1 200 OK
    Content-Type: application/json
    Transfer-Encoding: chunked

    {"type":"ADDED","object":{"apiVersion":"v1","kind":"Pod","metadata":{...}}}
    {"type":"MODIFIED","object":{...}}
    {"type":"BOOKMARK","object":{"kind":"Pod","apiVersion":"v1","metadata":{"resourceVersion":"131"}}}

The events come from the gRPC service's own Watch (servicer.py), so the
ordering, the filtering by selectors (an object leaving the selected set is
DELETED for this watcher), the bookmarks after a quiet spell, and the rule
that a slow watcher is dropped rather than allowed to stall the server are
the same on both protocols.

Errors before the stream starts are plain HTTP errors: 403 when the caller
may not watch, 410 Expired ("too old resource version: 5 (9)") when the
revision asked for has been compacted away -- the client lists again. An
error after it started (the store failing mid-way) is an ERROR event whose
object is the Status, as Kubernetes sends it. To tell the two apart, the
first event is awaited briefly before the 200 goes out: authorization and
the compaction check both happen before the watch waits for anything.

A watch of one object (`.../pods/web?watch=1`) is a watch of the collection
with `metadata.name=web` added to its field selector. `timeoutSeconds` ends
the stream cleanly after that long (Kubernetes' informers ask for 5-10
minutes and then watch again from the last revision they saw). Tables
(`kubectl get -w`) are sent as one Table per event, the column definitions
only in the first, as kube-apiserver does.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from apimachinery import errors, scheme
from apiserver.httpapi import body, table_columns
from apiserver.httpapi.call import Call, object_dict
from apiserver.httpapi.http import Response
from apiserver.httpapi.lists import wants_table
from apiserver.httpapi.status import encode, status_object
from apiserver.registry.watch import ApiBatch, ApiEvent
from protos import api_pb2

FIRST_EVENT_WAIT = 0.25


def _field_selector(call: Call) -> str:
    selector = call.request.param("fieldSelector")
    if call.info.name:
        own = f"metadata.name={call.info.name}"
        selector = f"{selector},{own}" if selector else own
    return selector


class _Encoder:
    """Watch batches -> JSON lines (or Table events for kubectl get -w), one chunk a batch.

    An event's JSON line is made once and kept on its ApiEvent (registry/watch.py),
    which every watcher of that event shares: a hundred HTTP watchers of one
    kind cost one protobuf decode and one JSON encoding per event, not a hundred.
    A batch (everything the watcher had waiting) goes out as one chunk: one
    socket write per batch, not per event."""

    def __init__(self, call: Call) -> None:
        self.call = call
        self.table = wants_table(call.request)
        self.include = call.request.param("includeObject", "Metadata")
        self.first_table = True

    def batch(self, batch: ApiBatch) -> bytes:
        info = self.call.kind
        if batch.bookmark:
            obj: dict[str, Any] = {
                "kind": info.kind,
                "apiVersion": info.api_version,
                "metadata": {"resourceVersion": str(batch.revision)},
            }
            return encode({"type": "BOOKMARK", "object": obj})
        if self.table:
            return b"".join(self._table_event(ev) for ev in batch.events)
        return b"".join(_json_line(ev) for ev in batch.events)

    def _table_event(self, ev: ApiEvent) -> bytes:
        obj = table_columns.table(
            self.call.kind,
            [scheme.unpack(ev.object)],
            {"resourceVersion": str(ev.revision)},
            self.include,
            headers=self.first_table,
        )
        self.first_table = False
        return encode({"type": ev.type, "object": obj})


def _json_line(ev: ApiEvent) -> bytes:
    """`{"type":T,"object":{...}}` and a newline, as `encode` writes it; made once per event."""
    line: bytes | None = ev.encoded.get("json")
    if line is None:
        line = ev.encoded["json"] = encode(
            {"type": ev.type, "object": object_dict(scheme.unpack(ev.object))}
        )
    return line


async def watch(call: Call) -> Response:
    request = call.request
    timeout = body.int_param(request, "timeoutSeconds")
    events = call.backend.servicer.watch_batches(
        api_pb2.WatchRequest(
            resource=call.kind.resource,
            namespace=call.namespace,
            label_selector=request.param("labelSelector"),
            field_selector=_field_selector(call),
            resource_version=request.param("resourceVersion"),
            allow_bookmarks=request.flag("allowWatchBookmarks"),
        ),
        call.ctx,
    )
    iterator = events.__aiter__()
    first = asyncio.ensure_future(iterator.__anext__())
    done, _ = await asyncio.wait({first}, timeout=FIRST_EVENT_WAIT)
    if done and first.exception() is not None:
        await _close(events)
        exc = first.exception()
        if isinstance(exc, StopAsyncIteration):
            return Response(200, b"", stream=_nothing())
        raise exc  # type: ignore[misc]  # a StatusError: answered as plain HTTP
    deadline = time.monotonic() + timeout if timeout else None
    stream = _stream(call, events, first, deadline)
    return Response(200, stream=stream, headers=call.ctx.warning_headers())


async def _close(events: AsyncIterator[Any]) -> None:
    aclose = getattr(events, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(Exception):
            await aclose()


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover - makes this an async generator


async def _stream(
    call: Call,
    events: AsyncIterator[ApiBatch],
    first: asyncio.Future[ApiBatch],
    deadline: float | None,
) -> AsyncIterator[bytes]:
    encoder = _Encoder(call)
    iterator = events.__aiter__()
    pending: asyncio.Future[ApiBatch] | None = first
    try:
        while True:
            try:
                if pending is not None or deadline is not None:
                    batch = await _next_before(iterator, pending, deadline)
                    pending = None
                else:  # no timeout: await the next batch directly, no Task per batch
                    batch = await iterator.__anext__()
            except (StopAsyncIteration, asyncio.TimeoutError):
                return  # the end, or timeoutSeconds: a clean end, the client watches again
            except errors.StatusError as err:
                yield encode({"type": "ERROR", "object": status_object(err)})
                return
            yield encoder.batch(batch)
    finally:
        if pending is not None:
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)
        await _close(events)


async def _next_before(
    iterator: AsyncIterator[ApiBatch],
    pending: asyncio.Future[ApiBatch] | None,
    deadline: float | None,
) -> ApiBatch:
    """The next batch (from `pending` if one is under way); TimeoutError after `deadline`."""
    if pending is None:
        pending = asyncio.ensure_future(iterator.__anext__())
    left = None if deadline is None else max(0.0, deadline - time.monotonic())
    done, _ = await asyncio.wait({pending}, timeout=left)
    if not done:
        pending.cancel()
        await asyncio.gather(pending, return_exceptions=True)
        raise asyncio.TimeoutError
    return pending.result()
