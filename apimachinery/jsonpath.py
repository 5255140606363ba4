"""JSONPath templates as kubectl runs them: `get -o jsonpath=`, custom columns, `--sort-by`.

kubectl does not implement the JSONPath of Goessner's article or of RFC 9535
but its own template language (client-go's util/jsonpath): text with actions
in braces, each action a path applied to the object's JSON form. This module
runs those templates over plain JSON values (dicts, lists, str, int, float,
bool, None -- what apimachinery.codec.to_dict gives); the parser is
apimachinery.jsonpath_parse.

How an action is evaluated. A path is a list of nodes; each node maps the
list of values found so far to a new list, as a pipeline:

    data = {"items": [{"metadata": {"name": "a"}}, {"metadata": {"name": "b"}}]}
    {.items[*].metadata.name}
        [data] -.items-> [[...two items...]] -[*]-> [item a, item b]
               -.metadata-> [{name: a}, {name: b}] -.name-> ["a", "b"]
    printed as "a b": one action's values are joined by single spaces.

`{range EXPR}BODY{end}` runs BODY once for each value of EXPR, with that
value as the root (so `{.metadata.name}` inside means the item's name);
`{"\\n"}` is a newline. The classic loop is therefore

    {range .items[*]}{.metadata.name}{"\\t"}{.status.phase}{"\\n"}{end}

Values print as kubectl prints them: strings bare, numbers and booleans as
Go's fmt does (1e+06 for a float million), maps and lists as compact JSON
with sorted keys. A missing key yields nothing (kubectl's default,
`--allow-missing-template-keys=true`); with `allow_missing_keys=False` it
is the error `x is not found`. Other execution errors keep client-go's
words: `array index out of bounds: index 0, length 0`, `map[string]interface
{} is not array or slice`, `incompatible types for comparison`.

Filters compare one value on each side: `[?(@.type=="Ready")]`,
`[?(@.port > 8000)]`, `[?(@.name)]` (exists). Integers and floats are
different types to Go's comparison, as they are here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from apimachinery.jsonpath_parse import (
    Action,
    Field,
    Filter,
    Identifier,
    JSONPathError,
    Literal,
    Node,
    ParseError,
    Recursive,
    Slice,
    Text,
    Union,
    Wildcard,
    parse,
)

__all__ = ["ExecutionError", "JSONPath", "JSONPathError", "ParseError", "format_value", "relaxed"]


class ExecutionError(JSONPathError):
    """The template parsed but cannot run over this data."""


@dataclass
class _Range:
    expr: tuple[Node, ...]
    body: list[_Item]


@dataclass
class _Fail:
    message: str


_Item = Text | Action | _Range | _Fail


def _structure(items: list[Text | Action], at: int, in_range: bool) -> tuple[list[_Item], int]:
    """Nest `{range}` ... `{end}` blocks; returns (block, index after it)."""
    block: list[_Item] = []
    while at < len(items):
        item = items[at]
        at += 1
        head = item.nodes[0] if isinstance(item, Action) and item.nodes else None
        if isinstance(item, Action) and head == Identifier("range"):
            body, at = _structure(items, at, True)
            block.append(_Range(tuple(item.nodes[1:]), body))
        elif head == Identifier("end"):
            if in_range:
                return block, at
            block.append(_Fail("not in range, nothing to end"))
        else:
            block.append(item)
    return block, at


class JSONPath:
    """A parsed template; `execute(data)` is the text kubectl would print."""

    def __init__(
        self, template: str, *, allow_missing_keys: bool = True, output_json: bool = False
    ) -> None:
        self.template = template
        self.allow_missing_keys = allow_missing_keys
        self.output_json = output_json
        self._items, _ = _structure(parse(template), 0, False)

    def find_results(self, data: Any) -> list[list[Any]]:
        """One list of values per action (and per text) in order, ranges expanded."""
        return self._run(self._items, data)

    def execute(self, data: Any) -> str:
        out = []
        for results in self.find_results(data):
            if self.output_json:
                out.append(go_json(results, indent=4) + "\n")
            else:
                out.append(" ".join(format_value(v) for v in results))
        return "".join(out)

    def _run(self, items: list[_Item], data: Any) -> list[list[Any]]:
        out: list[list[Any]] = []
        for item in items:
            if isinstance(item, Text):
                out.append([item.text])
            elif isinstance(item, Action):
                out.append(self.walk([data], item.nodes))
            elif isinstance(item, _Range):
                for value in self.walk([data], item.expr):
                    out.extend(self._run(item.body, value))
            else:
                raise ExecutionError(item.message)
        return out

    def walk(self, values: list[Any], nodes: tuple[Node, ...] | list[Node]) -> list[Any]:
        for node in nodes:
            values = self._step(values, node)
        return values

    def _step(self, values: list[Any], node: Node) -> list[Any]:
        if isinstance(node, Text):
            return [node.text]
        if isinstance(node, Literal):
            return [node.value]
        if isinstance(node, Field):
            return self._field(values, node.name)
        if isinstance(node, Wildcard):
            return [child for v in values for child in _children(v)]
        if isinstance(node, Recursive):
            return _descend(values)
        if isinstance(node, Slice):
            return [item for v in values for item in _slice(v, node)]
        if isinstance(node, Union):
            return [r for branch in node.branches for r in self.walk(values, branch)]
        if isinstance(node, Filter):
            return [item for v in values for item in self._filter(v, node)]
        raise ExecutionError(f"unrecognized identifier {node.name}")

    def _field(self, values: list[Any], name: str) -> list[Any]:
        if not values:
            return []
        found = []
        for value in values:
            if value is None:
                continue
            if not name:
                found.append(value)  # `{.}`: the value itself
            elif isinstance(value, dict) and name in value:
                found.append(value[name])
        if not found and not self.allow_missing_keys:
            raise ExecutionError(f"{name} is not found")
        return found

    def _filter(self, value: Any, node: Filter) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise ExecutionError(f"{go_format(value)} is not array or slice and cannot be filtered")
        kept = []
        for item in value:
            if node.op == "exists":
                try:
                    if self.walk([item], node.left):
                        kept.append(item)
                except JSONPathError:
                    pass
                continue
            lefts = self.walk([item], node.left)
            if not lefts:
                continue
            rights = self.walk([item], node.right)
            if len(lefts) > 1 or len(rights) > 1:
                raise ExecutionError("can only compare one element at a time")
            if rights and compare(node.op, lefts[0], rights[0]):
                kept.append(item)
        return kept


def _children(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return list(value.values())
    if isinstance(value, list):
        return list(value)
    return []


def _descend(values: list[Any]) -> list[Any]:
    """`..`: each map or list, then everything below it, depth first."""
    found: list[Any] = []
    stack = list(reversed(values))
    while stack:
        value = stack.pop()
        children = _children(value)
        if children:
            found.append(value)
            stack.extend(reversed(children))
    return found


def _slice(value: Any, node: Slice) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ExecutionError(f"{go_type(value)} is not array or slice")
    length = len(value)
    start = node.start.value if node.start.known else 0
    if start < 0:
        start += length
    end = node.end.value if node.end.known else length
    if end < 0 or (end == 0 and node.end.derived):
        end += length
    if end == start:
        return []
    if start >= length or start < 0:
        raise ExecutionError(f"array index out of bounds: index {start}, length {length}")
    if end > length or end < 0:
        raise ExecutionError(f"array index out of bounds: index {end - 1}, length {length}")
    if start > end:
        raise ExecutionError(f"starting index {start} is greater than ending index {end}")
    step = 1
    if node.step.known:
        if node.step.value <= 0:
            raise ExecutionError("step must be > 0")
        step = node.step.value
    return value[start:end:step]


def _kind(value: Any) -> str:
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    return "other"


_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "<": lambda a, b: bool(a < b),
    ">": lambda a, b: bool(a > b),
    "<=": lambda a, b: bool(a <= b),
    ">=": lambda a, b: bool(a >= b),
}


def compare(op: str, left: Any, right: Any) -> bool:
    """A filter's comparison with Go template's rules (eq, ne, lt, gt, le, ge)."""
    lk, rk = _kind(left), _kind(right)
    if op in ("==", "!="):
        if lk != rk:
            if "nil" in (lk, rk):
                return op == "!="
            raise ExecutionError("incompatible types for comparison")
        if lk == "other":
            raise ExecutionError("invalid type for comparison")
        return bool(left == right) == (op == "==")
    if op not in _ORDER:
        raise ExecutionError(f"unrecognized filter operator {op}")
    if lk not in ("int", "float", "string") or rk not in ("int", "float", "string"):
        raise ExecutionError("invalid type for comparison")
    if lk != rk:
        raise ExecutionError("incompatible types for comparison")
    return _ORDER[op](left, right)


# ------------------------------------------------------------------ Go's printing


def go_float(value: float) -> str:
    """Go's %v for a float64: shortest digits, exponent form from 1e+06 (or below 1e-4)."""
    if value != value or value in (float("inf"), float("-inf")):
        return {"nan": "NaN", "inf": "+Inf", "-inf": "-Inf"}[repr(value)]
    if value == 0:
        return "-0" if str(value).startswith("-") else "0"
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    text = "".join(str(d) for d in digits)
    assert isinstance(exponent, int)
    point = len(text) + exponent  # the decimal point's place in `text`
    exp = point - 1
    prefix = "-" if sign else ""
    if exp < -4 or exp >= 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{prefix}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if point <= 0:
        return f"{prefix}0.{'0' * -point}{text}"
    if point >= len(text):
        return prefix + text + "0" * (point - len(text))
    return f"{prefix}{text[:point]}.{text[point:]}"


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return int(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


_HTML = re.compile("[<>&\u2028\u2029]")


def go_json(value: Any, indent: int | None = None) -> str:
    """encoding/json's Marshal (MarshalIndent with `indent`): sorted keys, HTML escaped."""
    separators = (",", ":") if indent is None else (",", ": ")
    text = json.dumps(
        _jsonable(value), indent=indent, sort_keys=True, ensure_ascii=False, separators=separators
    )
    return _HTML.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def format_value(value: Any) -> str:
    """One value as a jsonpath template prints it."""
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return go_json(value)
    return go_format(value)


def go_format(value: Any) -> str:
    """Go's fmt.Sprint of a JSON value: `map[a:1 b:[x y]]`, `<nil>`, `true` (custom columns)."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_format(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(go_format(v) for v in value) + "]"
    return str(value)


def go_type(value: Any) -> str:
    """The Go type an unstructured JSON value has, as client-go's messages name it."""
    kinds = {"bool": "bool", "int": "int64", "float": "float64", "string": "string"}
    if isinstance(value, dict):
        return "map[string]interface {}"
    if isinstance(value, list):
        return "[]interface {}"
    return kinds.get(_kind(value), "interface {}")


_RELAXED = re.compile(r"\{\.?([^{}]+)\}\Z|\.?([^{}]+)\Z")


def relaxed(expression: str) -> str:
    """kubectl's RelaxedJSONPathExpression: `metadata.name`, `.metadata.name`,
    `{metadata.name}` and `{.metadata.name}` all become `{.metadata.name}`."""
    if not expression:
        return expression
    match = _RELAXED.match(expression)
    if match is None:
        raise ParseError(
            "unexpected path string, expected a 'name1.name2' or '.name1.name2' or "
            "'{name1.name2}' or '{.name1.name2}'"
        )
    return "{." + (match.group(1) or match.group(2)) + "}"
