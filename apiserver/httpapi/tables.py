"""Server-side printing: the meta.k8s.io/v1 Table that `kubectl get` prints.

kubectl does not know how to print a Deployment. It asks the server to
(`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`), and the server
answers a Table: the columns, and one row of cells per object, each row
carrying the object's metadata so that kubectl can add NAMESPACE (`-A`),
LABELS (`--show-labels`) or `-L key` columns itself:

    {"kind": "Table", "apiVersion": "meta.k8s.io/v1",
     "metadata": {"resourceVersion": "812"},
     "columnDefinitions": [
        {"name": "Name", "type": "string", "format": "name", "priority": 0, ...},
        {"name": "Ready", "type": "string", ...},
        ...
        {"name": "Containers", "type": "string", "priority": 1, ...}],   <- -o wide only
     "rows": [{"cells": ["web-app", "2/2", 2, 2, "5m", "nginx", ...],
               "object": {"kind": "PartialObjectMetadata",
                          "apiVersion": "meta.k8s.io/v1", "metadata": {...}}}]}

A column of priority 0 is always shown, priority 1 only with `-o wide`
(kubectl upper-cases the names: "Up-to-date" prints UP-TO-DATE). The
columns of each kind are Kubernetes' own (pkg/printers/internalversion;
table_columns.py here, which also builds the Table; this module has the
column model and the cells every kind shares); a kind without its own gets Kubernetes' default
for such kinds, Name and Created At. `includeObject` chooses what a row
carries: Metadata (the default), Object (the whole object), or None.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from google.protobuf.message import Message

Cell = str | int


@dataclass(frozen=True)
class Column:
    name: str
    cell: Callable[[Any, float], Cell]
    type: str = "string"
    priority: int = 0
    format: str = ""
    description: str = ""


def human_duration(seconds: float) -> str:
    """kubectl's HumanDuration: `5s`, `3m12s`, `2d4h`, `3y100d`."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes, hours, days = s // 60, s // 3600, s // 86400
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    if days < 365 * 8:
        return f"{days // 365}y{days % 365}d" if days % 365 else f"{days // 365}y"
    return f"{days // 365}y"


def since(owner: Message, field_name: str, now: float) -> str:
    """How long ago a timestamp field was, `<unknown>` when unset (translateTimestampSince)."""
    if not owner.HasField(field_name):
        return "<unknown>"
    at = getattr(owner, field_name)
    return human_duration(now - (at.seconds + at.nanos / 1e9))


def created_at(obj: Any, now: float) -> str:
    meta = obj.metadata
    if not meta.HasField("creation_timestamp"):
        return "<unknown>"
    moment = datetime.fromtimestamp(meta.creation_timestamp.seconds, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


NAME = Column(
    "Name",
    lambda o, now: str(o.metadata.name),
    format="name",
    description="Name must be unique within a namespace.",
)
AGE = Column(
    "Age",
    lambda o, now: since(o.metadata, "creation_timestamp", now),
    description="CreationTimestamp is a timestamp representing the server time when this"
    " object was created.",
)
DEFAULT = [NAME, Column("Created At", created_at, type="date")]
