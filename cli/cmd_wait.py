"""`wait` (kubectl/pkg/cmd/wait): block until objects reach a condition, or time out.

    tinykube wait --for=condition=Ready pod/web --timeout=60s
    pod/web condition met
    tinykube wait --for=jsonpath='{.status.phase}'=Running pods -l app=web
    tinykube wait --for=delete pod/web --timeout=30s
    error: timed out waiting for the condition on pods/web          (exit 1)

`--for` takes kubectl's forms:

    delete                       the object is gone (or was replaced: another uid)
    create                       the object exists
    condition=Ready              status.conditions has type Ready with status True
    condition=Ready=false        ... with status False (both compared ignoring case)
    jsonpath={.status.phase}=Running   the expression's value is exactly that text
    jsonpath={.status.podIP}     the expression has a value at all

The objects are the ones named (`pods web db`, `pod/web`), or those that a
`-l` selector or `--all` finds when the command starts. A named object that
does not exist is an error for every condition but `delete`, for which it
is already met; a selector that finds nothing is `error: no matching
resources found`. One `--timeout` (default 30s; 0 checks once, a negative
value waits a week, as kubectl) bounds the whole command, and an object
still waiting then prints kubectl's timeout line; the exit code is 1 if any
object failed.

How: the object is read again every POLL_SECONDS rather than watched -- one
code path for all four conditions, a CLI's load on the server is a read
every 200 ms per object, and the answer comes at most that late.

The JSONPath here is the part of kubectl's dialect a wait needs: `.field`,
`['field']`, `[N]` (negative from the end), `[*]` and `.*`, and filters
`[?(@.type=="Ready")]` (with `==` or `!=`, on a dotted path). The value is
compared as kubectl prints it: strings as they are, `true`/`false`,
numbers; an expression matching several values or a map is an error.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from apimachinery import codec, errors, scheme
from cli import context, inputs, printers
from cli.cmd_label import select
from cli.context import CommandError, Options, describe_error, echo_err, effective, namespace_option
from cli.durations import parse_duration

if TYPE_CHECKING:
    from apimachinery.client import Client

POLL_SECONDS = 0.2
WEEK = 7 * 24 * 3600.0

Step = tuple[
    str, Any
]  # ("field", name) | ("index", n) | ("all", None) | ("filter", (path, op, value))

_FILTER = re.compile(r"""\?\(@((?:\.[\w-]+)+)\s*(==|!=)\s*(?:"([^"]*)"|'([^']*)'|([\w.-]+))\)""")


def parse_jsonpath(text: str) -> list[Step]:
    """`{.status.conditions[?(@.type=="Ready")].status}` -> steps; CommandError if malformed."""
    body = text.strip()
    if body.startswith("{") and body.endswith("}"):
        body = body[1:-1]
    if not body.startswith((".", "[")):
        raise CommandError(f"unrecognized JSONPath expression {text!r}: it starts with . or [")
    steps: list[Step] = []
    pos = 0
    while pos < len(body):
        if body.startswith(".*", pos):
            steps.append(("all", None))
            pos += 2
        elif body[pos] == ".":
            match = re.compile(r"[\w-]+").match(body, pos + 1)
            if match is None:
                raise CommandError(f"unrecognized JSONPath expression {text!r} at {body[pos:]!r}")
            steps.append(("field", match.group()))
            pos = match.end()
        elif body[pos] == "[":
            end = body.find("]", pos)
            if end < 0:
                raise CommandError(f"unrecognized JSONPath expression {text!r}: unclosed [")
            steps.append(_bracket(body[pos + 1 : end], text))
            pos = end + 1
        else:
            raise CommandError(f"unrecognized JSONPath expression {text!r} at {body[pos:]!r}")
    return steps


def _bracket(inner: str, text: str) -> Step:
    inner = inner.strip()
    if inner == "*":
        return ("all", None)
    if re.fullmatch(r"-?\d+", inner):
        return ("index", int(inner))
    if len(inner) >= 2 and inner[0] == inner[-1] and inner[0] in "'\"":
        return ("field", inner[1:-1])
    match = _FILTER.fullmatch(inner)
    if match is None:
        raise CommandError(f"unrecognized JSONPath expression {text!r} at [{inner}]")
    path = match.group(1)[1:].split(".")
    value = next(g for g in (match.group(3), match.group(4), match.group(5)) if g is not None)
    return ("filter", (path, match.group(2), value))


def evaluate(steps: list[Step], data: Any) -> list[Any]:
    """Every value the steps lead to in `data`; [] when the path is absent."""
    nodes = [data]
    for kind, arg in steps:
        out: list[Any] = []
        for node in nodes:
            out.extend(_step(node, kind, arg))
        nodes = out
    return nodes


def _step(node: Any, kind: str, arg: Any) -> list[Any]:
    if kind == "field":
        return [node[arg]] if isinstance(node, dict) and arg in node else []
    if kind == "index":
        ok = isinstance(node, list) and -len(node) <= arg < len(node)
        return [node[arg]] if ok else []
    if kind == "all":
        return (
            list(node.values())
            if isinstance(node, dict)
            else list(node)
            if isinstance(node, list)
            else []
        )
    return [item for item in node if _matches(item, *arg)] if isinstance(node, list) else []


def _matches(item: Any, path: list[str], op: str, want: str) -> bool:
    found = evaluate([("field", p) for p in path], item)
    equal = bool(found) and render(found[0]) == want
    return equal if op == "==" else not equal


def render(value: Any) -> str:
    """A value as kubectl's JSONPath prints it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


@dataclass(frozen=True)
class WaitFor:
    """A parsed `--for`."""

    kind: str  # delete | create | condition | jsonpath
    name: str = ""  # the condition type
    value: str | None = None  # wanted condition status / jsonpath value; None: exists
    steps: tuple[Step, ...] = ()

    def met(self, data: dict[str, Any]) -> bool:
        """Whether an existing object's JSON form meets the condition (not for delete)."""
        if self.kind == "create":
            return True
        if self.kind == "condition":
            status = data.get("status") or {}
            for cond in status.get("conditions") or []:
                if str(cond.get("type", "")).lower() == self.name.lower():
                    return str(cond.get("status", "")).lower() == (self.value or "true").lower()
            return False
        found = evaluate(list(self.steps), data)
        if len(found) > 1:
            raise CommandError("given jsonpath expression matches more than one value")
        if not found:
            return False
        if isinstance(found[0], (dict, list)) and self.value is not None:
            raise CommandError("jsonpath leads to a nested object or list which is not supported")
        return self.value is None or render(found[0]) == self.value


def parse_for(text: str) -> WaitFor:
    """kubectl's `--for` forms (see the module docstring); CommandError for anything else."""
    if text.lower() in ("delete", "create"):
        return WaitFor(text.lower())
    if text.startswith("condition="):
        name, sep, value = text[len("condition=") :].partition("=")
        if not name:
            raise CommandError(f'unrecognized condition: "{text}"')
        return WaitFor("condition", name, value if sep else "true")
    if text.startswith("jsonpath="):
        rest = text[len("jsonpath=") :]
        if rest.startswith("'") and "'" in rest[1:]:  # quotes a shell did not remove
            close = rest.index("'", 1)
            rest = rest[1:close] + rest[close + 1 :]
        if rest.startswith("{") and "}" in rest:
            close = rest.index("}")
            expr, tail = rest[: close + 1], rest[close + 1 :]
        else:
            expr, sep, value = rest.partition("=")
            tail = sep + value
        if not expr or (tail and not tail.startswith("=")):
            raise CommandError(
                "jsonpath wait format must be --for=jsonpath='{JSONPath expression}'=value "
                "or --for=jsonpath='{JSONPath expression}'"
            )
        steps = tuple(parse_jsonpath(expr))
        return WaitFor("jsonpath", value=tail[1:] if tail else None, steps=steps)
    raise CommandError(f'unrecognized condition: "{text}"')


def parse_timeout(text: str) -> float:
    negative = text.startswith("-")
    try:
        seconds = parse_duration(text.lstrip("-"))
    except CommandError:
        try:
            seconds = float(text.lstrip("-"))
        except ValueError:
            raise CommandError(f'invalid argument "{text}" for "--timeout" flag') from None
    return WEEK if negative else seconds


# ------------------------------------------------------------------ the command


@click.command("wait")
@click.argument("args", nargs=-1)
@click.option(
    "--for", "for_", default="", help="delete, create, condition=NAME[=VALUE] or jsonpath=..."
)
@click.option("--timeout", default="30s", help="How long to wait (30s, 5m; 0: check once).")
@click.option("-l", "--selector", default="", help="Wait for every object this selector finds.")
@click.option("--all", "select_all", is_flag=True, help="Every object of the kinds given.")
@namespace_option
@click.pass_obj
def wait(
    opts: Options,
    args: tuple[str, ...],
    for_: str,
    timeout: str,
    selector: str,
    select_all: bool,
    namespace: str | None,
) -> None:
    """Wait for a specific condition on one or many resources."""
    opts = effective(opts, namespace)
    by_list = bool(selector) or select_all
    try:
        if not for_:
            raise CommandError(
                "--for must be specified: delete, create, condition=... or jsonpath=..."
            )
        condition = parse_for(for_)
        seconds = parse_timeout(timeout)
        targets = inputs.parse_resource_args(args, verb="wait", need_names=not by_list)
    except CommandError as err:
        echo_err(f"error: {err}")
        raise click.exceptions.Exit(1) from None

    async def verb(client: Client) -> int:
        deadline = time.monotonic() + seconds
        pending = await select(client, opts, targets, selector)
        if not pending:
            echo_err("error: no matching resources found")
            return 1
        code = 0
        for info, name, ns in pending:
            try:
                ok = await wait_one(client, info, name, ns, condition, deadline)
            except CommandError as err:
                echo_err(f"error: {err}")
                ok = False
            except errors.NotFound as err:
                echo_err(describe_error(err, opts.server))
                ok = False
            if ok is None:
                continue
            if ok:
                click.echo(f"{printers.qualified_kind(info)}/{name} condition met")
            else:
                code = 1
        return code

    context.exit_with(context.run(opts, verb))


async def wait_one(
    client: Client,
    info: scheme.KindInfo,
    name: str,
    namespace: str,
    condition: WaitFor,
    deadline: float,
) -> bool | None:
    """True when met, False after a timeout (reported), None: a delete of what was never there."""
    uid = ""
    first = True
    while True:
        try:
            obj = await client.get(info, name, namespace)
        except errors.NotFound:
            if condition.kind == "delete":
                return None if first else True
            if first and condition.kind != "create":
                raise
        else:
            if condition.kind == "delete":
                uid = uid or obj.metadata.uid
                if obj.metadata.uid != uid:
                    return True
            elif condition.met(codec.to_dict(obj)):
                return True
        first = False
        if time.monotonic() >= deadline:
            echo_err(f"error: timed out waiting for the condition on {info.full_resource}/{name}")
            return False
        await asyncio.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))
