"""`logs` and `exec`: a container's output and a command in it (kubectl logs, kubectl exec).

Both go through the apiserver, as kubectl's do: the resource service's
PodLogs and PodExec (the pods/log and pods/exec subresources) find the
pod's node and proxy to its kubelet (apiserver/proxy.py, kubelet/server.py).
The CLI never needs to reach a node.

    $ tinykube logs web-app-7d4b9-x2kq9 --tail 2
    10.244.1.1 - - [01/May/2024:10:00:00 +0000] "GET / HTTP/1.1" 200 615 "-" "curl/7.88.1"
    10.244.1.1 - - [01/May/2024:10:00:01 +0000] "GET / HTTP/1.1" 200 615 "-" "curl/7.88.1"
    $ tinykube logs web-app-7d4b9-x2kq9 -f          # until Ctrl-C or the container exits
    $ tinykube logs web-app-7d4b9-x2kq9 --previous  # the instance before the last restart
    $ tinykube exec web-app-7d4b9-x2kq9 -- cat /etc/hostname
    web-app-7d4b9-x2kq9

`POD` may be written `pod/NAME` too. Without `-c`, a pod with one container
means that one; with several the server answers with the names to choose
from. `exec` is non-interactive (CRI ExecSync: no stdin, no TTY): the
command's stdout and stderr are written out as they came, and its exit code
becomes tinykube's own, as with kubectl (`exec web -- false` exits 1).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from cli import context
from cli.context import CommandError, Options, effective, namespace_option

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


async def stream_logs(
    client: Client,
    namespace: str,
    name: str,
    *,
    container: str = "",
    follow: bool = False,
    previous: bool = False,
    tail: int | None = None,
) -> int:
    lines = client.pod_logs(
        name, namespace, container=container, follow=follow, previous=previous, tail=tail
    )
    async for line in lines:
        click.echo(line)
    return 0


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
@click.argument("pod")
@click.option("-c", "--container", default="", help="The container (default: the only one).")
@click.option("-f", "--follow", is_flag=True, help="Keep streaming new lines.")
@click.option("-p", "--previous", is_flag=True, help="The previous instance of the container.")
@click.option("--tail", type=int, default=-1, help="Only the last N lines (-1: all).")
@namespace_option
@click.pass_obj
def logs(
    opts: Options,
    pod: str,
    container: str,
    follow: bool,
    previous: bool,
    tail: int,
    namespace: str | None,
) -> None:
    """Print the logs of a container in a pod."""
    opts = effective(opts, namespace)
    name = pod_name(pod)
    context.exit_with(
        context.run(
            opts,
            lambda client: stream_logs(
                client,
                opts.namespace,
                name,
                container=container,
                follow=follow,
                previous=previous,
                tail=tail if tail >= 0 else None,
            ),
        )
    )


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
    name = pod_name(pod)
    context.exit_with(
        context.run(
            opts,
            lambda client: run_exec(
                client, opts.namespace, name, list(command), container=container
            ),
        )
    )
