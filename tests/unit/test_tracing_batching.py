"""How often a process's spans leave it: a batch every 5 s (OpenTelemetry's default), or as
OTEL_BSP_SCHEDULE_DELAY says; a flush sends what is held at once."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from apimachinery import tracing
from apimachinery.tracecontext import TraceParent
from tests.unit.span_exports import Batches, configure

PARENT = TraceParent("d" * 32, "2" * 16)


@pytest.fixture
def batches(monkeypatch: pytest.MonkeyPatch) -> Iterator[Batches]:
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    tracing.shutdown()  # a provider left by another test
    seen = Batches()
    yield seen
    tracing.shutdown()


def _configure(seen: Batches) -> None:
    configure(seen, "batching")


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
