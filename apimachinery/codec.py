"""The codec: Kubernetes YAML/JSON manifests <-> typed protobuf messages.

Kubernetes decodes a manifest strictly (kubectl's default since 1.25): an
unknown or misspelt field is an error that names the field's full path, and
a value of the wrong type names the path and the value. tinykube does the
same with its own walker over the protobuf descriptors, instead of
`google.protobuf.json_format`, because json_format reports
`Message type "tinykube.core.Container" has no field named "imagee"` -
true, but it does not tell the user *which* container in *which* document.

How it works: every field's proto3 `json_name` already equals Kubernetes'
JSON name (containerPort, clusterIP, podCIDR, matchLabels), so a message
descriptor gives a table json_name -> field. `_Decoder` walks the data and
the descriptor together, carrying the path as a list of steps (field names,
list indices, map keys). Problems are collected, not raised at the first
one, so a manifest with three typos reports all three, as Kubernetes'
strict decoder does. Paths print in Kubernetes' style:

    spec.template.spec.containers[0].ports[0].containerPort
    metadata.labels[app]

Special types (see codec_values for the rules): tinykube.meta.IntOrString
is a JSON int or string; google.protobuf.Timestamp is RFC 3339 text; bytes
are base64; `map<string,string>` values must be strings (Kubernetes rejects
`version: 1` in labels; the message says to quote it), except quantity maps
(resources.limits/requests, capacity) which take numbers like `cpu: 1`.
YAML `null` for a field means "unset".

Output (`to_dict`) is Kubernetes' JSON form: fields in proto order, which is
Kubernetes' order (apiVersion, kind, metadata, spec, status); zero scalars,
empty lists and maps omitted (Go's `omitempty`); proto3 `optional` fields
and set sub-messages emitted even when zero or empty (`emptyDir: {}` means
something). A few status fields have no `omitempty` in Kubernetes' Go types
and typed clients require them (the Python client refuses a ContainerStatus
without `restartCount`): those in EMIT_ZERO are written even when zero.
`from_dict(to_dict(x)) == x` holds for every message.

Worked example:

    >>> decode_documents("apiVersion: apps/v1\\nkind: Deployment\\n"
    ...                  "spec:\\n  replicass: 2\\n", "web.yaml")
    DecodeError: web.yaml: document 1: unknown field "spec.replicass" (line 4)
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

import yaml
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from apimachinery import errors, scheme, yamlio
from apimachinery.codec_values import (
    WrongValue,
    from_bytes,
    from_int_or_string,
    from_timestamp,
    shown,
    to_bool,
    to_bytes,
    to_float,
    to_int,
    to_int_or_string,
    to_str,
    to_timestamp,
)

TIMESTAMP = "google.protobuf.Timestamp"
INT_OR_STRING = "tinykube.meta.IntOrString"
# Fields holding resource.Quantity values: they accept JSON numbers too.
QUANTITY_FIELDS = frozenset(
    {
        "tinykube.core.ResourceRequirements.limits",
        "tinykube.core.ResourceRequirements.requests",
        "tinykube.core.NodeStatus.capacity",
        "tinykube.core.NodeStatus.allocatable",
        "tinykube.core.EmptyDirVolumeSource.size_limit",
        "tinykube.core.ResourceFieldSelector.divisor",
    }
)
_INTS = frozenset(
    {
        FieldDescriptor.CPPTYPE_INT32,
        FieldDescriptor.CPPTYPE_INT64,
        FieldDescriptor.CPPTYPE_UINT32,
        FieldDescriptor.CPPTYPE_UINT64,
    }
)

Step = str | int


class MapKey(str):
    """A path step that is a map key: rendered `labels[app]`, not `labels.app`."""


def render_path(path: list[Step]) -> str:
    out = ""
    for step in path:
        if isinstance(step, (int, MapKey)):
            out += f"[{step}]"
        else:
            out += f".{step}" if out else step
    return out


class DecodeError(errors.BadRequest):
    """A manifest that cannot become a message; the text names source, document, line, path.

    Attributes: `source`, `document` (1-based, None outside decode_documents),
    `line` (1-based, of the first problem, when known) and `problems` (one
    line of text per problem, without the source prefix).
    """

    def __init__(
        self,
        message: str,
        *,
        source: str = "-",
        document: int | None = None,
        line: int | None = None,
        problems: list[str] | None = None,
    ) -> None:
        super().__init__(message)
        self.source = source
        self.document = document
        self.line = line
        self.problems = list(problems or [])


class _Problem:
    def __init__(self, path: list[Step], text: str) -> None:
        self.path = path
        self.text = text


@functools.cache
def _json_fields(descriptor: Any) -> dict[str, Any]:
    return {f.json_name: f for f in descriptor.fields}


def _is_map(fd: Any) -> bool:
    return fd.message_type is not None and fd.message_type.GetOptions().map_entry


class _Decoder:
    """One walk over one document; collects problems instead of stopping at the first."""

    def __init__(self) -> None:
        self.problems: list[_Problem] = []

    def wrong(self, path: list[Step], value: Any, expected: str) -> None:
        err = errors.invalid(render_path(path), shown(value), expected)
        self.problems.append(_Problem(path, str(err)))

    def message(self, msg: Message, data: Any, path: list[Step]) -> None:
        if not isinstance(data, Mapping):
            self.wrong(path, data, "expected object")
            return
        fields = _json_fields(msg.DESCRIPTOR)
        for key, value in data.items():
            fd = fields.get(key) if isinstance(key, str) else None
            here = [*path, str(key)]
            if fd is None:
                self.problems.append(_Problem(here, f'unknown field "{render_path(here)}"'))
            elif value is not None:
                self.field(msg, fd, value, here)

    def field(self, msg: Message, fd: Any, value: Any, path: list[Step]) -> None:
        if _is_map(fd):
            self.map_field(msg, fd, value, path)
        elif fd.is_repeated:
            if not isinstance(value, list):
                self.wrong(path, value, "expected list")
                return
            target = getattr(msg, fd.name)
            for i, item in enumerate(value):
                if fd.message_type is not None:
                    self.sub_message(target.add(), item, [*path, i])
                else:
                    converted = self.scalar(fd, item, [*path, i])
                    if converted is not None:
                        target.append(converted)
        elif fd.message_type is not None:
            sub = getattr(msg, fd.name)
            sub.SetInParent()
            self.sub_message(sub, value, path)
        else:
            converted = self.scalar(fd, value, path)
            if converted is not None:
                setattr(msg, fd.name, converted)

    def sub_message(self, sub: Message, value: Any, path: list[Step]) -> None:
        name = sub.DESCRIPTOR.full_name
        try:
            if name == TIMESTAMP:
                to_timestamp(value, sub)  # type: ignore[arg-type]
            elif name == INT_OR_STRING:
                to_int_or_string(value, sub)  # type: ignore[arg-type]
            elif value is not None:
                self.message(sub, value, path)
        except WrongValue as exc:
            self.wrong(path, value, exc.expected)

    def map_field(self, msg: Message, fd: Any, value: Any, path: list[Step]) -> None:
        if not isinstance(value, Mapping):
            self.wrong(path, value, "expected object (a map of keys to values)")
            return
        target = getattr(msg, fd.name)
        value_fd = fd.message_type.fields_by_name["value"]
        quantity = fd.full_name in QUANTITY_FIELDS
        for key, item in value.items():
            here = [*path, MapKey(str(key))]
            if not isinstance(key, str):
                self.wrong(here, key, "expected a string map key; quote it in YAML")
                continue
            if value_fd.message_type is not None:
                self.sub_message(target[key], item, here)
                continue
            converted = self.scalar(value_fd, item, here, quantity=quantity)
            if converted is not None:
                target[key] = converted

    def scalar(self, fd: Any, value: Any, path: list[Step], *, quantity: bool = False) -> Any:
        """The field value for `value`; None (after recording a problem) when it is wrong."""
        if value is None:
            return fd.default_value
        quantity = quantity or fd.full_name in QUANTITY_FIELDS
        try:
            cpp = fd.cpp_type
            if cpp in _INTS:
                return to_int(value, cpp)
            if cpp == FieldDescriptor.CPPTYPE_BOOL:
                return to_bool(value)
            if cpp in (FieldDescriptor.CPPTYPE_FLOAT, FieldDescriptor.CPPTYPE_DOUBLE):
                return to_float(value)
            if cpp == FieldDescriptor.CPPTYPE_ENUM:
                return self.enum(fd, value)
            if fd.type == FieldDescriptor.TYPE_BYTES:
                return to_bytes(value)
            return to_str(value, quantity=quantity)
        except WrongValue as exc:
            self.wrong(path, value, exc.expected)
            return None

    @staticmethod
    def enum(fd: Any, value: Any) -> int:
        names = [v.name for v in fd.enum_type.values]
        if isinstance(value, str) and value in fd.enum_type.values_by_name:
            return int(fd.enum_type.values_by_name[value].number)
        raise WrongValue("expected one of " + ", ".join(names))


def _decode(data: Any, path: list[Step]) -> tuple[Message | None, list[_Problem]]:
    """One object (apiVersion + kind + fields) -> message, with the problems found."""
    decoder = _Decoder()
    if not isinstance(data, Mapping):
        got = "a list" if isinstance(data, list) else f"{type(data).__name__} {data!r}"
        text = f"expected an object with apiVersion and kind, got {got}"
        return None, [_Problem(path, text)]
    api_version, kind = data.get("apiVersion"), data.get("kind")
    missing = [f"{n} not set" for n, v in (("apiVersion", api_version), ("kind", kind)) if not v]
    if missing:
        return None, [_Problem(path, ", ".join(missing))]
    if not isinstance(api_version, str) or not isinstance(kind, str):
        bad = "apiVersion" if not isinstance(api_version, str) else "kind"
        decoder.wrong([*path, bad], data[bad], "expected string")
        return None, decoder.problems
    try:
        info = scheme.for_kind(api_version, kind)
    except errors.BadRequest as exc:
        return None, [_Problem([*path, "kind"], exc.message)]
    msg = info.message()
    decoder.message(msg, data, path)
    return msg, decoder.problems


def _expand(data: Any) -> list[tuple[list[Step], Any]]:
    """A `kind: List` document (kubectl's v1 List) as its items; anything else as itself."""
    if isinstance(data, Mapping) and data.get("kind") == "List" and data.get("apiVersion") == "v1":
        items = data.get("items") or []
        if isinstance(items, list):
            return [(["items", i], item) for i, item in enumerate(items)]
    return [([], data)]


def from_dict(data: Mapping[str, Any], source: str = "-") -> Message:
    """One document's data -> its typed message; DecodeError naming every problem."""
    msg, problems = _decode(data, [])
    if problems or msg is None:
        texts = [p.text for p in problems]
        prefix = "" if source in ("", "-") else f"{source}: "
        raise DecodeError(prefix + "; ".join(texts), source=source, problems=texts)
    return msg


def from_dict_as(data: Mapping[str, Any], message: type[Message], source: str = "-") -> Message:
    """`data` decoded strictly as `message`, whatever kind it names: for the bodies of
    subresources (a pod's Binding, a Scale), whose kinds are not stored kinds of the
    scheme. DecodeError naming every problem, as from_dict."""
    decoder = _Decoder()
    msg = message()
    decoder.message(msg, data, [])
    if decoder.problems:
        texts = [p.text for p in decoder.problems]
        prefix = "" if source in ("", "-") else f"{source}: "
        raise DecodeError(prefix + "; ".join(texts), source=source, problems=texts)
    return msg


def _json_document(text: str) -> Any:
    """The data of a text that is one JSON object, or None to read it as YAML.

    JSON is YAML, but YAML's reader refuses characters JSON allows raw (DEL,
    C1 controls) and mishandles escaped surrogate pairs (emoji), so a text
    that parses as JSON is taken as JSON; YAML then only supplies line numbers.
    """
    if not text.lstrip().startswith("{"):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def decode_documents(text: str, source: str = "-") -> list[Message]:
    """Every object in a multi-document YAML (or JSON) text, in order.

    Empty documents are skipped; `kind: List` documents are expanded. The
    first document with problems raises DecodeError naming the source, the
    document number (1-based) and the line of the first problem.
    """
    json_data = _json_document(text)
    if json_data is not None:
        return _decode_all(text, source, [(None, json_data)])
    try:
        documents = list(yamlio.iter_documents(text))
    except yaml.YAMLError as exc:
        line = yamlio.mark_line(exc)
        problem = getattr(exc, "problem", None) or str(exc)
        where = f"line {line}: " if line else ""
        message = f"{source}: error parsing YAML: {where}{problem}"
        number = _count_documents_before(text, line)
        raise DecodeError(
            message, source=source, document=number, line=line, problems=[problem]
        ) from None
    return _decode_all(text, source, documents)


def _count_documents_before(text: str, line: int | None) -> int:
    """The 1-based document a line falls in, counting `---` separators before it."""
    lines = text.splitlines()[: (line or 1) - 1]
    starts = [i for i, ln in enumerate(lines) if ln.startswith("---")]
    leading = (
        1
        if starts and not any(ln.strip() and not ln.startswith("#") for ln in lines[: starts[0]])
        else 0
    )
    return len(starts) - leading + 1


def _decode_all(
    text: str, source: str, documents: list[tuple[yaml.Node | None, Any]]
) -> list[Message]:
    out: list[Message] = []
    for number, (node, data) in enumerate(documents, start=1):
        if data is None:
            continue
        for prefix, item in _expand(data):
            msg, problems = _decode(item, prefix)
            if problems or msg is None:
                if node is None:
                    node = _compose_quietly(text)
                raise _document_error(source, number, node, problems)
            out.append(msg)
    return out


def _compose_quietly(text: str) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=yamlio.Loader)
    except yaml.YAMLError:
        return None


def _document_error(
    source: str, number: int, node: yaml.Node | None, problems: list[_Problem]
) -> DecodeError:
    texts: list[str] = []
    first_line: int | None = None
    for p in problems:
        line = yamlio.line_of(node, p.path)
        first_line = first_line or line
        texts.append(f"{p.text} (line {line})" if line else p.text)
    message = f"{source}: document {number}: " + "; ".join(texts)
    return DecodeError(
        message,
        source=source,
        document=number,
        line=first_line,
        problems=[p.text for p in problems],
    )


# message -> fields written even at their zero value (no `omitempty` in Kubernetes' Go types).
EMIT_ZERO: dict[str, frozenset[str]] = {
    "tinykube.core.ContainerStatus": frozenset(
        {"name", "ready", "restart_count", "image", "image_id"}
    ),
    "tinykube.apps.ReplicaSetStatus": frozenset({"replicas"}),
    "tinykube.core.NodeSystemInfo": frozenset(
        {
            "machine_id",
            "system_uuid",
            "boot_id",
            "kernel_version",
            "os_image",
            "container_runtime_version",
            "kubelet_version",
            "kube_proxy_version",
            "operating_system",
            "architecture",
        }
    ),
}


def _encode(msg: Message) -> Any:
    name = msg.DESCRIPTOR.full_name
    if name == TIMESTAMP:
        return from_timestamp(msg)  # type: ignore[arg-type]
    if name == INT_OR_STRING:
        return from_int_or_string(msg)  # type: ignore[arg-type]
    out: dict[str, Any] = {}
    fields: Any = msg.DESCRIPTOR.fields
    always = EMIT_ZERO.get(name, frozenset())
    for fd in fields:
        value = getattr(msg, fd.name)
        if _is_map(fd):
            if len(value):
                value_fd = fd.message_type.fields_by_name["value"]
                out[fd.json_name] = {k: _encode_value(value_fd, value[k]) for k in sorted(value)}
        elif fd.is_repeated:
            if len(value):
                out[fd.json_name] = [_encode_value(fd, v) for v in value]
        elif fd.message_type is not None or fd.has_presence:
            if msg.HasField(fd.name):
                out[fd.json_name] = _encode_value(fd, value)
        elif value != fd.default_value or fd.name in always:
            out[fd.json_name] = _encode_value(fd, value)
    return out


def _encode_value(fd: Any, value: Any) -> Any:
    if fd.message_type is not None:
        return _encode(value)
    if fd.type == FieldDescriptor.TYPE_BYTES:
        return from_bytes(value)
    if fd.cpp_type == FieldDescriptor.CPPTYPE_ENUM:
        enum_value = fd.enum_type.values_by_number.get(value)
        return enum_value.name if enum_value is not None else value
    return value


def to_dict(obj: Message) -> dict[str, Any]:
    """Kubernetes' JSON form of a message (see the module notes for the rules)."""
    out = _encode(obj)
    return out if isinstance(out, dict) else {"value": out}


def to_yaml(obj: Message) -> str:
    """YAML as kubectl prints it: apiVersion, kind, metadata, spec, status."""
    return yamlio.dump(to_dict(obj))


def to_json(obj: Message) -> str:
    """Indented JSON as `kubectl get -o json` prints it."""
    return json.dumps(to_dict(obj), indent=4, ensure_ascii=False)
