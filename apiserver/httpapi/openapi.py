"""OpenAPI v3 from the protobuf descriptors: `kubectl explain` and kubectl's validation read it.

kube-apiserver publishes one OpenAPI v3 document per group version, indexed
at /openapi/v3:

    GET /openapi/v3            {"paths": {"apis/apps/v1": {"serverRelativeURL":
                                          "/openapi/v3/apis/apps/v1?hash=3F2A..."}, ...}}
    GET /openapi/v3/apis/apps/v1   {"openapi": "3.0.0", "paths": {...},
                                    "components": {"schemas": {...}}}

Two kubectl features depend on it:

* `kubectl explain deployment.spec.replicas` finds the schema whose
  `x-kubernetes-group-version-kind` is apps/v1 Deployment and walks its
  properties (`allOf: [{$ref}]` to nested types), printing each field's type
  and description (the .proto comments, read by apimachinery/protodocs.py:
  the same text `tinykube explain` prints).
* Before `apply`/`create`, kubectl asks whether the server validates
  fields itself: if the PATCH operation of the kind's path lists the
  `fieldValidation` query parameter, kubectl leaves validation to the server
  (which decodes strictly, body.py) instead of validating against the
  older /openapi/v2 document, which it reads only in protobuf form.

The schemas are generated, not written: each message becomes a schema named
as Kubernetes names its Go type (tinykube.apps.DeploymentSpec ->
io.k8s.api.apps.v1.DeploymentSpec, tinykube.meta.ObjectMeta ->
io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta), each field a property
under its JSON name: scalars by type, repeated fields as arrays, maps as
objects with additionalProperties, Timestamps as date-time strings,
IntOrString and Quantity as Kubernetes types. Lists that strategic merge
patch merges by a key carry Kubernetes' `x-kubernetes-patch-merge-key` and
`x-kubernetes-list-type: map` (from apimachinery/patch.py's table).

/openapi/v2 is not served (404): kubectl asks for it only in protobuf and
falls back without it.
"""

from __future__ import annotations

import functools
import hashlib
import json
from typing import Any

from google.protobuf.descriptor import FieldDescriptor

from apimachinery import codec, errors, patch, protodocs, scheme
from apimachinery.scheme import KindInfo
from apiserver.httpapi import discovery, openapi_paths
from apiserver.httpapi.http import Response

PACKAGES = {
    "tinykube.core": "io.k8s.api.core.v1",
    "tinykube.apps": "io.k8s.api.apps.v1",
    "tinykube.meta": "io.k8s.apimachinery.pkg.apis.meta.v1",
    "tinykube.rbac": "io.k8s.api.rbac.v1",
    "tinykube.coordination": "io.k8s.api.coordination.v1",
    "tinykube.certificates": "io.k8s.api.certificates.v1",
}
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
SCALARS: dict[int, dict[str, Any]] = {
    FieldDescriptor.TYPE_STRING: {"type": "string"},
    FieldDescriptor.TYPE_BOOL: {"type": "boolean"},
    FieldDescriptor.TYPE_INT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_INT64: {"type": "integer", "format": "int64"},
    FieldDescriptor.TYPE_UINT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_UINT64: {"type": "integer", "format": "int64"},
    FieldDescriptor.TYPE_DOUBLE: {"type": "number", "format": "double"},
    FieldDescriptor.TYPE_FLOAT: {"type": "number", "format": "double"},
    FieldDescriptor.TYPE_BYTES: {"type": "string", "format": "byte"},
}


def schema_name(desc: Any) -> str:
    package, _, rest = desc.full_name.rpartition(".")
    while package and package not in PACKAGES:  # a nested message: Outer.Inner
        package, _, outer = package.rpartition(".")
        rest = f"{outer}.{rest}"
    return f"{PACKAGES.get(package, package)}.{rest}"


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


class _Builder:
    """Schemas for a set of messages and every message they reach."""

    def __init__(self) -> None:
        self.schemas: dict[str, Any] = {
            INT_OR_STRING: {
                "type": "string",
                "format": "int-or-string",
                "x-kubernetes-int-or-string": True,
            },
            QUANTITY: {
                "oneOf": [{"type": "string"}, {"type": "number"}],
                "description": "A fixed-point number with a suffix: 500m, 128Mi, 2.",
            },
        }

    def value(self, fd: Any, path: tuple[str, ...]) -> dict[str, Any]:
        owner = fd.containing_type.full_name if fd.containing_type else ""
        if f"{owner}.{fd.name}" in codec.QUANTITY_FIELDS:
            return {"allOf": [_ref(QUANTITY)]}
        if fd.message_type is not None:
            name = fd.message_type.full_name
            if name == codec.TIMESTAMP:
                return {"type": "string", "format": "date-time"}
            if name == codec.INT_OR_STRING:
                return {"allOf": [_ref(INT_OR_STRING)]}
            return {"allOf": [_ref(self.message(fd.message_type, path))], "default": {}}
        if fd.type == FieldDescriptor.TYPE_ENUM:
            return {"type": "string", "enum": [v.name for v in fd.enum_type.values]}
        return dict(SCALARS.get(fd.type, {"type": "string"}))

    def field(self, fd: Any, path: tuple[str, ...]) -> dict[str, Any]:
        here = (*path, fd.json_name)
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            value_fd = fd.message_type.fields_by_name["value"]
            out: dict[str, Any] = {
                "type": "object",
                "additionalProperties": self.value(value_fd, here),
            }
            if f"{fd.containing_type.full_name}.{fd.name}" in codec.QUANTITY_FIELDS:
                out["additionalProperties"] = {"allOf": [_ref(QUANTITY)]}
        elif fd.is_repeated:
            item = self.value(fd, here)
            item.pop("default", None)
            out = {"type": "array", "items": item}
            key = patch.merge_key(path, fd.json_name)
            if key is not None and fd.message_type is not None:
                out["x-kubernetes-patch-merge-key"] = key
                out["x-kubernetes-patch-strategy"] = "merge"
                out["x-kubernetes-list-type"] = "map"
                out["x-kubernetes-list-map-keys"] = [key]
            elif fd.json_name in patch.PRIMITIVE_MERGE:
                out["x-kubernetes-patch-strategy"] = "merge"
                out["x-kubernetes-list-type"] = "set"
            else:
                out["x-kubernetes-list-type"] = "atomic"
        else:
            out = self.value(fd, here)
        text = protodocs.field_text(fd.containing_type, fd)
        if text:
            out["description"] = text
        return out

    def message(self, desc: Any, path: tuple[str, ...] = ()) -> str:
        name = schema_name(desc)
        if name in self.schemas:
            return name
        schema: dict[str, Any] = {"type": "object", "properties": {}}
        self.schemas[name] = schema  # before the fields: messages may nest themselves
        text = protodocs.message_doc(desc).text
        if text:
            schema["description"] = text
        for fd in desc.fields:
            schema["properties"][fd.json_name] = self.field(fd, path)
        return name


def _gvk(info: KindInfo) -> dict[str, str]:
    group, _, version = info.api_version.rpartition("/")
    return {"group": group, "kind": info.kind, "version": version}


@functools.cache
def document(group_version: str) -> bytes:
    """The OpenAPI v3 document of one group version, encoded."""
    builder = _Builder()
    kinds = [k for k in scheme.KINDS if k.api_version == group_version]
    paths: dict[str, Any] = {}
    for info in kinds:
        name = builder.message(info.message.DESCRIPTOR)
        builder.schemas[name]["x-kubernetes-group-version-kind"] = [_gvk(info)]
        paths.update(openapi_paths.paths(info, name, _gvk(info)))
    doc = {
        "openapi": "3.0.0",
        "info": {
            "title": "Kubernetes (tinykube)",
            "version": discovery.version_info("")["gitVersion"],
        },
        "paths": paths,
        "components": {"schemas": builder.schemas},
    }
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def _served() -> list[str]:
    return [
        gv for gv in discovery.group_versions() if any(k.api_version == gv for k in scheme.KINDS)
    ]


def index() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for gv in _served():
        prefix = f"apis/{gv}" if "/" in gv else f"api/{gv}"
        digest = hashlib.sha512(document(gv)).hexdigest()[:64].upper()
        out[prefix] = {"serverRelativeURL": f"/openapi/v3/{prefix}?hash={digest}"}
    return {"paths": out}


def serve(path: str) -> Response:
    """/openapi/v3 and /openapi/v3/<api|apis>/<group version>."""
    parts = path.strip("/").split("/")
    if parts[:2] == ["openapi", "v3"]:
        if len(parts) == 2:
            return Response(200, json.dumps(index()).encode())
        rest = parts[2:]
        gv = "/".join(rest[1:])
        core = bool(rest) and rest[0] == "api"
        if rest and rest[0] in ("api", "apis") and gv in _served() and core == ("/" not in gv):
            return Response(200, document(gv), headers=[("Cache-Control", "no-cache")])
    raise errors.NotFound("the server could not find the requested resource")
