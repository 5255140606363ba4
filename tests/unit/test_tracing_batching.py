"""How often a process's spans leave it: a batch every 5 s (OpenTelemetry's default), or as
OTEL_BSP_SCHEDULE_DELAY says; a flush sends what is held at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from apimachinery import tracing
from apimachinery.channel import Credentials
from apimachinery.tracecontext import TraceParent

PARENT = TraceParent("d" * 32, "2" * 16)


class Nowhere:
    """A client the exporter cannot dial (the batches are caught before it would)."""

    server: str = ""
    credentials: Credentials | None = None


class Batches:
    """What the process's exporter was handed, batch by batch."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.arrived = threading.Event()

    def __call__(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.sizes.append(len(spans))
        self.arrived.set()
        return SpanExportResult.SUCCESS


@pytest.fixture
def batches(monkeypatch: pytest.MonkeyPatch) -> Iterator[Batches]:
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    tracing.shutdown()  # a provider left by another test
    seen = Batches()
    yield seen
    tracing.shutdown()


def _configure(seen: Batches) -> None:
    assert tracing.configure(Nowhere(), "batching")
    exporter = tracing.exporter()
    assert exporter is not None
    exporter.export = seen  # type: ignore[method-assign]


def _spans(n: int) -> None:
    for i in range(n):
        with tracing.step(f"step-{i}", parent=PARENT, component="test") as span:
            assert span is not None


def test_spans_wait_for_the_next_batch_and_a_flush_sends_them(batches: Batches) -> None:
    _configure(batches)
    _spans(3)
    time.sleep(1.5)  # three times the former 0.5 s: nothing may have left yet
    assert batches.sizes == []
    assert tracing.flush()
    assert batches.sizes == [3]


def test_otel_bsp_schedule_delay_sets_the_interval(
    batches: Batches, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    _configure(batches)
    began = time.monotonic()
    _spans(2)
    assert batches.arrived.wait(3), "no batch within 3 s at a 100 ms interval"
    assert time.monotonic() - began < 3
    assert batches.sizes == [2]
