"""How a process's finished spans reach the API server's span store (`Traces.Export`).

apimachinery/tracing.py makes the spans with the OpenTelemetry SDK; its
BatchSpanProcessor hands each batch of finished spans to `StoreExporter`,
the SDK's exporter interface over tinykube's own `Traces` service
(protos/trace.proto, apiserver/traces.py):

    SDK span (ReadableSpan) --to_proto--> trace_pb2.Span --Traces.Export--> span store

* `to_proto` keeps what `tinykube trace` shows: ids in W3C form, the parent,
  name, times, the service, and tinykube's own attributes (component, node,
  why, object) as fields; any other attribute as a list of strings.
* The call goes over a plain (blocking) gRPC channel of the exporter's
  thread -- the asyncio channel belongs to the event loop -- with the
  identity of the client the process talks to the API server with (`client`,
  anything with `server` and `credentials`). A rotated certificate or a new
  server gets a new channel on the next export.
* A failed export is logged at debug level and the batch is dropped:
  tracing never slows or fails the work it describes. `exported` and
  `failed` count spans, for tests.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Protocol

import grpc
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from apimachinery.channel import CHANNEL_OPTIONS, Credentials
from protos import trace_pb2, trace_pb2_grpc

log = logging.getLogger(__name__)

# Attribute keys that become fields of the stored span (trace.proto); tracing.py sets them.
COMPONENT = "tinykube.component"
WHY = "tinykube.why"
NODE = "k8s.node.name"  # OpenTelemetry's semantic convention for a Kubernetes node
OBJECT = "tinykube.object"


class HasTarget(Protocol):
    """What the exporter needs of a client: where, and as whom."""

    server: str
    credentials: Credentials | None


def to_proto(span: ReadableSpan) -> trace_pb2.Span:
    """The stored form of a finished span (protos/trace.proto)."""
    ctx = span.context
    assert ctx is not None
    out = trace_pb2.Span(
        trace_id=f"{ctx.trace_id:032x}",
        span_id=f"{ctx.span_id:016x}",
        parent_span_id=f"{span.parent.span_id:016x}" if span.parent is not None else "",
        name=span.name,
        start_time_unix_nano=span.start_time or 0,
        end_time_unix_nano=span.end_time or 0,
        service=str(span.resource.attributes.get("service.name", "")),
    )
    fields = {COMPONENT: "component", NODE: "node", WHY: "why", OBJECT: "object"}
    for key, value in (span.attributes or {}).items():
        if key in fields:
            setattr(out, fields[key], str(value))
        elif isinstance(value, (str, bool, int, float)):
            out.attributes.add(key=key, values=[str(value)])
        else:
            out.attributes.add(key=key, values=[str(v) for v in value])  # type: ignore[union-attr]
    for link in span.links:
        out.links.add(
            trace_id=f"{link.context.trace_id:032x}", span_id=f"{link.context.span_id:016x}"
        )
    if span.status.status_code == trace.StatusCode.ERROR:
        out.error = span.status.description or "error"
    return out


def _open(target: str, credentials: Credentials | None) -> grpc.Channel:
    if credentials is None:
        return grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
    options: list[tuple[str, int | str]] = list(CHANNEL_OPTIONS)
    if credentials.server_name:
        options.append(("grpc.ssl_target_name_override", credentials.server_name))
    return grpc.secure_channel(target, credentials.channel_credentials(), options=options)


class StoreExporter(SpanExporter):
    """OpenTelemetry's exporter interface, sending to the API server's Traces.Export."""

    def __init__(self, timeout: float = 5.0) -> None:
        self.timeout = timeout
        self.client: HasTarget | None = None
        self.exported = 0
        self.failed = 0
        self._lock = threading.Lock()
        self._dialed: tuple[str, Credentials | None] | None = None
        self._channel: grpc.Channel | None = None

    def _stub(self) -> trace_pb2_grpc.TracesStub | None:
        client = self.client
        server = getattr(client, "server", None)
        if client is None or not isinstance(server, str):
            return None  # nowhere to send (a test's fake client)
        wanted = (server, getattr(client, "credentials", None))
        if self._channel is None or self._dialed != wanted:
            if self._channel is not None:
                self._channel.close()
            self._channel = _open(*wanted)
            self._dialed = wanted
        return trace_pb2_grpc.TracesStub(self._channel)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self._lock:
            stub = self._stub()
            if stub is None:
                return SpanExportResult.FAILURE
            request = trace_pb2.ExportRequest(spans=[to_proto(s) for s in spans])
            try:
                stub.Export(request, timeout=self.timeout)
            except grpc.RpcError as exc:
                self.failed += len(spans)
                log.debug("span export failed", extra={"spans": len(spans), "error": str(exc)})
                return SpanExportResult.FAILURE
            self.exported += len(spans)
            return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        with self._lock:
            if self._channel is not None:
                self._channel.close()
            self._channel = None
            self._dialed = None
