"""LIST over HTTP: selectors, pages (limit/continue), resourceVersion, and Tables.

    GET /api/v1/namespaces/default/pods?labelSelector=app%3Dweb&limit=2

answers a PodList whose `metadata.resourceVersion` is the store's revision
at the read, which a client then watches from ("list, then watch from the
list's revision" is how every informer starts).

The query becomes a gRPC ListRequest for the servicer, the same guarded path a
tinykube client's List takes, and the registry (registry/paging.py) does the
rest for both protocols: the checks of resourceVersion, resourceVersionMatch
and continue (Kubernetes' ValidateListOptions), and the pages.

Pages. With `limit`, the answer holds at most that many matching items and,
when more remain, `metadata.continue`: Kubernetes' own token (base64 of
{"v": "meta.k8s.io/v1", "rv": revision, "start": key}), which the client
sends back for the next page. Every page is read at the first page's
revision, so the pages together are one consistent snapshot, as Kubernetes
serves them from etcd; `remainingItemCount` comes with a page of a list
without selectors. A token that does not decode is a 400. A token whose
revision the store has compacted since is 410 Expired with Kubernetes'
message, and, as in Kubernetes, the Status carries in `metadata.continue` a
token that reads the rest at the newest revision (an inconsistent list, for a
client that would rather have that than start over).

resourceVersion. Unset or "0" (any state; kubectl sends none) and a number
with the default `NotOlderThan` all read the current state, which is never
older than any revision a client saw. `resourceVersionMatch=Exact` asks for
one exact revision: served (paged like any list) while the store keeps it,
410 Expired once compacted.

Tables. kubectl asks for `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`
and prints what the server renders (tables.py).
"""

from __future__ import annotations

from typing import Any

from apimachinery import errors, scheme
from apiserver.httpapi import body, table_columns
from apiserver.httpapi.call import Call, object_dict
from apiserver.httpapi.http import Request, Response
from apiserver.httpapi.status import status_object
from apiserver.registry.paging import ContinueExpired
from protos import api_pb2


def wants_table(request: Request) -> bool:
    """Whether the client asked for a meta.k8s.io Table (kubectl get does)."""
    accept = request.headers.get("accept", "")
    return any(
        "as=table" in part.lower().replace(" ", "") and "g=meta.k8s.io" in part
        for part in accept.split(",")
    )


def _expired(call: Call, err: ContinueExpired) -> Response:
    """410 for a compacted continue token, with the token that reads on inconsistently."""
    status = status_object(err)
    status["metadata"] = {"continue": err.continue_token}
    return call.respond(status, status["code"])


async def list_objects(call: Call) -> Response:
    request = call.request
    limit = body.int_param(request, "limit") or 0
    if limit < 0:
        raise errors.BadRequest(f'limit: Invalid value: "{limit}": must be non-negative')
    ask = api_pb2.ListRequest(
        resource=call.kind.resource,
        namespace=call.namespace,
        label_selector=request.param("labelSelector"),
        field_selector=request.param("fieldSelector"),
        limit=limit,
        resource_version=request.param("resourceVersion"),
        resource_version_match=request.param("resourceVersionMatch"),
    )
    setattr(ask, "continue", request.param("continue"))  # `continue` is a Python keyword
    try:
        answer = await call.backend.servicer.List(ask, call.ctx)
    except ContinueExpired as err:
        return _expired(call, err)
    objects = [scheme.unpack(item) for item in answer.items]
    meta: dict[str, Any] = {"resourceVersion": answer.resource_version}
    token = getattr(answer, "continue")
    if token:
        meta["continue"] = token
    if answer.HasField("remaining_item_count"):
        meta["remainingItemCount"] = answer.remaining_item_count
    if wants_table(request):
        include = request.param("includeObject", "Metadata")
        return call.respond(table_columns.table(call.kind, objects, meta, include))
    return call.respond(
        {
            "kind": f"{call.kind.kind}List",
            "apiVersion": call.kind.api_version,
            "metadata": meta,
            "items": [object_dict(o) for o in objects],
        }
    )
