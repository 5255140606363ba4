"""`run`: start one pod from an image (kubectl run), and optionally wait for what it prints.

    $ tinykube run web --image nginx:latest --port 80
    pod/web created
    $ tinykube run probe --rm -it --image busybox -- wget -qO- http://10.96.0.10/
    <html>... the page ...
    pod "probe" deleted

What it creates is what kubectl run creates: a Pod named NAME, labelled
`run=NAME`, with one container also named NAME. Arguments after `--` are the
container's args (its image's entrypoint runs them); with `--command` they
replace the entrypoint instead.

Attaching. kubectl attaches a terminal to the container; tinykube's exec and
logs are not interactive (CRI ExecSync, no TTY), so `-i`, `-t` and `--rm`
mean "wait for the container and print its output": the pod gets
restartPolicy Never, the command waits until the container runs, streams its
log until it exits, and exits with the container's exit code. With `--rm` the
pod is deleted afterwards, also when waiting fails or is interrupted. A pod
that cannot start (an image that will not pull, say) is reported with the
waiting reason once `--pod-running-timeout` passes, and the exit code is 1.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import click

from cli import context
from cli.context import CommandError, Options, effective, namespace_option
from cli.durations import parse_duration
from protos import core_pb2

if TYPE_CHECKING:
    from apimachinery.client import Client

RESTART_POLICIES = ("Always", "OnFailure", "Never")


def build_pod(
    name: str,
    image: str,
    args: list[str],
    *,
    command: bool,
    env: tuple[str, ...],
    labels: str,
    port: int,
    restart: str,
    pull_policy: str,
) -> core_pb2.Pod:
    """The Pod kubectl run would create for these flags."""
    pod = core_pb2.Pod(api_version="v1", kind="Pod")
    pod.metadata.name = name
    pod.metadata.labels["run"] = name
    for pair in filter(None, labels.split(",")):
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CommandError(f"--labels: expected KEY=VALUE[,KEY=VALUE], got {pair!r}")
        pod.metadata.labels[key] = value
    pod.spec.restart_policy = restart
    container = pod.spec.containers.add(name=name, image=image)
    if pull_policy:
        container.image_pull_policy = pull_policy
    if command:
        container.command.extend(args)
    else:
        container.args.extend(args)
    for item in env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CommandError(f"--env: expected NAME=VALUE, got {item!r}")
        container.env.add(name=key, value=value)
    if port:
        container.ports.add(container_port=port)
    return pod


def container_state(pod: Any) -> tuple[str, int, str]:
    """("waiting"|"running"|"terminated"|"", exit code, reason) of the pod's first container."""
    for status in pod.status.container_statuses:
        state = status.state
        if state.HasField("terminated"):
            return "terminated", int(state.terminated.exit_code), state.terminated.reason
        if state.HasField("running"):
            return "running", 0, ""
        if state.HasField("waiting"):
            return "waiting", 0, state.waiting.reason
    return "", 0, ""


async def wait_started(client: Client, namespace: str, name: str, timeout: float) -> Any:
    """Poll until the container runs or has run; CommandError with the reason on timeout."""
    deadline = time.monotonic() + timeout
    reason = "not scheduled yet"
    while True:
        pod = await client.get("pods", name, namespace)
        state, _, why = container_state(pod)
        if state in ("running", "terminated"):
            return pod
        if state == "waiting" and why:
            reason = why
        elif pod.spec.node_name:
            reason = f"starting on {pod.spec.node_name}"
        if time.monotonic() > deadline:
            raise CommandError(f"timed out waiting for pod {name!r} to start: {reason}")
        await asyncio.sleep(0.3)


async def wait_finished(client: Client, namespace: str, name: str) -> tuple[int, str]:
    while True:
        pod = await client.get("pods", name, namespace)
        state, code, reason = container_state(pod)
        if state == "terminated":
            return code, reason
        await asyncio.sleep(0.2)


async def run_attached(
    client: Client, pod: core_pb2.Pod, namespace: str, *, remove: bool, timeout: float
) -> int:
    name = pod.metadata.name
    await client.create(pod)
    try:
        await wait_started(client, namespace, name, timeout)
        async for line in client.pod_logs(name, namespace, follow=True):
            click.echo(line)
        code, reason = await wait_finished(client, namespace, name)
        if code != 0:
            context.echo_err(f"pod {namespace}/{name} terminated ({reason or 'Error'})")
        return code
    finally:
        if remove:
            await client.delete("pods", name, namespace, grace_period_seconds=0)
            click.echo(f'pod "{name}" deleted')


@click.command("run", context_settings={"ignore_unknown_options": True})
@click.argument("name")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.option("--image", required=True, help="The container image, e.g. busybox or nginx:latest.")
@click.option("--command", "use_command", is_flag=True, help="ARGS replace the entrypoint.")
@click.option("--env", multiple=True, help="NAME=VALUE, repeatable.")
@click.option("-l", "--labels", default="", help="More labels: KEY=VALUE[,KEY=VALUE].")
@click.option("--port", type=int, default=0, help="A container port to declare.")
@click.option("--restart", type=click.Choice(RESTART_POLICIES), default=None)
@click.option("--image-pull-policy", type=click.Choice(["Always", "IfNotPresent", "Never"]))
@click.option("-i", "--stdin", is_flag=True, help="Wait and print the output (no real stdin).")
@click.option("-t", "--tty", is_flag=True, help="Accepted for kubectl habits; same as -i.")
@click.option("--rm", "remove", is_flag=True, help="Delete the pod when it has finished.")
@click.option("--pod-running-timeout", default="1m", show_default=True)
@namespace_option
@click.pass_obj
def run(
    opts: Options,
    name: str,
    args: tuple[str, ...],
    image: str,
    use_command: bool,
    env: tuple[str, ...],
    labels: str,
    port: int,
    restart: str | None,
    image_pull_policy: str | None,
    stdin: bool,
    tty: bool,
    remove: bool,
    pod_running_timeout: str,
    namespace: str | None,
) -> None:
    """Create a pod running IMAGE: tinykube run NAME --image IMG [--rm -it] [-- ARGS...]."""
    opts = effective(opts, namespace)
    attach = stdin or tty or remove
    if attach and restart not in (None, "Never"):
        context.echo_err("error: --rm, -i and -t wait for the container: use --restart=Never")
        raise click.exceptions.Exit(1)
    try:
        timeout = parse_duration(pod_running_timeout)
        pod = build_pod(
            name,
            image,
            list(args),
            command=use_command,
            env=env,
            labels=labels,
            port=port,
            restart=restart or ("Never" if attach else "Always"),
            pull_policy=image_pull_policy or "",
        )
    except (CommandError, ValueError) as err:
        context.echo_err(f"error: {err}")
        raise click.exceptions.Exit(1) from None
    pod.metadata.namespace = opts.namespace

    async def create_only(client: Client) -> int:
        await client.create(pod)
        click.echo(f"pod/{name} created")
        return 0

    if not attach:
        context.exit_with(context.run(opts, create_only))
        return
    context.exit_with(
        context.run(
            opts,
            lambda client: run_attached(
                client, pod, opts.namespace, remove=remove, timeout=timeout
            ),
        )
    )
