"""Label selectors (k8s.io/apimachinery/pkg/labels): parse, match, print.

A selector is a conjunction (AND) of requirements on an object's labels:

    text               operator       matches when
    app=web            =  (or ==)     label app is present and equals "web"
    tier!=db           !=             label tier is absent or not "db"
    env in (a,b)       in             label env is present and is a or b
    env notin (c)      notin          label env is absent or not c
    release            exists         label release is present
    !canary            !              label canary is absent
    gen>3, gen<9       gt, lt         label gen is present, an integer, > 3 / < 9

It is the language of `kubectl get -l`, of a Service's `selector` (only
`=`), and of a Deployment's `selector` (`matchLabels` = `=` requirements,
`matchExpressions` = In/NotIn/Exists/DoesNotExist).

The parser is Kubernetes': a lexer splits the text into identifiers,
operators, commas and parentheses (whitespace separates tokens, so
`env in (a, b)` is fine); identifiers are any run of characters other than
whitespace and `,()=!<>`. Keys must be qualified names and values valid label
values; errors say which and why, with Kubernetes' wording.

Worked example:

    parse("app=web, env in (prod,staging), !canary")
        -> [app = web] AND [env in {prod, staging}] AND [canary absent]
    matches({"app": "web", "env": "prod"})                 -> True
    matches({"app": "web", "env": "prod", "canary": "1"})  -> False
    str(...) -> "app=web,!canary,env in (prod,staging)"   (sorted by key)

An empty selector (`everything()`, `parse("")`) matches every object; a
`nothing()` selector matches none (what a nil LabelSelector means).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from apimachinery import errors
from apimachinery.validation_names import is_qualified_name, is_valid_label_value
from protos import meta_pb2

EQUALS = "="
DOUBLE_EQUALS = "=="
NOT_EQUALS = "!="
IN = "in"
NOT_IN = "notin"
EXISTS = "exists"
DOES_NOT_EXIST = "!"
GREATER_THAN = "gt"
LESS_THAN = "lt"

_SPECIAL = set(" \t\r\n,()=!<>")
_OPERATORS = ("!=", "==", "=", "<", ">", "!")


@dataclass(frozen=True)
class Requirement:
    """One condition on one label key."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key, "")
        op = self.operator
        if op in (EQUALS, DOUBLE_EQUALS, IN):
            return present and value in self.values
        if op in (NOT_EQUALS, NOT_IN):
            return not present or value not in self.values
        if op == EXISTS:
            return present
        if op == DOES_NOT_EXIST:
            return not present
        if op in (GREATER_THAN, LESS_THAN):
            if not present:
                return False
            try:
                have, want = int(value), int(self.values[0])
            except ValueError:
                return False
            return have > want if op == GREATER_THAN else have < want
        return False

    def __str__(self) -> str:
        op = self.operator
        if op == EXISTS:
            return self.key
        if op == DOES_NOT_EXIST:
            return "!" + self.key
        if op in (IN, NOT_IN):
            return f"{self.key} {op} ({','.join(sorted(self.values))})"
        if op in (GREATER_THAN, LESS_THAN):
            return f"{self.key}{'>' if op == GREATER_THAN else '<'}{self.values[0]}"
        return f"{self.key}{op}{self.values[0]}"


def new_requirement(key: str, operator: str, values: Iterable[str] = ()) -> Requirement:
    """A checked requirement, as labels.NewRequirement; BadRequest naming the problem."""
    vals = tuple(sorted(set(values)))
    for msg in is_qualified_name(key):
        raise errors.BadRequest(f'key: Invalid value: "{key}": {msg}')
    if operator in (IN, NOT_IN) and not vals:
        raise errors.BadRequest(
            "values: Invalid value: []: for 'in', 'notin' operators, values set can't be empty"
        )
    if operator in (EQUALS, DOUBLE_EQUALS, NOT_EQUALS) and len(vals) != 1:
        raise errors.BadRequest(
            "values: Invalid value: exact-match compatibility requires one single value"
        )
    if operator in (EXISTS, DOES_NOT_EXIST) and vals:
        raise errors.BadRequest(
            "values: Invalid value: values set must be empty for exists and does not exist"
        )
    if operator in (GREATER_THAN, LESS_THAN):
        if len(vals) != 1:
            raise errors.BadRequest(
                "values: Invalid value: for 'Gt', 'Lt' operators, exactly one value is required"
            )
        try:
            int(vals[0])
        except ValueError:
            raise errors.BadRequest(
                f'values[0]: Invalid value: "{vals[0]}": '
                "for 'Gt', 'Lt' operators, the value must be an integer"
            ) from None
    elif operator not in (EQUALS, DOUBLE_EQUALS, NOT_EQUALS, IN, NOT_IN, EXISTS, DOES_NOT_EXIST):
        raise errors.BadRequest(f"operator: Unsupported value: {operator!r}")
    for i, v in enumerate(vals):
        for msg in is_valid_label_value(v):
            raise errors.BadRequest(f'values[{i}][{key}]: Invalid value: "{v}": {msg}')
    return Requirement(key, operator, vals)


class Selector:
    """A conjunction of requirements; see the module notes."""

    def __init__(self, requirements: Iterable[Requirement] = (), *, nothing: bool = False) -> None:
        self.requirements: tuple[Requirement, ...] = tuple(
            sorted(requirements, key=lambda r: r.key)
        )
        self._nothing = nothing

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self._nothing:
            return False
        return all(r.matches(labels) for r in self.requirements)

    def empty(self) -> bool:
        """True when the selector matches everything (no requirements)."""
        return not self._nothing and not self.requirements

    def requires_exact_match(self, key: str) -> str | None:
        """The one value `key` must have, when the selector pins it (`key=v` or `key in (v)`)."""
        for r in self.requirements:
            if r.key == key and r.operator in (EQUALS, DOUBLE_EQUALS, IN) and len(r.values) == 1:
                return r.values[0]
        return None

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)

    def __repr__(self) -> str:
        return "Selector(<nothing>)" if self._nothing else f"Selector({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Selector):
            return NotImplemented
        return (self.requirements, self._nothing) == (other.requirements, other._nothing)

    def __hash__(self) -> int:
        return hash((self.requirements, self._nothing))


def everything() -> Selector:
    return Selector()


def nothing() -> Selector:
    return Selector(nothing=True)


def from_set(labels: Mapping[str, str]) -> Selector:
    """`app=web,tier=db` for a map (a Service's selector); unchecked, as SelectorFromSet."""
    return Selector(Requirement(k, EQUALS, (v,)) for k, v in labels.items())


def _lex(text: str) -> list[str]:
    tokens: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in ",()":
            tokens.append(ch)
            i += 1
        elif ch in "=!<>":
            op = next(o for o in _OPERATORS if text.startswith(o, i))
            tokens.append(op)
            i += len(op)
        else:
            j = i
            while j < len(text) and text[j] not in _SPECIAL:
                j += 1
            tokens.append(text[i:j])
            i = j
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _lex(text)
        self.pos = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str | None:
        tok = self.peek()
        self.pos += 1
        return tok

    @staticmethod
    def fail(found: str | None, expected: str) -> errors.BadRequest:
        shown = "end of string" if found is None else found
        return errors.BadRequest(
            f"unable to parse requirement: found '{shown}', expected: {expected}"
        )

    @staticmethod
    def is_identifier(tok: str | None) -> bool:
        return tok is not None and tok not in (",", "(", ")") and tok not in _OPERATORS

    def requirement(self) -> Requirement:
        tok = self.take()
        if tok == "!":
            key = self.take()
            if not self.is_identifier(key):
                raise self.fail(key, "identifier")
            return new_requirement(str(key), DOES_NOT_EXIST)
        if not self.is_identifier(tok):
            raise self.fail(tok, "! or identifier")
        key = str(tok)
        nxt = self.peek()
        if nxt is None or nxt == ",":
            return new_requirement(key, EXISTS)
        op = self.take()
        if op in ("=", "==", "!="):
            value = self.peek()
            if value is None or value == ",":
                return new_requirement(key, str(op), [""])
            self.take()
            if not self.is_identifier(value):
                raise self.fail(value, "identifier")
            return new_requirement(key, str(op), [str(value)])
        if op in (">", "<"):
            value = self.take()
            if not self.is_identifier(value):
                raise self.fail(value, "identifier")
            return new_requirement(key, GREATER_THAN if op == ">" else LESS_THAN, [str(value)])
        if op in (IN, NOT_IN):
            return new_requirement(key, str(op), self.values())
        raise self.fail(op, "'=', '!=', '==', 'in', 'notin'")

    def values(self) -> list[str]:
        tok = self.take()
        if tok != "(":
            raise self.fail(tok, "'('")
        values: list[str] = []
        if self.peek() == ")":
            self.take()
            return [""]
        while True:
            tok = self.take()
            if tok in (",", ")"):  # an empty value: `(a,,b)` or `(a,)`
                values.append("")
            elif self.is_identifier(tok):
                values.append(str(tok))
                tok = self.take()
            else:
                raise self.fail(tok, "',', ')' or identifier")
            if tok == ")":
                return values
            if tok != ",":
                raise self.fail(tok, "',' or ')'")

    def parse(self) -> Selector:
        requirements: list[Requirement] = []
        if self.peek() is None:
            return Selector()
        while True:
            requirements.append(self.requirement())
            tok = self.take()
            if tok is None:
                return Selector(requirements)
            if tok != ",":
                raise self.fail(tok, "',' or 'end of string'")


def parse(text: str) -> Selector:
    """The selector a `-l` text describes; BadRequest on bad syntax, keys or values."""
    return _Parser(text).parse()


_EXPRESSION_OPERATORS = {
    "In": IN,
    "NotIn": NOT_IN,
    "Exists": EXISTS,
    "DoesNotExist": DOES_NOT_EXIST,
}


def from_label_selector(sel: meta_pb2.LabelSelector) -> Selector:
    """A metav1.LabelSelector (matchLabels + matchExpressions) as a Selector.

    An empty LabelSelector selects everything, as LabelSelectorAsSelector;
    callers that must tell "absent" (nothing) apart check HasField first.
    """
    requirements = [new_requirement(k, EQUALS, [v]) for k, v in sorted(sel.match_labels.items())]
    for expr in sel.match_expressions:
        op = _EXPRESSION_OPERATORS.get(expr.operator)
        if op is None:
            raise errors.BadRequest(f'"{expr.operator}" is not a valid label selector operator')
        requirements.append(new_requirement(expr.key, op, list(expr.values)))
    return Selector(requirements)
