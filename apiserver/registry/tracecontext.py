"""The server's side of the trace context: the call's `traceparent`, written onto the object.

A write that arrives with a `traceparent` (the request's field of that name,
else a gRPC metadata entry or HTTP header of that name) stores it on the object as the annotation
`tinykube.io/trace-context` (apimachinery/tracecontext.py says why an
annotation). The annotation is the server's, like `resourceVersion`:

    create   with a traceparent: set to it; without: removed (a manifest
             exported with `get -o yaml` must not revive an old trace)
    update,  with one: set to it, after the "unchanged" check -- a write that
    status   changes nothing but the trace context is still no write, so
             applying the same file twice stays `unchanged`; without one: the
             stored value is kept, whatever the client's copy says
    binding  the Binding's annotation is replaced the same way (servicer.py)

How the context reaches the store: the servicer sets `receiving(of_call(...))`
around the request (the HTTP API's call context: `receive(headers)`), a context variable
each request task has for itself; the store reads `incoming()`. No verb's
signature changes, and a request without a traceparent behaves exactly as
before this existed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from apimachinery import tracecontext
from apimachinery.tracecontext import ANNOTATION

_incoming: ContextVar[str] = ContextVar("tinykube_incoming_trace", default="")


def incoming() -> str:
    """The traceparent of the request being served ("" when it has none)."""
    return _incoming.get()


def of_call(field: str, context: Any) -> str:
    """A call's traceparent, validated ("" when none): the request's field, else its metadata.

    Our clients fill the field; a caller instrumented the usual OpenTelemetry
    way (grpcurl -H, an interceptor) sends the metadata entry instead."""
    if field:
        parsed = tracecontext.parse(field)
        return parsed.header() if parsed is not None else ""
    return tracecontext.from_metadata(context.invocation_metadata())


@contextmanager
def receiving(traceparent: str) -> Iterator[str]:
    """Serve one request with `traceparent` (of_call's answer) as its trace context."""
    token = _incoming.set(traceparent)
    try:
        yield _incoming.get()
    finally:
        _incoming.reset(token)


def receive(metadata: Any) -> None:
    """Set the request's traceparent for the rest of this task (the HTTP API, one per request)."""
    _incoming.set(tracecontext.from_metadata(metadata))


def stamp_new(obj: Any) -> None:
    """A create: the annotation is the call's context, or absent."""
    value = incoming()
    annotations = obj.metadata.annotations
    if value:
        annotations[ANNOTATION] = value
    elif ANNOTATION in annotations:
        del annotations[ANNOTATION]


def keep_stored(new: Any, old: Any) -> None:
    """An update before its "unchanged" check: the stored annotation, whatever the client sent."""
    value = old.metadata.annotations.get(ANNOTATION)
    annotations = new.metadata.annotations
    if value is not None:
        annotations[ANNOTATION] = value
    elif ANNOTATION in annotations:
        del annotations[ANNOTATION]


def stamp_changed(new: Any) -> None:
    """An update that will be written: the call's context, if it has one."""
    value = incoming()
    if value:
        new.metadata.annotations[ANNOTATION] = value


def stamp_binding(binding: Any) -> None:
    """A Binding merges its annotations into the pod: only the call's context may travel."""
    annotations = binding.metadata.annotations
    if ANNOTATION in annotations:
        del annotations[ANNOTATION]
    value = incoming()
    if value:
        annotations[ANNOTATION] = value
