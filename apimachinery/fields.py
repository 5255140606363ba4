"""Field selectors (k8s.io/apimachinery/pkg/fields): `spec.nodeName=node1,status.phase!=Running`.

A field selector filters objects by a few well-known fields, each kind
publishing its own small set (`object_fields`). The kubelet watches
`spec.nodeName=<its node>` to see only its pods; `kubectl get events
--field-selector involvedObject.name=web` finds one object's events.

Grammar (Kubernetes'): terms separated by `,`, each `field=value`,
`field==value` or `field!=value`. The operator found first wins in the
order `!=`, `==`, `=`, so `a==b` is an equality and never "a" = "=b".
A backslash escapes `,`, `=` and `\\` inside values (`note=a\\,b`).

Matching uses Kubernetes' semantics: a field the object does not have reads
as "", so `spec.nodeName=` selects unscheduled pods and `x!=y` matches
objects without x. An empty selector matches everything.

Worked example:

    sel = parse("spec.nodeName=node1,status.phase!=Succeeded")
    sel.matches({"spec.nodeName": "node1", "status.phase": "Running"})   -> True
    sel.matches({"spec.nodeName": "node2", "status.phase": "Running"})   -> False
    sel.requires_exact_match("spec.nodeName")                            -> "node1"

`check_supported(sel, kind)` rejects a field the kind does not publish with
Kubernetes' message `field label not supported: <field>`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message

from apimachinery import errors, scheme

EQUALS = "="
DOUBLE_EQUALS = "=="
NOT_EQUALS = "!="

# The fields each kind publishes, beyond metadata.name and metadata.namespace.
KIND_FIELDS: dict[str, tuple[str, ...]] = {
    "Pod": (
        "spec.nodeName",
        "spec.schedulerName",
        "spec.restartPolicy",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    ),
    "Node": ("spec.unschedulable",),
    "Event": (
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    ),
    "Secret": ("type",),
    "Namespace": ("status.phase",),
    "ReplicaSet": ("status.replicas",),
}


@dataclass(frozen=True)
class Term:
    field: str
    operator: str
    value: str

    def matches(self, fields: Mapping[str, str]) -> bool:
        have = fields.get(self.field, "")
        return have != self.value if self.operator == NOT_EQUALS else have == self.value

    def __str__(self) -> str:
        return f"{self.field}{self.operator}{_escape(self.value)}"


class FieldSelector:
    """A conjunction of field terms; see the module notes."""

    def __init__(self, terms: Iterable[Term] = ()) -> None:
        self.terms: tuple[Term, ...] = tuple(sorted(terms, key=lambda t: (t.field, t.operator)))

    def matches(self, fields: Mapping[str, str]) -> bool:
        return all(t.matches(fields) for t in self.terms)

    def empty(self) -> bool:
        return not self.terms

    def requires_exact_match(self, field: str) -> str | None:
        """The value `field` must equal, when a term pins it (for indexed lookups)."""
        for t in self.terms:
            if t.field == field and t.operator in (EQUALS, DOUBLE_EQUALS):
                return t.value
        return None

    def __str__(self) -> str:
        return ",".join(str(t) for t in self.terms)

    def __repr__(self) -> str:
        return f"FieldSelector({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FieldSelector) and self.terms == other.terms

    def __hash__(self) -> int:
        return hash(self.terms)


def everything() -> FieldSelector:
    return FieldSelector()


def one_term_equal(field: str, value: str) -> FieldSelector:
    """`field=value`, as fields.OneTermEqualSelector (the kubelet's spec.nodeName watch)."""
    return FieldSelector([Term(field, EQUALS, value)])


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def _split_terms(text: str) -> list[str]:
    """Split on unescaped commas, keeping escapes for the next step."""
    terms: list[str] = []
    current = ""
    escaped = False
    for ch in text:
        if escaped:
            current += "\\" + ch
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ",":
            terms.append(current)
            current = ""
        else:
            current += ch
    if escaped:
        current += "\\"
    terms.append(current)
    return terms


def _unescape(value: str, original: str) -> str:
    out = ""
    i = 0
    while i < len(value):
        ch = value[i]
        if ch == "\\":
            if i + 1 >= len(value) or value[i + 1] not in "\\,=":
                raise errors.BadRequest(
                    f"invalid field selector: '{original}'; invalid escape sequence"
                )
            out += value[i + 1]
            i += 2
        else:
            if ch in ",=":
                raise errors.BadRequest(
                    f"invalid field selector: '{original}'; unescaped '{ch}' in value"
                )
            out += ch
            i += 1
    return out


def _find_operator(term: str) -> tuple[int, str] | None:
    """The leftmost unescaped operator in a term, preferring `!=` and `==` over `=`."""
    i = 0
    while i < len(term):
        if term[i] == "\\":
            i += 2
            continue
        for op in (NOT_EQUALS, DOUBLE_EQUALS, EQUALS):
            if term.startswith(op, i):
                return i, op
        i += 1
    return None


def parse(text: str) -> FieldSelector:
    """The selector a `--field-selector` text describes; BadRequest on a malformed term."""
    if not text.strip():
        return FieldSelector()
    terms: list[Term] = []
    for raw in _split_terms(text):
        found = _find_operator(raw)
        if found is None:
            raise errors.BadRequest(f"invalid selector: '{text}'; can't understand '{raw}'")
        index, op = found
        field = raw[:index].strip()
        if not field:
            raise errors.BadRequest(f"invalid selector: '{text}'; can't understand '{raw}'")
        terms.append(Term(field, op, _unescape(raw[index + len(op) :], text)))
    return FieldSelector(terms)


def _get(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


_ATTRS: dict[str, str] = {
    "spec.nodeName": "spec.node_name",
    "spec.schedulerName": "spec.scheduler_name",
    "spec.restartPolicy": "spec.restart_policy",
    "spec.serviceAccountName": "spec.service_account_name",
    "spec.hostNetwork": "spec.host_network",
    "spec.unschedulable": "spec.unschedulable",
    "status.phase": "status.phase",
    "status.podIP": "status.pod_ip",
    "status.nominatedNodeName": "status.nominated_node_name",
    "status.replicas": "status.replicas",
    "involvedObject.kind": "involved_object.kind",
    "involvedObject.namespace": "involved_object.namespace",
    "involvedObject.name": "involved_object.name",
    "involvedObject.uid": "involved_object.uid",
    "involvedObject.apiVersion": "involved_object.api_version",
    "involvedObject.resourceVersion": "involved_object.resource_version",
    "involvedObject.fieldPath": "involved_object.field_path",
    "reason": "reason",
    "reportingComponent": "reporting_component",
    "source": "source.component",
    "type": "type",
}


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def object_fields(obj: Message) -> dict[str, str]:
    """The selectable fields of an object: metadata.name, metadata.namespace and its kind's."""
    meta = obj.metadata  # type: ignore[attr-defined]
    out = {"metadata.name": meta.name, "metadata.namespace": meta.namespace}
    kind = _kind_of(obj)
    for field in KIND_FIELDS.get(kind, ()):
        out[field] = _text(_get(obj, _ATTRS[field]))
    return out


def _kind_of(obj: Message) -> str:
    try:
        return scheme.for_message(obj).kind
    except errors.BadRequest:
        return ""


def supported_fields(kind: str) -> frozenset[str]:
    return frozenset(("metadata.name", "metadata.namespace", *KIND_FIELDS.get(kind, ())))


def check_supported(sel: FieldSelector, kind: str) -> None:
    """BadRequest `field label not supported: X` for a field `kind` does not publish."""
    allowed = supported_fields(kind)
    for t in sel.terms:
        if t.field not in allowed:
            raise errors.BadRequest(f"field label not supported: {t.field}")
