"""`-o custom-columns=HEADER:PATH,...` and `-o custom-columns-file=FILE` (custom_column.go).

A column is a header and a JSONPath expression, written loosely: the
expression may drop the braces and the leading dot, kubectl's "relaxed"
form, so these three are the same column:

    NAME:.metadata.name    NAME:metadata.name    NAME:{.metadata.name}

The file form is two lines, the headers and then the paths, each split on
whitespace:

    NAME          NODE            IP
    metadata.name spec.nodeName   status.podIP

Each row runs every column's path over the object's JSON form, missing keys
allowed: no value prints `<none>`, several values are joined with commas,
and a map or list prints as Go's fmt does (`map[app:web]`, `[80 443]`),
which is what kubectl shows. The table is aligned like `get`'s (minimum
width 6, padding 3); the header is printed once, before the first row, and
with `-w` the rows that follow keep its widths.

    $ tinykube get pods -o custom-columns=NAME:.metadata.name,IMAGES:.spec.containers[*].image
    NAME     IMAGES
    web-1    nginx:1.25,busybox
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apimachinery import jsonpath
from cli import printers
from cli.cells import NONE
from cli.context import CommandError

MISSING_HEADER = (
    "invalid template, missing header line. Expected format is one line of space separated "
    "headers, one line of space separated column specs."
)
MISSING_SPEC = (
    "invalid template, missing spec line. Expected format is one line of space separated "
    "headers, one line of space separated column specs."
)


@dataclass(frozen=True)
class CustomColumn:
    header: str
    path: jsonpath.JSONPath


def _column(header: str, expression: str) -> CustomColumn:
    try:
        return CustomColumn(header, jsonpath.JSONPath(jsonpath.relaxed(expression)))
    except jsonpath.JSONPathError as err:
        raise CommandError(str(err)) from None


def columns_from_spec(spec: str) -> list[CustomColumn]:
    """`NAME:.metadata.name,NODE:.spec.nodeName` -> the columns (CommandError if malformed)."""
    if not spec:
        raise CommandError("custom-columns format specified but no custom columns given")
    columns = []
    for part in spec.split(","):
        header, sep, expression = part.partition(":")
        if not sep:
            raise CommandError(
                f"unexpected custom-columns spec: {part}, expected <header>:<json-path-expr>"
            )
        columns.append(_column(header, expression))
    return columns


def columns_from_file(path: str) -> list[CustomColumn]:
    """The two-line template file: headers, then paths."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"error reading template {path}, {exc}") from None
    if not lines:
        raise CommandError(MISSING_HEADER)
    if len(lines) < 2:
        raise CommandError(MISSING_SPEC)
    headers, specs = lines[0].split(), lines[1].split()
    if len(headers) != len(specs):
        raise CommandError(
            f"number of headers ({len(headers)}) and field specifications "
            f"({len(specs)}) don't match"
        )
    return [_column(h, s) for h, s in zip(headers, specs, strict=True)]


def cell(column: CustomColumn, document: dict[str, Any]) -> str:
    """One cell: the path's values, comma-joined, or `<none>`."""
    try:
        results = column.path.find_results(document)
    except jsonpath.JSONPathError as err:
        raise CommandError(str(err)) from None
    if not results or not results[0]:
        return NONE
    return ",".join(jsonpath.go_format(v) for values in results for v in values)


@dataclass
class CustomColumnsPrinter:
    """Rows of custom columns; the header once, before the first output."""

    columns: Sequence[CustomColumn]
    no_headers: bool = False
    table: printers.Table = field(default_factory=lambda: printers.Table([]))
    header_printed: bool = False

    def render(self, documents: Sequence[dict[str, Any]]) -> str:
        rows: list[list[str]] = []
        if not self.header_printed and not self.no_headers:
            rows.append([c.header for c in self.columns])
        self.header_printed = True
        rows.extend([cell(c, doc) for c in self.columns] for doc in documents)
        return "".join(line + "\n" for line in self.table.format(rows))
