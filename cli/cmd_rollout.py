"""`scale`, `set image` and `rollout status|history|undo|pause|resume|restart` (kubectl's).

Every verb here changes a Deployment (or ReplicaSet) the same way: get it,
change one field, update it with the resourceVersion it was read at, and on
Conflict -- the deployment controller writes the same object's status and
annotations all the time -- read again and retry (client-go's
RetryOnConflict). The controller does the rest; these verbs only state the
new desire:

    tinykube scale deployment/web-app --replicas 5    deployment.apps/web-app scaled
    tinykube set image deployment/web-app web-app=nginx:1.25
                                                      deployment.apps/web-app image updated
    tinykube rollout status deployment/web-app
    Waiting for deployment "web-app" rollout to finish: 1 out of 2 new replicas have been updated...
    Waiting for deployment "web-app" rollout to finish: 1 old replicas are pending termination...
    deployment "web-app" successfully rolled out
    tinykube rollout history deployment/web-app       REVISION  CHANGE-CAUSE table
    tinykube rollout undo deployment/web-app [--to-revision N]
                                                      deployment.apps/web-app rolled back

`rollout status` follows kubectl's DeploymentStatusViewer: it waits until
the controller has observed the latest generation, then until every replica
is updated, no old replica remains, and every updated replica is available.
It prints a line whenever that message changes, and fails at once when the
rollout exceeded its progress deadline (`error: deployment "web-app"
exceeded its progress deadline`) or after --timeout (`error: timed out
waiting for the condition`).

`rollout undo` is client-side, as in modern kubectl: the target revision's
ReplicaSet template (minus its pod-template-hash label) is copied into the
Deployment; the controller then rolls to it and renumbers that ReplicaSet
as the newest revision.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import click

from apimachinery import errors, scheme
from apimachinery.client import retry_on_conflict
from cli import context, inputs, printers, tabwriter
from cli.context import CommandError, Options, effective, namespace_option
from cli.durations import parse_duration

if TYPE_CHECKING:
    from apimachinery.client import Client

POLL_SECONDS = 0.25
SCALABLE = ("Deployment", "ReplicaSet")


def target(args: tuple[str, ...], verb: str, kinds: tuple[str, ...]) -> tuple[scheme.KindInfo, str]:
    """The one object a verb acts on: `deployment/NAME` or `deployment NAME`."""
    groups = inputs.parse_resource_args(list(args), verb=verb, need_names=True)
    pairs = [(info, name) for info, names in groups for name in names]
    if len(pairs) != 1:
        raise CommandError(f"{verb} takes exactly one resource, got {len(pairs)}")
    info, name = pairs[0]
    if info.kind not in kinds:
        raise CommandError(f"{verb} is not supported for {info.resource}: use a deployment")
    return info, name


def _label(info: scheme.KindInfo, name: str) -> str:
    return f"{printers.qualified_kind(info)}/{name}"


def _run(opts: Options, verb: Callable[[Client], Awaitable[int]]) -> None:
    context.exit_with(context.run(opts, verb))


async def modify(
    client: Client, info: scheme.KindInfo, name: str, namespace: str, change: Callable[[Any], None]
) -> Any:
    """Get, change, update -- retried on Conflict. `change` may raise CommandError."""

    async def once() -> Any:
        obj = await client.get(info, name, namespace)
        change(obj)
        return await client.update(obj)

    return await retry_on_conflict(once)


# ------------------------------------------------------------------ scale


@click.command("scale")
@click.argument("args", nargs=-1, required=True)
@click.option("--replicas", type=click.IntRange(min=0), required=True, help="The new size.")
@namespace_option
@click.pass_obj
def scale(opts: Options, args: tuple[str, ...], replicas: int, namespace: str | None) -> None:
    """Set a new size for a deployment or replica set."""
    opts = effective(opts, namespace)

    async def verb(client: Client) -> int:
        info, name = target(args, "scale", SCALABLE)
        await modify(
            client, info, name, opts.namespace, lambda o: setattr(o.spec, "replicas", replicas)
        )
        click.echo(f"{_label(info, name)} scaled")
        return 0

    _run(opts, verb)


# ------------------------------------------------------------------ set image


@click.group("set")
def set_group() -> None:
    """Set specific features on objects."""


@set_group.command("image")
@click.argument("args", nargs=-1, required=True)
@namespace_option
@click.pass_obj
def set_image(opts: Options, args: tuple[str, ...], namespace: str | None) -> None:
    """Update the image of containers: set image deployment/NAME CONTAINER=IMAGE ..."""
    opts = effective(opts, namespace)
    resources = tuple(a for a in args if "=" not in a)
    images = dict(a.split("=", 1) for a in args if "=" in a)

    def change(obj: Any) -> None:
        containers = [*obj.spec.template.spec.init_containers, *obj.spec.template.spec.containers]
        for container_name, image in images.items():
            hits = [c for c in containers if container_name in ("*", c.name)]
            if not hits:
                raise CommandError(f'unable to find container named "{container_name}"')
            for c in hits:
                c.image = image

    async def verb(client: Client) -> int:
        if not images:
            raise CommandError("at least one image update is required")
        info, name = target(resources, "set image", SCALABLE)
        await modify(client, info, name, opts.namespace, change)
        click.echo(f"{_label(info, name)} image updated")
        return 0

    _run(opts, verb)


# ------------------------------------------------------------------ rollout


@click.group("rollout")
def rollout() -> None:
    """Manage the rollout of a deployment."""


def status_message(d: Any) -> tuple[str, bool]:
    """kubectl's DeploymentStatusViewer: (message, done); raises CommandError on a dead rollout."""
    name = d.metadata.name
    s = d.status
    if d.metadata.generation > s.observed_generation:
        return "Waiting for deployment spec update to be observed...", False
    for cond in s.conditions:
        if cond.type == "Progressing" and cond.reason == "ProgressDeadlineExceeded":
            raise CommandError(f'deployment "{name}" exceeded its progress deadline')
    want = d.spec.replicas
    prefix = f'Waiting for deployment "{name}" rollout to finish: '
    if s.updated_replicas < want:
        return (
            f"{prefix}{s.updated_replicas} out of {want} new replicas have been updated...",
            False,
        )
    if s.replicas > s.updated_replicas:
        old = s.replicas - s.updated_replicas
        return f"{prefix}{old} old replicas are pending termination...", False
    if s.available_replicas < s.updated_replicas:
        return (
            f"{prefix}{s.available_replicas} of {s.updated_replicas} updated replicas"
            " are available...",
            False,
        )
    return f'deployment "{name}" successfully rolled out', True


def _deployment_target(args: tuple[str, ...], verb: str) -> tuple[scheme.KindInfo, str]:
    return target(args, verb, ("Deployment",))


@rollout.command("status")
@click.argument("args", nargs=-1, required=True)
@click.option("--timeout", "timeout_text", default="0", help="Give up after this long (0: never).")
@click.option("-w", "--watch", default=True, type=bool, help="Keep watching until done.")
@namespace_option
@click.pass_obj
def rollout_status(
    opts: Options, args: tuple[str, ...], timeout_text: str, watch: bool, namespace: str | None
) -> None:
    """Show the status of the rollout, waiting until it finishes."""
    opts = effective(opts, namespace)

    async def follow(client: Client, info: scheme.KindInfo, name: str) -> int:
        last = ""
        while True:
            d = await client.get(info, name, opts.namespace)
            message, done = status_message(d)
            if message != last:
                click.echo(message)
                last = message
            if done or not watch:
                return 0
            await _wait_for_change(client, info, name, opts.namespace, d.metadata.resource_version)

    async def verb(client: Client) -> int:
        info, name = _deployment_target(args, "rollout status")
        limit = parse_duration(timeout_text)
        if limit <= 0:
            return await follow(client, info, name)
        try:
            return await asyncio.wait_for(follow(client, info, name), limit)
        except asyncio.TimeoutError:
            raise CommandError("timed out waiting for the condition") from None

    _run(opts, verb)


async def _wait_for_change(
    client: Client, info: scheme.KindInfo, name: str, namespace: str, rv: str
) -> None:
    """Block until the object changes after `rv` (a watch; a short poll if the watch fails)."""
    try:
        async for _ in client.watch(
            info, namespace, resource_version=rv, field_selector=f"metadata.name={name}"
        ):
            return
    except errors.StatusError as err:
        if isinstance(err, errors.ServiceUnavailable):
            raise
    await asyncio.sleep(POLL_SECONDS)


async def _owned_replica_sets(client: Client, d: Any) -> list[Any]:
    from controllers.deployment import history

    rss, _ = await client.list("replicasets", d.metadata.namespace)
    owned = [
        rs
        for rs in rss
        if any(ref.uid == d.metadata.uid and ref.controller for ref in rs.metadata.owner_references)
    ]
    return sorted(owned, key=history.revision)


@rollout.command("history")
@click.argument("args", nargs=-1, required=True)
@click.option("--revision", type=int, default=0, help="Show the pod template of this revision.")
@namespace_option
@click.pass_obj
def rollout_history(
    opts: Options, args: tuple[str, ...], revision: int, namespace: str | None
) -> None:
    """View previous rollout revisions."""
    from cli.describe_sections import Writer
    from cli.describers import pod_template
    from controllers.deployment import history

    opts = effective(opts, namespace)

    async def verb(client: Client) -> int:
        info, name = _deployment_target(args, "rollout history")
        d = await client.get(info, name, opts.namespace)
        rss = [rs for rs in await _owned_replica_sets(client, d) if history.revision(rs) > 0]
        label = _label(info, name)
        if revision:
            match = [rs for rs in rss if history.revision(rs) == revision]
            if not match:
                raise CommandError(f"unable to find the specified revision {revision}")
            click.echo(f"{label} with revision #{revision}")
            w = Writer()
            pod_template(w, history.rollback_template(match[0]))
            click.echo(w.text(), nl=False)
            return 0
        rows = [["REVISION", "CHANGE-CAUSE"]]
        rows += [[str(history.revision(rs)), history.change_cause(rs) or "<none>"] for rs in rss]
        click.echo(label)
        for line in tabwriter.align(["\t".join(r) for r in rows], padding=2):
            click.echo(line.rstrip())
        click.echo("")
        return 0

    _run(opts, verb)


@rollout.command("undo")
@click.argument("args", nargs=-1, required=True)
@click.option("--to-revision", type=int, default=0, help="The revision to go back to (0: last).")
@namespace_option
@click.pass_obj
def rollout_undo(
    opts: Options, args: tuple[str, ...], to_revision: int, namespace: str | None
) -> None:
    """Roll back to a previous rollout."""
    from controllers.deployment import history

    opts = effective(opts, namespace)

    async def verb(client: Client) -> int:
        info, name = _deployment_target(args, "rollout undo")
        label = _label(info, name)
        outcome = "rolled back"

        async def once() -> None:
            nonlocal outcome
            d = await client.get(info, name, opts.namespace)
            if d.spec.paused:
                raise CommandError(
                    f"you cannot rollback a paused deployment; resume it first with "
                    f"'tinykube rollout resume {label}' and try again"
                )
            try:
                rs = history.rollback_target(await _owned_replica_sets(client, d), to_revision)
            except history.RevisionNotFound as err:
                raise CommandError(str(err)) from None
            template = history.rollback_template(rs)
            if history.equal_ignore_hash(template, d.spec.template):
                outcome = (
                    "skipped rollback (current template already matches revision "
                    f"{history.revision(rs)})"
                )
                return
            d.spec.template.CopyFrom(template)
            await client.update(d)

        await retry_on_conflict(once)
        click.echo(f"{label} {outcome}")
        return 0

    _run(opts, verb)


def _pause_command(name: str, paused: bool) -> click.Command:
    word = "paused" if paused else "resumed"

    @rollout.command(name)
    @click.argument("args", nargs=-1, required=True)
    @namespace_option
    @click.pass_obj
    def command(opts: Options, args: tuple[str, ...], namespace: str | None) -> None:
        opts = effective(opts, namespace)

        async def verb(client: Client) -> int:
            info, obj_name = _deployment_target(args, f"rollout {name}")

            def change(d: Any) -> None:
                if d.spec.paused == paused:
                    state = "already paused" if paused else "not paused"
                    raise CommandError(f'{info.full_resource} "{obj_name}" is {state}')
                d.spec.paused = paused

            await modify(client, info, obj_name, opts.namespace, change)
            click.echo(f"{_label(info, obj_name)} {word}")
            return 0

        _run(opts, verb)

    command.help = "Mark the deployment as paused." if paused else "Resume a paused deployment."
    return command


rollout_pause = _pause_command("pause", True)
rollout_resume = _pause_command("resume", False)


@rollout.command("restart")
@click.argument("args", nargs=-1, required=True)
@namespace_option
@click.pass_obj
def rollout_restart(opts: Options, args: tuple[str, ...], namespace: str | None) -> None:
    """Restart a deployment: a new rollout of the same template."""
    opts = effective(opts, namespace)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    async def verb(client: Client) -> int:
        info, name = _deployment_target(args, "rollout restart")

        def change(d: Any) -> None:
            d.spec.template.metadata.annotations["kubectl.kubernetes.io/restartedAt"] = stamp

        await modify(client, info, name, opts.namespace, change)
        click.echo(f"{_label(info, name)} restarted")
        return 0

    _run(opts, verb)
