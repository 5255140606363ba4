"""The cells of `get`'s tables and `describe`'s pages: ages, times, labels, selectors, columns.

kubectl keeps these small formatters apart from its printers
(k8s.io/apimachinery/pkg/util/duration for ages, kubectl's describe helpers
for times and labels) because both the table printers and the per-kind
columns and describers use them. So here: printers.py lays out tables,
columns.py says what each kind's columns are, describe.py and describers.py
write the pages, and all of them take their cells from this module, which
imports none of them.

A `Column` is a header plus a function of (object, PrintContext) -> text;
the context carries what a cell may need beyond the object (the time "now",
so a whole table shows ages from one instant; a `kind/` prefix when several
kinds share one output).

Ages read like kubectl's `duration.HumanDuration`: exact seconds below two
minutes, then coarser as the age grows, never more than two units:

    5s   119s   2m   3m12s   10m   179m   3h   7h59m   8h   47h   2d   7d23h   8d   2y   3y100d

Failure modes: none of these raise on a half-filled object; a missing field
prints as `<none>` / `<unknown>` (no creation timestamp) exactly as kubectl
shows objects the server has not filled in yet.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from google.protobuf.message import Message

NONE = "<none>"
UNKNOWN = "<unknown>"


# ------------------------------------------------------------------ time


def human_duration(seconds: float) -> str:
    """kubectl's HumanDuration: `5s`, `3m12s`, `2d4h`, `3y100d`."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        rest = s % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if hours < 24 * 8:
        rest = hours % 24
        return f"{days}d{rest}h" if rest else f"{days}d"
    if hours < 24 * 365 * 2:
        return f"{days}d"
    years = days // 365
    if hours < 24 * 365 * 8:
        rest = days % 365
        return f"{years}y{rest}d" if rest else f"{years}y"
    return f"{years}y"


def timestamp_seconds(owner: Message, field_name: str) -> float | None:
    """A google.protobuf.Timestamp field as epoch seconds, None when unset."""
    if not owner.HasField(field_name):
        return None
    ts = getattr(owner, field_name)
    return float(ts.seconds) + float(ts.nanos) / 1e9


def age_of(owner: Message, field_name: str, now: float) -> str:
    """kubectl's translateTimestampSince: `<unknown>` when the time is unset."""
    at = timestamp_seconds(owner, field_name)
    return UNKNOWN if at is None else human_duration(now - at)


def format_time(owner: Message, field_name: str) -> str:
    """RFC 1123 with numeric zone, as describe shows times: `Mon, 02 Jan 2006 15:04:05 -0700`."""
    at = timestamp_seconds(owner, field_name)
    if at is None:
        return NONE
    return (
        datetime.fromtimestamp(at, tz=timezone.utc)
        .astimezone()
        .strftime("%a, %d %b %Y %H:%M:%S %z")
    )


# ------------------------------------------------------------------ small formatters


def or_none(text: str) -> str:
    return text if text else NONE


def format_labels(labels: Mapping[str, str]) -> str:
    """`a=b,c=d` sorted by key, `<none>` when empty (labels.FormatLabels)."""
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels)) or NONE


def format_label_selector(selector: Any) -> str:
    """A meta LabelSelector as kubectl shows it: `app=web,tier in (a,b),!legacy`.

    Requirements are sorted by key, as the selector's String() sorts them.
    An empty selector prints `<none>`.
    """
    parts: list[tuple[str, str]] = [(k, f"{k}={v}") for k, v in selector.match_labels.items()]
    for req in selector.match_expressions:
        values = ",".join(sorted(req.values))
        text = {
            "In": f"{req.key} in ({values})",
            "NotIn": f"{req.key} notin ({values})",
            "Exists": req.key,
            "DoesNotExist": f"!{req.key}",
        }.get(req.operator, f"{req.key} {req.operator} ({values})")
        parts.append((req.key, text))
    return ",".join(text for _, text in sorted(parts)) or NONE


# ------------------------------------------------------------------ columns


@dataclass(frozen=True)
class PrintContext:
    """What a column function may need beyond the object itself."""

    now: float
    name_prefix: str = ""  # "deployment.apps/" when several kinds share one output


Cell = Callable[[Any, PrintContext], str]


@dataclass(frozen=True)
class Column:
    """One table column: its header and a function of (object, context) -> cell text."""

    header: str
    cell: Cell
    wide: bool = False  # shown only with -o wide
