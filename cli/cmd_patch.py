"""`patch` (kubectl/pkg/cmd/patch), and the read-change-write loop it shares with `label`.

    tinykube patch deployment web-app -p '{"spec":{"replicas":3}}'
    deployment.apps/web-app patched
    tinykube patch pod web --type json -p '[{"op":"remove","path":"/metadata/labels/tier"}]'
    pod/web patched

The patch is parsed first (JSON, or YAML as kubectl takes it), so a typo in
it fails before anything is sent. Then, per object:

1. get the live object and render its JSON form (codec.to_dict);
2. apply the patch there (apimachinery.patch: strategic by default, `merge`
   or `json` by --type), and decode the result back into the kind's
   message -- a patch that leaves an unknown field or a wrong type behind
   is refused naming the field, as Kubernetes' strict decoding does;
3. update with the live object's resourceVersion, so a write that raced
   with ours is a Conflict rather than a lost update; on Conflict start
   again from 1 (client-go's RetryOnConflict), a few times. A patch that
   names metadata.resourceVersion itself is a precondition: its Conflict
   is reported, not retried.

An update that would change nothing is not sent, and prints `patched (no
change)` as kubectl does. `-f FILE` takes the objects to patch from a
manifest (only their kind, name and namespace). `--dry-run=server` sends the
update with dryRun set: the server validates and admits it but stores
nothing, and the answer is what it would have stored; `--dry-run=client`
sends no write at all and prints the patched object as computed here.

Kubernetes applies patches on the server (the PATCH verb). tinykube's HTTP
API does too (apiserver/httpapi/patching.py), but its gRPC API, which this
CLI speaks, has no PATCH: the CLI applies them with the same pure functions.

`update_with_retry` is that loop for any change to a typed object: `label`
and `annotate` use it too.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from apimachinery import codec, errors, scheme
from apimachinery import patch as patches
from apimachinery.client import retry_on_conflict
from cli import context, inputs, printers
from cli.context import CommandError, Options, describe_error, echo_err, effective, namespace_option

if TYPE_CHECKING:
    from apimachinery.client import Client

CONFLICT_ATTEMPTS = 5
# What kubectl appends to "patched", "labeled"... under --dry-run.
DRY_RUN_SUFFIX = {"none": "", "client": " (dry run)", "server": " (server dry run)"}

dry_run_option = click.option(
    "--dry-run",
    type=click.Choice(["none", "client", "server"]),
    default="none",
    help="client: print the object that would be sent; server: checked, not stored.",
)


def targets(
    args: tuple[str, ...], filenames: tuple[str, ...], namespace: str, verb: str
) -> list[tuple[scheme.KindInfo, str, str]]:
    """(kind, name, namespace) to change: from `KIND NAME...` arguments or from `-f` files."""
    if filenames:
        if args:
            raise CommandError(f"resource arguments cannot be combined with -f for {verb}")
        return inputs.objects_in_files(filenames, namespace)
    found = inputs.parse_resource_args(args, verb=verb, need_names=True)
    ns_of = {info.resource: namespace if info.namespaced else "" for info, _ in found}
    return [(info, name, ns_of[info.resource]) for info, names in found for name in names]


def copy_of(obj: Any) -> Any:
    out = type(obj)()
    out.CopyFrom(obj)
    info = scheme.for_message(out)
    out.api_version = out.api_version or info.api_version
    out.kind = out.kind or info.kind
    return out


async def update_with_retry(
    client: Client,
    info: scheme.KindInfo,
    name: str,
    namespace: str,
    change: Callable[[Any], Any],
    *,
    retry: bool = True,
    dry_run: str = "none",
) -> tuple[Any, Any]:
    """(live, result): get, `change(copy)`, update unless nothing changed; again on Conflict.

    `change` gets a copy of the live object and returns the object to store
    (or raises CommandError). `result` is `live` itself when nothing changed.
    `dry_run` "server" asks the server to check the update without storing it;
    "client" sends nothing and returns the changed object as it is."""

    async def once() -> tuple[Any, Any]:
        live = copy_of(await client.get(info, name, namespace))
        wanted = change(copy_of(live))
        if codec.to_dict(wanted) == codec.to_dict(live):
            return live, live
        if dry_run == "client":
            return live, wanted
        return live, await client.update(wanted, dry_run=dry_run == "server")

    if not retry:
        return await once()
    return await retry_on_conflict(once, attempts=CONFLICT_ATTEMPTS)


def patched(obj: Any, patch: Any, patch_type: str) -> Any:
    """The object with the patch applied to its JSON form; CommandError if it does not apply."""
    info = scheme.for_message(obj)
    try:
        data = patches.apply_patch(codec.to_dict(obj), patch, patch_type)
    except patches.PatchError as err:
        raise CommandError(err.message) from None
    try:
        new = codec.from_dict(data)
    except errors.StatusError as err:
        raise CommandError(f"the patched {info.kind} is not valid: {err.message}") from None
    check_identity(obj, new)
    return new


def check_identity(old: Any, new: Any) -> None:
    """A change must keep the object's kind, name and namespace (the URL it is sent to)."""
    before, after = scheme.for_message(old), scheme.for_message(new)
    if before != after or new.api_version != old.api_version:
        raise CommandError(
            f"the kind of the object ({new.api_version} {new.kind}) does not match "
            f"the kind being changed ({old.api_version} {old.kind})"
        )
    if new.metadata.name != old.metadata.name:
        raise CommandError(
            f"the name of the object ({new.metadata.name}) does not match "
            f"the name on the URL ({old.metadata.name})"
        )
    if new.metadata.namespace != old.metadata.namespace:
        raise CommandError(
            f"the namespace of the object ({new.metadata.namespace}) does not match "
            f"the namespace on the URL ({old.metadata.namespace})"
        )


def read_patch(patch: str | None, patch_file: str | None, patch_type: str) -> Any:
    """The parsed patch from -p or --patch-file, with kubectl's errors for bad flags."""
    if patch_type not in patches.PATCH_TYPES:
        raise CommandError(
            f'--type must be one of {" ".join(patches.PATCH_TYPES).join("[]")}, not "{patch_type}"'
        )
    if (patch is None) == (patch_file is None):
        raise CommandError("must specify one of -p or --patch-file")
    if patch_file is not None:
        try:
            patch = Path(patch_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise CommandError(f"unable to read patch file {patch_file}: {err}") from None
    assert patch is not None
    try:
        return patches.parse_patch(patch)
    except patches.PatchError as err:
        raise CommandError(err.message) from None


@click.command("patch")
@click.argument("args", nargs=-1)
@click.option("-p", "--patch", default=None, help="The patch to apply, JSON or YAML.")
@click.option("--patch-file", default=None, help="A file holding the patch.")
@click.option(
    "--type",
    "patch_type",
    default="strategic",
    help="The type of patch: json, merge or strategic (default).",
)
@click.option("-o", "--output", type=click.Choice(["name", "yaml", "json"]), default=None)
@click.option("-f", "--filename", "filenames", multiple=True, help="Patch the objects in a file.")
@dry_run_option
@namespace_option
@click.pass_obj
def patch(
    opts: Options,
    args: tuple[str, ...],
    patch: str | None,
    patch_file: str | None,
    patch_type: str,
    output: str | None,
    filenames: tuple[str, ...],
    dry_run: str,
    namespace: str | None,
) -> None:
    """Update fields of a resource with a strategic, merge or JSON patch."""
    opts = effective(opts, namespace)
    try:
        pending = targets(args, filenames, opts.namespace, "patch")
        body = read_patch(patch, patch_file, patch_type)
    except CommandError as err:
        echo_err(f"error: {err}")
        raise click.exceptions.Exit(1) from None
    retry = not patches.sets_resource_version(body, patch_type)

    def done(live: Any, result: Any) -> None:
        same = codec.to_dict(result) == codec.to_dict(live)
        outcome = "patched (no change)" if same else "patched"
        print_outcome(result, outcome + DRY_RUN_SUFFIX[dry_run], output)

    def change(obj: Any) -> Any:
        return patched(obj, body, patch_type)

    async def verb(client: Client) -> int:
        return await update_each(
            client, opts.server, pending, change, retry=retry, dry_run=dry_run, done=done
        )

    context.exit_with(context.run(opts, verb))


async def update_each(
    client: Client,
    server: str,
    pending: list[tuple[scheme.KindInfo, str, str]],
    change: Callable[[Any], Any],
    *,
    retry: bool,
    dry_run: str,
    done: Callable[[Any, Any], None],
) -> int:
    """`update_with_retry` on every object in turn; each failure reported, the rest go on.

    `done(live, result)` prints what happened to one object. The exit code is 1
    if any object failed (an unreachable server ends the run at once)."""
    code = 0
    for info, name, ns in pending:
        try:
            live, result = await update_with_retry(
                client, info, name, ns, change, retry=retry, dry_run=dry_run
            )
        except CommandError as err:
            echo_err(f"error: {err}")
            code = 1
            continue
        except errors.StatusError as err:
            report(err, server)
            code = 1
            continue
        done(live, result)
    return code


def report(err: errors.StatusError, server: str) -> None:
    """One object's failure; an unreachable server ends the run (every request would fail)."""
    if isinstance(err, errors.ServiceUnavailable):
        raise err
    echo_err(describe_error(err, server))


def print_outcome(obj: Any, outcome: str, output: str | None) -> None:
    """`deployment.apps/web-app patched`, or the object with -o yaml|json|name."""
    from cli.cmd_apply import print_result

    if output is None:
        click.echo(f"{printers.object_name(obj)} {outcome}")
    else:
        print_result(copy_of(obj), outcome, output)
