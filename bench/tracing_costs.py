"""What each piece of tracing costs, in CPU microseconds: `python bench/tracing_costs.py`.

bench/tracing_overhead.py measures tracing's whole cost on latency, which
on a shared 2-core machine moves by more than the cost itself. This measures
the pieces one at a time, in this process, as CPU time (time.process_time:
what the piece takes from the core it runs on, whatever else runs beside it),
so the whole can be read as a sum:

    where                   piece                                   per
    writer (the CLI)        root span + traceparent on the call     traced write
    a component             a step span (Bind, CreatePod, ...)      span
    a component's exporter  span -> trace.proto, serialized         span
    API server              traceparent read from the request      traced write
    API server              the annotation: bytes stored, watched   traced object
    API server              Traces.Export: decode, check, store     span

The exporters run in a thread of their own (BatchSpanProcessor: a batch
every 5 s, or at 512 spans), so their cost is CPU taken from the process,
not time added to the write that made the span. The Export RPC itself (gRPC,
the TLS front's relay, the guard) is per batch, not per span, and is left
out here; it is not small -- about 0.5 ms of the API server's CPU and 0.3 ms
of the exporter's per call -- which is why batches are 5 s apart
(apimachinery/tracing.py).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from opentelemetry.sdk.trace import ReadableSpan

from apimachinery import tracecontext, tracing
from apiserver.registry import tracecontext as received
from apiserver.traces import SpanStore, validate
from protos import core_pb2, trace_pb2

N = 5000
PARENT = tracecontext.TraceParent("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")


class _Nowhere:
    """An exporter target without a server: batches are dropped at once (nothing is sent)."""

    server: Any = None  # not a str: StoreExporter has nowhere to dial
    credentials: Any = None


def cpu_us(fn: Callable[[int], object], n: int = N) -> float:
    """CPU microseconds per call of fn(i), the best of three rounds."""
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        for i in range(n):
            fn(i)
        best = min(best, (time.process_time() - start) / n * 1e6)
    return best


def _root(i: int) -> None:
    with tracing.root("create", component="tinykube", why=f"tinykube create configmap c{i}"):
        tracecontext.outgoing()


def _step(i: int) -> None:
    with tracing.step("Bind", parent=PARENT, component="default-scheduler", obj=f"pods/d/p{i}"):
        tracecontext.outgoing()


def _spans(n: int) -> list[ReadableSpan]:
    """n finished spans as a component makes them (a kubelet's StartContainer)."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

    kept: list[ReadableSpan] = []

    class Keep(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            kept.extend(spans)
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(Keep()))
    tracer = provider.get_tracer("costs")
    for i in range(n):
        attrs = {tracing.COMPONENT: "kubelet", tracing.WHY: "start container app"}
        attrs[tracing.NODE], attrs[tracing.OBJECT] = "node1", f"pods/default/p{i}"
        tracer.start_span("StartContainer", attributes=attrs).end()
    provider.shutdown()
    return kept


def measure() -> dict[str, float]:
    """Each piece's CPU microseconds (see the module docstring), and the annotation's bytes."""
    out: dict[str, float] = {}
    if not tracing.configure(_Nowhere(), "costs", delay_ms=60_000):  # no export meanwhile
        raise SystemExit("tracing is off in this process (OTEL_SDK_DISABLED=true): nothing to time")
    try:
        out["root span + traceparent (writer)"] = cpu_us(_root)
        out["step span (component)"] = cpu_us(_step)
    finally:
        tracing.shutdown()
    finished = _spans(1)[0]  # a finished span's ReadableSpan, as the exporter gets it
    out["span -> trace.proto (exporter)"] = cpu_us(lambda i: tracing.to_proto(finished))
    header = PARENT.header()
    out["traceparent read (server)"] = cpu_us(lambda i: received.of_call(header, None))
    stored = [tracing.to_proto(s) for s in _spans(512)]
    wire = trace_pb2.ExportRequest(spans=stored).SerializeToString()

    def export(i: int) -> None:
        request = trace_pb2.ExportRequest.FromString(wire)
        validate(request.spans)
        SpanStore().add(request.spans)

    out["Traces.Export, per span (server)"] = cpu_us(export, 20) / 512
    cm = core_pb2.ConfigMap(api_version="v1", kind="ConfigMap")
    cm.metadata.name, cm.metadata.namespace = "c1", "default"
    cm.data["t"] = repr(time.time())
    plain = cm.ByteSize()
    cm.metadata.annotations[tracecontext.ANNOTATION] = PARENT.header()
    out["annotation bytes (of a small ConfigMap's)"] = cm.ByteSize() - plain
    out["small ConfigMap bytes, untraced"] = plain
    return out


def main() -> None:
    for piece, value in measure().items():
        unit = "B" if "bytes" in piece else "us CPU"
        print(f"{piece:<44}{value:>8.1f} {unit}")


if __name__ == "__main__":
    main()
