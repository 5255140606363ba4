"""`logs` and `exec`: a container's output and a command in it (kubectl logs, kubectl exec).

Both go through the apiserver, as kubectl's do: the resource service's
PodLogs and PodExec (the pods/log and pods/exec subresources) find the
pod's node and proxy to its kubelet (apiserver/proxy.py, kubelet/server.py).
The CLI never needs to reach a node.

    $ tinykube logs web-app-7d4b9-x2kq9 --tail 2
    10.244.1.1 - - [01/May/2024:10:00:00 +0000] "GET / HTTP/1.1" 200 615 "-" "curl/7.88.1"
    10.244.1.1 - - [01/May/2024:10:00:01 +0000] "GET / HTTP/1.1" 200 615 "-" "curl/7.88.1"
    $ tinykube logs deploy/web-app --since 5m --timestamps
    Found 2 pods, using pod/web-app-7d4b9-x2kq9
    2024-05-01T10:00:01.52Z 10.244.1.1 - - [01/May/2024:10:00:01 +0000] "GET / HTTP/1.1" ...
    $ tinykube logs -l app=web-app --prefix -f      # every pod; across restarts, until Ctrl-C
    $ tinykube logs web-app-7d4b9-x2kq9 --previous  # the instance before the last restart
    $ tinykube exec web-app-7d4b9-x2kq9 -- cat /etc/hostname
    web-app-7d4b9-x2kq9

Which pods and containers `logs` reads is cli.logs_select's; its flags and
streams are cli.logs_plan's. `exec` takes `POD` or `pod/NAME`; without `-c`
a pod with one container means that one, with several the server answers
with the names to choose from. `exec` is non-interactive (CRI ExecSync: no
stdin, no TTY): the command's stdout and stderr are written out as they
came, and its exit code becomes tinykube's own, as with kubectl (`exec web
-- false` exits 1).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from cli import context, logs_plan
from cli.context import CommandError, Options, effective, namespace_option
from cli.durations import DURATION
from cli.logs_plan import stream_logs

__all__ = ["exec_cmd", "logs", "pod_name", "run_exec", "stream_logs"]

if TYPE_CHECKING:
    from apimachinery.client import Client


def pod_name(text: str) -> str:
    """`web`, `pod/web` or `pods/web` -> `web`."""
    kind, sep, name = text.partition("/")
    if not sep:
        return text
    if kind not in ("pod", "pods", "po"):
        raise CommandError(f"logs and exec need a pod, not {kind!r}")
    return name


async def run_exec(
    client: Client, namespace: str, name: str, command: list[str], *, container: str = ""
) -> int:
    answer = await client.pod_exec(name, command, namespace, container=container)
    sys.stdout.buffer.write(answer.stdout)
    sys.stdout.flush()
    sys.stderr.buffer.write(answer.stderr)
    sys.stderr.flush()
    if answer.exit_code != 0:
        context.echo_err(f"command terminated with exit code {answer.exit_code}")
    return int(answer.exit_code)


@click.command("logs")
@click.argument("args", nargs=-1)
@click.option("-c", "--container", default="", help="The container (default: the first one).")
@click.option("-f", "--follow", is_flag=True, help="Keep streaming, across container restarts.")
@click.option("-p", "--previous", is_flag=True, help="The previous instance of the container.")
@click.option("--tail", type=int, default=None, help="Only the last N lines (-1: all; -l: 10).")
@click.option("--since", default="", metavar="DURATION", help="Only lines newer than 5s, 2m, 3h.")
@click.option("--since-time", default="", metavar="TIME", help="Only lines since an RFC 3339 time.")
@click.option("--timestamps", is_flag=True, help="Prefix each line with its RFC 3339 time.")
@click.option("--all-containers", is_flag=True, help="Every container of the pod(s).")
@click.option("--prefix", is_flag=True, help="Prefix each line with [pod/NAME/CONTAINER].")
@click.option("-l", "--selector", default="", help="The pods of a label selector.")
@click.option("--max-log-requests", type=int, default=5, help="Most streams followed at once.")
@click.option(
    "--pod-running-timeout",
    type=DURATION,
    default=20.0,
    help="How long TYPE/NAME waits for a pod to appear.",
)
@namespace_option
@click.pass_obj
def logs(opts: Options, /, args: tuple[str, ...], namespace: str | None, **flags: Any) -> None:
    """Print the logs of a container in a pod."""
    opts = effective(opts, namespace)
    try:
        plan = logs_plan.plan(args, **flags)
    except CommandError as err:
        context.echo_err(f"error: {err}")
        raise click.exceptions.Exit(1) from None
    context.exit_with(context.run(opts, lambda client: logs_plan.run(client, opts, plan)))


@click.command("exec", context_settings={"ignore_unknown_options": True})
@click.argument("pod")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("-c", "--container", default="", help="The container (default: the only one).")
@namespace_option
@click.pass_obj
def exec_cmd(
    opts: Options, pod: str, command: tuple[str, ...], container: str, namespace: str | None
) -> None:
    """Run a command in a container: tinykube exec POD [-c C] -- CMD [ARG...]."""
    opts = effective(opts, namespace)
    try:
        name = pod_name(pod)
    except CommandError as err:
        context.echo_err(f"error: {err}")
        raise click.exceptions.Exit(1) from None
    context.exit_with(
        context.run(
            opts,
            lambda client: run_exec(
                client, opts.namespace, name, list(command), container=container
            ),
        )
    )
