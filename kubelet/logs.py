"""A container's log as `kubectl logs` asks for it: tail, since, timestamps, follow.

The runtime (runtime/*.py `container_logs`) yields one instance's lines,
each with the time the runtime stamped on it; this module applies the
request's options on the node, where Kubernetes' kubelet applies them too
(kuberuntime/logs/logs.go, ReadLogs):

1. `tail=N` first: only the last N lines of the instance's log are read;
2. then `since`: lines stamped before it are dropped (so `--tail=10
   --since=1m` is "those of the last ten lines that are younger than a
   minute"); `sinceSeconds` is turned into a time when the request arrives;
3. `timestamps`: each line is prefixed with its time in Go's RFC3339Nano
   form (`2024-05-01T10:00:00.123456Z `: UTC, trailing zeros of the
   fraction dropped). Our runtimes keep times as floats, so the fraction is
   good to the microsecond, not the nanosecond.

Following across restarts. In Kubernetes `kubectl logs -f` ends when the
container exits, even if the kubelet starts it again a second later; here,
`follow` goes on: when an instance's log ends, the server waits for the
next instance of the same container and streams that one from its first
line, for as long as the container may still be restarted -- that is,
while the pod is on this node, not terminating, not finished, and the
restart policy says the exit leads to a restart (`Always`; `OnFailure`
after a non-zero exit; an init container after a failure unless the policy
is `Never`; a sidecar always). Worked example, restartPolicy Always, a
container that prints `start` and crashes every few seconds:

    $ tinykube logs crasher -f
    start           <- instance 0, which then exits 1
    start           <- instance 1, after the CrashLoopBackOff delay
    ...             <- until the pod is deleted (or Ctrl-C)

With `previous` there is nothing to follow: the previous instance has
exited already, so its log is read to the end and the stream stops.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from apimachinery import errors
from kubelet.kuberuntime_container import policy_restarts
from kubelet.runtime.cri_logs import parse_time
from kubelet.runtime.interface import Container, ContainerRuntime, ContainerState, LogLine
from protos import core_pb2, kubelet_pb2

FOLLOW_POLL = 0.2  # seconds between looks for the next instance of a container


@dataclass(frozen=True)
class LogOptions:
    """The request's options, checked, with `since` as an absolute time (Unix seconds)."""

    follow: bool = False
    previous: bool = False
    tail: int | None = None
    since: float | None = None
    timestamps: bool = False

    @classmethod
    def from_request(
        cls, request: kubelet_pb2.ContainerLogsRequest, now: float | None = None
    ) -> LogOptions:
        """Check the request as the API validates PodLogOptions (BadRequest if wrong)."""
        now = time.time() if now is None else now
        has_seconds = request.HasField("since_seconds")
        if has_seconds and request.since_time:
            raise errors.BadRequest("at most one of `sinceTime` or `sinceSeconds` may be specified")
        since: float | None = None
        if has_seconds:
            if request.since_seconds < 1:
                raise errors.BadRequest(
                    f"sinceSeconds: Invalid value: {request.since_seconds}: must be greater than 0"
                )
            since = now - request.since_seconds
        elif request.since_time:
            try:
                since = parse_time(request.since_time)
            except ValueError:
                raise errors.BadRequest(
                    f'sinceTime: Invalid value: "{request.since_time}": must be an RFC 3339 time'
                ) from None
        tail: int | None = None
        if request.HasField("tail_lines"):
            if request.tail_lines < 0:
                raise errors.BadRequest(
                    f"tailLines: Invalid value: {request.tail_lines}: "
                    "must be greater than or equal to 0"
                )
            tail = int(request.tail_lines)
        return cls(request.follow, request.previous, tail, since, request.timestamps)


def format_timestamp(when: float) -> str:
    """Go's RFC3339Nano in UTC: `2024-05-01T10:00:00.5Z` (no fraction when it is zero)."""
    seconds = int(when // 1)
    micros = round((when - seconds) * 1_000_000)
    if micros == 1_000_000:
        seconds, micros = seconds + 1, 0
    text = datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{micros:06d}".rstrip("0")
    return f"{text}.{fraction}Z" if fraction else f"{text}Z"


def render(line: LogLine, options: LogOptions) -> str | None:
    """The line as sent, or None when `since` drops it."""
    if options.since is not None and line.time < options.since:
        return None
    if options.timestamps:
        return f"{format_timestamp(line.time)} {line.text}"
    return line.text


def will_restart(pod: core_pb2.Pod, exited: Container) -> bool:
    """Whether the kubelet starts this exited container again (see the module docstring)."""
    if pod.metadata.HasField("deletion_timestamp"):
        return False
    if pod.status.phase in ("Succeeded", "Failed"):
        return False
    policy = pod.spec.restart_policy or "Always"
    for spec in pod.spec.init_containers:
        if spec.name == exited.name:
            if spec.HasField("restart_policy") and spec.restart_policy == "Always":
                return True  # a sidecar
            return policy != "Never" and exited.exit_code != 0
    return policy_restarts(policy, exited.exit_code)


NextInstance = Callable[[Container], Awaitable[Container | None]]


async def stream(
    runtime: ContainerRuntime, first: Container, options: LogOptions, next_instance: NextInstance
) -> AsyncIterator[str]:
    """The lines to send for `first` -- and, when following, the instances after it."""
    instance: Container | None = first
    tail = options.tail
    following = options.follow and not options.previous
    while instance is not None:
        async for line in runtime.container_logs(instance.id, follow=following, tail=tail):
            text = render(line, options)
            if text is not None:
                yield text
        if not following:
            return
        tail = None  # a new instance is read from its first line
        instance = await next_instance(instance)


async def wait_for_next(
    find_pod: Callable[[], core_pb2.Pod | None],
    containers: Callable[[core_pb2.Pod], Awaitable[list[Container]]],
    after: Container,
) -> Container | None:
    """The instance of `after`'s container started after it; None once none will come.

    `find_pod` gives the pod as the kubelet knows it now (None: gone from the
    node), `containers` the pod's containers, newest first per name.
    """
    while True:
        pod = find_pod()
        if pod is None:
            return None
        history = [c for c in await containers(pod) if c.name == after.name]
        newer = [
            c for c in history if (c.attempt, c.created_at) > (after.attempt, after.created_at)
        ]
        if newer:
            return min(newer, key=lambda c: (c.attempt, c.created_at))
        current = next((c for c in history if c.id == after.id), None)
        if current is None:
            return None  # removed with no successor: the pod is being torn down
        if current.state == ContainerState.EXITED and not will_restart(pod, current):
            return None
        await asyncio.sleep(FOLLOW_POLL)
