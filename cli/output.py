"""`get -o FORMAT` and `--sort-by`: which printer, and in what order (kubectl's PrintFlags).

kubectl splits its printers in two, and so does `get` here:

- human-readable: the table (`-o wide` adds columns), built per kind from
  cli.columns by cli.printers; "No resources found" goes to stderr when
  there is nothing to print;
- generic: `name`, `json`, `yaml`, `jsonpath=`, `jsonpath-file=`,
  `jsonpath-as-json=`, `custom-columns=`, `custom-columns-file=`. These see
  what was fetched as *one* object: the object itself when one was named
  (`get pod web -o json`), else a `kind: List` wrapping every item, even
  none -- so `get pods -o json` in an empty namespace prints an empty List,
  not a message, and scripts can parse it:

      {"apiVersion": "v1", "items": [], "kind": "List", "metadata": {"resourceVersion": ""}}

`-o` is parsed once, up front: a bad format or template is an error before
any request is sent, in kubectl's words (`unable to match a printer suitable
for the output format "x", allowed formats are: ...`, `error parsing
jsonpath {.items[, unterminated array`).

`--sort-by=PATH` (relaxed JSONPath, as custom columns take it) orders the
objects by the first value the path finds in each: numbers as numbers,
strings in natural order (`web-2` before `web-10`), objects without the
field first. A path found in none of the objects is an error, as in kubectl:
`couldn't find any field with path "{.spec.nope}" in the list of objects`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf.message import Message

from apimachinery import jsonpath
from cli import custom_columns, printers
from cli.context import CommandError

FORMATS = (
    "custom-columns",
    "custom-columns-file",
    "json",
    "jsonpath",
    "jsonpath-as-json",
    "jsonpath-file",
    "name",
    "wide",
    "yaml",
)
_TEMPLATED = (
    "jsonpath",
    "jsonpath-as-json",
    "jsonpath-file",
    "custom-columns",
    "custom-columns-file",
)


@dataclass(frozen=True)
class OutputFormat:
    """A parsed `-o`: its kind ("" for the table) and, for templates, the template."""

    kind: str = ""
    template: str = ""

    @property
    def table(self) -> bool:
        return self.kind in ("", "wide")


def parse_output(value: str | None) -> OutputFormat:
    """`-o` as typed -> OutputFormat; CommandError for an unknown format or missing template."""
    if not value:
        return OutputFormat()
    kind, sep, template = value.partition("=")
    if kind not in FORMATS:
        raise CommandError(
            f'unable to match a printer suitable for the output format "{value}", '
            f"allowed formats are: {','.join(FORMATS)}"
        )
    if kind in ("jsonpath-file", "custom-columns-file") and not template:
        raise CommandError("template format specified but no template given")
    if kind == "jsonpath-file":
        try:
            text = Path(template).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"error reading --template {template}, error: {exc}") from None
        return OutputFormat("jsonpath", text)
    if kind in _TEMPLATED and not template and kind != "custom-columns":
        raise CommandError("template format specified but no template given")
    if kind not in _TEMPLATED and sep:
        raise CommandError(
            f'unable to match a printer suitable for the output format "{value}", '
            f"allowed formats are: {','.join(FORMATS)}"
        )
    return OutputFormat(kind, template)


def document(obj: Message) -> dict[str, Any]:
    from apimachinery import codec

    return codec.to_dict(obj)


def list_document(objs: Sequence[Message]) -> dict[str, Any]:
    """kubectl's List around what `get` fetched (an empty one too)."""
    return {
        "apiVersion": "v1",
        "items": [document(o) for o in objs],
        "kind": "List",
        "metadata": {"resourceVersion": ""},
    }


def _jsonpath_error(template: str, err: jsonpath.JSONPathError, data: Any) -> CommandError:
    if isinstance(err, jsonpath.ParseError):
        return CommandError(f"error parsing jsonpath {template}, {err}")
    return CommandError(
        f'error executing jsonpath "{template}": Error executing template: {err}. '
        "Printing more information for debugging the template:\n"
        f"\ttemplate was:\n\t\t{template}\n"
        f"\tobject given to jsonpath engine was:\n\t\t{json.dumps(data, sort_keys=True)}\n"
    )


@dataclass
class GenericPrinter:
    """Every `-o` but the table: one output for what was fetched, one per watch event."""

    fmt: OutputFormat
    allow_missing_keys: bool = True
    no_headers: bool = False
    _path: jsonpath.JSONPath | None = None
    _columns: custom_columns.CustomColumnsPrinter | None = field(default=None)

    def __post_init__(self) -> None:
        if self.fmt.kind in ("jsonpath", "jsonpath-as-json"):
            try:
                self._path = jsonpath.JSONPath(
                    self.fmt.template,
                    allow_missing_keys=self.allow_missing_keys,
                    output_json=self.fmt.kind == "jsonpath-as-json",
                )
            except jsonpath.JSONPathError as err:
                raise _jsonpath_error(self.fmt.template, err, None) from None
        elif self.fmt.kind == "custom-columns":
            columns = custom_columns.columns_from_spec(self.fmt.template)
            self._columns = custom_columns.CustomColumnsPrinter(columns, self.no_headers)
        elif self.fmt.kind == "custom-columns-file":
            columns = custom_columns.columns_from_file(self.fmt.template)
            self._columns = custom_columns.CustomColumnsPrinter(columns, self.no_headers)

    def render(self, objs: Sequence[Message], *, single: bool) -> str:
        """What was fetched: the one named object as itself, else a List."""
        kind = self.fmt.kind
        if kind == "name":
            return printers.render_names(objs)
        if kind == "yaml":
            return printers.render_yaml(objs, single=single)
        if kind == "json":
            return printers.render_json(objs, single=single)
        if self._columns is not None:
            return self._columns.render([document(o) for o in objs])
        one = single and len(objs) == 1
        return self._run_path(document(objs[0]) if one else list_document(objs))

    def render_event(self, obj: Message) -> str:
        """One object of a watch, printed on its own."""
        kind = self.fmt.kind
        if kind == "name":
            return printers.object_name(obj) + "\n"
        if kind == "yaml":
            return "---\n" + printers.render_yaml([obj], single=True)
        if kind == "json":
            return printers.render_json([obj], single=True)
        if self._columns is not None:
            return self._columns.render([document(obj)])
        return self._run_path(document(obj))

    def _run_path(self, data: dict[str, Any]) -> str:
        assert self._path is not None
        try:
            return self._path.execute(data)
        except jsonpath.JSONPathError as err:
            raise _jsonpath_error(self.fmt.template, err, data) from None


# ------------------------------------------------------------------ --sort-by

_CHUNKS = re.compile(r"(\d+)")


def _natural(text: str) -> tuple[tuple[int, int, str], ...]:
    """A key ordering digit runs by value: `web-2` < `web-10` (kubectl's NaturalLess)."""
    parts = _CHUNKS.split(text)
    return tuple((1, int(p), p) if p.isdigit() else (0, 0, p) for p in parts if p)


def _sort_value(value: Any) -> tuple[Any, ...]:
    if isinstance(value, bool):
        return (1, int(value))
    if isinstance(value, (int, float)):
        return (1, value)
    if isinstance(value, str):
        return (2, _natural(value))
    return (3, jsonpath.go_format(value))


def sort_path(expression: str) -> jsonpath.JSONPath:
    """`--sort-by` parsed (relaxed form), missing keys allowed; CommandError if malformed."""
    try:
        return jsonpath.JSONPath(jsonpath.relaxed(expression))
    except jsonpath.JSONPathError as err:
        raise CommandError(str(err)) from None


def sort_objects(objs: Sequence[Message], path: jsonpath.JSONPath) -> list[Message]:
    """`objs` ordered by the first value `path` finds in each (see the module docstring)."""
    keyed: list[tuple[tuple[Any, ...], Message]] = []
    found_once = False
    for obj in objs:
        try:
            results = path.find_results(document(obj))
        except jsonpath.JSONPathError as err:
            raise CommandError(str(err)) from None
        if results and results[0]:
            found_once = True
            keyed.append(((1, _sort_value(results[0][0])), obj))
        else:
            keyed.append(((0,), obj))
    if objs and not found_once:
        raise CommandError(
            f'couldn\'t find any field with path "{path.template}" in the list of objects'
        )
    keyed.sort(key=lambda pair: pair[0])
    return [obj for _, obj in keyed]
