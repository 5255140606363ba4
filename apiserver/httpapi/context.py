"""An HTTP request seen as a gRPC call, so both protocols share one guard and one servicer.

The API server's authentication (auth/authenticator.py) and its RPC handlers
(servicer.py) read a call through a handful of `grpc.aio.ServicerContext`
methods: `peer()` (which connection, and so which verified client
certificate), `invocation_metadata()` (the `authorization: Bearer` token),
`set_trailing_metadata()` (admission warnings) and `abort_with_status()`
(how a handler fails). `CallContext` answers the same questions from an HTTP
request:

    peer()                 the relay socket's path the TLS front connected from
                           (`unix:/…/front/c17`): the front recorded which
                           certificate, if any, that connection verified
    invocation_metadata()  the request's Authorization and traceparent headers
    set_trailing_metadata  admission warnings, sent back as `Warning: 299 - "…"`
    abort_with_status      raises the StatusError the handler failed with

So a kubectl request and a tinykube gRPC call from the same certificate are
the same user, authorized by the same code: there is one authentication and
one authorization, not a copy per protocol.

`abort_with_status` gets a `grpc.Status` (code, text, packed details), but
the handlers always call it while handling the StatusError they are
reporting; that exception -- with its reason and typed field causes, which
the packed form would flatten -- is what is raised again. A status with no
such exception (a kubelet that cannot be reached, an unexpected failure) is
read back as a client reads it (errors.from_rpc_error): its reason survives.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, NamedTuple, NoReturn

import grpc

from apimachinery import errors, tracecontext
from apiserver.admission import warnings as admission_warnings
from apiserver.httpapi.http import Request
from apiserver.registry import tracecontext as registry_tracecontext


class Metadatum(NamedTuple):
    key: str
    value: str


class _Aborted(grpc.RpcError):  # type: ignore[misc]
    """A grpc.Status seen as the failed call a client would have received."""

    def __init__(self, status: Any) -> None:
        self.status = status

    def code(self) -> Any:
        return self.status.code

    def details(self) -> str:
        return str(self.status.details)

    def trailing_metadata(self) -> Any:
        return self.status.trailing_metadata


class CallContext:
    """The part of grpc.aio.ServicerContext the guard and the servicer use."""

    def __init__(self, request: Request) -> None:
        self._peer = request.peer
        authorization = request.headers.get("authorization", "")
        self._metadata: tuple[Metadatum, ...] = ()
        if authorization:
            self._metadata = (Metadatum("authorization", authorization),)
        traceparent = request.headers.get(tracecontext.METADATA_KEY, "")
        if traceparent:
            self._metadata += (Metadatum(tracecontext.METADATA_KEY, traceparent),)
        # This request's writes store its trace context (handlers that call the store
        # directly, patch and apply, as well as those that go through the servicer).
        registry_tracecontext.receive(self._metadata)
        self.warnings: list[str] = []

    def peer(self) -> str:
        return self._peer

    def invocation_metadata(self) -> tuple[Metadatum, ...]:
        return self._metadata

    def auth_context(self) -> dict[str, list[bytes]]:
        return {}  # no transport security of its own: only a front's relay is trusted

    def set_trailing_metadata(self, metadata: Sequence[tuple[str, str]]) -> None:
        for key, value in metadata:
            if key == admission_warnings.METADATA_KEY:
                self.warnings.append(value)

    async def abort_with_status(self, status: Any) -> NoReturn:
        current = sys.exc_info()[1]
        if isinstance(current, errors.StatusError):
            raise current
        raise errors.from_rpc_error(_Aborted(status))  # e.g. a kubelet that cannot be reached

    def warning_headers(self) -> list[tuple[str, str]]:
        """Kubernetes' Warning headers: `299 - "text"`, one per admission warning."""
        out = []
        for text in self.warnings:
            quoted = text.replace("\\", "\\\\").replace('"', '\\"')
            out.append(("Warning", f'299 - "{quoted}"'))
        return out
