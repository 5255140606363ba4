"""The trace of the latest change, for the dashboard's waterfall.

Every component records what it does about a change as spans, which meet in the
API server's span store (apiserver/traces.py, the `Traces` gRPC service,
protos/trace.proto). The dashboard shows the newest trace there as a waterfall:
one row per step, its bar placed on the trace's time axis, with the component,
the node and the step's one-line "why".

Spans have no watch: they arrive in batches (each process exports every 5 s),
after the object changes they describe. So `TraceFeed` asks `Traces.List` for
the newest trace's summary every `interval` seconds (2 s: the slowest this page
does anything, and a single small call), and only when that summary changed
(another trace, more spans, a later end) does it read the whole trace with
`Traces.Get` and tell the page (the same dirty mark the informers set). Calls are
made with the user's own identity: reading traces takes `get` on the
non-resource path /traces (system:masters, or a binding to
system:tinykube:trace-reader). A user without it sees the server's sentence in
the panel; a server without the service, "not served".

The timeline (`timeline`, pure), for the seed's apply:

    apply deployment/web-app    cli                         |=====================|
      CreateReplicaSet          deployment-controller        |==|
        CreatePod               replicaset-controller           |=|
          Bind                  default-scheduler                 |=|
            RunPodSandbox       kubelet @ node2                     |=======|  (critical)
              ...

Times are seconds from the trace's first span; depth follows parent links (a span
whose parent is not in the trace, e.g. evicted, is a root). The *critical path*
is the chain of causes of the step that finished last: walk from that span up its
parents to the root. Those are the steps whose time the change waited for; a
faster step anywhere else would not have ended it sooner.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import grpc
import grpc.aio

from apimachinery.channel import Connection
from apimachinery.client import Client
from protos import trace_pb2, trace_pb2_grpc

log = logging.getLogger(__name__)

NANO = 1e9


def _depths(spans: list[trace_pb2.Span]) -> dict[str, int]:
    parent = {s.span_id: s.parent_span_id for s in spans}
    depths: dict[str, int] = {}
    for span in spans:
        depth, at, seen = 0, span.parent_span_id, {span.span_id}
        while at in parent and at not in seen:  # a parent outside the trace ends the walk
            seen.add(at)
            depth += 1
            at = parent[at]
        depths[span.span_id] = depth
    return depths


def critical_path(spans: list[trace_pb2.Span]) -> set[str]:
    """The span that ended last and its ancestors in the trace (span ids)."""
    if not spans:
        return set()
    by_id = {s.span_id: s for s in spans}
    last = max(spans, key=lambda s: (s.end_time_unix_nano, s.start_time_unix_nano))
    chain, at = set(), last
    while at is not None and at.span_id not in chain:
        chain.add(at.span_id)
        at = by_id.get(at.parent_span_id)  # type: ignore[assignment]
    return chain


def _ordered(spans: list[trace_pb2.Span]) -> list[trace_pb2.Span]:
    """Depth first, children by start time: each step under its cause, as a tree reads."""
    ids = {s.span_id for s in spans}
    children: dict[str, list[trace_pb2.Span]] = {}
    for span in spans:
        key = span.parent_span_id if span.parent_span_id in ids else ""
        children.setdefault(key, []).append(span)
    out: list[trace_pb2.Span] = []
    stack = sorted(children.get("", []), key=lambda s: s.start_time_unix_nano, reverse=True)
    while stack:
        span = stack.pop()
        out.append(span)
        below = children.get(span.span_id, [])
        stack.extend(sorted(below, key=lambda s: s.start_time_unix_nano, reverse=True))
    return out


def timeline(trace: trace_pb2.Trace) -> dict[str, Any]:
    """The trace as the page draws it (seconds from the first span; see the docstring)."""
    spans = list(trace.spans)
    start = min(s.start_time_unix_nano for s in spans)
    end = max(s.end_time_unix_nano for s in spans)
    depths = _depths(spans)
    critical = critical_path(spans)
    rows = []
    for s in _ordered(spans):
        rows.append(
            {
                "name": s.name,
                "component": s.component,
                "node": s.node,
                "why": s.why,
                "object": s.object,
                "error": s.error,
                "start": (s.start_time_unix_nano - start) / NANO,
                "end": (s.end_time_unix_nano - start) / NANO,
                "depth": depths[s.span_id],
                "critical": s.span_id in critical,
                "attributes": {a.key: list(a.values) for a in s.attributes},
            }
        )
    first = min(spans, key=lambda s: s.start_time_unix_nano)
    return {
        "traceId": trace.trace_id,
        "title": f"{first.name} {first.object}".strip(),
        "started": start / NANO,
        "duration": (end - start) / NANO,
        "spans": rows,
    }


class TraceFeed:
    """The newest trace of the span store, kept current (see the module docstring)."""

    def __init__(self, client: Client, interval: float = 2.0) -> None:
        self.connection = Connection(
            client.server, timeout=client.timeout, credentials=client.credentials
        )
        self.interval = interval
        self.current: dict[str, Any] | None = None
        self._seen: tuple[str, int, int] | None = None

    async def run(self, on_change: Callable[[], None]) -> None:
        """Poll until cancelled; `on_change()` whenever `current` changed."""
        stub = trace_pb2_grpc.TracesStub(self.connection.channel())
        while True:
            try:
                changed = await self._refresh(stub)
            except grpc.aio.AioRpcError as exc:
                changed = self._failed(exc)
                if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                    on_change()
                    return  # this server has no span store: nothing will change that
            if changed:
                on_change()
            await asyncio.sleep(self.interval)

    async def _refresh(self, stub: trace_pb2_grpc.TracesStub) -> bool:
        timeout = self.connection.timeout
        listing = await stub.List(trace_pb2.ListTracesRequest(limit=1), timeout=timeout)
        if not listing.traces:
            return self._set(None, None)
        newest = listing.traces[0]
        seen = (newest.trace_id, newest.span_count, newest.end_time_unix_nano)
        if seen == self._seen:
            return False
        request = trace_pb2.GetTraceRequest(trace_id=newest.trace_id)
        trace = await stub.Get(request, timeout=timeout)
        return self._set(timeline(trace) if trace.spans else None, seen)

    def _set(self, current: dict[str, Any] | None, seen: tuple[str, int, int] | None) -> bool:
        changed = current != self.current
        self.current, self._seen = current, seen
        return changed

    def _failed(self, exc: grpc.aio.AioRpcError) -> bool:
        if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
            return self._set({"error": "this API server serves no traces"}, None)
        if exc.code() == grpc.StatusCode.NOT_FOUND:  # expired between List and Get
            return self._set(None, None)
        err = self.connection.error(exc)
        log.debug("traces unavailable", extra={"error": err.message})
        return self._set({"error": err.message}, None)

    async def close(self) -> None:
        await self.connection.close()
