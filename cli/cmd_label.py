"""`label` and `annotate` (kubectl/pkg/cmd/{label,annotate}): change an object's metadata maps.

    tinykube label pods web tier=frontend            pod/web labeled
    tinykube label pods web tier-                    pod/web unlabeled
    tinykube label pods web tier=backend             error: 'tier' already has a value
                                                     (frontend), and --overwrite is false
    tinykube annotate deploy web-app owner=ops       deployment.apps/web-app annotated
    tinykube label pods -l app=web stage=canary      one line per matching pod

Arguments are split as kubectl splits them (cmdutil.GetResourcesAndPairs):
resource words first (`pods web`, `pod/web`), then the changes -- `key=value`
sets, `key-` removes. A resource word after a change is an error, and so is
setting and removing one key in the same command.

`--overwrite` guards existing values: without it, a change to a key that
already has another value fails for that object and nothing of it is
written (setting the value it already has is no change, and allowed).
Removing a key that is not there prints `label "k" not found.` and is no
error. The write goes through cmd_patch.update_with_retry -- get, change,
update with the object's resourceVersion, again on Conflict -- so a label
never erases another writer's concurrent change; `--resource-version`
makes the write conditional on the version the user saw instead.

What is printed follows kubectl: `label` says `labeled`, `unlabeled`
(something was removed and the map shrank) or `not labeled` (nothing
changed); `annotate` always says `annotated`. `--list` prints the map as
`key=value` lines instead of changing it. Label values are checked here as
kubectl checks them (63 characters, alphanumeric ends); keys and
annotations are checked by the server's validation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

from apimachinery import scheme
from apimachinery.validation_names import is_valid_label_value
from cli import context, inputs
from cli.cmd_patch import (
    DRY_RUN_SUFFIX,
    dry_run_option,
    print_outcome,
    update_each,
)
from cli.context import CommandError, Options, echo_err, effective, namespace_option

if TYPE_CHECKING:
    from apimachinery.client import Client


@dataclass
class MapChange:
    """One command's changes to `metadata.<field>` (labels or annotations)."""

    noun: str  # "label" or "annotation"
    sets: dict[str, str] = field(default_factory=dict)
    removes: list[str] = field(default_factory=list)
    overwrite: bool = False
    resource_version: str = ""

    @property
    def field(self) -> str:
        return f"{self.noun}s"

    def apply(self, obj: Any) -> Any:
        """The object with the change made; CommandError when it would overwrite a value."""
        current = getattr(obj.metadata, self.field)
        if not self.overwrite:
            self.check_overwrites(dict(current))
        for key in self.removes:
            if key in current:
                del current[key]
        current.update(self.sets)
        if self.resource_version:
            obj.metadata.resource_version = self.resource_version
        return obj

    def check_overwrites(self, current: dict[str, str]) -> None:
        taken = [
            (key, current[key])
            for key, value in sorted(self.sets.items())
            if key in current and current[key] != value
        ]
        if not taken:
            return
        if self.noun == "label":
            raise CommandError(
                "; ".join(
                    f"'{k}' already has a value ({v}), and --overwrite is false" for k, v in taken
                )
            )
        found = "; ".join(f"'{k}' already has a value ({v})" for k, v in taken)
        raise CommandError(
            f"--overwrite is false but found the following declared annotation(s): {found}"
        )


def split_args(args: Sequence[str], noun: str) -> tuple[list[str], list[str]]:
    """(resource words, change words), as kubectl's GetResourcesAndPairs splits them."""
    resources: list[str] = []
    pairs: list[str] = []
    for arg in args:
        is_pair = ("=" in arg and not arg.startswith("=")) or (arg.endswith("-") and arg != "-")
        if is_pair:
            pairs.append(arg)
        elif pairs:
            raise CommandError(f"all resources must be specified before {noun} changes: {arg}")
        else:
            resources.append(arg)
    return resources, pairs


def parse_changes(pairs: Sequence[str], change: MapChange) -> MapChange:
    """Fill `change` from `key=value` and `key-` words; kubectl's errors for bad ones."""
    for pair in pairs:
        if "=" in pair:
            key, _, value = pair.partition("=")
            if "=" in value or not key:
                raise CommandError(f"invalid {change.noun} spec: {pair}")
            if change.noun == "label":
                problems = is_valid_label_value(value)
                if problems:
                    raise CommandError(f'invalid label value: "{pair}": {"; ".join(problems)}')
            change.sets[key] = value
        elif pair.endswith("-"):
            change.removes.append(pair[:-1])
        else:
            raise CommandError(f"unknown {change.noun} spec: {pair}")
    if any(key in change.sets for key in change.removes):
        article = "an" if change.noun == "annotation" else "a"
        raise CommandError(
            f"can not both modify and remove {article} {change.noun} in the same command"
        )
    return change


def outcome(noun: str, live: Any, result: Any, overwrite: bool) -> str:
    if noun == "annotation":
        return "annotated"
    before, after = dict(live.metadata.labels), dict(result.metadata.labels)
    if before == after:
        return "not labeled"
    if not overwrite and len(after) < len(before):
        return "unlabeled"
    return "labeled"


def map_options(fn: Any) -> Any:
    """The flags `label` and `annotate` share."""
    decorators: list[Callable[[Any], Any]] = [
        click.argument("args", nargs=-1),
        click.option("--overwrite", is_flag=True, help="Allow changing existing values."),
        click.option("-l", "--selector", default="", help="Change every matching object."),
        click.option("--all", "select_all", is_flag=True, help="Every object of the kind."),
        click.option("--list", "list_only", is_flag=True, help="Print the current values."),
        click.option("--resource-version", default="", help="Change only at this version."),
        click.option("-o", "--output", type=click.Choice(["name", "yaml", "json"])),
        click.option("-f", "--filename", "filenames", multiple=True, help="Objects in a file."),
        dry_run_option,
        namespace_option,
        click.pass_obj,
    ]
    for decorate in reversed(decorators):
        fn = decorate(fn)
    return fn


@click.command("label")
@map_options
def label(opts: Options, **flags: Any) -> None:
    """Update the labels on a resource."""
    run_map_verb(opts, "label", **flags)


@click.command("annotate")
@map_options
def annotate(opts: Options, **flags: Any) -> None:
    """Update the annotations on a resource."""
    run_map_verb(opts, "annotation", **flags)


def run_map_verb(
    opts: Options,
    noun: str,
    *,
    args: tuple[str, ...],
    overwrite: bool,
    selector: str,
    select_all: bool,
    list_only: bool,
    resource_version: str,
    output: str | None,
    filenames: tuple[str, ...],
    dry_run: str,
    namespace: str | None,
) -> None:
    opts = effective(opts, namespace)
    by_list = bool(selector) or select_all
    try:
        words, pairs = split_args(args, noun)
        change = parse_changes(pairs, MapChange(noun, overwrite=overwrite))
        if not pairs and not list_only:
            raise CommandError(f"at least one {noun} update is required")
        from_files: list[tuple[scheme.KindInfo, str, str]] = []
        targets: list[tuple[scheme.KindInfo, list[str]]] = []
        if filenames:
            if words or by_list:
                raise CommandError("-f cannot be combined with resource arguments, -l or --all")
            from_files = inputs.objects_in_files(filenames, opts.namespace)
        else:
            targets = inputs.parse_resource_args(words, verb=noun, need_names=not by_list)
        if by_list and any(names for _, names in targets):
            raise CommandError("resource names cannot be combined with --selector or --all")
        singles = sum(len(names) for _, names in targets) + len(from_files)
        if resource_version and (by_list or singles != 1):
            raise CommandError("--resource-version may only be used with a single resource")
        change.resource_version = resource_version
    except CommandError as err:
        echo_err(f"error: {err}")
        raise click.exceptions.Exit(1) from None

    async def verb(client: Client) -> int:
        pending = from_files or await select(client, opts, targets, selector)
        if not pending:
            echo_err(
                "error: no objects passed to " + ("annotate" if noun == "annotation" else noun)
            )
            return 1
        if list_only:
            await list_values(client, pending, change.field)
            return 0

        def done(live: Any, result: Any) -> None:
            for key in change.removes:
                if key not in getattr(live.metadata, change.field):
                    click.echo(f'{noun} "{key}" not found.')
            said = outcome(noun, live, result, overwrite) + DRY_RUN_SUFFIX[dry_run]
            print_outcome(result, said, output)

        return await update_each(
            client,
            opts.server,
            pending,
            change.apply,
            retry=not resource_version,
            dry_run=dry_run,
            done=done,
        )

    context.exit_with(context.run(opts, verb))


async def select(
    client: Client,
    opts: Options,
    targets: list[tuple[scheme.KindInfo, list[str]]],
    selector: str,
) -> list[tuple[scheme.KindInfo, str, str]]:
    """(kind, name, namespace) of every object the command names or selects."""
    pending: list[tuple[scheme.KindInfo, str, str]] = []
    for info, names in targets:
        ns = opts.namespace if info.namespaced else ""
        if names:
            pending.extend((info, name, ns) for name in names)
            continue
        found, _ = await client.list(info, ns, label_selector=selector)
        pending.extend((info, o.metadata.name, o.metadata.namespace) for o in found)
    return pending


async def list_values(
    client: Client, pending: list[tuple[scheme.KindInfo, str, str]], field_name: str
) -> None:
    """`--list`: `key=value` lines, under a heading per object when there are several."""
    one = len(pending) == 1
    for info, name, ns in pending:
        obj = await client.get(info, name, ns)
        indent = ""
        if not one:
            indent = " "
            kind = f"{info.kind}.{info.group}" if info.group else info.kind
            click.echo(f"Listing {field_name} for {kind}/{name}:")
        values = getattr(obj.metadata, field_name)
        for key in sorted(values):
            click.echo(f"{indent}{key}={values[key]}")
