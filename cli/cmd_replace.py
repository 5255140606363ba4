"""`replace -f FILE` (kubectl/pkg/cmd/replace): store each object whole, as the file says.

`apply` merges a manifest into what is live; `replace` puts the file's
object in its place -- a field the file leaves out is cleared (the server
still keeps what it owns: status, the uid, a Service's allocated
clusterIP). It is an Update, so the object must exist:

    tinykube replace -f web.yaml
    deployment.apps/web-app replaced
    Error from server (NotFound): deployments.apps "gone" not found

If the file carries metadata.resourceVersion (as `get -o yaml` prints it)
the update is conditional on it: someone else's write since then is a
Conflict instead of being silently overwritten. Without one the update is
unconditional, as Kubernetes allows for the built-in kinds.

`--force` deletes the object, waits until it is really gone, and creates it
from the file -- for a change the API refuses to make in place (a
Deployment's selector, a Service's clusterIP). The object is new: new uid,
new resourceVersion, its old dependents are garbage collected. A missing
object is simply created.

As with `apply`, every document of every file is decoded before anything
is sent, so a typo anywhere means nothing is replaced.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from apimachinery import errors, scheme
from cli import context, printers
from cli.cmd_apply import _load_or_exit, report_failure, wait_until_gone
from cli.context import Options, effective, namespace_option

if TYPE_CHECKING:
    from apimachinery.client import Client


@click.command("replace")
@click.option(
    "-f",
    "--filename",
    "filenames",
    multiple=True,
    required=True,
    help="File, directory of manifests, or - for stdin (repeatable).",
)
@click.option("--force", is_flag=True, help="Delete and re-create the objects.")
@click.option("-o", "--output", type=click.Choice(["name", "yaml", "json"]), default=None)
@namespace_option
@click.pass_obj
def replace(
    opts: Options,
    filenames: tuple[str, ...],
    force: bool,
    output: str | None,
    namespace: str | None,
) -> None:
    """Replace a resource by file name or stdin."""
    opts = effective(opts, namespace)
    objs = _load_or_exit(filenames, opts, "replace")

    async def verb(client: Client) -> int:
        code = 0
        for obj in objs:
            try:
                result = await (force_replace(client, obj) if force else client.update(obj))
            except errors.StatusError as err:
                report_failure(err, opts.server)
                code = 1
                continue
            from cli.cmd_patch import print_outcome

            print_outcome(result, "replaced", output)
        return code

    context.exit_with(context.run(opts, verb))


async def force_replace(client: Client, obj: Any) -> Any:
    """Delete (if there), wait until gone, create from the manifest."""
    info = scheme.for_message(obj)
    name, namespace = obj.metadata.name, obj.metadata.namespace
    try:
        deleted = await client.delete(info, name, namespace)
    except errors.NotFound:
        pass
    else:
        click.echo(f'{printers.qualified_kind(info)} "{name}" deleted')
        await wait_until_gone(client, info, name, namespace, deleted.metadata.uid)
    fresh = type(obj)()
    fresh.CopyFrom(obj)
    fresh.metadata.resource_version = ""
    fresh.metadata.uid = ""
    return await client.create(fresh)
