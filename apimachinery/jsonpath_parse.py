"""The JSONPath template parser: text in, a list of nodes out (client-go's jsonpath/parser.go).

A template is plain text with actions in braces. Outside braces every
character is printed as is (so `\\n` there is a backslash and an n); inside,
an action is a sequence of nodes applied one after the other to the values
found so far:

    {.items[*].metadata.name}     Field(items) Slice(*) Field(metadata) Field(name)
    {.status.conditions[?(@.type=="Ready")].status}
                                  Field Field Filter(left=[Field(type)], "==", right=[Text])
                                  Field(status)
    {range .items[*]}...{end}     an action starting with the identifier `range`, one `end`
    {"\\n"}  {'\\t'}                quoted text, Go's escapes decoded
    {..name}                      Recursive Field(name): `name` at any depth
    {.a['b.c', 'd']}              a union of the paths in brackets

Each node type is a small dataclass; the evaluator (apimachinery.jsonpath)
walks them. The parser is a hand-written scanner over the characters, as
client-go's is, and keeps its error messages word for word, because
kubectl users see them after `error parsing jsonpath <template>, `:

    unclosed action               `{.items` (or a newline inside an action)
    unterminated array            `{.items[0}`
    unterminated quoted string    `{"abc}`
    unterminated filter           `{.items[?(@.a}`
    invalid array index x         `{.items[x]}`
    unrecognized character in action: U+0021 '!'

A few of kubectl's quirks are kept too, since templates in the wild rely on
them: inside `['...']` the key is split at dots (`['metadata.name']` is
`.metadata.name`), a field name may escape a dot with a backslash
(`.metadata.labels.app\\.kubernetes\\.io/name`), `[*]` is the slice `[:]`.

Unlike client-go this scanner loops instead of recursing once per node, so a
long template cannot exhaust Python's recursion limit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

EOF = ""


class JSONPathError(Exception):
    """A template that cannot be parsed or run; the message is client-go's."""


class ParseError(JSONPathError):
    """The template is malformed."""


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Field:
    name: str


@dataclass(frozen=True)
class Wildcard:
    pass


@dataclass(frozen=True)
class Recursive:
    pass


@dataclass(frozen=True)
class Param:
    value: int = 0
    known: bool = False
    derived: bool = False


@dataclass(frozen=True)
class Slice:
    start: Param
    end: Param
    step: Param


@dataclass(frozen=True)
class Union:
    branches: tuple[tuple[Node, ...], ...]


@dataclass(frozen=True)
class Filter:
    left: tuple[Node, ...]
    right: tuple[Node, ...]
    op: str  # "==", "!=", "<", ">", "<=", ">=", or "exists"


@dataclass(frozen=True)
class Identifier:
    name: str


@dataclass(frozen=True)
class Literal:
    value: int | float | bool


Node = Text | Field | Wildcard | Recursive | Slice | Union | Filter | Identifier | Literal


@dataclass
class Action:
    """One `{...}`: its nodes, applied in order."""

    nodes: list[Node] = field(default_factory=list)


_DICT_KEY = re.compile(r"'([^']*)'\Z")
_SLICE = re.compile(r"(-?\d*)(:-?\d*)?(:-?\d*)?\Z")
_FILTER = re.compile(r"([^!<>=]+)([!<>=]+)(.+?)\Z")
_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


def _is_alnum(ch: str) -> bool:
    return ch == "_" or (ch != EOF and ch.isalnum())


def _is_terminator(ch: str) -> bool:
    return ch == EOF or ch.isspace() or ch in ".,[]$@{}"


def parse(template: str) -> list[Text | Action]:
    """The template's top-level items: literal text and actions."""
    return _Scanner(template).parse()


def parse_action(text: str) -> tuple[Node, ...]:
    """The nodes of `{text}` (client-go's parseAction, for filters and unions)."""
    items = parse("{" + text + "}")
    first = items[0] if items else Action()
    return tuple(first.nodes) if isinstance(first, Action) else (first,)


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.start = 0
        self.width = 0

    def next(self) -> str:
        if self.pos >= len(self.text):
            self.width = 0
            return EOF
        self.width = 1
        self.pos += 1
        return self.text[self.pos - 1]

    def backup(self) -> None:
        self.pos -= self.width

    def peek(self) -> str:
        ch = self.next()
        self.backup()
        return ch

    def consume(self) -> str:
        value = self.text[self.start : self.pos]
        self.start = self.pos
        return value

    def parse(self) -> list[Text | Action]:
        items: list[Text | Action] = []
        while True:
            brace = self.text.find("{", self.pos)
            if brace < 0:
                if self.start < len(self.text):
                    items.append(Text(self.text[self.start :]))
                return items
            if brace > self.start:
                items.append(Text(self.text[self.start : brace]))
            self.pos = self.start = brace + 1
            items.append(Action(self.inside_action()))

    def inside_action(self) -> list[Node]:
        nodes: list[Node] = []
        while True:
            rest = self.text[self.pos : self.pos + 3]
            if rest.startswith("}"):
                self.pos += 1
                self.consume()
                return nodes
            if rest == "[?(":
                nodes.append(self.filter())
                continue
            if rest.startswith(".."):
                if nodes and isinstance(nodes[-1], Recursive):
                    raise ParseError("invalid multiple recursive descent")
                self.pos += 2
                self.consume()
                nodes.append(Recursive())
                if _is_alnum(self.peek()):
                    nodes.append(self.field())
                continue
            nodes.extend(self.one_node())

    def one_node(self) -> list[Node]:
        ch = self.next()
        if ch == EOF or ch in "\r\n":
            raise ParseError("unclosed action")
        if ch in " @$":
            self.consume()
            return []
        if ch == "[":
            return self.array()
        if ch in "\"'":
            return [self.quote(ch)]
        if ch == ".":
            return [self.field()]
        if ch in "+-" or ch.isdigit():
            self.backup()
            return [self.number()]
        if _is_alnum(ch):
            self.backup()
            return [self.identifier()]
        raise ParseError(f"unrecognized character in action: U+{ord(ch):04X} '{ch}'")

    def field(self) -> Node:
        self.consume()  # the dot
        while True:
            ch = self.next()
            if ch == "\\":
                self.next()
            elif _is_terminator(ch):
                self.backup()
                break
        value = self.consume()
        return Wildcard() if value == "*" else Field(value.replace("\\", ""))

    def array(self) -> list[Node]:
        while True:
            ch = self.next()
            if ch == EOF or ch == "\n":
                raise ParseError("unterminated array")
            if ch == "]":
                break
        text = self.consume()[1:-1]
        if text == "*":
            text = ":"
        parts = text.split(",")
        if len(parts) > 1:
            return [Union(tuple(parse_action(f"[{p.strip(' ')}]") for p in parts))]
        key = _DICT_KEY.match(text)
        if key is not None:
            return list(parse_action("." + key.group(1)))
        return [_slice(text)]

    def quote(self, end: str) -> Node:
        while True:
            ch = self.next()
            if ch == EOF or ch == "\n":
                raise ParseError("unterminated quoted string")
            if ch == "\\":
                after = self.next()
                if after != EOF and after != "\n":
                    continue
                break
            if ch == end:
                break
        value = self.consume()
        try:
            return Text(unquote(value))
        except ValueError:
            raise ParseError(f"unquote string {value} error invalid syntax") from None

    def number(self) -> Node:
        if self.peek() in "+-":
            self.next()
        while True:
            ch = self.next()
            if ch != "." and not (ch != EOF and ch.isdigit()):
                self.backup()
                break
        value = self.consume()
        try:
            return Literal(int(value))
        except ValueError:
            pass
        try:
            return Literal(float(value))
        except ValueError:
            raise ParseError(f"cannot parse number {value}") from None

    def identifier(self) -> Node:
        while not _is_terminator(self.next()):
            pass
        self.backup()
        value = self.consume()
        if value in ("true", "false"):
            return Literal(value == "true")
        return Identifier(value)

    def filter(self) -> Node:
        self.pos += 3
        self.consume()
        begin = end = False
        pair = ""
        while True:
            ch = self.next()
            if ch == EOF or ch == "\n":
                raise ParseError("unterminated filter")
            if ch in "\"'":
                if not begin:
                    begin, pair = True, ch
                elif self.text[self.pos - 2] != "\\" and ch == pair:
                    end = True
            elif ch == ")" and begin == end:
                break
        if self.next() != "]":
            raise ParseError("unclosed array expect ]")
        text = self.consume()[:-2]
        match = _FILTER.match(text)
        if match is None:
            return Filter(parse_action(text), (), "exists")
        left, op, right = match.groups()
        return Filter(parse_action(left), parse_action(right), op)


def _slice(text: str) -> Slice:
    match = _SLICE.match(text)
    if match is None:
        raise ParseError(f"invalid array index {text}")
    raw = list(match.groups(""))
    params: list[Param] = []
    for i in range(3):
        value = raw[i]
        if value:
            if i > 0:
                value = value[1:]
            if i > 0 and not value:
                params.append(Param())
                continue
            try:
                params.append(Param(int(value), known=True))
            except ValueError:
                raise ParseError(f"array index {value} is not a number") from None
        elif i == 1:
            params.append(Param(params[0].value + 1, known=True, derived=True))
        else:
            params.append(Param())
    return Slice(params[0], params[1], params[2])


def unquote(quoted: str) -> str:
    """Go's strconv.Unquote for "..." and '...' (ValueError when malformed)."""
    if len(quoted) < 2 or quoted[0] != quoted[-1] or quoted[0] not in "\"'":
        raise ValueError(quoted)
    quote, body = quoted[0], quoted[1:-1]
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == quote:
            raise ValueError(quoted)
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        esc = body[i + 1 : i + 2]
        i += 2
        if esc in _ESCAPES:
            out.append(_ESCAPES[esc])
        elif esc == "\\" or esc == quote:
            out.append(esc)
        elif esc in ("x", "u", "U"):
            size = {"x": 2, "u": 4, "U": 8}[esc]
            digits = body[i : i + size]
            if len(digits) != size or not all(c in "0123456789abcdefABCDEF" for c in digits):
                raise ValueError(quoted)
            out.append(chr(int(digits, 16)))
            i += size
        elif esc and esc in "01234567":
            digits = body[i - 1 : i + 2]
            if len(digits) != 3 or not all(c in "01234567" for c in digits) or int(digits, 8) > 255:
                raise ValueError(quoted)
            out.append(chr(int(digits, 8)))
            i += 2
        else:
            raise ValueError(quoted)
    return "".join(out)
