"""Scalar conversions for the codec: JSON/YAML values <-> protobuf field values.

Kubernetes decodes JSON into Go structs, and Go's types decide what is
accepted: an `int32` field takes a JSON number that fits, a `string` field
takes only a JSON string, a `bool` only true/false. PyYAML hands us Python
values, so each conversion here checks the Python type the way Go's decoder
checks the JSON type, and raises `WrongValue(expected)` naming the form it
wanted; the codec adds the field path and renders

    spec.replicas: Invalid value: "two": expected integer

Special cases, each mirroring a Kubernetes type:

* bool is a subclass of int in Python; an int field rejects `true`.
* An integral float (`2.0`) is accepted for an integer field: JSON does not
  distinguish 2 from 2.0. `2.5` is rejected.
* Timestamps (metav1.Time) are RFC 3339 strings. Output has seconds
  precision and "Z", as Kubernetes prints them, unless the stored value has
  sub-second nanos, which are then kept (3, 6 or 9 digits) so that decoding
  what we encoded gives back the same message.
* bytes are standard base64 with padding; anything else is an error.
* Quantity-valued fields (resources.limits, capacity, sizeLimit) take a
  number as well as a string (`cpu: 1`, `cpu: 0.5`), because Kubernetes'
  Quantity type unmarshals both; the number is kept as its decimal text.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import math
import re
from typing import Any

from google.protobuf import timestamp_pb2
from google.protobuf.descriptor import FieldDescriptor

from protos import meta_pb2

INT_RANGES: dict[int, tuple[int, int, str]] = {
    FieldDescriptor.CPPTYPE_INT32: (-(2**31), 2**31 - 1, "32-bit integer"),
    FieldDescriptor.CPPTYPE_INT64: (-(2**63), 2**63 - 1, "64-bit integer"),
    FieldDescriptor.CPPTYPE_UINT32: (0, 2**32 - 1, "unsigned 32-bit integer"),
    FieldDescriptor.CPPTYPE_UINT64: (0, 2**64 - 1, "unsigned 64-bit integer"),
}

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)
TIMESTAMP_FORM = 'expected an RFC 3339 timestamp such as "2024-05-01T12:00:00Z"'


class WrongValue(Exception):
    """The value has the wrong type or form; `expected` says what would do."""

    def __init__(self, expected: str) -> None:
        super().__init__(expected)
        self.expected = expected


class Shown:
    """A value as it appears in an error: JSON text for objects and lists."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __str__(self) -> str:
        try:
            text = json.dumps(self.value, default=str, ensure_ascii=False)
        except (TypeError, ValueError):
            text = repr(self.value)
        return text if len(text) <= 80 else text[:77] + "..."


def shown(value: Any) -> object:
    """What errors.invalid should render: strings and scalars as they are, others as JSON."""
    if isinstance(value, (str, bool, int, float)) or value is None:
        return value
    return Shown(value)


def to_int(value: Any, cpp_type: int) -> int:
    low, high, name = INT_RANGES[cpp_type]
    if isinstance(value, bool):
        raise WrongValue("expected integer")
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            raise WrongValue("expected integer")
        value = int(value)
    if not isinstance(value, int):
        raise WrongValue("expected integer")
    if not low <= value <= high:
        raise WrongValue(f"expected a {name} (between {low} and {high})")
    return value


def to_float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise WrongValue("expected number")
    return float(value)


def to_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise WrongValue("expected boolean (true or false)")
    return value


def to_str(value: Any, *, quantity: bool = False) -> str:
    if isinstance(value, str):
        return value
    if quantity and isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            raise WrongValue("expected a quantity such as 500m or 128Mi")
        return str(value)
    if isinstance(value, (bool, int, float)):
        literal = json.dumps(value)
        raise WrongValue(f'expected string; quote the value in YAML ("{literal}")')
    raise WrongValue("expected string")


def to_bytes(value: Any) -> bytes:
    if not isinstance(value, str):
        raise WrongValue("expected base64-encoded bytes")
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise WrongValue("expected base64-encoded bytes") from None


def from_bytes(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def to_int_or_string(value: Any, target: meta_pb2.IntOrString) -> None:
    if isinstance(value, str):
        target.str_val = value
        return
    try:
        target.int_val = to_int(value, FieldDescriptor.CPPTYPE_INT32)
    except WrongValue as exc:
        if exc.expected == "expected integer":
            raise WrongValue("expected integer or string") from None
        raise


def from_int_or_string(value: meta_pb2.IntOrString) -> int | str:
    if value.WhichOneof("value") == "str_val":
        return value.str_val
    return value.int_val


def to_timestamp(value: Any, target: timestamp_pb2.Timestamp) -> None:
    if isinstance(value, dt.datetime):
        when = value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
        delta = when - _EPOCH
        target.seconds = delta.days * 86400 + delta.seconds
        target.nanos = delta.microseconds * 1000
        return
    if not isinstance(value, str):
        raise WrongValue(TIMESTAMP_FORM)
    match = _RFC3339.match(value)
    if match is None:
        raise WrongValue(TIMESTAMP_FORM)
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    fraction, zone = match.group(7), match.group(8)
    try:
        when = dt.datetime(year, month, day, hour, minute, min(second, 59), tzinfo=dt.timezone.utc)
    except ValueError:
        raise WrongValue(TIMESTAMP_FORM) from None
    delta = when - _EPOCH
    seconds = delta.days * 86400 + delta.seconds
    if zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        seconds -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    target.seconds = seconds
    target.nanos = int((fraction[1:] if fraction else "0").ljust(9, "0"))


def from_timestamp(value: timestamp_pb2.Timestamp) -> str:
    when = _EPOCH + dt.timedelta(seconds=value.seconds)
    text = (
        f"{when.year:04d}-{when.month:02d}-{when.day:02d}"
        f"T{when.hour:02d}:{when.minute:02d}:{when.second:02d}"
    )
    if value.nanos:
        digits = f"{value.nanos:09d}"
        if digits.endswith("000000"):
            digits = digits[:3]
        elif digits.endswith("000"):
            digits = digits[:6]
        text += "." + digits
    return text + "Z"
