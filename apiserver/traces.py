"""The span store: every component's spans of a change, kept for an hour (the `Traces` service).

Components export finished spans here (apimachinery/tracing.py StoreExporter,
`Traces.Export`); `tinykube trace` and the dashboard read a whole trace back
(`Traces.Get`, `Traces.List`). Kubernetes sends its components' spans to an
OpenTelemetry collector and leaves storage to a tracing backend (Jaeger,
Tempo); tinykube keeps a small one inside the API server so that `tinykube
trace` works on a fresh cluster with nothing else installed. A real backend
can receive the same spans over OTLP (`tinykube --otlp-endpoint`).

Bounds, so a busy cluster cannot grow the server without limit:

* at most `max_spans` spans (10 000) in all. Traces are kept in the order
  they were last touched (a span added); when a batch takes the total over
  the bound, whole traces go, least recently touched first. A single trace
  larger than the bound keeps its latest spans.
* a trace expires `ttl` seconds (1 h) after its last span arrived: the
  expired traces are at the front of that order, so each call drops them in
  time proportional to what it drops.

Worked example, max_spans 5: traces A (3 spans) then B (2 spans) arrive: 5
held. One more span of A: A becomes the most recent, total 6 > 5, so B (the
least recently touched) goes: A's 4 spans remain.

Who may call (the guard's words, non-resource paths as for /version):

    Export   create  /traces   system:nodes, system:kube-scheduler,
                               system:kube-controller-manager (auth/bootstrappolicy.py),
                               and system:masters
    Get      get     /traces   system:masters, or a binding to system:tinykube:trace-reader;
                               by object also `get` on that object
    List     get     /traces

Spans are checked before they are stored (ids in W3C form, bounded names and
attribute lists); a bad one refuses the whole batch, naming the field.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc

from apimachinery import errors, scheme, tracecontext
from apiserver.auth.filters import RequestGuard
from apiserver.registry.store import Store
from protos import trace_pb2, trace_pb2_grpc

TRACES_PATH = "/traces"
DEFAULT_MAX_SPANS = 10_000
DEFAULT_TTL = 3600.0
MAX_BATCH = 4096
MAX_NAME = 256
MAX_ATTRIBUTES = 64
MAX_VALUES = 64
MAX_VALUE_CHARS = 4096
DEFAULT_LIST = 20

_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
_SPAN_ID = re.compile(r"^[0-9a-f]{16}$")
T = TypeVar("T")


@dataclass
class _Held:
    spans: dict[str, trace_pb2.Span] = field(default_factory=dict)
    touched: float = 0.0


class SpanStore:
    """Spans by trace, bounded and expiring (see the module docstring); not thread-safe."""

    def __init__(
        self,
        max_spans: int = DEFAULT_MAX_SPANS,
        ttl: float = DEFAULT_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_spans < 1 or ttl <= 0:
            raise ValueError("max_spans must be at least 1 and ttl positive")
        self.max_spans = max_spans
        self.ttl = ttl
        self.clock = clock
        self._traces: OrderedDict[str, _Held] = OrderedDict()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, spans: Iterable[trace_pb2.Span]) -> int:
        """Store finished spans (a span sent twice replaces itself); how many were taken."""
        now = self.clock()
        self._expire(now)
        taken = 0
        for span in spans:
            held = self._traces.get(span.trace_id)
            if held is None:
                held = self._traces[span.trace_id] = _Held()
            self._traces.move_to_end(span.trace_id)
            held.touched = now
            if span.span_id not in held.spans:
                self._count += 1
            held.spans[span.span_id] = span
            taken += 1
        self._evict()
        return taken

    def _expire(self, now: float) -> None:
        while self._traces:
            trace_id, held = next(iter(self._traces.items()))
            if now - held.touched < self.ttl:
                return
            del self._traces[trace_id]
            self._count -= len(held.spans)

    def _evict(self) -> None:
        while self._count > self.max_spans and len(self._traces) > 1:
            _, held = self._traces.popitem(last=False)
            self._count -= len(held.spans)
        if self._count > self.max_spans:  # one trace alone is too large: keep its latest spans
            (held,) = self._traces.values()
            ordered = sorted(held.spans.values(), key=lambda s: s.start_time_unix_nano)
            for span in ordered[: self._count - self.max_spans]:
                del held.spans[span.span_id]
            self._count = len(held.spans)

    def get(self, trace_id: str) -> list[trace_pb2.Span]:
        """The trace's spans by start time ([] when unknown, evicted or expired)."""
        self._expire(self.clock())
        held = self._traces.get(trace_id)
        if held is None:
            return []
        return sorted(held.spans.values(), key=lambda s: (s.start_time_unix_nano, s.span_id))

    def summaries(self, limit: int = DEFAULT_LIST) -> list[trace_pb2.TraceSummary]:
        """The held traces, the one that started last first."""
        self._expire(self.clock())
        out = []
        for trace_id, held in self._traces.items():
            first = min(held.spans.values(), key=lambda s: s.start_time_unix_nano)
            out.append(
                trace_pb2.TraceSummary(
                    trace_id=trace_id,
                    root_name=first.name,
                    root_why=first.why,
                    start_time_unix_nano=first.start_time_unix_nano,
                    end_time_unix_nano=max(s.end_time_unix_nano for s in held.spans.values()),
                    span_count=len(held.spans),
                )
            )
        out.sort(key=lambda s: s.start_time_unix_nano, reverse=True)
        return out[:limit]


def _too_many(path: str, count: int, limit: int) -> errors.FieldError:
    """Kubernetes' field.TooMany."""
    return errors.FieldError(path, "Too many", f"must have at most {limit} items", count, True)


def validate(spans: Sequence[trace_pb2.Span]) -> list[errors.FieldError]:
    """What is wrong with an exported batch, one cause per bad field."""
    if len(spans) > MAX_BATCH:
        return [_too_many("spans", len(spans), MAX_BATCH)]
    causes: list[errors.FieldError] = []
    for i, span in enumerate(spans):
        at = f"spans[{i}]"
        if not _TRACE_ID.match(span.trace_id) or span.trace_id == "0" * 32:
            causes.append(errors.invalid(f"{at}.traceId", span.trace_id, "32 lowercase hex digits"))
        if not _SPAN_ID.match(span.span_id) or span.span_id == "0" * 16:
            causes.append(errors.invalid(f"{at}.spanId", span.span_id, "16 lowercase hex digits"))
        if span.parent_span_id and not _SPAN_ID.match(span.parent_span_id):
            causes.append(
                errors.invalid(f"{at}.parentSpanId", span.parent_span_id, "16 lowercase hex digits")
            )
        if not span.name or len(span.name) > MAX_NAME:
            causes.append(errors.invalid(f"{at}.name", span.name, f"1 to {MAX_NAME} characters"))
        if span.end_time_unix_nano < span.start_time_unix_nano:
            causes.append(
                errors.invalid(f"{at}.endTimeUnixNano", span.end_time_unix_nano, "before its start")
            )
        if len(span.attributes) > MAX_ATTRIBUTES:
            causes.append(_too_many(f"{at}.attributes", len(span.attributes), MAX_ATTRIBUTES))
        for j, attr in enumerate(span.attributes):
            if len(attr.values) > MAX_VALUES:
                causes.append(
                    _too_many(f"{at}.attributes[{j}].values", len(attr.values), MAX_VALUES)
                )
            if any(len(v) > MAX_VALUE_CHARS for v in attr.values):
                causes.append(errors.too_long(f"{at}.attributes[{j}].values", "", MAX_VALUE_CHARS))
    return causes


class TracesServicer(trace_pb2_grpc.TracesServicer):
    """Export, Get and List over one SpanStore, behind the guard."""

    def __init__(self, store: Store, guard: RequestGuard, spans: SpanStore | None = None) -> None:
        self.store = store
        self.guard = guard
        self.spans = spans if spans is not None else SpanStore()

    async def _call(self, context: grpc.aio.ServicerContext, fn: Callable[[], Awaitable[T]]) -> T:
        try:
            return await fn()
        except errors.StatusError as err:
            await context.abort_with_status(errors.to_grpc_status(err))
        raise AssertionError("unreachable: abort_with_status raises")

    async def Export(
        self, request: trace_pb2.ExportRequest, context: Any
    ) -> trace_pb2.ExportResponse:
        async def run() -> trace_pb2.ExportResponse:
            await self.guard.check(context, "create", None, path=TRACES_PATH)
            causes = validate(request.spans)
            if causes:
                raise errors.Invalid.for_object("ExportRequest", "spans", causes)
            return trace_pb2.ExportResponse(accepted=self.spans.add(request.spans))

        return await self._call(context, run)

    async def Get(self, request: trace_pb2.GetTraceRequest, context: Any) -> trace_pb2.Trace:
        async def run() -> trace_pb2.Trace:
            await self.guard.check(context, "get", None, path=TRACES_PATH)
            asked = [bool(request.trace_id), request.HasField("object"), request.last]
            if sum(asked) != 1:
                raise errors.BadRequest("name exactly one of trace_id, object and last")
            out = trace_pb2.Trace()
            if request.trace_id:
                out.trace_id = request.trace_id
            elif request.last:
                latest = self.spans.summaries(1)
                if not latest:
                    raise errors.NotFound("no traces are held (they expire after an hour)")
                out.trace_id = latest[0].trace_id
            else:
                parent = await self._object_context(context, request.object)
                out.trace_id, out.object_span_id = parent.trace_id, parent.span_id
            out.spans.extend(self.spans.get(out.trace_id))
            if not out.spans:
                raise errors.NotFound(
                    f'trace "{out.trace_id}" not found: its spans expired after an hour, '
                    "were evicted, or were never exported"
                )
            return out

        return await self._call(context, run)

    async def _object_context(
        self, context: Any, ref: trace_pb2.ObjectRef
    ) -> tracecontext.TraceParent:
        info = scheme.for_resource(ref.resource)
        namespace = (ref.namespace or "default") if info.namespaced else ""
        await self.guard.check(context, "get", info, namespace, ref.name)
        obj = await self.store.get(info, namespace, ref.name)
        parent = tracecontext.of_object(obj)
        if parent is None:
            raise errors.NotFound(
                f'{info.resource} "{ref.name}" has no trace: no traced write has changed it '
                f"(annotation {tracecontext.ANNOTATION})"
            )
        return parent

    async def List(self, request: trace_pb2.ListTracesRequest, context: Any) -> trace_pb2.TraceList:
        async def run() -> trace_pb2.TraceList:
            await self.guard.check(context, "get", None, path=TRACES_PATH)
            limit = request.limit or DEFAULT_LIST
            return trace_pb2.TraceList(traces=self.spans.summaries(limit))

        return await self._call(context, run)
