"""One HTTP request on its way through the handlers: what it asks, who asks, and the answers.

Kubernetes' handlers (k8s.io/apiserver/pkg/endpoints/handlers) each take a
request scope -- the kind served at the URL, its serializers, the
authorizer's attributes -- and the request. Here that scope is `Call`: the
parsed request, its RequestInfo (requestinfo.py), the scheme's kind for
its resource, the gRPC-like context that carries its identity
(context.py), and the server's parts every handler shares (`Backend`: the
gRPC servicer, whose RPC methods do the guarded work for both protocols,
the store and the guard).

The answer helpers put Kubernetes' JSON on the wire: an object as
`codec.to_dict` writes it (apiVersion and kind always set: an object in a
response names its kind even when storage did not keep it), with the
admission warnings as `Warning` headers.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message

from apimachinery import codec, scheme
from apimachinery.scheme import KindInfo
from apiserver.auth.authorizer import UserInfo
from apiserver.auth.filters import RequestGuard
from apiserver.httpapi.context import CallContext
from apiserver.httpapi.http import Request, Response
from apiserver.httpapi.requestinfo import RequestInfo
from apiserver.httpapi.status import encode
from apiserver.registry.store import Store
from apiserver.servicer import ResourcesServicer

# Where server-side apply keeps managedFields (ObjectMeta has no field for it): applier.py.
MANAGED_FIELDS = "tinykube.io/managed-fields"


@dataclass(frozen=True)
class Backend:
    """The API server's parts the HTTP handlers use (the same as the gRPC service's)."""

    servicer: ResourcesServicer
    store: Store
    guard: RequestGuard


@dataclass
class Call:
    """A resource request: the request, what it is about, and who is asking."""

    request: Request
    info: RequestInfo
    kind: KindInfo
    ctx: CallContext
    backend: Backend

    @property
    def namespace(self) -> str:
        """The request's namespace; a namespaced kind without one means all namespaces."""
        return self.info.namespace if self.kind.namespaced else ""

    async def authorize(self, verb: str, subresource: str | None = None) -> UserInfo:
        """Authenticate and authorize this call for `verb` (the guard raises 401/403)."""
        sub = self.info.subresource if subresource is None else subresource
        return await self.backend.guard.check(
            self.ctx, verb, self.kind, self.info.namespace, self.info.name, sub
        )

    def respond(self, data: Any, status: int = 200) -> Response:
        return json_response(data, status, self.ctx.warning_headers())


def object_dict(obj: Message) -> dict[str, Any]:
    """Kubernetes' JSON of an object, apiVersion and kind filled in, and server-side apply's
    record (kept in an annotation, applier.py) shown as metadata.managedFields."""
    data = codec.to_dict(obj)
    info = scheme.for_message(obj)
    head = {"apiVersion": info.api_version, "kind": info.kind}
    out = {**head, **{k: v for k, v in data.items() if k not in head}}
    meta = out.get("metadata")
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    if isinstance(meta, dict) and isinstance(annotations, dict) and MANAGED_FIELDS in annotations:
        text = annotations.pop(MANAGED_FIELDS)
        if not annotations:
            meta.pop("annotations")
        with contextlib.suppress(ValueError):
            meta["managedFields"] = json.loads(text)
    return out


def carry_managed_fields(new: Any, live: Any) -> None:
    """Keep server-side apply's record across a write whose body did not carry it (a PUT or
    PATCH body has metadata.managedFields at most, which decoding drops)."""
    record = live.metadata.annotations.get(MANAGED_FIELDS)
    if record is not None and MANAGED_FIELDS not in new.metadata.annotations:
        new.metadata.annotations[MANAGED_FIELDS] = record


def json_response(
    data: Any, status: int = 200, headers: list[tuple[str, str]] | None = None
) -> Response:
    return Response(status, encode(data), headers=list(headers or []))
