"""LIST over HTTP: selectors, pages (limit/continue), resourceVersion, and Tables.

    GET /api/v1/namespaces/default/pods?labelSelector=app%3Dweb&limit=2

answers a PodList whose `metadata.resourceVersion` is the store's revision
at the read, which a client then watches from ("list, then watch from the
list's revision" is how every informer starts).

Pages. With `limit`, the answer holds at most that many items and, when
more remain, `metadata.continue`: an opaque token the client sends back to
get the next page. Ours is base64 of {"rv": revision, "start": key}: the
next page starts after that object's key (namespace/name, the store's
order). Kubernetes serves every page from the first page's snapshot (etcd
keeps old revisions); tinykube's SQLite store reads the current state, so
an object created between two pages may appear in a later page -- each page
is still ordered, without duplicates, and the list's resourceVersion is the
first page's. A token that does not decode is a 400, as in Kubernetes.

resourceVersion. Unset or "0" (any state; kubectl sends none) and a number
with the default `NotOlderThan` all read the current state, which is never
older than any revision a client saw. `resourceVersionMatch=Exact` asks for
one exact revision: served when it is the current one, else 410 Expired --
the store keeps no snapshots to read an older one from.

Tables. kubectl asks for `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`
and prints what the server renders (tables.py).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from apimachinery import errors, scheme
from apiserver.httpapi import body, table_columns
from apiserver.httpapi.call import Call, object_dict
from apiserver.httpapi.http import Request, Response
from protos import api_pb2


def wants_table(request: Request) -> bool:
    """Whether the client asked for a meta.k8s.io Table (kubectl get does)."""
    accept = request.headers.get("accept", "")
    return any(
        "as=table" in part.lower().replace(" ", "") and "g=meta.k8s.io" in part
        for part in accept.split(",")
    )


def encode_continue(revision: int, key: str) -> str:
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": revision, "start": key}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_continue(token: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        return int(data["rv"]), str(data["start"])
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise errors.BadRequest(
            "continue key is not valid: the token does not decode as a continue token"
        ) from None


def _key(obj: Any) -> str:
    return f"{obj.metadata.namespace}/{obj.metadata.name}"


def _check_versions(request: Request, current: int) -> None:
    rv, match = request.param("resourceVersion"), request.param("resourceVersionMatch")
    if request.param("continue") and rv not in ("", "0"):
        raise errors.BadRequest("specifying resource version is not allowed when using continue")
    if match and not rv:
        raise errors.BadRequest(
            "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless"
            " resourceVersion is provided"
        )
    if match not in ("", "Exact", "NotOlderThan"):
        raise errors.BadRequest(
            f'resourceVersionMatch: Unsupported value: "{match}": supported values:'
            ' "Exact", "NotOlderThan"'
        )
    if rv:
        wanted = body.int_param(request, "resourceVersion") or 0
        if match == "Exact" and wanted != current:
            raise errors.Expired.too_old(wanted, current)


async def list_objects(call: Call) -> Response:
    request = call.request
    limit = body.int_param(request, "limit") or 0
    if limit < 0:
        raise errors.BadRequest(f'limit: Invalid value: "{limit}": must be non-negative')
    token = request.param("continue")
    revision, start_after = decode_continue(token) if token else (0, "")
    label_selector = request.param("labelSelector")
    field_selector = request.param("fieldSelector")
    answer = await call.backend.servicer.List(
        api_pb2.ListRequest(
            resource=call.kind.resource,
            namespace=call.namespace,
            label_selector=label_selector,
            field_selector=field_selector,
        ),
        call.ctx,
    )
    current = int(answer.resource_version or 0)
    _check_versions(request, current)
    objects = [scheme.unpack(item) for item in answer.items]
    if start_after:
        objects = [o for o in objects if _key(o) > start_after]
    meta: dict[str, Any] = {"resourceVersion": str(revision or current)}
    if limit and len(objects) > limit:
        remaining = len(objects) - limit
        objects = objects[:limit]
        meta["continue"] = encode_continue(revision or current, _key(objects[-1]))
        if not (label_selector or field_selector):
            meta["remainingItemCount"] = remaining
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
