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
with the names to choose from. Without `-i`, `exec` is one request and one
answer (PodExec, CRI ExecSync: no stdin, no TTY). With `-i` it is a stream
(PodExecStream, cli/exec_stream.py): stdin goes to the process as it is
typed or piped, and its end is the process's EOF; output is written as it
comes; `-t` adds a terminal (raw mode here, its size following the window),
as `kubectl exec -it web -- sh` does:

    $ echo hello | tinykube exec -i web -- cat
    hello
    $ tinykube exec -it web -- sh
    / # exit 3
    command terminated with exit code 3

Either way the command's exit code becomes tinykube's own, as with kubectl
(`exec web -- false` exits 1).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from cli import context, exec_stream, logs_plan
from cli.context import CommandError, Options, effective, namespace_option
from cli.durations import DURATION
from cli.logs_plan import stream_logs
from protos import kubelet_pb2

__all__ = ["exec_cmd", "logs", "pod_name", "run_exec", "run_exec_stream", "stream_logs"]

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
    return _terminated(int(answer.exit_code))


def _terminated(code: int) -> int:
    if code != 0:
        context.echo_err(f"command terminated with exit code {code}")
    return code


def _writer(stream: Any) -> Callable[[bytes], None]:
    def write(data: bytes) -> None:
        stream.buffer.write(data)
        stream.flush()

    return write


async def run_exec_stream(
    client: Client,
    namespace: str,
    name: str,
    command: list[str],
    *,
    container: str = "",
    tty: bool = False,
) -> int:
    """`exec -i [-t]`: our stdin to the process as it comes, its output back as it is written.

    With -t the terminal goes raw and its size follows the window; -t without a
    terminal on stdin is dropped with kubectl's warning."""
    start = kubelet_pb2.ExecStart(
        namespace=namespace, pod=name, container=container, command=command
    )
    start.stdin = start.stdout = start.stderr = True
    if tty and not sys.stdin.isatty():
        context.echo_err("Unable to use a TTY - input is not a terminal or the right kind of file")
        tty = False
    start.tty = tty
    out, err = _writer(sys.stdout), _writer(sys.stderr)
    if not tty:
        code = await exec_stream.exec_session(client, start, exec_stream.stdin_chunks(), out, err)
        return _terminated(code)
    with exec_stream.RawTerminal() as terminal:
        code = await exec_stream.exec_session(
            client, start, exec_stream.stdin_chunks(), out, err, terminal.resizes
        )
    return _terminated(code)


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
@click.option("-i", "--stdin", "stdin", is_flag=True, help="Pass stdin to the container.")
@click.option("-t", "--tty", "tty", is_flag=True, help="Stdin is a TTY (with -i).")
@namespace_option
@click.pass_obj
def exec_cmd(
    opts: Options,
    pod: str,
    command: tuple[str, ...],
    container: str,
    stdin: bool,
    tty: bool,
    namespace: str | None,
) -> None:
    """Run a command in a container: tinykube exec [-i] [-t] POD [-c C] -- CMD [ARG...]."""
    opts = effective(opts, namespace)
    try:
        name = pod_name(pod)
    except CommandError as err:
        context.echo_err(f"error: {err}")
        raise click.exceptions.Exit(1) from None
    argv = list(command)
    if stdin:
        code = context.run(
            opts,
            lambda client: run_exec_stream(
                client, opts.namespace, name, argv, container=container, tty=tty
            ),
        )
    else:
        code = context.run(
            opts,
            lambda client: run_exec(client, opts.namespace, name, argv, container=container),
        )
    context.exit_with(code)
