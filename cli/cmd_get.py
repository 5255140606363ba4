"""`get`, `describe`, `api-resources`, `version` (kubectl/pkg/cmd/{get,describe,...}).

`get` in four steps, as kubectl's get.go:

1. parse `KIND[,KIND] [NAME...]` / `KIND/NAME` into (kind, names) pairs, and
   the output flags (cli.output: `-o`, `--sort-by`) -- a bad template is an
   error before anything is sent;
2. fetch: a Get per name (NotFound is reported per name and does not stop
   the others), or one List per kind with the label/field selectors; then
   order by `--sort-by` if given;
3. print: for the table, one table per kind, a blank line between tables,
   names prefixed with the kind (`deployment.apps/web-app`) when several
   kinds are shown, `-L key` and `--show-labels` columns after the kind's
   own; every other `-o` (name, json, yaml, jsonpath, custom-columns) sees
   one object: the one named, or a List of everything fetched;
4. with `-w`, print each listed object, then follow a Watch from the List's
   resourceVersion -- so no change between the list and the watch is lost
   -- and print one row (or object) per event, the table keeping the widths
   its header was printed with. `--watch-only` skips the listed objects.
   Any kind can be watched: `get events -w` is the cluster's event stream.

An empty table prints `No resources found in default namespace.` to stderr
and exits 0, as kubectl does; `-o json|yaml` prints an empty List instead,
so a script always gets a parsable document. A named object that does not
exist exits 1.

    $ tinykube get pods -o jsonpath='{range .items[*]}{.metadata.name} {.status.phase}{"\\n"}{end}'
    web-app-7d4b9-x2kq9 Running
    $ tinykube get pods -L app --sort-by=.metadata.creationTimestamp
"""

from __future__ import annotations

import platform
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from apimachinery import errors, jsonpath, scheme
from cli import cells, context, describe, inputs, output, printers
from cli.context import CommandError, Options, describe_error, echo_err, effective, namespace_option

if TYPE_CHECKING:
    from apimachinery.client import Client

CLIENT_VERSION = "v0.1.0"


def with_type_meta(obj: Any) -> Any:
    """Fill apiVersion/kind, which list items may leave empty, before printing YAML/JSON."""
    info = scheme.for_message(obj)
    if not obj.api_version:
        obj.api_version = info.api_version
    if not obj.kind:
        obj.kind = info.kind
    return obj


def no_resources_message(kinds: list[scheme.KindInfo], namespace: str) -> str:
    if namespace and any(k.namespaced for k in kinds):
        return f"No resources found in {namespace} namespace."
    return "No resources found"


# ------------------------------------------------------------------ get


@dataclass
class GetView:
    """How `get` prints: the table's options, or the generic printer, and the order."""

    fmt: output.OutputFormat
    generic: output.GenericPrinter | None
    sort: jsonpath.JSONPath | None
    all_namespaces: bool = False
    label_columns: tuple[str, ...] = ()
    show_labels: bool = False
    no_headers: bool = False

    def new_table(self, info: scheme.KindInfo) -> printers.Table:
        return printers.new_table(
            info,
            wide=self.fmt.kind == "wide",
            with_namespace=self.all_namespaces,
            label_columns=self.label_columns,
            show_labels=self.show_labels,
        )

    def sorted(self, objs: list[Any]) -> list[Any]:
        return output.sort_objects(objs, self.sort) if self.sort is not None else objs


def _label_columns(values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(key.strip() for value in values for key in value.split(",") if key.strip())


@click.command("get")
@click.argument("args", nargs=-1)
@click.option(
    "-o",
    "--output",
    "output_format",
    default=None,
    metavar="FORMAT",
    help="wide, name, json, yaml, jsonpath=TEMPLATE, jsonpath-file=FILE, jsonpath-as-json="
    "TEMPLATE, custom-columns=SPEC, custom-columns-file=FILE.",
)
@click.option("-l", "--selector", default="", help="Label selector, e.g. app=web,tier!=db.")
@click.option("--field-selector", default="", help="Field selector, e.g. spec.nodeName=node1.")
@click.option("-A", "--all-namespaces", is_flag=True, help="List across all namespaces.")
@click.option("-w", "--watch", is_flag=True, help="After listing, watch for changes.")
@click.option("--watch-only", is_flag=True, help="Watch for changes without listing first.")
@click.option(
    "--sort-by", default="", metavar="JSONPATH", help="Sort by a field, e.g. .metadata.name."
)
@click.option("--show-labels", is_flag=True, help="Show all labels as the last column.")
@click.option(
    "-L", "--label-columns", multiple=True, metavar="KEY,...", help="Labels shown as columns."
)
@click.option("--no-headers", is_flag=True, help="Print no header line.")
@click.option(
    "--allow-missing-template-keys",
    type=click.BOOL,
    default=True,
    help="A key missing in a jsonpath template prints nothing (else: an error).",
)
@namespace_option
@click.pass_obj
def get(
    opts: Options,
    args: tuple[str, ...],
    output_format: str | None,
    selector: str,
    field_selector: str,
    all_namespaces: bool,
    watch: bool,
    watch_only: bool,
    sort_by: str,
    show_labels: bool,
    label_columns: tuple[str, ...],
    no_headers: bool,
    allow_missing_template_keys: bool,
    namespace: str | None,
) -> None:
    """Display one or many resources."""
    opts = effective(opts, namespace)
    try:
        targets = _get_targets(
            args, all_namespaces, selector or field_selector, watch or watch_only
        )
        fmt = output.parse_output(output_format)
        generic = None
        if not fmt.table:
            generic = output.GenericPrinter(fmt, allow_missing_template_keys, no_headers)
        sort = output.sort_path(sort_by) if sort_by else None
    except CommandError as err:
        echo_err(f"error: {err}")
        raise click.exceptions.Exit(1) from None
    view = GetView(
        fmt, generic, sort, all_namespaces, _label_columns(label_columns), show_labels, no_headers
    )
    ns = "" if all_namespaces else opts.namespace

    async def verb(client: Client) -> int:
        fetched, code = await _fetch(client, targets, ns, selector, field_selector, opts.server)
        fetched = [(info, view.sorted(objs), rv) for info, objs, rv in fetched]
        single = len(targets) == 1 and len(targets[0][1]) == 1
        table: printers.Table | None = None
        if watch or watch_only:
            if not watch_only:
                table = print_initial_watch(fetched, view)
            selectors = (selector, field_selector)
            return await _follow(client, targets, ns, selectors, fetched, view, table)
        if view.generic is not None:
            everything = [with_type_meta(o) for _, objs, _ in fetched for o in objs]
            if everything or not (single and code):
                click.echo(view.generic.render(everything, single=single), nl=False)
            return code
        print_tables(fetched, view)
        if not any(objs for _, objs, _ in fetched) and code == 0:
            echo_err(no_resources_message([i for i, _ in targets], ns))
        return code

    context.exit_with(context.run(opts, verb))


def _get_targets(
    args: tuple[str, ...], all_namespaces: bool, selecting: str, watching: bool
) -> list[tuple[scheme.KindInfo, list[str]]]:
    targets = inputs.parse_resource_args(args, verb="get")
    named = any(names for _, names in targets)
    if named and all_namespaces:
        raise CommandError("a resource cannot be retrieved by name across all namespaces")
    if named and selecting:
        raise CommandError(
            "selectors and the all flag cannot be used when passing resource/name arguments"
        )
    if watching and (len(targets) > 1 or sum(len(n) for _, n in targets) > 1):
        raise CommandError("you may only specify a single resource type (and name) to watch")
    return targets


async def _fetch(
    client: Client,
    targets: list[tuple[scheme.KindInfo, list[str]]],
    ns: str,
    selector: str,
    field_selector: str,
    server: str,
) -> tuple[list[tuple[scheme.KindInfo, list[Any], str]], int]:
    """A Get per name (NotFound reported, not fatal), else one List per kind."""
    code = 0
    fetched: list[tuple[scheme.KindInfo, list[Any], str]] = []
    for info, names in targets:
        objs: list[Any] = []
        rv = ""
        if names:
            for obj_name in names:
                try:
                    objs.append(await client.get(info, obj_name, ns))
                except errors.NotFound as err:
                    echo_err(describe_error(err, server))
                    code = 1
        else:
            objs, rv = await client.list(
                info, ns, label_selector=selector, field_selector=field_selector
            )
        fetched.append((info, objs, rv))
    return fetched, code


async def _follow(
    client: Client,
    targets: list[tuple[scheme.KindInfo, list[str]]],
    ns: str,
    selectors: tuple[str, str],
    fetched: list[tuple[scheme.KindInfo, list[Any], str]],
    view: GetView,
    table: printers.Table | None,
) -> int:
    """`-w`: a Watch from the List's resourceVersion, one printed row per event."""
    selector, field_selector = selectors
    info, objs, rv = fetched[0]
    if not rv:
        rv = max((o.metadata.resource_version for o in objs), key=_rv_key, default="")
    fs = field_selector
    if targets[0][1]:
        fs = f"metadata.name={targets[0][1][0]}"
    stream = client.watch(info, ns, resource_version=rv, label_selector=selector, field_selector=fs)
    async for event in stream:
        if event.type == "BOOKMARK":
            continue
        table = print_watch_row(info, event.object, view, table)
    return 0


def _rv_key(rv: str) -> int:
    return int(rv) if rv.isdigit() else 0


def print_tables(fetched: list[tuple[scheme.KindInfo, list[Any], str]], view: GetView) -> None:
    """One table per kind with objects, a blank line between; kind-prefixed names if several."""
    with_kind = len(fetched) > 1
    first = True
    for info, objs, _ in fetched:
        if not objs:
            continue
        if not first:
            click.echo("")
        first = False
        table = view.new_table(info)
        text = printers.render_table(info, objs, with_kind=with_kind, table=table)
        if view.no_headers:
            text = text.partition("\n")[2]
        click.echo(text, nl=False)


def print_initial_watch(
    fetched: list[tuple[scheme.KindInfo, list[Any], str]], view: GetView
) -> printers.Table | None:
    """What `-w` prints before the first event: each listed object on its own (kubectl)."""
    table: printers.Table | None = None
    info, objs, _ = fetched[0]
    for obj in objs:
        table = print_watch_row(info, obj, view, table)
    return table


def print_watch_row(
    info: scheme.KindInfo, obj: Any, view: GetView, table: printers.Table | None
) -> printers.Table | None:
    """One watched object in the `get` output form; the table header before the first row."""
    obj = with_type_meta(obj)
    if view.generic is not None:
        click.echo(view.generic.render_event(obj), nl=False)
    else:
        rows: list[list[str]] = []
        if table is None:
            table = view.new_table(info)
            if not view.no_headers:
                rows.append(table.headers())
        rows.append(table.cells(obj, cells.PrintContext(now=time.time())))
        for line in table.format(rows):
            click.echo(line)
    sys.stdout.flush()
    return table


# ------------------------------------------------------------------ describe


@click.command("describe")
@click.argument("args", nargs=-1)
@click.option("-l", "--selector", default="", help="Label selector for describing many.")
@namespace_option
@click.pass_obj
def describe_cmd(
    opts: Options, args: tuple[str, ...], selector: str, namespace: str | None
) -> None:
    """Show details of a resource or group of resources."""
    opts = effective(opts, namespace)
    try:
        targets = inputs.parse_resource_args(args, verb="describe")
    except CommandError as err:
        echo_err(f"error: {err}")
        raise click.exceptions.Exit(1) from None

    async def verb(client: Client) -> int:
        code = 0
        texts: list[str] = []
        for info, names in targets:
            objs: list[Any] = []
            if names:
                for obj_name in names:
                    try:
                        objs.append(await client.get(info, obj_name, opts.namespace))
                    except errors.NotFound as err:
                        echo_err(describe_error(err, opts.server))
                        code = 1
            else:
                objs, _ = await client.list(info, opts.namespace, label_selector=selector)
            for obj in objs:
                related = await describe.gather(client, info, obj)
                texts.append(describe.describe(obj, related, now=time.time()))
        if texts:
            click.echo("\n\n".join(texts), nl=False)
        elif code == 0:
            echo_err(no_resources_message([i for i, _ in targets], opts.namespace))
        return code

    context.exit_with(context.run(opts, verb))


# ------------------------------------------------------------------ api-resources, version


@click.command("api-resources")
@click.option("-o", "--output", type=click.Choice(["wide", "name"]), default=None)
@click.pass_obj
def api_resources(opts: Options, output: str | None) -> None:
    """Print the supported API resources on the server."""

    async def verb(client: Client) -> int:
        resources = await client.server_resources()
        if output == "name":
            for r in resources:
                group = r.group_version.rpartition("/")[0]
                click.echo(f"{r.name}.{group}" if group else r.name)
            return 0
        headers = ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
        if output == "wide":
            headers.append("VERBS")
        rows = [headers]
        for r in resources:
            row = [
                r.name,
                ",".join(r.short_names),
                r.group_version,
                "true" if r.namespaced else "false",
                r.kind,
            ]
            if output == "wide":
                row.append(",".join(r.verbs))
            rows.append(row)
        table = printers.Table([])
        for line in table.format(rows):
            click.echo(line.rstrip())
        return 0

    context.exit_with(context.run(opts, verb))


@click.command("version")
@click.option("--client", "client_only", is_flag=True, help="Client version only.")
@click.pass_obj
def version(opts: Options, client_only: bool) -> None:
    """Print the client and server version information."""
    click.echo(f"Client Version: {CLIENT_VERSION} (Python {platform.python_version()})")
    if client_only:
        return

    async def verb(client: Client) -> int:
        info = await client.version()
        extra = ", ".join(
            part
            for part in (
                f"Python {info.python_version}" if info.python_version else "",
                info.platform,
                f"storage {info.storage_backend}" if info.storage_backend else "",
            )
            if part
        )
        click.echo(f"Server Version: {info.git_version}" + (f" ({extra})" if extra else ""))
        return 0

    context.exit_with(context.run(opts, verb))
