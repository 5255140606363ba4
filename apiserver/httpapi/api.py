"""The HTTP API's front door: each request authenticated, routed, answered or turned into a Status.

kube-apiserver's handler chain, in the order a request meets it:

    1. health probes (/healthz, /livez, /readyz): answered before anything else,
       as Kubernetes lets anyone ask them (they tell nothing but "ok")
    2. authentication: the TLS front's verified certificate or the bearer token
       (context.py); neither is 401 Unauthorized
    2a. the in-flight limit, with the first authorization check below: a
       request finding its pool full is 429 TooManyRequests with
       `Retry-After: 1` (apiserver/inflight.py; `handle` is the request's
       scope, the slot shared with the gRPC API's requests)
    3. what is asked (requestinfo.py), then authorization: a path (`get /version`,
       `get /openapi/v3`) here; a resource verb inside the handler that serves it,
       which is the gRPC service's own check for the verbs both protocols share
    4. the handler: discovery, OpenAPI, the object verbs (resources.py,
       lists.py, watchstream.py, patching.py), subresources (subresources.py;
       pods/eviction in eviction.py) and the access reviews (reviews.py)
    5. any StatusError on the way becomes a Status object with its HTTP code
       (status.py); anything else is logged and answered 500 InternalError

Routing of resource URLs follows the scheme: a group, version and plural
that name no kind there is 404 `the server could not find the requested
resource`, as is a namespaced kind asked for by name without a namespace.
"""

from __future__ import annotations

import asyncio
import logging

from apimachinery import errors
from apiserver import inflight
from apiserver.auth.filters import RequestGuard
from apiserver.httpapi import (
    discovery,
    eviction,
    lists,
    metrics,
    openapi,
    patching,
    resources,
    reviews,
    subresources,
    watchstream,
)
from apiserver.httpapi.call import Backend, Call, json_response, object_dict
from apiserver.httpapi.context import CallContext
from apiserver.httpapi.http import Request, Response
from apiserver.httpapi.requestinfo import RequestInfo, request_info
from apiserver.httpapi.status import MethodNotAllowed, NotAcceptable, error_response
from apiserver.httpapi.table_columns import table
from apiserver.registry.store import Store
from apiserver.servicer import VERSION, ResourcesServicer

log = logging.getLogger(__name__)

HEALTH = ("/healthz", "/livez", "/readyz")
NOT_FOUND = "the server could not find the requested resource"
ACCEPTABLE = ("application/json", "application/*", "*/*")


def _acceptable(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    if not accept:
        return True
    kinds = [part.split(";")[0].strip().lower() for part in accept.split(",")]
    return any(k in ACCEPTABLE or k.endswith("+json") for k in kinds)


class HTTPAPI:
    """Kubernetes' REST API over the same store, guard and servicer as the gRPC API."""

    def __init__(self, servicer: ResourcesServicer, store: Store, guard: RequestGuard) -> None:
        self.backend = Backend(servicer, store, guard)

    async def handle(self, request: Request) -> Response:
        info = request_info(request)
        kind = discovery.kind_for(info.group, info.version, info.resource)
        try:
            with inflight.request_scope():  # the slot, if one is taken, ends with the handler
                return await self._dispatch(request, info)
        except errors.StatusError as err:
            return error_response(err, kind, info.name)
        except RecursionError:  # input nested past what a walk can follow: the client's fault
            too_deep = errors.BadRequest("the request nests too deeply to be read")
            return error_response(too_deep, kind, info.name)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug: say so, keep serving
            log.exception("http request failed", extra={"path": request.path})
            return error_response(errors.InternalError(f"internal error: {exc!r}"), kind)

    async def _dispatch(self, request: Request, info: RequestInfo) -> Response:
        if request.path.rstrip("/") in HEALTH or request.path.startswith(
            tuple(h + "/" for h in HEALTH)
        ):
            return Response(200, b"ok", content_type="text/plain; charset=utf-8")
        ctx = CallContext(request)
        user = await self.backend.guard.authenticator.authenticate(ctx)
        if not _acceptable(request):
            raise NotAcceptable(
                "only the following media types are accepted: application/json, "
                "application/json;as=Table;v=v1;g=meta.k8s.io"
            )
        if not info.is_resource:
            if request.method not in ("GET", "HEAD"):
                raise MethodNotAllowed(f"the server does not allow this method on {info.path}")
            await self.backend.guard.authorize(user, "get", None, path=info.path)
            return self._path(info.path)
        review = reviews.handler_for(info)
        if review is not None:
            return await review(self.backend, ctx, user, request)
        served = metrics.handler_for(info)  # metrics.k8s.io: httpapi/metrics.py
        if served is not None:
            return await served(self.backend, ctx, user, request)
        kind = discovery.kind_for(info.group, info.version, info.resource)
        if kind is None or (kind.namespaced and info.name and not info.namespace):
            raise errors.NotFound(NOT_FOUND)
        if not kind.namespaced and info.namespace and info.resource != "namespaces":
            raise errors.NotFound(NOT_FOUND)
        call = Call(request, info, kind, ctx, self.backend)
        if info.subresource:
            if eviction.serves(call):
                return await eviction.evict(call)
            return await subresources.serve(call)
        return await self._verb(call)

    def _path(self, path: str) -> Response:
        path = path.rstrip("/") or "/"
        parts = path.strip("/").split("/")
        if path == "/version":
            return json_response(discovery.version_info(VERSION))
        if path == "/api":
            return json_response(discovery.api_versions())
        if path == "/apis":
            return json_response(discovery.api_group_list())
        if parts[0] == "openapi":
            return openapi.serve(path)
        if parts[0] == "api" and len(parts) == 2:
            found = discovery.resource_list(parts[1])
            if found is not None:
                return json_response(found)
        if parts[0] == "apis" and len(parts) == 2:
            group = discovery.api_group(parts[1])
            if group is not None:
                return json_response(group)
        if parts[0] == "apis" and len(parts) == 3:
            found = discovery.resource_list(f"{parts[1]}/{parts[2]}")
            if found is not None:
                return json_response(found)
        raise errors.NotFound(NOT_FOUND)

    async def _verb(self, call: Call) -> Response:
        verb = call.info.verb
        if verb == "get":
            obj = await resources.get(call)
            if lists.wants_table(call.request):
                meta = {"resourceVersion": obj.metadata.resource_version}
                include = call.request.param("includeObject", "Metadata")
                return call.respond(table(call.kind, [obj], meta, include))
            return call.respond(object_dict(obj))
        if verb == "list":
            return await lists.list_objects(call)
        if verb == "watch":
            return await watchstream.watch(call)
        if verb == "create" and not call.info.name:
            return await resources.create(call)
        if verb == "update" and call.info.name:
            return await resources.update(call)
        if verb == "patch" and call.info.name:
            return await patching.patch(call)
        if verb == "delete":
            return await resources.delete(call)
        if verb == "deletecollection":
            return await resources.delete_collection(call)
        raise MethodNotAllowed(
            f"the server does not allow this method on the requested resource ({verb})"
        )
