"""Root spans (apimachinery/rootspans.py): the ids go out with the writes at once, the SDK
makes the span after it has ended -- the same span, with the same ids, times, attributes and
status -- drained on the loop after a short delay, at a batch's size, or before a flush."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from opentelemetry import trace

from apimachinery import rootspans, tracecontext, tracing
from apimachinery.rootspans import ChosenIds
from tests.unit.span_exports import Batches, Nowhere, configure


@pytest.fixture
def caught(monkeypatch: pytest.MonkeyPatch) -> Iterator[Batches]:
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    tracing.shutdown()  # a provider left by another test
    seen = Batches()
    configure(seen, "rootspans")
    yield seen
    tracing.shutdown()


def test_the_writes_carry_the_root_and_the_exported_span_has_its_ids_times_and_why(
    caught: Batches,
) -> None:
    before = time.time_ns()
    with tracing.root("apply", component="tinykube", why="tinykube apply -f web.yaml") as parent:
        assert parent is not None
        sent = tracecontext.outgoing()
        inside = time.time_ns()
    after = time.time_ns()
    assert sent == f"00-{parent.trace_id}-{parent.span_id}-01"
    assert tracecontext.outgoing() == ""  # the block is over: nothing more is sent
    assert tracing.flush()
    (span,) = caught.spans
    ctx = span.context
    assert ctx is not None
    assert (f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}") == (parent.trace_id, parent.span_id)
    assert span.parent is None and span.name == "apply"
    assert span.start_time is not None and span.end_time is not None
    assert before <= span.start_time <= inside <= span.end_time <= after
    assert dict(span.attributes or {}) == {
        tracing.COMPONENT: "tinykube",
        tracing.WHY: "tinykube apply -f web.yaml",
    }
    assert span.status.status_code == trace.StatusCode.UNSET


def test_an_exception_marks_the_span_failed_and_is_raised(caught: Batches) -> None:
    failing = tracing.root("apply", component="tinykube")
    with pytest.raises(ValueError, match="no such file"), failing:
        raise ValueError("no such file")
    assert tracing.flush()
    (span,) = caught.spans
    assert span.status.status_code == trace.StatusCode.ERROR
    assert span.status.description == "ValueError: no such file"


def test_a_cancelled_block_is_not_an_error(caught: Batches) -> None:
    with pytest.raises(asyncio.CancelledError), tracing.root("apply", component="tinykube"):
        raise asyncio.CancelledError()
    assert tracing.flush()
    (span,) = caught.spans
    assert span.status.status_code == trace.StatusCode.UNSET


def test_on_a_loop_the_spans_wait_for_the_drain_and_go_together(caught: Batches) -> None:
    roots = tracing._state.roots
    assert roots is not None

    async def commands() -> tuple[int, int]:
        for i in range(3):
            with tracing.root(f"create-{i}", component="tinykube"):
                await asyncio.sleep(0)
        waiting = len(roots._ended)  # ended, not yet made by the SDK
        await asyncio.sleep(rootspans.DRAIN_DELAY * 3)
        return waiting, len(roots._ended)

    assert asyncio.run(commands()) == (3, 0)  # drained by the loop's timer
    assert tracing.flush()
    assert sorted(s.name for s in caught.spans) == ["create-0", "create-1", "create-2"]


def test_a_full_batch_drains_at_once(caught: Batches) -> None:
    roots = tracing._state.roots
    assert roots is not None

    async def commands() -> int:
        for i in range(rootspans.DRAIN_BATCH):
            with tracing.root(f"create-{i}", component="tinykube"):
                pass
        return len(roots._ended)  # before the timer could fire

    assert asyncio.run(commands()) == 0


def test_chosen_ids_go_to_the_next_span_only() -> None:
    ids = ChosenIds()
    ids.choose(0xABC, 0x123)
    assert (ids.generate_trace_id(), ids.generate_span_id()) == (0xABC, 0x123)
    assert ids.generate_span_id() != 0x123  # taken once, then random again
    ids.choose(0xABC, 0x456)
    ids.forget()
    assert ids.generate_trace_id() != 0xABC


def test_off_there_is_no_root_and_nothing_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    tracing.shutdown()
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert not tracing.configure(Nowhere(), "rootspans")
    with tracing.root("apply", component="tinykube") as parent:
        assert parent is None and tracecontext.outgoing() == ""


def test_a_drain_makes_the_next_roots_ids_ahead_and_no_two_roots_share_them(
    caught: Batches,
) -> None:
    roots = tracing._state.roots
    assert roots is not None
    with tracing.root("first", component="tinykube"):
        pass
    assert tracing.flush()
    assert len(roots._ready) == rootspans.DRAIN_BATCH
    trace_id, span_id, _, header = roots._ready[-1]
    with tracing.root("second", component="tinykube") as parent:
        assert tracecontext.outgoing() == header
    assert parent is not None and int(parent.trace_id, 16) == trace_id
    for i in range(3 * rootspans.DRAIN_BATCH):
        with tracing.root(f"more-{i}", component="tinykube"):
            pass
    assert tracing.flush()
    ids = [(s.context.trace_id, s.context.span_id) for s in caught.spans if s.context]
    assert len(ids) == 2 + 3 * rootspans.DRAIN_BATCH == len(set(ids))
    second = next(s for s in caught.spans if s.name == "second")
    assert second.context is not None and second.context.span_id == span_id
