"""Stopping one container gracefully, and restart decisions (kuberuntime_container.go).

Graceful termination (`kill_container`), in Kubernetes' order:

1. the preStop hook, if the container has one (lifecycle.py: exec through
   the runtime's ExecSync, httpGet to the pod, or sleep), bounded by the
   grace period; a failing hook is reported (event FailedPreStopHook) and
   the stop goes on;
2. the time the hook took comes off the grace period, never below 2 s
   (minimumGracePeriodInSeconds);
3. when the whole pod stops, a sidecar waits for its turn (sidecars.py:
   after the app containers and the sidecars declared after it), and that
   wait too comes off its grace period;
4. CRI StopContainer(timeout = what is left): the runtime sends SIGTERM
   (or the image's STOPSIGNAL) and SIGKILL when the timeout runs out.

Worked example: grace 30 s, a preStop `sleep 5` that takes 5 s, and nginx
ignoring SIGTERM: t=0 preStop runs; t=5 StopContainer(timeout=25) -> SIGTERM;
t=30 SIGKILL, the container exits 137.

Restart decisions (`restart_decision`) follow restartPolicy, then
CrashLoopBackOff (backoff.py):

    restartPolicy  exit 0        exit != 0
    Always         restart       restart
    OnFailure      stays exited  restart
    Never          stays exited  stays exited

A sidecar (an init container with restartPolicy Always) is restarted whatever
the pod's restartPolicy (`always=True`). A restart that is due waits out the
container's backoff; meanwhile the
container shows `waiting: CrashLoopBackOff` with Kubernetes' message
`back-off 20s restarting failed container=web-app pod=web-app-1_default(<uid>)`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

from apimachinery.events import EventRecorder
from kubelet import lifecycle
from kubelet.backoff import Backoff
from kubelet.pod_workers import MINIMUM_GRACE_SECONDS
from kubelet.runtime.interface import Container, ContainerRuntime
from kubelet.sidecars import TerminationOrdering
from kubelet.status import Waiting
from protos import core_pb2

log = logging.getLogger(__name__)


def go_duration(seconds: float) -> str:
    """Go's time.Duration text, as Kubernetes prints it: 10s, 1m20s, 5m0s, 300ms."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    whole = round(seconds)
    minutes, secs = divmod(whole, 60)
    if minutes == 0:
        return f"{secs}s"
    hours, minutes = divmod(minutes, 60)
    if hours == 0:
        return f"{minutes}m{secs}s"
    return f"{hours}h{minutes}m{secs}s"


def pod_description(pod: core_pb2.Pod) -> str:
    """`name_namespace(uid)`, the kubelet's format.Pod."""
    meta = pod.metadata
    return f"{meta.name}_{meta.namespace}({meta.uid})"


def policy_restarts(policy: str, exit_code: int) -> bool:
    """The restartPolicy table of the module docstring."""
    if policy == "Never":
        return False
    if policy == "OnFailure":
        return exit_code != 0
    return True  # Always, the default


@dataclass(frozen=True)
class RestartDecision:
    """Whether an exited container starts again now, and if not, what it shows meanwhile."""

    restart: bool
    waiting: Waiting | None = None  # CrashLoopBackOff while the backoff runs
    retry_after: float | None = None  # when to look again


def restart_decision(
    pod: core_pb2.Pod, container: Container, backoff: Backoff, *, always: bool = False
) -> RestartDecision:
    """Whether an exited container is started again now (restartPolicy + backoff).

    `always`: restart whatever the pod's restartPolicy says (a sidecar).
    """
    policy = "Always" if always else (pod.spec.restart_policy or "Always")
    if not policy_restarts(policy, container.exit_code):
        return RestartDecision(False)
    key = f"{pod.metadata.uid}/{container.name}"
    finished = container.finished_at or container.created_at
    left = backoff.remaining_since(key, finished)
    if left > 0:
        message = (
            f"back-off {go_duration(backoff.get(key))} restarting failed "
            f"container={container.name} pod={pod_description(pod)}"
        )
        return RestartDecision(False, Waiting("CrashLoopBackOff", message), left)
    backoff.next(key, finished)
    return RestartDecision(True)


def next_attempt(
    name: str, seen: list[Container], statuses: Iterable[core_pb2.ContainerStatus]
) -> int:
    """The attempt number for the next start of container `name`.

    The runtime's containers count it (so the count survives a kubelet
    restart); a container the runtime lost (removed by hand) keeps counting
    from the status the pod last had, as in Kubernetes.
    """
    if seen:
        return max(c.attempt for c in seen) + 1
    return next((s.restart_count + 1 for s in statuses if s.name == name and s.container_id), 0)


def container_spec(pod: core_pb2.Pod, name: str) -> core_pb2.Container | None:
    for spec in [*pod.spec.init_containers, *pod.spec.containers]:
        if spec.name == name:
            return spec
    return None


class ContainerKiller:
    """Graceful termination of one container (killContainer + executePreStopHook)."""

    def __init__(self, runtime: ContainerRuntime, recorder: EventRecorder | None = None) -> None:
        self.runtime = runtime
        self.recorder = recorder

    def _event(self, pod: core_pb2.Pod | None, type_: str, reason: str, message: str) -> None:
        if self.recorder is not None and pod is not None:
            self.recorder.event(pod, type_, reason, message)

    async def kill_container(
        self,
        pod: core_pb2.Pod | None,
        container: Container,
        grace: float,
        message: str = "",
        pod_ip: str = "",
        ordering: TerminationOrdering | None = None,
    ) -> None:
        try:
            spec = container_spec(pod, container.name) if pod is not None else None
            if pod is not None and spec is not None and spec.lifecycle.HasField("pre_stop"):
                started = time.monotonic()
                await self._pre_stop(pod, container, spec, grace, pod_ip)
                grace = max(float(MINIMUM_GRACE_SECONDS), grace - int(time.monotonic() - started))
            if ordering is not None:
                waited = await ordering.wait_for_turn(container, grace)
                grace = max(float(MINIMUM_GRACE_SECONDS), grace - int(waited))
            self._event(pod, "Normal", "Killing", message or f"Stopping container {container.name}")
            log.info(
                "killing container",
                extra={"container": container.name, "id": container.id, "grace": grace},
            )
            await self.runtime.stop_container(container.id, grace)
        finally:
            if ordering is not None:
                ordering.stopped(container)

    async def _pre_stop(
        self,
        pod: core_pb2.Pod,
        container: Container,
        spec: core_pb2.Container,
        grace: float,
        pod_ip: str,
    ) -> None:
        handler = spec.lifecycle.pre_stop
        failure = await lifecycle.run_handler(
            self.runtime, handler, pod, spec, container.id, pod_ip, grace
        )
        if failure:
            self._event(pod, "Warning", "FailedPreStopHook", failure)
