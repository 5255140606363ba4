"""`tinykube logs`: the flags checked, then one log stream per pod and container (kubectl logs).

Two steps, as kubectl's logs.go has them (Complete+Validate, then Run):

1. `plan` reads the arguments and flags and refuses bad combinations
   before anything is sent, in kubectl's words:

       logs                       expected 'logs [-f] [-p] (POD | TYPE/NAME) [-c CONTAINER]'. ...
       logs web -l app=web        only a selector (-l) or a POD name is allowed
       logs web sidecar -c web    only one of -c or an inline [CONTAINER] arg is allowed
       --since 5m --since-time T  at most one of `sinceTime` or `sinceSeconds` may be specified
       --all-containers -c web    --all-containers=true should not be specified with container ...
       --tail -5                  --tail must be greater than or equal to -1

   `--tail` defaults to all lines, but to 10 with `-l` (kubectl's rule, so a
   selector over many pods does not flood the terminal).
2. `run` finds the pods and containers (cli.logs_select) and reads each
   log through the API server: one after the other, or -- when following
   several streams -- all at once, lines interleaved as they come, at most
   `--max-log-requests` (5) streams:

       you are attempting to follow 6 log streams, but maximum allowed concurrency is 5,
       use --max-log-requests to increase the limit

`--prefix` starts each line with where it came from, `[pod/web-1/nginx] `;
`--timestamps` asks the kubelet for each line's time (kubelet/logs.py), so
with both a line reads `[pod/web-1/nginx] 2024-05-01T10:00:00.123456Z GET /`.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import click

from cli import logs_select
from cli.context import CommandError, Options, echo_err
from cli.durations import parse_duration

if TYPE_CHECKING:
    from apimachinery.client import Client

USAGE = (
    "expected 'logs [-f] [-p] (POD | TYPE/NAME) [-c CONTAINER]'.\n"
    "POD or TYPE/NAME is a required argument for the logs command\n"
    "See 'tinykube logs -h' for help and examples"
)
SELECTOR_TAIL = 10
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})\Z")


@dataclass(frozen=True)
class LogRequest:
    """The options every stream of one command shares (PodLogOptions' time fields)."""

    since_seconds: int | None = None
    since_time: str = ""
    timestamps: bool = False


@dataclass(frozen=True)
class LogsPlan:
    target: str  # POD or TYPE/NAME; "" with a selector
    container: str
    selector: str
    follow: bool
    previous: bool
    tail: int | None  # None: every line
    request: LogRequest
    all_containers: bool
    prefix: bool
    max_requests: int
    pod_timeout: float


def _since_seconds(text: str) -> int | None:
    if not text:
        return None
    try:
        seconds = parse_duration(text)
    except CommandError:
        raise CommandError(
            f'invalid argument "{text}" for "--since" flag: time: invalid duration "{text}"'
        ) from None
    return max(1, int(seconds + 0.5)) if seconds > 0 else None


def plan(
    args: tuple[str, ...],
    *,
    container: str,
    follow: bool,
    previous: bool,
    tail: int | None,
    since: str,
    since_time: str,
    timestamps: bool,
    all_containers: bool,
    prefix: bool,
    selector: str,
    max_log_requests: int,
    pod_running_timeout: float,
) -> LogsPlan:
    """The command line checked (CommandError in kubectl's words; see the module docstring)."""
    if (not args and not selector) or len(args) > 2:
        raise CommandError(USAGE)
    if args and selector:
        raise CommandError("only a selector (-l) or a POD name is allowed")
    if len(args) == 2:
        if container:
            raise CommandError("only one of -c or an inline [CONTAINER] arg is allowed")
        container = args[1]
    since_seconds = _since_seconds(since)
    if since_seconds is not None and since_time:
        raise CommandError("at most one of `sinceTime` or `sinceSeconds` may be specified")
    if since_time and not _RFC3339.match(since_time):
        raise CommandError(
            f'parsing time "{since_time}" as "2006-01-02T15:04:05Z07:00": not an RFC 3339 time'
        )
    if tail is not None and tail < -1:
        raise CommandError("--tail must be greater than or equal to -1")
    if all_containers and container:
        raise CommandError(
            f"--all-containers=true should not be specified with container name {container}"
        )
    if max_log_requests < 1:
        raise CommandError("--max-log-requests should be greater than 0")
    if tail is None and selector:
        tail = SELECTOR_TAIL
    return LogsPlan(
        target=args[0] if args else "",
        container=container,
        selector=selector,
        follow=follow,
        previous=previous,
        tail=tail if tail is not None and tail >= 0 else None,
        request=LogRequest(since_seconds, since_time, timestamps),
        all_containers=all_containers,
        prefix=prefix,
        max_requests=max_log_requests,
        pod_timeout=pod_running_timeout,
    )


async def stream_logs(
    client: Client,
    namespace: str,
    name: str,
    *,
    container: str = "",
    follow: bool = False,
    previous: bool = False,
    tail: int | None = None,
    options: LogRequest | None = None,
    prefix: str = "",
) -> int:
    """Print one container's log lines (each behind `prefix`) as they arrive."""
    options = options or LogRequest()
    lines = client.pod_logs(
        name,
        namespace,
        container=container,
        follow=follow,
        previous=previous,
        tail=tail,
        since_seconds=options.since_seconds,
        since_time=options.since_time,
        timestamps=options.timestamps,
    )
    async for line in lines:
        click.echo(prefix + line)
    return 0


async def run(client: Client, opts: Options, p: LogsPlan) -> int:
    """Find the pods and containers, then print their logs (see the module docstring)."""
    pods = await logs_select.resolve_pods(
        client, opts.namespace, p.target, p.selector, p.pod_timeout
    )
    if not pods:
        echo_err(f"No resources found in {opts.namespace} namespace.")
        return 0
    streams = [
        (pod.metadata.name, name)
        for pod in pods
        for name in logs_select.containers_for(pod, p.container, p.all_containers)
    ]
    if p.follow and len(streams) > p.max_requests:
        raise CommandError(
            f"you are attempting to follow {len(streams)} log streams, but maximum allowed "
            f"concurrency is {p.max_requests}, use --max-log-requests to increase the limit"
        )

    async def one(pod: str, container: str) -> int:
        return await stream_logs(
            client,
            opts.namespace,
            pod,
            container=container,
            follow=p.follow,
            previous=p.previous,
            tail=p.tail,
            options=p.request,
            prefix=f"[pod/{pod}/{container}] " if p.prefix else "",
        )

    if not (p.follow and len(streams) > 1):
        for pod, container in streams:
            await one(pod, container)
        return 0
    tasks = [asyncio.ensure_future(one(pod, container)) for pod, container in streams]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return 0
