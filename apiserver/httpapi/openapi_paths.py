"""The `paths` of the OpenAPI v3 documents: each kind's URLs and what each verb takes.

For a namespaced kind kube-apiserver describes two paths (cluster-scoped
kinds drop the `namespaces/{namespace}` part):

    /apis/apps/v1/namespaces/{namespace}/deployments         get (list), post, delete (collection)
    /apis/apps/v1/namespaces/{namespace}/deployments/{name}  get, put, patch, delete

Every operation names its kind (`x-kubernetes-group-version-kind`) and its
verb (`x-kubernetes-action`). kubectl reads two things here: whether the
PATCH operation of a kind takes `fieldValidation` (then it lets the server
validate, openapi.py), and which patch media types it accepts (whether it
may send a strategic merge patch computed from these schemas).
"""

from __future__ import annotations

from typing import Any

from apimachinery.scheme import KindInfo

PATCH_MEDIA = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
)


def _query(name: str, kind: str = "string") -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": {"type": kind, "uniqueItems": True}}


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


WRITE_PARAMS = [_query("dryRun"), _query("fieldManager"), _query("fieldValidation")]
LIST_PARAMS = [
    _query("allowWatchBookmarks", "boolean"),
    _query("continue"),
    _query("fieldSelector"),
    _query("labelSelector"),
    _query("limit", "integer"),
    _query("resourceVersion"),
    _query("resourceVersionMatch"),
    _query("timeoutSeconds", "integer"),
    _query("watch", "boolean"),
]


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _op(
    action: str, info: KindInfo, gvk: dict[str, str], schema: dict[str, Any], params: list[Any]
) -> dict[str, Any]:
    verb = action.capitalize() if action != "deletecollection" else "DeleteCollection"
    scope = "Namespaced" if info.namespaced else ""
    group = "".join(p.capitalize() for p in info.api_version.replace(".", "/").split("/"))
    op: dict[str, Any] = {
        "operationId": f"{verb.replace('Post', 'Create')}{group}{scope}{info.kind}",
        "parameters": params,
        "responses": {
            "200": {"description": "OK", "content": {"application/json": {"schema": schema}}},
            "401": {"description": "Unauthorized"},
        },
        "tags": [group],
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk,
    }
    return op


def _body(name: str, media: tuple[str, ...] = ("application/json",)) -> dict[str, Any]:
    return {"content": {m: {"schema": _ref(name)} for m in media}, "required": True}


def paths(info: KindInfo, schema: str, gvk: dict[str, str]) -> dict[str, Any]:
    """The two paths of one kind (module docstring)."""
    root = (
        f"/api/{info.api_version}" if "/" not in info.api_version else f"/apis/{info.api_version}"
    )
    scope = [_path("namespace")] if info.namespaced else []
    collection = (
        f"{root}/namespaces/{{namespace}}/{info.resource}"
        if info.namespaced
        else (f"{root}/{info.resource}")
    )
    item = f"{collection}/{{name}}"
    obj, any_obj = _ref(schema), {"type": "object"}
    named = [*scope, _path("name")]
    create = _op("post", info, gvk, obj, [*scope, *WRITE_PARAMS])
    create["requestBody"] = _body(schema)
    update = _op("put", info, gvk, obj, [*named, *WRITE_PARAMS])
    update["requestBody"] = _body(schema)
    patch = _op("patch", info, gvk, obj, [*named, *WRITE_PARAMS, _query("force", "boolean")])
    patch["requestBody"] = {
        "content": {m: {"schema": any_obj} for m in PATCH_MEDIA},
        "required": True,
    }
    return {
        collection: {
            "get": _op("list", info, gvk, any_obj, [*scope, *LIST_PARAMS]),
            "post": create,
            "delete": _op("deletecollection", info, gvk, any_obj, [*scope, *LIST_PARAMS]),
        },
        item: {
            "get": _op("get", info, gvk, obj, named),
            "put": update,
            "patch": patch,
            "delete": _op("delete", info, gvk, any_obj, [*named, _query("dryRun")]),
        },
    }
