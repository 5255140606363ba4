"""Printers: how `tinykube get` shows objects (k8s.io/cli-runtime/pkg/printers).

Four output forms, as kubectl has them:

- the table (default, `-o wide` adds columns): one row per object, columns
  from `cli.columns` -- each column is a header plus a function of the object,
  so adding a kind is one entry there and nothing here;
- `-o name`: `deployment.apps/web-app`, the form `apply` and `delete` also use;
- `-o yaml` / `-o json`: the Kubernetes JSON form from the codec; several
  objects are wrapped in a `kind: List` as kubectl wraps them.

Tables follow kubectl's tab writer (minimum width 6, padding 3), upper-case
headers, `<none>` for empty cells. After the kind's own columns come, as in
kubectl, one column per `-L key` (headed by the key's last path segment,
upper-cased: `-L app.kubernetes.io/name` is NAME; blank where the label is
missing), then with `--show-labels` a LABELS column (`app=web,tier=front`,
keys sorted, `<none>` if there are none). The cells themselves -- ages like
kubectl's (`3m12s`, `7d23h`), times, labels, selectors -- and the `Column`
type come from cli.cells, which the columns and the describe pages share.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import Message

from apimachinery import scheme
from cli import columns, tabwriter
from cli.cells import NONE, Column, PrintContext, format_labels

# ------------------------------------------------------------------ names


def qualified_kind(info: scheme.KindInfo) -> str:
    """`deployment.apps`, `service`: how kubectl names a kind before `/name` or `"name"`."""
    return f"{info.singular}.{info.group}" if info.group else info.singular


def object_name(obj: Message) -> str:
    """`-o name`: `deployment.apps/web-app`."""
    return f"{qualified_kind(scheme.for_message(obj))}/{obj.metadata.name}"  # type: ignore[attr-defined]


# ------------------------------------------------------------------ tables


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
    label_columns: Sequence[str] = ()
    show_labels: bool = False

    def headers(self) -> list[str]:
        names = [c.header for c in self.columns]
        names += [key.rpartition("/")[2].upper() for key in self.label_columns]
        if self.show_labels:
            names.append("LABELS")
        return ["NAMESPACE", *names] if self.with_namespace else names

    def cells(self, obj: Any, ctx: PrintContext) -> list[str]:
        row = [c.cell(obj, ctx) or NONE for c in self.columns]
        labels = obj.metadata.labels
        row += [str(labels.get(key, "")) for key in self.label_columns]
        if self.show_labels:
            row.append(format_labels(labels) or NONE)
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
    spec = columns.COLUMNS.get(info.kind, columns.DEFAULT)
    return [c for c in spec if wide or not c.wide]


def new_table(
    info: scheme.KindInfo,
    *,
    wide: bool = False,
    with_namespace: bool = False,
    label_columns: Sequence[str] = (),
    show_labels: bool = False,
) -> Table:
    return Table(
        columns_for(info, wide),
        with_namespace=with_namespace and info.namespaced,
        label_columns=label_columns,
        show_labels=show_labels,
    )


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
