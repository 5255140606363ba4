"""Kubernetes' protobuf bodies, for the few kinds kubectl's typed clients send that way.

client-go's typed clientset sends built-in kinds as protobuf
(`Content-Type: application/vnd.kubernetes.protobuf`), while kubectl's
generic verbs (apply, create -f, patch, delete) send JSON. The typed
requests kubectl makes with a body are questions and options:
`kubectl auth can-i` (a SelfSubjectAccessReview), `kubectl auth whoami`
(a SelfSubjectReview), deletes with DeleteOptions, a Scale, and the
simple objects of `kubectl create namespace|configmap|secret`. This module
reads exactly those; any other kind in protobuf (`kubectl create
deployment`, `kubectl certificate approve`) is 415 with a message saying
to send JSON.

The envelope (k8s.io/apimachinery runtime/serializer/protobuf): four magic
bytes `k8s\\0`, then a runtime.Unknown message

    1: typeMeta {1: apiVersion, 2: kind}     2: raw (the object's own encoding)
    3: contentEncoding                        4: contentType

and `raw` is the object in Kubernetes' generated.proto field numbers (not
ours: those follow protos/*.proto). The wire format itself is protobuf's:
each field a varint key (number << 3 | wire type) followed by a varint
(type 0), 8 bytes (1), a length-delimited payload (2) or 4 bytes (5).
`SCHEMAS` maps field numbers to JSON names for the kinds read here, and
`to_data` turns a body into the same dict a JSON body would have given.
"""

from __future__ import annotations

import base64
from typing import Any, Union

from apiserver.httpapi.status import UnsupportedMediaType

MAGIC = b"k8s\x00"
PROTOBUF = "application/vnd.kubernetes.protobuf"
# field number -> (JSON name, what it holds: "string", "int", "bool", "repeated-string" or a schema)
Schema = dict[int, tuple[str, Union[str, "Schema"]]]

OBJECT_META: Schema = {
    1: ("name", "string"),
    2: ("generateName", "string"),
    3: ("namespace", "string"),
    5: ("uid", "string"),
    6: ("resourceVersion", "string"),
    11: ("labels", "map-string"),
    12: ("annotations", "map-string"),
    14: ("finalizers", "repeated-string"),
}
RESOURCE_ATTRIBUTES: Schema = {
    1: ("namespace", "string"),
    2: ("verb", "string"),
    3: ("group", "string"),
    4: ("version", "string"),
    5: ("resource", "string"),
    6: ("subresource", "string"),
    7: ("name", "string"),
}
NON_RESOURCE_ATTRIBUTES: Schema = {1: ("path", "string"), 2: ("verb", "string")}
SCHEMAS: dict[str, Schema] = {
    "SelfSubjectAccessReview": {
        1: ("metadata", OBJECT_META),
        2: (
            "spec",
            {
                1: ("resourceAttributes", RESOURCE_ATTRIBUTES),
                2: ("nonResourceAttributes", NON_RESOURCE_ATTRIBUTES),
            },
        ),
    },
    "SelfSubjectReview": {1: ("metadata", OBJECT_META)},
    "DeleteOptions": {
        1: ("gracePeriodSeconds", "int"),
        2: ("preconditions", {1: ("uid", "string"), 2: ("resourceVersion", "string")}),
        3: ("orphanDependents", "bool"),
        4: ("propagationPolicy", "string"),
        5: ("dryRun", "repeated-string"),
    },
    "Scale": {1: ("metadata", OBJECT_META), 2: ("spec", {1: ("replicas", "int")})},
    # kubectl create namespace / configmap / secret
    "Namespace": {
        1: ("metadata", OBJECT_META),
        2: ("spec", {1: ("finalizers", "repeated-string")}),
    },
    "ConfigMap": {
        1: ("metadata", OBJECT_META),
        2: ("data", "map-string"),
        3: ("binaryData", "map-bytes"),
        4: ("immutable", "bool"),
    },
    "Secret": {
        1: ("metadata", OBJECT_META),
        2: ("data", "map-bytes"),
        3: ("type", "string"),
        4: ("stringData", "map-string"),
        5: ("immutable", "bool"),
    },
}


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def varint(self) -> int:
        shift = result = 0
        while True:
            if self.pos >= len(self.data) or shift > 63:
                raise ValueError("truncated varint")
            byte = self.data[self.pos]
            self.pos += 1
            result |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return result

    def fields(self) -> list[tuple[int, int, Any]]:
        """Every (number, wire type, value) of a message: ints, or bytes for payloads."""
        out: list[tuple[int, int, Any]] = []
        while self.pos < len(self.data):
            key = self.varint()
            number, wire = key >> 3, key & 7
            if wire == 0:
                value: Any = self.varint()
            elif wire == 2:
                size = self.varint()
                if self.pos + size > len(self.data):
                    raise ValueError("truncated field")
                value = self.data[self.pos : self.pos + size]
                self.pos += size
            elif wire in (1, 5):
                width = 8 if wire == 1 else 4
                value = self.data[self.pos : self.pos + width]
                self.pos += width
            else:
                raise ValueError(f"unsupported wire type {wire}")
            out.append((number, wire, value))
        return out


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def decode(raw: bytes, schema: Schema) -> dict[str, Any]:
    """A message's fields named by `schema`; fields it does not name are skipped."""
    out: dict[str, Any] = {}
    for number, wire, value in _Reader(raw).fields():
        if number not in schema:
            continue
        name, kind = schema[number]
        if isinstance(kind, dict) and wire == 2:
            out[name] = decode(value, kind)
        elif kind == "string" and wire == 2:
            out[name] = value.decode("utf-8", "replace")
        elif kind == "repeated-string" and wire == 2:
            out.setdefault(name, []).append(value.decode("utf-8", "replace"))
        elif kind in ("map-string", "map-bytes") and wire == 2:
            entry = dict((n, v) for n, _, v in _Reader(value).fields())
            key = bytes(entry.get(1, b"")).decode("utf-8", "replace")
            raw = bytes(entry.get(2, b""))
            text = (
                raw.decode("utf-8", "replace")
                if kind == "map-string"
                else (base64.b64encode(raw).decode())
            )
            out.setdefault(name, {})[key] = text
        elif kind == "int" and wire == 0:
            out[name] = _signed(value)
        elif kind == "bool" and wire == 0:
            out[name] = bool(value)
    return out


def to_data(body: bytes) -> dict[str, Any]:
    """The JSON-equivalent data of a protobuf body; 415 for a kind not read here."""
    try:
        if not body.startswith(MAGIC):
            raise ValueError("no k8s protobuf magic")
        type_schema: Schema = {1: ("apiVersion", "string"), 2: ("kind", "string")}
        envelope = decode(body[len(MAGIC) :], {1: ("typeMeta", type_schema)})
        fields = dict((n, v) for n, _, v in _Reader(body[len(MAGIC) :]).fields())
        type_meta = envelope.get("typeMeta", {})
        kind = type_meta.get("kind", "")
        schema = SCHEMAS.get(kind)
        if schema is None:
            raise UnsupportedMediaType(
                f"{PROTOBUF} bodies are read only for {', '.join(SCHEMAS)}, not {kind or 'this'}"
                ": send application/json"
            )
        data = decode(fields.get(2, b""), schema)
    except ValueError as err:
        raise UnsupportedMediaType(f"the protobuf body could not be read: {err}") from None
    data["apiVersion"] = type_meta.get("apiVersion", "")
    data["kind"] = kind
    return data
