"""`get`, `describe`, `api-resources`, `version` (kubectl/pkg/cmd/{get,describe,...}).

`get` in four steps, as kubectl's get.go:

1. parse `KIND[,KIND] [NAME...]` / `KIND/NAME` into (kind, names) pairs;
2. fetch: a Get per name (NotFound is reported per name and does not stop
   the others), or one List per kind with the label/field selectors;
3. print: one table per kind, a blank line between tables, names prefixed
   with the kind (`deployment.apps/web-app`) when several kinds are shown;
   or `-o name|yaml|json` over everything fetched;
4. with `-w`, follow a Watch from the List's resourceVersion -- so no change
   between the list and the watch is lost -- and print one row per event
   with the widths the header was printed with.

Nothing found prints `No resources found in default namespace.` to stderr
and exits 0, as kubectl does; a named object that does not exist exits 1.
"""

from __future__ import annotations

import platform
import sys
import time
from typing import TYPE_CHECKING, Any

import click

from apimachinery import errors, scheme
from cli import cells, context, describe, inputs, printers
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


@click.command("get")
@click.argument("args", nargs=-1)
@click.option("-o", "--output", type=click.Choice(["wide", "yaml", "json", "name"]), default=None)
@click.option("-l", "--selector", default="", help="Label selector, e.g. app=web,tier!=db.")
@click.option("--field-selector", default="", help="Field selector, e.g. spec.nodeName=node1.")
@click.option("-A", "--all-namespaces", is_flag=True, help="List across all namespaces.")
@click.option("-w", "--watch", is_flag=True, help="After listing, watch for changes.")
@namespace_option
@click.pass_obj
def get(
    opts: Options,
    args: tuple[str, ...],
    output: str | None,
    selector: str,
    field_selector: str,
    all_namespaces: bool,
    watch: bool,
    namespace: str | None,
) -> None:
    """Display one or many resources."""
    opts = effective(opts, namespace)
    try:
        targets = inputs.parse_resource_args(args, verb="get")
        named = any(names for _, names in targets)
        if named and all_namespaces:
            raise CommandError("a resource cannot be retrieved by name across all namespaces")
        if named and (selector or field_selector):
            raise CommandError(
                "selectors and the all flag cannot be used when passing resource/name arguments"
            )
        if watch and (len(targets) > 1 or sum(len(n) for _, n in targets) > 1):
            raise CommandError("you may only specify a single resource type (and name) to watch")
    except CommandError as err:
        echo_err(f"error: {err}")
        raise click.exceptions.Exit(1) from None
    ns = "" if all_namespaces else opts.namespace

    async def verb(client: Client) -> int:
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
                        echo_err(describe_error(err, opts.server))
                        code = 1
            else:
                objs, rv = await client.list(
                    info, ns, label_selector=selector, field_selector=field_selector
                )
            fetched.append((info, objs, rv))
        single = len(targets) == 1 and len(targets[0][1]) == 1
        table = print_fetched(fetched, output, all_namespaces, single)
        if not any(objs for _, objs, _ in fetched) and code == 0 and not watch:
            echo_err(no_resources_message([i for i, _ in targets], ns))
        if watch:
            info, objs, rv = fetched[0]
            if not rv:
                rv = max((o.metadata.resource_version for o in objs), key=_rv_key, default="")
            fs = field_selector
            if targets[0][1]:
                fs = f"metadata.name={targets[0][1][0]}"
            stream = client.watch(
                info, ns, resource_version=rv, label_selector=selector, field_selector=fs
            )
            async for event in stream:
                if event.type == "BOOKMARK":
                    continue
                table = print_watch_row(info, event.object, output, all_namespaces, table)
        return code

    context.exit_with(context.run(opts, verb))


def _rv_key(rv: str) -> int:
    return int(rv) if rv.isdigit() else 0


def print_fetched(
    fetched: list[tuple[scheme.KindInfo, list[Any], str]],
    output: str | None,
    all_namespaces: bool,
    single: bool,
) -> printers.Table | None:
    """Print what `get` fetched; the last table printed (for `-w` to continue)."""
    everything = [with_type_meta(o) for _, objs, _ in fetched for o in objs]
    if output == "name":
        click.echo(printers.render_names(everything), nl=False)
        return None
    if output == "yaml":
        if everything:
            click.echo(printers.render_yaml(everything, single=single), nl=False)
        return None
    if output == "json":
        if everything:
            click.echo(printers.render_json(everything, single=single), nl=False)
        return None
    with_kind = len(fetched) > 1
    first = True
    table: printers.Table | None = None
    for info, objs, _ in fetched:
        if not objs:
            continue
        if not first:
            click.echo("")
        first = False
        table = printers.new_table(info, wide=output == "wide", with_namespace=all_namespaces)
        text = printers.render_table(info, objs, with_kind=with_kind, table=table)
        click.echo(text, nl=False)
    return table


def print_watch_row(
    info: scheme.KindInfo,
    obj: Any,
    output: str | None,
    all_namespaces: bool,
    table: printers.Table | None,
) -> printers.Table | None:
    """One watch event, in the `get` output form; prints the header if none was printed."""
    obj = with_type_meta(obj)
    if output == "name":
        click.echo(printers.object_name(obj))
    elif output == "yaml":
        click.echo("---\n" + printers.render_yaml([obj], single=True), nl=False)
    elif output == "json":
        click.echo(printers.render_json([obj], single=True), nl=False)
    else:
        rows: list[list[str]] = []
        if table is None:
            table = printers.new_table(info, wide=output == "wide", with_namespace=all_namespaces)
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
