"""Printers: how `tinykube get` shows objects (k8s.io/cli-runtime/pkg/printers).

Four output forms, as kubectl has them:

- the table (default, `-o wide` adds columns): one row per object, columns
  from `cli.columns` -- each column is a header plus a function of the object,
  so adding a kind is one entry there and nothing here;
- `-o name`: `deployment.apps/web-app`, the form `apply` and `delete` also use;
- `-o yaml` / `-o json`: the Kubernetes JSON form from the codec; several
  objects are wrapped in a `kind: List` as kubectl wraps them.

Tables follow kubectl's tab writer (minimum width 6, padding 3), upper-case
headers, `<none>` for empty cells. Ages read like kubectl's
`duration.HumanDuration`: exact seconds below two minutes, then coarser as
the age grows, never more than two units:

    5s   119s   2m   3m12s   10m   179m   3h   7h59m   8h   47h   2d   7d23h   8d   2y   3y100d

Failure modes: none of these raise on a half-filled object; a missing field
prints as `<none>` / `<unknown>` (no creation timestamp) exactly as kubectl
shows objects the server has not filled in yet.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from google.protobuf.message import Message

from apimachinery import scheme
from cli import tabwriter

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


def qualified_kind(info: scheme.KindInfo) -> str:
    """`deployment.apps`, `service`: how kubectl names a kind before `/name` or `"name"`."""
    return f"{info.singular}.{info.group}" if info.group else info.singular


def object_name(obj: Message) -> str:
    """`-o name`: `deployment.apps/web-app`."""
    return f"{qualified_kind(scheme.for_message(obj))}/{obj.metadata.name}"  # type: ignore[attr-defined]


# ------------------------------------------------------------------ tables


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


@dataclass
class Table:
    """A table for one kind, aligned like kubectl's tab writer.

    Widths only grow: `-w` prints rows long after the header, and keeping
    the widths the header was printed with keeps the columns straight for
    every row that fits.
    """

    columns: Sequence[Column]
    with_namespace: bool = False
    widths: list[int] = field(default_factory=list)

    def headers(self) -> list[str]:
        names = [c.header for c in self.columns]
        return ["NAMESPACE", *names] if self.with_namespace else names

    def cells(self, obj: Any, ctx: PrintContext) -> list[str]:
        row = [c.cell(obj, ctx) or NONE for c in self.columns]
        if self.with_namespace:
            row.insert(0, obj.metadata.namespace)
        return row

    def format(self, rows: Iterable[list[str]]) -> list[str]:
        rows = list(rows)
        for row in rows:
            if not self.widths:
                self.widths = [0] * len(row)
            for j, cell in enumerate(row[:-1]):
                want = max(tabwriter.GET_MIN_WIDTH, len(cell) + tabwriter.GET_PADDING)
                self.widths[j] = max(self.widths[j], want)
        return [
            "".join(cell.ljust(self.widths[j]) for j, cell in enumerate(row[:-1])) + row[-1]
            for row in rows
        ]


def columns_for(info: scheme.KindInfo, wide: bool) -> list[Column]:
    from cli import columns  # the per-kind table; imported late to keep this module small

    spec = columns.COLUMNS.get(info.kind, columns.DEFAULT)
    return [c for c in spec if wide or not c.wide]


def new_table(info: scheme.KindInfo, *, wide: bool = False, with_namespace: bool = False) -> Table:
    return Table(columns_for(info, wide), with_namespace=with_namespace and info.namespaced)


def render_table(
    info: scheme.KindInfo,
    objs: Sequence[Any],
    *,
    wide: bool = False,
    with_namespace: bool = False,
    with_kind: bool = False,
    now: float | None = None,
    table: Table | None = None,
) -> str:
    """The whole table (header + one row per object) as text ending in a newline."""
    table = table or new_table(info, wide=wide, with_namespace=with_namespace)
    ctx = PrintContext(
        now=time.time() if now is None else now,
        name_prefix=qualified_kind(info) + "/" if with_kind else "",
    )
    rows = [table.headers()] + [table.cells(o, ctx) for o in objs]
    return "".join(line + "\n" for line in table.format(rows))


def render_names(objs: Iterable[Message]) -> str:
    return "".join(object_name(o) + "\n" for o in objs)


# ------------------------------------------------------------------ yaml / json


def _list_wrapper(objs: Sequence[Message]) -> dict[str, Any]:
    from apimachinery import codec

    return {
        "apiVersion": "v1",
        "items": [codec.to_dict(o) for o in objs],
        "kind": "List",
        "metadata": {"resourceVersion": ""},
    }


def render_yaml(objs: Sequence[Message], *, single: bool) -> str:
    """One object as itself when `single`, else a `kind: List` of them (kubectl's rule)."""
    from apimachinery import codec, yamlio

    if single and len(objs) == 1:
        return codec.to_yaml(objs[0])
    return yamlio.dump(_list_wrapper(objs))


def render_json(objs: Sequence[Message], *, single: bool) -> str:
    from apimachinery import codec

    if single and len(objs) == 1:
        text = codec.to_json(objs[0])
        return text if text.endswith("\n") else text + "\n"
    return json.dumps(_list_wrapper(objs), indent=4, ensure_ascii=False) + "\n"
