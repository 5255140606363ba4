"""Validation shared by every kind: ObjectMeta, labels, annotations, selectors.

Kubernetes' apimachinery/pkg/api/validation and .../apis/meta/v1/validation,
with their wording. Every function takes the field path of the thing it
checks (`metadata`, `spec.template.metadata`) and returns a list of
errors.FieldError, so callers simply concatenate.

Assumptions, stated once:

* Validation runs after the server's defaulting, but tolerates fields that
  defaulting would fill (an empty namespace, protocol, restartPolicy, ...):
  an empty value there means "the default", so `validate_object` gives the
  same answer on a manifest straight from a file (`--dry-run=client`) as on
  the stored object.
* `generateName` is resolved by the server before validation, so `name` is
  always required here.
* Values in messages render as Kubernetes prints them: strings quoted, maps
  in Go's `map[string]string{"app":"x"}` form (see GoMap).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from google.protobuf.message import Message

from apimachinery import codec, errors
from apimachinery.errors import FieldError
from apimachinery.validation_names import (
    is_dns1123_label,
    is_dns1123_subdomain,
    is_qualified_name,
    is_valid_label_value,
)
from protos import meta_pb2

TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024
NONNEGATIVE = "must be greater than or equal to 0"
IMMUTABLE = "field is immutable"

NameCheck = Callable[[str], list[str]]


class GoMap:
    """A map rendered as Go's %#v does: map[string]string{"a":"1", "b":"2"}."""

    def __init__(self, items: Mapping[str, str]) -> None:
        self.items = dict(items)

    def __str__(self) -> str:
        inner = ", ".join(f'"{k}":"{self.items[k]}"' for k in sorted(self.items))
        return "map[string]string{" + inner + "}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GoMap) and self.items == other.items

    def __hash__(self) -> int:
        return hash(tuple(sorted(self.items.items())))


class Shown:
    """Any value with a chosen rendering in a FieldError."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text


def has(msg: Message, field: str) -> bool:
    """msg.HasField(field) for a field named at run time."""
    return msg.HasField(field)


def not_found(path: str, value: object) -> FieldError:
    return FieldError(path, "Not found", "", value, True)


def nonnegative(value: int, path: str) -> list[FieldError]:
    return [errors.invalid(path, value, NONNEGATIVE)] if value < 0 else []


def immutable(new: object, old: object, path: str, shown: object = None) -> list[FieldError]:
    """`field is immutable` when new != old (shown: how to render the new value)."""
    if new == old:
        return []
    return [errors.invalid(path, new if shown is None else shown, IMMUTABLE)]


def check_name(value: str, path: str, check: NameCheck) -> list[FieldError]:
    return [errors.invalid(path, value, msg) for msg in check(value)]


def validate_labels(labels: Mapping[str, str], path: str) -> list[FieldError]:
    """Keys qualified names, values label values; errors at the map's path, as Kubernetes."""
    out: list[FieldError] = []
    for key in sorted(labels):
        out.extend(errors.invalid(path, key, msg) for msg in is_qualified_name(key))
        value = labels[key]
        out.extend(errors.invalid(path, value, msg) for msg in is_valid_label_value(value))
    return out


def validate_annotations(annotations: Mapping[str, str], path: str) -> list[FieldError]:
    out: list[FieldError] = []
    total = 0
    for key in sorted(annotations):
        out.extend(errors.invalid(path, key, msg) for msg in is_qualified_name(key.lower()))
        total += len(key.encode()) + len(annotations[key].encode())
    if total > TOTAL_ANNOTATION_SIZE_LIMIT:
        out.append(errors.too_long(path, "", TOTAL_ANNOTATION_SIZE_LIMIT))
    return out


def validate_owner_references(meta: meta_pb2.ObjectMeta, path: str) -> list[FieldError]:
    out: list[FieldError] = []
    controllers: list[str] = []
    for i, ref in enumerate(meta.owner_references):
        here = f"{path}[{i}]"
        for attr, word in (("api_version", "version"), ("kind", "kind"), ("name", "name")):
            if not getattr(ref, attr):
                field_name = "apiVersion" if attr == "api_version" else attr
                out.append(errors.invalid(f"{here}.{field_name}", "", f"{word} must not be empty"))
        if not ref.uid:
            out.append(errors.invalid(f"{here}.uid", "", "uid must not be empty"))
        if ref.HasField("controller") and ref.controller:
            controllers.append(f"{ref.kind}/{ref.name}")
    if len(controllers) > 1:
        out.append(
            errors.invalid(
                path,
                Shown("[" + ", ".join(controllers) + "]"),
                'Only one reference can have Controller set to true. Found "true" in '
                f"references for {' and '.join(controllers)}",
            )
        )
    return out


def validate_finalizers(finalizers: list[str], path: str) -> list[FieldError]:
    out: list[FieldError] = []
    seen: set[str] = set()
    for i, name in enumerate(finalizers):
        out.extend(errors.invalid(f"{path}[{i}]", name, m) for m in is_qualified_name(name))
        if name in seen:
            out.append(errors.duplicate(f"{path}[{i}]", name))
        seen.add(name)
    return out


def validate_object_meta(
    meta: meta_pb2.ObjectMeta, namespaced: bool, name_check: NameCheck, path: str = "metadata"
) -> list[FieldError]:
    """ValidateObjectMeta: name, namespace, generation, labels, annotations, owners, finalizers."""
    out: list[FieldError] = []
    if meta.generate_name:
        prefix = meta.generate_name.rstrip("-") or meta.generate_name
        out.extend(check_name(prefix, f"{path}.generateName", name_check))
    if not meta.name:
        out.append(errors.required(f"{path}.name", "name or generateName is required"))
    else:
        out.extend(check_name(meta.name, f"{path}.name", name_check))
    if namespaced:
        if meta.namespace:
            out.extend(check_name(meta.namespace, f"{path}.namespace", is_dns1123_label))
    elif meta.namespace:
        out.append(errors.forbidden(f"{path}.namespace", "not allowed on this type"))
    out.extend(nonnegative(meta.generation, f"{path}.generation"))
    out.extend(validate_labels(meta.labels, f"{path}.labels"))
    out.extend(validate_annotations(meta.annotations, f"{path}.annotations"))
    out.extend(validate_owner_references(meta, f"{path}.ownerReferences"))
    out.extend(validate_finalizers(list(meta.finalizers), f"{path}.finalizers"))
    return out


def validate_template_meta(meta: meta_pb2.ObjectMeta, path: str) -> list[FieldError]:
    """A pod template's metadata: only labels and annotations matter."""
    return validate_labels(meta.labels, f"{path}.labels") + validate_annotations(
        meta.annotations, f"{path}.annotations"
    )


def validate_label_selector(sel: meta_pb2.LabelSelector, path: str) -> list[FieldError]:
    """ValidateLabelSelector: matchLabels as labels; each expression's operator, key, values."""
    out = validate_labels(sel.match_labels, f"{path}.matchLabels")
    for i, expr in enumerate(sel.match_expressions):
        here = f"{path}.matchExpressions[{i}]"
        if expr.operator in ("In", "NotIn"):
            if not expr.values:
                out.append(
                    errors.required(
                        f"{here}.values", "must be specified when `operator` is 'In' or 'NotIn'"
                    )
                )
        elif expr.operator in ("Exists", "DoesNotExist"):
            if expr.values:
                out.append(
                    errors.forbidden(
                        f"{here}.values",
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    )
                )
        else:
            out.append(
                errors.invalid(f"{here}.operator", expr.operator, "not a valid selector operator")
            )
        out.extend(
            errors.invalid(f"{here}.key", expr.key, msg) for msg in is_qualified_name(expr.key)
        )
        for j, value in enumerate(expr.values):
            out.extend(
                errors.invalid(f"{here}.values[{j}]", value, msg)
                for msg in is_valid_label_value(value)
            )
    return out


def selector_text(sel: meta_pb2.LabelSelector) -> Shown:
    """A LabelSelector as it appears in an error value: its JSON form."""
    return Shown(json.dumps(codec.to_dict(sel), sort_keys=True))


def dns_subdomain(value: str) -> list[str]:
    return is_dns1123_subdomain(value)


def int_or_string(value: meta_pb2.IntOrString) -> Any:
    """The Python value of an IntOrString: int, str, or None when unset."""
    which = value.WhichOneof("value")
    return None if which is None else getattr(value, which)
