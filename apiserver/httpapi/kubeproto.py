"""Kubernetes' protobuf bodies: what client-go's typed clients send, read as the JSON they mean.

client-go's typed clientset sends built-in kinds as protobuf
(`Content-Type: application/vnd.kubernetes.protobuf`), while kubectl's
generic verbs (apply, create -f, patch, delete) send JSON. So the protobuf
bodies kubectl sends are those of its typed commands: `kubectl create
deployment|service|configmap|secret|namespace`, `kubectl drain` (an
Eviction per pod), `kubectl auth can-i` (a SelfSubjectAccessReview), `kubectl
auth whoami`, `kubectl certificate approve` (a CertificateSigningRequest),
deletes with DeleteOptions and scales with a Scale.

The envelope (k8s.io/apimachinery runtime/serializer/protobuf): four magic
bytes `k8s\\0`, then a runtime.Unknown message

    1: typeMeta {1: apiVersion, 2: kind}     2: raw (the object's own encoding)
    3: contentEncoding                        4: contentType

and `raw` is the object in Kubernetes' generated.proto field numbers -- not
ours: protos/*.proto share Kubernetes' JSON names but number fields their own
way. So the body is not parsed into one of our messages directly. It is
turned into the JSON the same client would have sent, with the field table of
kubeproto_schema.py, and that JSON takes the JSON body's path (body.py): the
URL's kind checked against the body's, then strict decoding into our message,
validation, admission. One decoder for both formats means one set of rules:

    k8s\\0 + Unknown{typeMeta: apps/v1 Deployment, raw}
      -> raw, field by field: 1 -> metadata (ObjectMeta), 2 -> spec (DeploymentSpec) ...
      -> {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {...}, "spec": {...}}
      -> codec.from_dict (strict) -> apps_pb2.Deployment

Fields Kubernetes has and tinykube does not model never vanish silently:

* A zero value in a field that is not a Go pointer is dropped: Go's
  marshaller writes those whether set or not (every ObjectMeta carries
  `selfLink: ""`, every PodSpec `hostNetwork: false`), and its JSON would have
  left them out. That is "accept when empty/default", and it has to be: every
  body kubectl sends carries dozens of such fields.
* Any other value keeps its JSON name, so strict decoding refuses it as it
  refuses a JSON body with the field: 400 BadRequest `strict decoding error:
  unknown field "spec.template.spec.hostUsers"`. 400, not 422: Kubernetes
  answers strict decoding errors (fieldValidation=Strict, kubectl's default)
  with 400; 422 Invalid is for objects that decode but fail validation.
* A field number the table does not know (a release newer than the table)
  is dropped when empty and otherwise a 400 naming its number and where:
  `unknown field number 45 in "spec.template.spec"`.

An envelope that cannot be read at all (no magic, a broken Unknown) is 415
UnsupportedMediaType, as the server has always answered it; a readable envelope
with a broken or unknown object inside is 400, as in Kubernetes.

Answers stay JSON: client-go's typed clients ask `Accept:
application/vnd.kubernetes.protobuf, application/json` and read whichever
Content-Type comes back, so encoding protobuf would buy speed, not function.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from google.protobuf import timestamp_pb2

from apimachinery import errors, scheme
from apimachinery.codec_values import from_timestamp
from apiserver.httpapi.kubeproto_schema import MESSAGES, REQUEST_KINDS, FieldSpec
from apiserver.httpapi.status import UnsupportedMediaType

MAGIC = b"k8s\x00"
PROTOBUF = "application/vnd.kubernetes.protobuf"
ROOTS = frozenset({info.kind for info in scheme.KINDS} | set(REQUEST_KINDS))
MAX_DEPTH = 64  # deeper nesting than any Kubernetes object: refused before Python's stack
VARINT, FIXED64, BYTES, FIXED32 = 0, 1, 2, 5
_VARINT_TYPES = ("i", "b")


class _Reader:
    """Protobuf's wire format: each field a varint key (number << 3 | wire type), then a
    varint (type 0), 8 bytes (1), a length-delimited payload (2) or 4 bytes (5)."""

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
            if number == 0:
                raise ValueError("field number 0")
            if wire == VARINT:
                value: Any = self.varint()
            elif wire in (BYTES, FIXED64, FIXED32):
                size = self.varint() if wire == BYTES else (8 if wire == FIXED64 else 4)
                if self.pos + size > len(self.data):
                    raise ValueError("truncated field")
                value = self.data[self.pos : self.pos + size]
                self.pos += size
            else:
                raise ValueError(f"unsupported wire type {wire}")
            out.append((number, wire, value))
        return out


def _signed(value: int) -> int:
    """Go writes a negative int32/int64 as its 64-bit two's complement."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _empty(wire: int, value: Any, depth: int = 0) -> bool:
    """Whether a field of unknown type holds only zeros: 0, no bytes, or a message of zeros."""
    if wire == VARINT:
        return bool(value == 0)
    if wire in (FIXED64, FIXED32):
        return not any(value)
    if not value:
        return True
    if depth >= MAX_DEPTH:
        return False
    try:
        inner = _Reader(value).fields()
    except ValueError:
        return False  # not a message: a non-empty string or bytes
    return all(_empty(w, v, depth + 1) for _, w, v in inner)


def _text(path: list[str]) -> str:
    return ".".join(path) or "the object"


class _Decoder:
    """One body's walk; problems are collected with their paths, as strict JSON decoding does."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def message(self, raw: bytes, name: str, path: list[str], depth: int = 0) -> dict[str, Any]:
        if depth > MAX_DEPTH:
            raise ValueError(f"{_text(path)} is nested more than {MAX_DEPTH} deep")
        table = MESSAGES[name]
        out: dict[str, Any] = {}
        for number, wire, value in _Reader(raw).fields():
            spec = table.get(number)
            if spec is None:
                if not _empty(wire, value):
                    self.problems.append(f'unknown field number {number} in "{_text(path)}"')
                continue
            here = path if spec.inline else [*path, spec.name]
            if spec.shape == "[]":
                items = out.setdefault(spec.name, [])
                here = [*path, f"{spec.name}[{len(items)}]"]
                items.extend(self.items(spec, wire, value, here, depth))
            elif spec.shape == "{}":
                key, item = self.entry(spec, wire, value, here, depth)
                out.setdefault(spec.name, {})[key] = item
            else:
                decoded = self.value(spec, wire, value, here, depth)
                if spec.inline and isinstance(decoded, dict):
                    out.update(decoded)
                elif decoded is not None and (spec.pointer or not _zero(decoded)):
                    out[spec.name] = decoded
                else:
                    out.pop(spec.name, None)  # a later zero overrides, as the last value wins
        return out

    def items(
        self, spec: FieldSpec, wire: int, value: Any, path: list[str], depth: int
    ) -> list[Any]:
        if spec.type in _VARINT_TYPES and wire == BYTES:  # packed: the varints in one payload
            reader = _Reader(value)
            packed: list[int] = []
            while reader.pos < len(value):
                packed.append(reader.varint())
            return [self.value(spec, VARINT, item, path, depth) for item in packed]
        item = self.value(spec, wire, value, path, depth)
        return [{} if item is None else item]  # an element is a value, even an empty one

    def entry(
        self, spec: FieldSpec, wire: int, value: Any, path: list[str], depth: int
    ) -> tuple[str, Any]:
        """One map entry, a message {1: key, 2: value}; a missing part is its type's zero."""
        _expect(wire, BYTES, spec, path)
        parts = {n: (w, v) for n, w, v in _Reader(value).fields()}
        key_wire, key_raw = parts.get(1, (BYTES, b""))
        _expect(key_wire, BYTES, spec, path)
        key = _utf8(key_raw, path)
        zero = (VARINT, 0) if spec.type in _VARINT_TYPES else (BYTES, b"")
        item_wire, item = parts.get(2, zero)
        decoded = self.value(spec, item_wire, item, [*path[:-1], f"{path[-1]}[{key}]"], depth)
        return key, "" if decoded is None else decoded

    def value(self, spec: FieldSpec, wire: int, value: Any, path: list[str], depth: int) -> Any:
        kind = spec.type
        if kind in _VARINT_TYPES:
            _expect(wire, VARINT, spec, path)
            return bool(value) if kind == "b" else _signed(value)
        _expect(wire, BYTES, spec, path)
        if kind == "s":
            return _utf8(value, path)
        if kind == "y":
            return base64.b64encode(value).decode()
        if kind in LEAF_MESSAGES:
            return LEAF_MESSAGES[kind](_Reader(value).fields(), path)
        if kind == "?":
            return None if _empty(BYTES, value) else {}
        return self.message(value, kind, path, depth + 1)


def _expect(wire: int, expected: int, spec: FieldSpec, path: list[str]) -> None:
    if wire != expected:
        raise ValueError(f"{_text(path)}: wire type {wire}, expected {expected} for {spec.type}")


def _utf8(value: bytes, path: list[str]) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{_text(path)}: invalid UTF-8") from None


def _zero(value: Any) -> bool:
    return value in ("", 0, {})  # False == 0


def _time(fields: list[tuple[int, int, Any]], path: list[str]) -> str | None:
    parts = {n: v for n, w, v in fields if w == VARINT}
    seconds, nanos = _signed(parts.get(1, 0)), _signed(parts.get(2, 0))
    if not seconds and not nanos:
        return None  # Go's zero Time: JSON null
    if not 0 <= nanos < 10**9 or not -62135596800 <= seconds <= 253402300799:
        raise ValueError(f"{_text(path)}: time out of range")
    return from_timestamp(timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos))


def _quantity(fields: list[tuple[int, int, Any]], path: list[str]) -> str:
    return "".join(_utf8(v, path) for n, w, v in fields if n == 1 and w == BYTES)


def _int_or_string(fields: list[tuple[int, int, Any]], path: list[str]) -> int | str:
    parts = {n: v for n, _, v in fields}
    if parts.get(1, 0) == 1:
        return _utf8(parts.get(3, b""), path)
    return _signed(parts.get(2, 0))


def _fields_v1(fields: list[tuple[int, int, Any]], path: list[str]) -> Any:
    raw = b"".join(v for n, w, v in fields if n == 1 and w == BYTES)
    try:
        return json.loads(raw) if raw else {}
    except ValueError:
        raise ValueError(f"{_text(path)}: not JSON") from None


def _strings(fields: list[tuple[int, int, Any]], path: list[str]) -> list[str]:
    return [_utf8(v, path) for n, w, v in fields if n == 1 and w == BYTES]


LEAF_MESSAGES: dict[str, Any] = {
    "time": _time,
    "qty": _quantity,
    "ios": _int_or_string,
    "fields": _fields_v1,
    "strs": _strings,
}


def _envelope(body: bytes) -> tuple[str, str, bytes]:
    """(apiVersion, kind, raw) of a k8s-protobuf body; 415 when it is not one."""
    try:
        if not body.startswith(MAGIC):
            raise ValueError(f"no k8s protobuf magic ({MAGIC!r})")
        fields = {n: v for n, w, v in _Reader(body[len(MAGIC) :]).fields() if w == BYTES}
        type_meta = {n: v for n, w, v in _Reader(fields.get(1, b"")).fields() if w == BYTES}
        api_version = type_meta.get(1, b"").decode("utf-8")
        kind = type_meta.get(2, b"").decode("utf-8")
    except (ValueError, UnicodeDecodeError) as err:
        raise UnsupportedMediaType(f"the protobuf body could not be read: {err}") from None
    return api_version, kind, fields.get(2, b"")


def to_data(body: bytes) -> dict[str, Any]:
    """The JSON-equivalent data of a protobuf body (see the module notes for the rules)."""
    api_version, kind, raw = _envelope(body)
    if kind not in ROOTS:
        raise errors.BadRequest(
            f'no kind "{kind}" is registered for version "{api_version}" in scheme'
            if kind
            else "the protobuf body names no kind"
        )
    decoder = _Decoder()
    try:
        data = decoder.message(raw, kind, [])
    except ValueError as err:
        raise errors.BadRequest(
            f"the {kind} in the protobuf body could not be read: {err}"
        ) from None
    if decoder.problems:
        raise errors.BadRequest("strict decoding error: " + ", ".join(decoder.problems))
    return {"apiVersion": api_version, "kind": kind, **data}
