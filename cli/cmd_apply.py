"""`apply`, `create`, `delete` (kubectl/pkg/cmd/{apply,create,delete}).

All three verbs that take `-f` share one shape:

1. read every source and decode every document first (cli.inputs) -- one
   bad document means nothing is sent and exit 1;
2. put each object in the namespace from `-n` unless it names its own; if
   it names another namespace while `-n` was given explicitly, refuse it
   before sending anything, as kubectl does;
3. for apply: first send every object as a server-side dry run; if the
   server refuses any (Invalid, a taken ClusterIP or NodePort, ...), print
   every refusal and write nothing — a file applies whole or not at all, so
   bad input never leaves the cluster half-changed;
4. send one request per object in manifest order and print one line each:

       deployment.apps/web-app created          apply, create
       service/web-app-service unchanged        apply
       deployment.apps "web-app" deleted        delete

   A server error for one object (create, delete, or an apply that raced
   with another writer) is printed (`Error from server (Invalid): ...`) and
   the others still go; the exit code is 1 if any failed. An unreachable
   server stops the run at once (every request would fail).

`delete` waits, as kubectl does by default, until each object is really
gone (graceful deletion and finalizers can keep it for a while); `--wait=false`
returns as soon as the server accepted the deletion.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import click

from apimachinery import errors, scheme
from cli import context, inputs, printers
from cli.context import CommandError, Options, describe_error, echo_err, effective, namespace_option

if TYPE_CHECKING:
    from apimachinery.client import Client

WAIT_POLL_SECONDS = 0.25


def load_objects(filenames: tuple[str, ...], opts: Options) -> list[Any]:
    """Decode all `-f` sources and place each object in its namespace; CommandError if any fails."""
    sources = inputs.read_sources(filenames)
    objs, problems = inputs.decode_all(sources)
    if problems:
        for err in problems:
            echo_err(f"error: {err}")
        raise click.exceptions.Exit(1)
    for obj in objs:
        info = scheme.for_message(obj)
        meta = obj.metadata
        if not info.namespaced:
            continue
        if not meta.namespace:
            meta.namespace = opts.namespace
        elif opts.namespace_explicit and meta.namespace != opts.namespace:
            raise CommandError(
                f'the namespace from the provided object "{meta.namespace}" does not match the '
                f'namespace "{opts.namespace}". You must pass '
                f"'--namespace={meta.namespace}' to perform this operation."
            )
    return objs


def _load_or_exit(filenames: tuple[str, ...], opts: Options, verb: str) -> list[Any]:
    try:
        objs = load_objects(filenames, opts)
    except CommandError as err:
        echo_err(f"error: {err}")
        raise click.exceptions.Exit(1) from None
    if not objs:
        echo_err(f"error: no objects passed to {verb}")
        raise click.exceptions.Exit(1)
    return objs


def report_failure(err: errors.StatusError, server: str) -> None:
    """Print one object's failure; an unreachable server aborts the whole run instead."""
    if isinstance(err, errors.ServiceUnavailable):
        raise err
    echo_err(describe_error(err, server))


# ------------------------------------------------------------------ apply


@click.command("apply")
@click.option(
    "-f",
    "--filename",
    "filenames",
    multiple=True,
    required=True,
    help="File, directory of manifests, or - for stdin (repeatable).",
)
@click.option(
    "--dry-run",
    type=click.Choice(["none", "server"]),
    default="none",
    help="server: validate and default on the server without persisting.",
)
@click.option("--field-manager", default="tinykube", help="Name of the manager of the fields.")
@click.option("-o", "--output", type=click.Choice(["name", "yaml", "json"]), default=None)
@namespace_option
@click.pass_obj
def apply(
    opts: Options,
    filenames: tuple[str, ...],
    dry_run: str,
    field_manager: str,
    output: str | None,
    namespace: str | None,
) -> None:
    """Apply a configuration to a resource by file name or stdin."""
    opts = effective(opts, namespace)
    objs = _load_or_exit(filenames, opts, "apply")
    suffix = " (server dry run)" if dry_run == "server" else ""

    async def verb(client: Client) -> int:
        if not await _dry_run_all(client, objs, field_manager, opts.server):
            return 1
        code = 0
        for obj in objs:
            try:
                result, outcome = await client.apply(
                    obj, field_manager=field_manager, dry_run=dry_run == "server"
                )
            except errors.StatusError as err:
                report_failure(err, opts.server)
                code = 1
                continue
            print_result(result, f"{outcome}{suffix}", output)
        return code

    context.exit_with(context.run(opts, verb))


async def _dry_run_all(client: Client, objs: list[Any], field_manager: str, server: str) -> bool:
    """Every object through the server's checks without writing; False if any is refused.

    A namespace created by the same file does not exist yet during the dry run,
    so "namespace not found" for one of the file's own Namespaces is not a refusal.
    """
    own_namespaces = {o.metadata.name for o in objs if o.kind == "Namespace"}
    ok = True
    for obj in objs:
        try:
            await client.apply(obj, field_manager=field_manager, dry_run=True)
        except errors.NotFound as err:
            if obj.metadata.namespace in own_namespaces and "namespaces" in str(err):
                continue
            report_failure(err, server)
            ok = False
        except errors.StatusError as err:
            report_failure(err, server)
            ok = False
    return ok


def print_result(obj: Any, outcome: str, output: str | None) -> None:
    """`deployment.apps/web-app created`, or the object itself with -o yaml|json."""
    from cli.cmd_get import with_type_meta

    if output == "yaml":
        click.echo(printers.render_yaml([with_type_meta(obj)], single=True), nl=False)
    elif output == "json":
        click.echo(printers.render_json([with_type_meta(obj)], single=True), nl=False)
    elif output == "name":
        click.echo(printers.object_name(obj))
    else:
        click.echo(f"{printers.object_name(obj)} {outcome}")


# ------------------------------------------------------------------ create


@click.group("create", invoke_without_command=True)
@click.option(
    "-f",
    "--filename",
    "filenames",
    multiple=True,
    help="File, directory of manifests, or - for stdin (repeatable).",
)
@click.option("--dry-run", type=click.Choice(["none", "server"]), default="none")
@namespace_option
@click.pass_context
def create(
    ctx: click.Context, filenames: tuple[str, ...], dry_run: str, namespace: str | None
) -> None:
    """Create a resource from a file or stdin, or a node / namespace by name."""
    opts: Options = effective(ctx.obj, namespace)
    ctx.obj = opts
    if ctx.invoked_subcommand is not None:
        return
    if not filenames:
        echo_err("error: must specify one of -f or a resource to create (node, namespace)")
        raise click.exceptions.Exit(1)
    objs = _load_or_exit(filenames, opts, "create")
    context.exit_with(context.run(opts, lambda client: create_all(client, opts, objs, dry_run)))


async def create_all(client: Client, opts: Options, objs: list[Any], dry_run: str) -> int:
    suffix = " (server dry run)" if dry_run == "server" else ""
    code = 0
    for obj in objs:
        try:
            created = await client.create(obj, dry_run=dry_run == "server")
        except errors.StatusError as err:
            report_failure(err, opts.server)
            code = 1
            continue
        click.echo(f"{printers.object_name(created)} created{suffix}")
    return code


def _create_named(opts: Options, kind: str, name: str) -> None:
    obj = scheme.new_object(scheme.for_resource(kind))
    obj.metadata.name = name
    context.exit_with(context.run(opts, lambda client: create_all(client, opts, [obj], "none")))


@create.command("node")
@click.argument("name")
@click.pass_obj
def create_node(opts: Options, name: str) -> None:
    """Create a Node object named NAME (a kubelet registering would do the same)."""
    _create_named(opts, "nodes", name)


@create.command("namespace")
@click.argument("name")
@click.pass_obj
def create_namespace(opts: Options, name: str) -> None:
    """Create a namespace named NAME."""
    _create_named(opts, "namespaces", name)


create.add_command(create_namespace, "ns")

# ------------------------------------------------------------------ delete

CASCADE = {
    "background": "Background",
    "foreground": "Foreground",
    "orphan": "Orphan",
    "true": "Background",
    "false": "Orphan",
}


@click.command("delete")
@click.argument("args", nargs=-1)
@click.option(
    "-f",
    "--filename",
    "filenames",
    multiple=True,
    help="File, directory of manifests, or - for stdin (repeatable).",
)
@click.option("-l", "--selector", default="", help="Delete every object matching this selector.")
@click.option("--all", "delete_all", is_flag=True, help="Delete every object of the kinds given.")
@click.option(
    "--grace-period",
    type=int,
    default=-1,
    help="Seconds given to the object to terminate gracefully (-1: the object's own).",
)
@click.option("--now", is_flag=True, help="Same as --grace-period=1.")
@click.option(
    "--cascade",
    type=click.Choice(sorted(CASCADE)),
    default="background",
    help="How dependents are deleted: background, foreground or orphan.",
)
@click.option("--ignore-not-found", is_flag=True, help="Treat NotFound as success.")
@click.option("--wait/--no-wait", default=True, help="Wait until the objects are gone.")
@namespace_option
@click.pass_obj
def delete(
    opts: Options,
    args: tuple[str, ...],
    filenames: tuple[str, ...],
    selector: str,
    delete_all: bool,
    grace_period: int,
    now: bool,
    cascade: str,
    ignore_not_found: bool,
    wait: bool,
    namespace: str | None,
) -> None:
    """Delete resources by file names, stdin, resources and names, or by selector."""
    opts = effective(opts, namespace)
    by_list = bool(selector) or delete_all
    try:
        if filenames and args:
            raise CommandError("cannot combine -f with resource arguments")
        targets = (
            []
            if filenames
            else inputs.parse_resource_args(args, verb="delete", need_names=not by_list)
        )
    except CommandError as err:
        echo_err(f"error: {err}")
        raise click.exceptions.Exit(1) from None
    objs = _load_or_exit(filenames, opts, "delete") if filenames else []
    grace = 1 if now else (grace_period if grace_period >= 0 else None)
    policy = CASCADE[cascade]

    async def verb(client: Client) -> int:
        pending: list[tuple[scheme.KindInfo, str, str]] = [
            (scheme.for_message(o), o.metadata.name, o.metadata.namespace) for o in objs
        ]
        for info, names in targets:
            ns = opts.namespace if info.namespaced else ""
            if names:
                pending.extend((info, n, ns) for n in names)
            else:
                found, _ = await client.list(info, ns, label_selector=selector)
                pending.extend((info, o.metadata.name, o.metadata.namespace) for o in found)
        if not pending and not objs:
            echo_err(printers_no_resources(opts.namespace))
            return 0
        code = 0
        gone: list[tuple[scheme.KindInfo, str, str, str]] = []
        for info, name, ns in pending:
            try:
                deleted = await client.delete(
                    info, name, ns, grace_period_seconds=grace, propagation_policy=policy
                )
            except errors.NotFound as err:
                if not ignore_not_found:
                    echo_err(describe_error(err, opts.server))
                    code = 1
                continue
            except errors.StatusError as err:
                report_failure(err, opts.server)
                code = 1
                continue
            click.echo(f'{printers.qualified_kind(info)} "{name}" deleted')
            uid = getattr(getattr(deleted, "metadata", None), "uid", "")
            gone.append((info, name, ns, uid))
        if wait:
            for info, name, ns, uid in gone:
                await wait_until_gone(client, info, name, ns, uid)
        return code

    context.exit_with(context.run(opts, verb))


def printers_no_resources(namespace: str) -> str:
    return f"No resources found in {namespace} namespace." if namespace else "No resources found"


async def wait_until_gone(
    client: Client, info: scheme.KindInfo, name: str, namespace: str, uid: str
) -> None:
    """Poll until the object is NotFound or replaced by a new one (another uid)."""
    while True:
        try:
            current = await client.get(info, name, namespace)
        except errors.NotFound:
            return
        if uid and current.metadata.uid != uid:
            return
        await asyncio.sleep(WAIT_POLL_SECONDS)
