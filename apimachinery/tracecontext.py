"""The trace context that travels with a change: W3C `traceparent`, on calls and on objects.

A change made with `tinykube apply` is carried out by six components that
never call each other: each one sees an object change in its informer and
writes another object. To tell that story as one trace, the context of the
step that caused a write has to travel *with the write*, and be found again
by whoever acts on the written object. tinykube carries it in two places,
both in the W3C Trace Context format OpenTelemetry uses:

    traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
                 |  |                                |                |
           version  trace id (16 bytes, hex)         span id (8 bytes) flags (sampled)

* on the call: the write request's `traceparent` field, filled by the client
  on every write while a step is current (`sending`, read by `outgoing`);
  the server also takes it from the gRPC metadata key `traceparent` (where
  OpenTelemetry's gRPC instrumentation puts it) and from the HTTP header;
* on the object: the annotation `tinykube.io/trace-context`, which the API
  server writes from the call's context (apiserver/registry/tracecontext.py)
  and components read back with `of_object` to continue the trace.

Kubernetes has no standard for this: its own tracing (the API server's and
the kubelet's OpenTelemetry spans) stops at each component's edge, because a
controller acting on a watch event has no request to take a context from.
An annotation is what an object can carry that every component already
reads: it is visible (`get -o yaml` shows it), it is stored and watched like
the rest of the object, and the server owns it -- a client's copy is never
written back by accident, because the server replaces it on every traced
write and keeps the stored one on every other.

This module is deliberately free of the OpenTelemetry SDK: the client
imports it on every call, and `tinykube get` should not pay for a tracer.
`apimachinery/tracing.py` makes the spans.

The outgoing context is tied to the asyncio task that set it. A task created
inside a step inherits the context variable (asyncio copies the context
into every new task); without the tie, a background writer started lazily
during a step -- the event recorder's -- would stamp that step onto every
write it made for the rest of the process's life.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any

ANNOTATION = "tinykube.io/trace-context"
METADATA_KEY = "traceparent"

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")


@dataclass(frozen=True)
class TraceParent:
    """One span's place in one trace: the ids a child needs to name its parent."""

    trace_id: str  # 32 lowercase hex digits, not all zero
    span_id: str  # 16 lowercase hex digits, not all zero
    flags: str = "01"  # 01: sampled

    def header(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"

    @property
    def sampled(self) -> bool:
        return bool(int(self.flags, 16) & 1)


def parse(text: str) -> TraceParent | None:
    """A traceparent value, or None when it is not one (the spec: ignore it, start afresh).

    Version 00 must have exactly four fields; a later version may append
    more, which are ignored. All-zero ids and version ff are invalid.
    """
    match = _TRACEPARENT.match(text.strip())
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest):
        return None
    if trace_id == "0" * 32 or span_id == "0" * 16:
        return None
    return TraceParent(trace_id, span_id, flags)


def of_object(obj: Any) -> TraceParent | None:
    """The trace context stored on an API object, if it has one."""
    metadata = getattr(obj, "metadata", None)
    if metadata is None:
        return None
    value = metadata.annotations.get(ANNOTATION, "")
    return parse(value) if value else None


# ---- the context sent with writes --------------------------------------------------------------

_outgoing: ContextVar[tuple[object, str] | None] = ContextVar(
    "tinykube_outgoing_trace", default=None
)


def _owner() -> object:
    try:
        return asyncio.current_task()
    except RuntimeError:  # no running loop: a plain thread
        return None


@contextmanager
def sending(parent: TraceParent | None) -> Iterator[None]:
    """While inside, every write this task makes carries `parent` as its traceparent."""
    if parent is None:
        yield
        return
    token = start_sending(parent.header())
    try:
        yield
    finally:
        stop_sending(token)


def start_sending(header: str) -> Token[tuple[object, str] | None]:
    """`sending` without the context manager (a class-based one's __enter__): its token."""
    return _outgoing.set((_owner(), header))


def stop_sending(token: Token[tuple[object, str] | None]) -> None:
    _outgoing.reset(token)


def outgoing() -> str:
    """The traceparent a write made now should carry ("" when none)."""
    current = _outgoing.get()
    if current is None or current[0] is not _owner():
        return ""
    return current[1]


def from_metadata(metadata: Any) -> str:
    """The valid traceparent among a call's metadata pairs, normalised ("" when none)."""
    for key, value in metadata or ():
        if key == METADATA_KEY:
            parsed = parse(value if isinstance(value, str) else value.decode("ascii", "replace"))
            return parsed.header() if parsed is not None else ""
    return ""
