"""Spans of a change, made with the OpenTelemetry SDK and exported to the API server.

Each component records what it did about a traced object as one span:

    with tracing.step(
        "CreatePod", parent=rs, component="replicaset-controller",
        why="web-app-744c89f59d wants 2 replicas, has 0", obj="pods/default/web-app-...",
    ):
        await client.create(pod)        # carries the span as `traceparent`

* `parent` names the cause: an API object (its `tinykube.io/trace-context`
  annotation, tracecontext.py), a TraceParent, a span of this process, or
  CURRENT (the span this task is inside). A parent without a trace means no
  span at all: tinykube continues traces, it never starts one for a
  component's own housekeeping -- a resync that changes nothing records nothing.
* While the step is open every write this task makes carries the step's
  context; the API server stores it on the written object, and the next
  component continues from there.
* `record` makes a span after the fact, from times measured elsewhere (the
  CNI plugin's journal).
* `root` starts a trace (a user's command, cli/traceroot.py). Its ids go out
  with the writes at once; the SDK makes the span after it has ended, in a
  batch (rootspans.py: inline, it cost a busy client ~150 us per write).

Where spans go. `configure(client, service)` sets, once per process, an
OpenTelemetry TracerProvider whose BatchSpanProcessor (every 5 s, or at 512
spans) hands finished spans to `StoreExporter` (tracing_export.py): one
`Traces.Export` call to the API server the client talks to, with the
client's identity, over a plain (blocking) gRPC channel of the exporter's
thread -- the asyncio channel belongs to the event loop. A later
`configure` points the exporter at its client (the kubelet's rotated
certificate, a test's new server). With
`OTEL_EXPORTER_OTLP_ENDPOINT` set (the standard variable; `tinykube
--otlp-endpoint` sets it) and the `otlp` extra installed, every span also goes
to that OpenTelemetry collector. `OTEL_SDK_DISABLED=true` turns tracing off:
no spans, no traceparent on writes.

Why 5 s, OpenTelemetry's default (`OTEL_BSP_SCHEDULE_DELAY`, milliseconds,
changes it). An export costs about the same whatever it carries: about 0.5 ms
of the API server's CPU (the TLS front's relay, the guard, the call) and
0.3 ms of the exporting process's, against about 0.04 ms per span. At the
former 0.5 s, each busy process (the scheduler and controllers, each
kubelet, each client) made up to two exports a second, and those calls --
not the spans -- were most of what tracing cost the API server over a
pod-startup run (docs/performance.md, "Tracing overhead"). The price is
freshness: a component's spans reach `tinykube trace` up to 5 s after
their step (the CLI flushes its own when a command ends).

A failed export is logged at debug level and the batch is dropped: tracing
never slows or fails the work it describes.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext

from google.protobuf.message import Message
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Link, NonRecordingSpan, Span, SpanContext, TraceFlags

from apimachinery import tracecontext
from apimachinery.rootspans import ChosenIds, RootSpans
from apimachinery.tracecontext import TraceParent

# Where finished spans go (re-exported: callers name them as tracing's).
from apimachinery.tracing_export import COMPONENT as COMPONENT
from apimachinery.tracing_export import NODE as NODE
from apimachinery.tracing_export import OBJECT as OBJECT
from apimachinery.tracing_export import WHY as WHY
from apimachinery.tracing_export import HasTarget as HasTarget
from apimachinery.tracing_export import StoreExporter as StoreExporter
from apimachinery.tracing_export import to_proto as to_proto

log = logging.getLogger(__name__)

MAX_LIST = 40  # values kept of a list attribute (commands, rule lines)
MAX_VALUE = 400  # characters kept of one value

CURRENT = object()  # parent=CURRENT: the span this task is inside
Parent = TraceParent | Message | Span | object | None
AttrValue = str | int | float | bool | Sequence[str]


def disabled() -> bool:
    return os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"


# ---- spans ----------------------------------------------------------------------------------


def _span_context(parent: Parent) -> SpanContext | None:
    if parent is CURRENT:
        current = trace.get_current_span().get_span_context()
        return current if current.is_valid else None
    if isinstance(parent, Span):
        ctx = parent.get_span_context()
        return ctx if ctx.is_valid else None
    if isinstance(parent, Message):
        parent = tracecontext.of_object(parent)
    if isinstance(parent, TraceParent):
        return SpanContext(
            int(parent.trace_id, 16),
            int(parent.span_id, 16),
            is_remote=True,
            trace_flags=TraceFlags(int(parent.flags, 16)),
        )
    return None


def parent_of(span: Span | None) -> TraceParent | None:
    """A span's context as a TraceParent (what a write made inside it carries)."""
    if span is None:
        return None
    ctx = span.get_span_context()
    if not ctx.is_valid:
        return None
    return TraceParent(f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}", f"{int(ctx.trace_flags):02x}")


def _clean(value: AttrValue) -> AttrValue:
    if isinstance(value, str):
        return value if len(value) <= MAX_VALUE else value[: MAX_VALUE - 1] + "…"
    if isinstance(value, (bool, int, float)):
        return value
    items = [str(_clean(str(v))) for v in list(value)[:MAX_LIST]]
    if len(value) > MAX_LIST:
        items.append(f"... {len(value) - MAX_LIST} more")
    return items


def start(
    name: str,
    *,
    parent: Parent,
    component: str,
    why: str = "",
    node: str = "",
    obj: str = "",
    attributes: Mapping[str, AttrValue] | None = None,
    links: Sequence[Parent] = (),
    start_time: int | None = None,
) -> Span | None:
    """Start a span under `parent`; None when tracing is off or the parent has no trace."""
    if _state.provider is None:
        return None
    ctx = _span_context(parent)
    if ctx is None:
        return None
    attrs: dict[str, AttrValue] = {COMPONENT: component, WHY: _clean(why)}
    if node:
        attrs[NODE] = node
    if obj:
        attrs[OBJECT] = obj
    for key, value in (attributes or {}).items():
        attrs[key] = _clean(value)
    linked = [Link(c) for c in (_span_context(p) for p in links) if c is not None]
    return _state.tracer.start_span(
        name,
        context=trace.set_span_in_context(NonRecordingSpan(ctx)),
        attributes=attrs,  # type: ignore[arg-type]
        links=linked,
        start_time=start_time,
    )


@contextmanager
def step(
    name: str,
    *,
    parent: Parent,
    component: str,
    why: str = "",
    node: str = "",
    obj: str = "",
    attributes: Mapping[str, AttrValue] | None = None,
    links: Sequence[Parent] = (),
) -> Iterator[Span | None]:
    """A span around the block; writes made inside carry it (see the module docstring).

    Yields the span (None when nothing is traced); an exception marks it failed.
    """
    span = start(
        name,
        parent=parent,
        component=component,
        why=why,
        node=node,
        obj=obj,
        attributes=attributes,
        links=links,
    )
    if span is None:
        yield None
        return
    with trace.use_span(span, end_on_exit=True), tracecontext.sending(parent_of(span)):
        yield span


def root(name: str, *, component: str, why: str = "") -> AbstractContextManager[TraceParent | None]:
    """The first span of a new trace (a user's command), around a `with` block; writes inside
    carry it, and `as` gives its context (None when tracing is off).

    The SDK makes the span after it has ended, in a batch (rootspans.py says why and when)."""
    roots = _state.roots
    if _state.provider is None or roots is None:
        return nullcontext()
    return roots.span(name, {COMPONENT: component, WHY: _clean(why)})


@contextmanager
def within(span: Span | None) -> Iterator[Span | None]:
    """Enter a span started earlier with `start` (in another task); it ends with the block."""
    if span is None:
        yield None
        return
    with trace.use_span(span, end_on_exit=True), tracecontext.sending(parent_of(span)):
        yield span


def record(
    name: str,
    *,
    parent: Parent,
    start_ns: int,
    end_ns: int,
    component: str,
    why: str = "",
    node: str = "",
    obj: str = "",
    attributes: Mapping[str, AttrValue] | None = None,
    links: Sequence[Parent] = (),
    error: str = "",
) -> TraceParent | None:
    """A finished span from times measured elsewhere; its context, or None if not traced."""
    span = start(
        name,
        parent=parent,
        component=component,
        why=why,
        node=node,
        obj=obj,
        attributes=attributes,
        links=links,
        start_time=start_ns,
    )
    if span is None:
        return None
    if error:
        span.set_status(trace.Status(trace.StatusCode.ERROR, error))
    span.end(end_time=max(end_ns, start_ns))
    return parent_of(span)


class _State:
    """The process's provider, its exporter, and its one tracer.

    The tracer is made once with the provider: the SDK's `get_tracer` builds a
    new scope each call and re-registers a warnings filter (which empties every
    module's warning cache), about 8 us of a span's 55 us if called per span."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.provider: TracerProvider | None = None
        self.exporter: StoreExporter | None = None
        self.tracer: trace.Tracer = trace.NoOpTracer()
        self.roots: RootSpans | None = None


_state = _State()


def _otlp_processor() -> BatchSpanProcessor | None:
    if not (
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    ):
        return None
    try:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    except ImportError:
        log.warning(
            "OTLP export asked for but its exporter is not installed: "
            "pip install 'tinykube[otlp]' (opentelemetry-exporter-otlp-proto-grpc)"
        )
        return None
    return BatchSpanProcessor(OTLPSpanExporter())  # every 5 s too (OTEL_BSP_SCHEDULE_DELAY)


def configure(client: HasTarget, service: str, *, delay_ms: float | None = None) -> bool:
    """Export this process's spans through `client`'s API server; False when tracing is off.

    The first call makes the provider (its `service` names the process); every
    call points the exporter at its client. `delay_ms`: between exports (None:
    `OTEL_BSP_SCHEDULE_DELAY`, else 5000, as the SDK reads it).
    """
    if disabled():
        return False
    with _state.lock:
        if _state.provider is None:
            exporter = StoreExporter()
            ids = ChosenIds()
            provider = TracerProvider(
                id_generator=ids,
                resource=Resource.create({"service.name": service}),
                span_limits=SpanLimits(max_attributes=64, max_links=16),
                shutdown_on_exit=False,
            )
            provider.add_span_processor(
                BatchSpanProcessor(
                    exporter,
                    max_queue_size=8192,
                    schedule_delay_millis=delay_ms,  # None: the SDK's (see above)
                    max_export_batch_size=512,
                )
            )
            otlp = _otlp_processor()
            if otlp is not None:
                provider.add_span_processor(otlp)
            _state.tracer = provider.get_tracer("tinykube")
            _state.roots = RootSpans(ids, _state.tracer)
            _state.exporter, _state.provider = exporter, provider
        assert _state.exporter is not None
        _state.exporter.client = client
    return True


def flush(timeout_ms: int = 5000) -> bool:
    """Export every finished span now (a CLI command before it exits)."""
    provider = _state.provider
    if _state.roots is not None:
        _state.roots.drain()
    return provider.force_flush(timeout_ms) if provider is not None else True


def exporter() -> StoreExporter | None:
    """The process's exporter (tests read its counters)."""
    return _state.exporter


def shutdown() -> None:
    """Flush, stop the exporter's thread and forget the provider (tests; process exit)."""
    with _state.lock:
        if _state.roots is not None:
            _state.roots.drain()
        provider, _state.provider, _state.exporter = _state.provider, None, None
        _state.tracer, _state.roots = trace.NoOpTracer(), None
    if provider is not None:
        provider.shutdown()
