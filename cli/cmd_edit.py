"""`edit KIND NAME` (kubectl/pkg/cmd/edit): change a live object in an editor.

    $ tinykube edit deployment web-app
    deployment.apps/web-app edited

The loop, as kubectl's editor runs it:

1. get the objects (one, or several shown as a `kind: List`) and write them
   as YAML (`-o json`: JSON) under kubectl's header comment into a
   temporary file;
2. open it in $KUBE_EDITOR, else $EDITOR, else `vi` (the variable may
   carry arguments: `KUBE_EDITOR="code --wait"`); an editor that cannot be
   started or fails is `error: there was a problem with the editor "vi"`;
3. read it back without its `#` lines. Empty, or the same as what was
   shown: `Edit cancelled, no changes made.`, nothing is sent;
4. decode it strictly and check that no object changed its apiVersion,
   kind, name or namespace; update each object that changed. The text
   carries each object's resourceVersion, so someone else's write since
   the get is a Conflict, not a lost update;
5. on any error -- YAML that does not parse, an unknown field, the
   server's Invalid or Conflict -- open the file again: the header, then
   the errors as comments, then the user's text (only the objects that
   were not saved), so nothing typed is lost:

       # Please edit the object below. Lines beginning with a '#' will be ignored,
       # ...
       # deployments.apps "web-app" was not valid:
       # * spec.replicas: Invalid value: -1: must be greater than or equal to 0
       #

   If the user saves that file unchanged, the edit ends: the text is kept
   in a file whose path is printed (`A copy of your changes has been
   stored to "..."`) and the command fails with `error: Edit cancelled, no
   valid changes were saved.`

Each saved object prints `deployment.apps/web-app edited`.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from apimachinery import codec, errors, scheme, yamlio
from cli import context, inputs, printers
from cli.cmd_patch import check_identity, copy_of
from cli.context import CommandError, Options, echo_err, effective, namespace_option

if TYPE_CHECKING:
    from apimachinery.client import Client

HEADER = (
    "# Please edit the object below. Lines beginning with a '#' will be ignored,\n"
    "# and an empty file will abort the edit. If an error occurs while saving this file will be\n"
    "# reopened with the relevant failures.\n"
    "#\n"
)
CANCELLED = "Edit cancelled, no changes made."


def editor_command() -> list[str]:
    """$KUBE_EDITOR, $EDITOR or vi, split as a shell would split its words."""
    text = os.environ.get("KUBE_EDITOR") or os.environ.get("EDITOR") or "vi"
    try:
        words = shlex.split(text)
    except ValueError:
        words = []
    if not words:
        raise CommandError(f'there was a problem with the editor "{text}"')
    return words


def run_editor(path: Path) -> None:
    words = editor_command()
    try:
        done = subprocess.run([*words, str(path)], check=False)
    except OSError:
        raise CommandError(f'there was a problem with the editor "{" ".join(words)}"') from None
    if done.returncode != 0:
        raise CommandError(f'there was a problem with the editor "{" ".join(words)}"')


def strip_comments(text: str) -> str:
    """The text without the lines that start with `#` (kubectl's StripComments)."""
    return "".join(
        line for line in text.splitlines(keepends=True) if not line.lstrip().startswith("#")
    )


def render(objs: list[Any], fmt: str) -> str:
    """The objects as the file shows them: one object, or a v1 List of them."""
    data: dict[str, Any]
    if len(objs) == 1:
        data = codec.to_dict(objs[0])
    else:
        data = {"apiVersion": "v1", "kind": "List", "items": [codec.to_dict(o) for o in objs]}
    if fmt == "json":
        return json.dumps(data, indent=4, ensure_ascii=False) + "\n"
    return yamlio.dump(data)


def error_comments(problems: list[str]) -> str:
    lines: list[str] = []
    for problem in problems:
        lines.extend(f"# {line}".rstrip() for line in problem.splitlines())
    return "".join(f"{line}\n" for line in lines) + "#\n"


def key_of(obj: Any) -> tuple[str, str, str]:
    return (scheme.for_message(obj).kind, obj.metadata.namespace, obj.metadata.name)


def decode_edit(text: str, originals: dict[tuple[str, str, str], Any]) -> list[Any]:
    """The edited objects; CommandError (a message for the file's comments) when unusable."""
    try:
        objs: list[Any] = codec.decode_documents(text, "edited file")
    except errors.StatusError as err:
        raise CommandError(f"The edited file had a syntax error: {err.message}") from None
    for obj in objs:
        info = scheme.for_message(obj)
        if info.namespaced and not obj.metadata.namespace:
            obj.metadata.namespace = "default"
        original = originals.get(key_of(obj))
        if original is None:
            raise CommandError(
                "At least one of apiVersion, kind and name was changed "
                f"({printers.object_name(obj)} is not one of the objects being edited)"
            )
        check_identity(original, obj)
    return objs


def problem_text(obj: Any, err: errors.StatusError) -> str:
    """An update's failure as kubectl writes it into the reopened file."""
    if isinstance(err, errors.Invalid) and err.causes:
        info = scheme.for_message(obj)
        # Causes that came over the wire carry their whole text in `detail`.
        causes = "\n".join(f"* {c if c.type else c.detail or c.path}" for c in err.causes)
        return f'{info.full_resource} "{obj.metadata.name}" was not valid:\n{causes}'
    return err.message


async def save_edits(
    client: Client, body: str, originals: dict[tuple[str, str, str], Any]
) -> tuple[list[str], list[Any] | None, bool]:
    """Send what changed: (problems, the objects to show again -- None: the text as it is --,
    whether anything changed at all)."""
    try:
        objs = decode_edit(body, originals)
    except CommandError as err:
        return [str(err)], None, True
    problems: list[str] = []
    failed: list[Any] = []
    changed = False
    for obj in objs:
        original = originals[key_of(obj)]
        if codec.to_dict(obj) == codec.to_dict(original):
            continue
        changed = True
        try:
            updated = await client.update(obj)
        except errors.StatusError as err:
            if isinstance(err, errors.ServiceUnavailable):
                raise
            problems.append(problem_text(obj, err))
            failed.append(obj)
            continue
        originals[key_of(obj)] = copy_of(updated)
        click.echo(f"{printers.object_name(updated)} edited")
    return problems, failed, changed


def keep_copy(text: str) -> Path:
    """The user's last text, kept after a cancelled edit (kubectl's kubectl-edit-*.yaml)."""
    fd, name = tempfile.mkstemp(prefix="tinykube-edit-", suffix=".yaml")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    return Path(name)


async def edit_loop(client: Client, objs: list[Any], fmt: str) -> int:
    """Steps 2-5 of the module docstring; the exit code."""
    originals = {key_of(o): o for o in objs}
    buffer = HEADER + render(objs, fmt)
    baseline = strip_comments(buffer)
    last_failed: str | None = None
    fd, name = tempfile.mkstemp(prefix="tinykube-edit-", suffix=f".{fmt}")
    os.close(fd)
    path = Path(name)
    try:
        while True:
            path.write_text(buffer, encoding="utf-8")
            await asyncio.to_thread(run_editor, path)
            edited = path.read_text(encoding="utf-8")
            body = strip_comments(edited)
            if last_failed is not None and body == last_failed:
                echo_err(f'A copy of your changes has been stored to "{keep_copy(edited)}"')
                raise CommandError("Edit cancelled, no valid changes were saved.")
            if not body.strip() or body == baseline:
                echo_err(CANCELLED)
                return 0
            problems, again, changed = await save_edits(client, body, originals)
            if not changed:
                echo_err(CANCELLED)
                return 0
            if not problems:
                return 0
            shown = body if again is None else render(again, fmt)
            buffer = HEADER + error_comments(problems) + shown
            last_failed = strip_comments(buffer)
    finally:
        path.unlink(missing_ok=True)


@click.command("edit")
@click.argument("args", nargs=-1)
@click.option(
    "-o",
    "--output",
    type=click.Choice(["yaml", "json"]),
    default="yaml",
    help="The format to edit in.",
)
@namespace_option
@click.pass_obj
def edit(opts: Options, args: tuple[str, ...], output: str, namespace: str | None) -> None:
    """Edit a resource on the server."""
    opts = effective(opts, namespace)
    try:
        targets = inputs.parse_resource_args(args, verb="edit", need_names=True)
        editor_command()
    except CommandError as err:
        echo_err(f"error: {err}")
        raise click.exceptions.Exit(1) from None

    async def verb(client: Client) -> int:
        objs: list[Any] = []
        for info, names in targets:
            ns = opts.namespace if info.namespaced else ""
            for obj_name in names:
                objs.append(copy_of(await client.get(info, obj_name, ns)))
        return await edit_loop(client, objs, output)

    context.exit_with(context.run(opts, verb))
