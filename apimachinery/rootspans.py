"""Root spans recorded after the fact, in batches: a command's trace without the SDK in its path.

A root span starts a trace: the CLI makes one around each command that
changes the cluster (cli/traceroot.py), and every write made inside carries
its context as `traceparent`. The write needs only the span's *ids*; the
OpenTelemetry SDK's span object -- the sampler, the attribute checks, the
processor's queue -- is needed only once the span has ended, for export.
So a root span is made in two steps:

    enter   choose the ids (random, as the SDK's own generator makes them),
            note the start time, send writes with `00-<trace>-<span>-01`
    leave   note the end time (and the error, if the block raised one) and
            queue the span; a later `drain` makes the queued spans with the
            SDK, each with its own ids and times (`start_time`, `end_time`)

Why, measured (docs/performance.md, "Tracing overhead"): inside a busy
client, between gRPC calls, starting and ending one SDK span cost about
150 us of CPU -- the same code costs 15-25 us when spans are made one after
another, with the interpreter's caches warm. On a write of about 3 ms that
was +7 % of its latency, paid before the request left. Queued and made in a
batch, the SDK's work costs a fraction of that and happens after the
write has been answered.

The ids themselves are made ahead too: each drain leaves DRAIN_BATCH sets
ready (ids, TraceParent, header) for the next roots to take, so a root's
entry is a pop, a context variable and a clock read.

When the queue is drained: on the event loop DRAIN_DELAY (50 ms) after the
first span queued, or at once when DRAIN_BATCH spans wait; without a running
loop, at once; and always before the process's spans are flushed or the
provider shut down (tracing.flush, tracing.shutdown). The span that ends is
the same span, with the same ids, times, attributes and status, as the SDK
would have made inline; only the moment it is built differs.

How the SDK takes chosen ids: the provider's id generator is `ChosenIds`,
the SDK's random generator unless the thread has chosen the next root's
ids (`choose`), which the next span it starts takes.

What a root span does not do, unlike a span entered with `use_span`: it is
not the OpenTelemetry "current span" inside its block. Nothing inside a
command asks for it (a component's `step` names its parent explicitly).
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Mapping
from typing import NamedTuple

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

from apimachinery import tracecontext
from apimachinery.tracecontext import TraceParent

DRAIN_DELAY = 0.05  # seconds from the first queued span to the drain, on a running loop
DRAIN_BATCH = 64  # queued spans that drain at once


class ChosenIds(RandomIdGenerator):
    """Random ids, as the SDK's own generator makes them, unless chosen for the next span."""

    def __init__(self) -> None:
        self._local = threading.local()

    def choose(self, trace_id: int, span_id: int) -> None:
        """The next span this thread starts gets these ids (a root: its trace's too)."""
        self._local.ids = (trace_id, span_id)

    def generate_trace_id(self) -> int:
        ids = getattr(self._local, "ids", None)
        return ids[0] if ids is not None else super().generate_trace_id()

    def generate_span_id(self) -> int:
        ids = getattr(self._local, "ids", None)
        if ids is None:
            return super().generate_span_id()
        self._local.ids = None
        return int(ids[1])

    def forget(self) -> None:
        """Drop a choice no span took (a tracer that made no span)."""
        self._local.ids = None


class _Ended(NamedTuple):  # a tuple: made on every command's path
    name: str
    attributes: Mapping[str, object]
    trace_id: int
    span_id: int
    start_ns: int
    end_ns: int
    error: str


_Ids = tuple[int, int, TraceParent, str]  # trace id, span id, as a TraceParent, as a header


def _new_ids() -> _Ids:
    trace_id = random.getrandbits(128) or 1  # all zeros is not a valid id (W3C)
    span_id = random.getrandbits(64) or 1
    parent = TraceParent(f"{trace_id:032x}", f"{span_id:016x}", "01")
    return trace_id, span_id, parent, parent.header()


class _RootSpan:
    """One root span's `with` block (a class, not a generator: this is on every command's path).

    Entering chooses the ids and sends them with every write of the task;
    leaving queues the ended span with its times and error."""

    def __init__(self, roots: RootSpans, name: str, attributes: Mapping[str, object]) -> None:
        self.roots, self.name, self.attributes = roots, name, attributes

    def __enter__(self) -> TraceParent:
        self.trace_id, self.span_id, parent, header = self.roots.next_ids()
        self.token = tracecontext.start_sending(header)
        self.start_ns = time.time_ns()
        return parent

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        end_ns = time.time_ns()
        tracecontext.stop_sending(self.token)
        # As the SDK's use_span: an Exception marks the span failed; a BaseException
        # (a cancelled task, SystemExit) is no error of the command's.
        error = f"{type(exc).__name__}: {exc}" if isinstance(exc, Exception) else ""
        ids = (self.trace_id, self.span_id)
        self.roots._queue(_Ended(self.name, self.attributes, *ids, self.start_ns, end_ns, error))


class RootSpans:
    """The process's queue of ended root spans, made with `tracer` when drained."""

    def __init__(self, ids: ChosenIds, tracer: trace.Tracer) -> None:
        self.ids = ids
        self.tracer = tracer
        self._lock = threading.Lock()
        self._ended: list[_Ended] = []
        self._scheduled = False
        self._ready: list[_Ids] = []  # ids made ahead, while draining

    def next_ids(self) -> _Ids:
        """Ids for a new root: made ahead by the last drain (warm), else now."""
        try:
            return self._ready.pop()  # one operation under the GIL: no two roots share ids
        except IndexError:
            return _new_ids()

    def span(self, name: str, attributes: Mapping[str, object]) -> _RootSpan:
        """A root span around a `with` block: writes inside carry it; `as` gives its context."""
        return _RootSpan(self, name, attributes)

    def _queue(self, ended: _Ended) -> None:
        with self._lock:
            self._ended.append(ended)
            full = len(self._ended) >= DRAIN_BATCH
            schedule = not full and not self._scheduled
            if schedule:
                self._scheduled = True
        if full:
            self.drain()
            return
        if schedule:
            try:
                asyncio.get_running_loop().call_later(DRAIN_DELAY, self.drain)
            except RuntimeError:  # no running loop: a plain thread makes it now
                self.drain()

    def drain(self) -> int:
        """Make every queued span with the SDK (they go to its processors); how many."""
        with self._lock:
            ended, self._ended, self._scheduled = self._ended, [], False
        if ended and len(self._ready) < DRAIN_BATCH:
            self._ready.extend(_new_ids() for _ in range(DRAIN_BATCH - len(self._ready)))
        for e in ended:
            self.ids.choose(e.trace_id, e.span_id)
            span = self.tracer.start_span(
                e.name,
                context=Context(),
                attributes=e.attributes,  # type: ignore[arg-type]
                start_time=e.start_ns,
            )
            self.ids.forget()
            if e.error:
                span.set_status(trace.Status(trace.StatusCode.ERROR, e.error))
            span.end(end_time=max(e.end_ns, e.start_ns))
        return len(ended)
