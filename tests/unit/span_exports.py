"""What a test's process exports: a client the exporter cannot dial, and a stand-in for the
exporter's `export` that keeps every batch (apimachinery/tracing.py, tracing_export.py)."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from apimachinery import tracing
from apimachinery.channel import Credentials


class Nowhere:
    """A client the exporter cannot dial (the batches are caught before it would)."""

    server: str = ""
    credentials: Credentials | None = None


class Batches:
    """What the process's exporter was handed: each batch's size, and every span."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.spans: list[ReadableSpan] = []
        self.arrived = threading.Event()

    def __call__(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.sizes.append(len(spans))
        self.spans.extend(spans)
        self.arrived.set()
        return SpanExportResult.SUCCESS


def configure(seen: Batches, service: str, **kwargs: float) -> None:
    """Tracing on for this process, its exports caught by `seen`."""
    assert tracing.configure(Nowhere(), service, **kwargs)  # type: ignore[arg-type]
    exporter = tracing.exporter()
    assert exporter is not None
    exporter.export = seen  # type: ignore[method-assign]
