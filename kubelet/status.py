"""Pod status: computing it from the runtime, and writing it only when it changed.

Two halves, as in Kubernetes (kubelet_pods.go generateAPIPodStatus and
status/status_manager.go):

`generate_pod_status(pod, base, ...)` turns what the runtime reports -- the
pod's sandbox and containers -- into a PodStatus:

    phase            Pending until every init container has succeeded (a
                     sidecar: started) and every container has started
                     (Failed at once if an init container fails under
                     restartPolicy Never); Running while one runs (a sidecar
                     counts); Succeeded / Failed once all app containers have
                     exited and the restartPolicy will not restart them -- an
                     exited sidecar does not count (getPhase)
    conditions       Initialized (False while init containers are incomplete:
                     a regular one until it succeeded, a sidecar until it
                     started), Ready and ContainersReady (every app container
                     and every sidecar ready), PodScheduled
    hostIP           the node's InternalIP
    podIP, podIPs    the sandbox's IP (the node's for hostNetwork pods)
    startTime        when the kubelet first took the pod (kept afterwards)
    initContainerStatuses, containerStatuses
                     per spec container, in spec order: state
                     (waiting ContainerCreating / running startedAt /
                     terminated exitCode / waiting CrashLoopBackOff with the
                     exit as lastState), ready (the readiness probe's
                     verdict), restartCount (the
                     container's attempt), image, imageID, containerID
                     (`fake://c000000000002`), started

A condition's lastTransitionTime changes only when its status does; fields
the kubelet does not own (PodScheduled written by the scheduler,
nominatedNodeName, qosClass, conditions of other types) are kept from `base`.

Worked example: a pod with one container "web" whose container has just
started, first seen at 10:00:00, now 10:00:01:

    phase: Running   startTime: 10:00:00   podIP: 10.244.1.2   hostIP: 192.168.0.11
    conditions: Initialized True, Ready True, ContainersReady True, PodScheduled True
    containerStatuses: [{name: web, ready: true, restartCount: 0, started: true,
                         state: {running: {startedAt: 10:00:01}}, image: nginx:1.25,
                         imageID: docker.io/library/nginx@sha256:..., containerID: fake://c...}]

`StatusManager` writes such a status with UpdateStatus only if it differs
from the latest status the API server holds. "Latest" needs care: the pod
object the kubelet holds comes from its informer, which may not yet have
seen the kubelet's own previous write. So the manager remembers, per pod
uid, the status it last wrote and the resourceVersion that write produced:
a pod copy older than that write is compared with the remembered status, a
newer one with its own status (someone else may have changed it, which is
then repaired). Without this, every sync racing the informer would write
the same status again. Writes are compare-and-swap on the resourceVersion;
on Conflict the pod is read again and, if it is still the same pod (uid),
the status is written onto it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass

from google.protobuf import timestamp_pb2

from apimachinery import errors
from apimachinery.client import Client
from kubelet import podtrace
from kubelet.nodestatus import now_seconds
from kubelet.runtime.interface import Container, ContainerState, PodSandbox, SandboxState
from kubelet.sidecars import sidecar_names
from protos import core_pb2

log = logging.getLogger(__name__)

# The order `kubectl describe pod` shows them in.
KUBELET_CONDITIONS = ("Initialized", "Ready", "ContainersReady", "PodScheduled")

TERMINAL_PHASES = ("Succeeded", "Failed")

# What a container waits with while the pod's init containers run (kubelet/init_containers.py).
INIT_PENDING_REASON = "PodInitializing"


@dataclass(frozen=True)
class Waiting:
    """Why a container is not running yet: reason as `kubectl get pods` shows it."""

    reason: str
    message: str = ""


def _ts(seconds: float) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=int(seconds))


def latest_containers(containers: list[Container]) -> dict[str, list[Container]]:
    """name -> that name's containers, newest attempt first."""
    by_name: dict[str, list[Container]] = {}
    for c in sorted(containers, key=lambda c: (c.attempt, c.created_at), reverse=True):
        by_name.setdefault(c.name, []).append(c)
    return by_name


def _container_status(
    spec: core_pb2.Container,
    history: list[Container],
    runtime_name: str,
    waiting: Waiting | None,
    is_ready: Callable[[Container], bool],
    is_started: Callable[[Container], bool],
) -> core_pb2.ContainerStatus:
    status = core_pb2.ContainerStatus(name=spec.name, image=spec.image)
    if not history:
        w = waiting or Waiting("ContainerCreating")
        status.state.waiting.reason = w.reason
        status.state.waiting.message = w.message
        status.started = False
        return status
    current = history[0]
    status.restart_count = current.attempt
    status.image_id = current.image_ref
    status.container_id = f"{runtime_name}://{current.id}"
    if current.state == ContainerState.RUNNING:
        status.state.running.started_at.CopyFrom(_ts(current.started_at))
        status.started = is_started(current)
        status.ready = status.started and is_ready(current)
    elif current.state == ContainerState.EXITED and waiting is not None:
        # CrashLoopBackOff: waiting to be restarted; what it last did is the last state.
        status.state.waiting.reason = waiting.reason
        status.state.waiting.message = waiting.message
        _terminated(status.last_state, current, runtime_name)
        status.started = False
        return status
    elif current.state == ContainerState.EXITED:
        _terminated(status.state, current, runtime_name)
        status.started = False
    else:  # created, not started yet (or the runtime lost track)
        w = waiting or Waiting("ContainerCreating")
        status.state.waiting.reason = w.reason
        status.state.waiting.message = w.message
        status.started = False
    if len(history) > 1 and history[1].state == ContainerState.EXITED:
        _terminated(status.last_state, history[1], runtime_name)
    return status


def _terminated(state: core_pb2.ContainerState, c: Container, runtime_name: str) -> None:
    t = state.terminated
    t.exit_code = c.exit_code
    t.reason = c.reason or ("Completed" if c.exit_code == 0 else "Error")
    t.message = c.message
    if c.started_at:
        t.started_at.CopyFrom(_ts(c.started_at))
    t.finished_at.CopyFrom(_ts(c.finished_at or c.created_at))
    t.container_id = f"{runtime_name}://{c.id}"


def pod_phase(
    pod: core_pb2.Pod,
    statuses: Iterable[core_pb2.ContainerStatus],
    sidecars: Iterable[core_pb2.ContainerStatus] = (),
) -> str:
    """Kubernetes' getPhase from the app containers and sidecars (init_phase, below, goes first).

    A running sidecar counts as running and one never started yet as waiting;
    an exited one (stopped, or restarting after a crash) does not count.
    """
    waiting = running = stopped = succeeded = 0
    for s in sidecars:
        if s.state.HasField("running"):
            running += 1
        elif s.state.HasField("waiting") and not s.last_state.HasField("terminated"):
            waiting += 1
    for s in statuses:
        if s.state.HasField("running"):
            running += 1
        elif s.state.HasField("terminated"):
            stopped += 1
            succeeded += s.state.terminated.exit_code == 0
        elif s.last_state.HasField("terminated"):  # waiting to restart: it has run
            stopped += 1
            succeeded += s.last_state.terminated.exit_code == 0
        else:
            waiting += 1
    if waiting > 0:
        return "Pending"
    if running > 0:
        return "Running"
    if stopped > 0:
        policy = pod.spec.restart_policy or "Always"
        if policy == "Always":
            return "Running"  # the containers will be restarted
        if stopped == succeeded:
            return "Succeeded"
        return "Running" if policy == "OnFailure" else "Failed"
    return "Pending"


def _outcome(status: core_pb2.ContainerStatus, sidecars: Collection[str] = ()) -> str:
    """One init container's status, in a word: done, failed or pending (a sidecar: started)."""
    if status.name in sidecars:
        return "done" if status.state.HasField("running") and status.started else "pending"
    state = status.state
    if state.HasField("terminated"):
        return "done" if state.terminated.exit_code == 0 else "failed"
    if state.HasField("waiting") and status.last_state.HasField("terminated"):
        return "done" if status.last_state.terminated.exit_code == 0 else "failed"
    return "pending"


def init_phase(pod: core_pb2.Pod, statuses: Iterable[core_pb2.ContainerStatus]) -> str:
    """The phase init containers decide (getPhase): Failed, Pending, or "" once all succeeded."""
    outcomes = [_outcome(s, sidecar_names(pod)) for s in statuses]
    if "failed" in outcomes and (pod.spec.restart_policy or "Always") == "Never":
        return "Failed"
    if any(o != "done" for o in outcomes):
        return "Pending"
    return ""


def incomplete_init(
    statuses: Iterable[core_pb2.ContainerStatus], sidecars: Collection[str] = ()
) -> list[str]:
    """The init containers not done yet (Initialized's message): not succeeded, not started."""
    return [s.name for s in statuses if _outcome(s, sidecars) != "done"]


def _set_condition(
    status: core_pb2.PodStatus,
    base: core_pb2.PodStatus,
    type_: str,
    value: str,
    reason: str = "",
    message: str = "",
) -> None:
    old = next((c for c in base.conditions if c.type == type_), None)
    c = status.conditions.add(type=type_, status=value, reason=reason, message=message)
    if old is not None and old.status == value and old.HasField("last_transition_time"):
        c.last_transition_time.CopyFrom(old.last_transition_time)
    else:
        c.last_transition_time.CopyFrom(now_seconds())


def _init_waiting(
    pod: core_pb2.Pod, history: Mapping[str, list[Container]], waiting: dict[str, Waiting]
) -> None:
    """With init containers, every container not started yet waits with PodInitializing."""
    if not pod.spec.init_containers:
        return
    for spec in [*pod.spec.init_containers, *pod.spec.containers]:
        seen = history.get(spec.name)
        if not seen or seen[0].state == ContainerState.CREATED:
            waiting.setdefault(spec.name, Waiting(INIT_PENDING_REASON))


def _container_statuses(
    pod: core_pb2.Pod,
    base: core_pb2.PodStatus,
    status: core_pb2.PodStatus,
    history: Mapping[str, list[Container]],
    initialized: bool,
    runtime_name: str,
    waiting: Mapping[str, Waiting],
    is_ready: Callable[[Container], bool],
    is_started: Callable[[Container], bool],
) -> None:
    """Fill initContainerStatuses and containerStatuses, in spec order."""
    last = {s.name: s for s in base.init_container_statuses}
    for specs, out in (
        (pod.spec.init_containers, status.init_container_statuses),
        (pod.spec.containers, status.container_statuses),
    ):
        for spec in specs:
            if initialized and spec.name in last and not history.get(spec.name):
                out.append(last[spec.name])
                continue
            out.append(
                _container_status(
                    spec,
                    history.get(spec.name, []),
                    runtime_name,
                    waiting.get(spec.name),
                    is_ready,
                    is_started,
                )
            )


def _addresses_and_start(
    pod: core_pb2.Pod,
    base: core_pb2.PodStatus,
    status: core_pb2.PodStatus,
    node_ip: str,
    sandbox: PodSandbox | None,
) -> None:
    """hostIP, podIP(s), startTime, and the fields the kubelet keeps from `base`."""
    status.host_ip = node_ip
    ip = node_ip if pod.spec.host_network else ""
    if sandbox is not None and sandbox.state == SandboxState.READY and sandbox.ip:
        ip = sandbox.ip
    if ip:
        status.pod_ip = ip
        status.pod_ips.add(ip=ip)
    if base.HasField("start_time"):
        status.start_time.CopyFrom(base.start_time)
    else:
        status.start_time.CopyFrom(now_seconds())
    status.qos_class = base.qos_class
    status.nominated_node_name = base.nominated_node_name


def _pod_conditions(
    status: core_pb2.PodStatus,
    base: core_pb2.PodStatus,
    init_statuses: list[core_pb2.ContainerStatus],
    sidecars: Collection[str],
) -> None:
    """Initialized, Ready, ContainersReady, PodScheduled, then the others kept from `base`."""
    unready = [s.name for s in status.init_container_statuses if s.name in sidecars and not s.ready]
    unready += [s.name for s in status.container_statuses if not s.ready]
    terminal = status.phase in TERMINAL_PHASES
    not_initialized = incomplete_init(init_statuses, sidecars)
    if not_initialized:
        message = f"containers with incomplete status: [{' '.join(not_initialized)}]"
        _set_condition(status, base, "Initialized", "False", "ContainersNotInitialized", message)
    else:
        _set_condition(status, base, "Initialized", "True")
    if terminal:
        reason, message = "PodCompleted", ""
    elif unready:
        reason, message = (
            "ContainersNotReady",
            f"containers with unready status: [{' '.join(unready)}]",
        )
    else:
        reason, message = "", ""
    ok = "False" if (unready or terminal) else "True"
    _set_condition(status, base, "Ready", ok, reason, message)
    _set_condition(status, base, "ContainersReady", ok, reason, message)
    scheduled = next((c for c in base.conditions if c.type == "PodScheduled"), None)
    if scheduled is not None:
        status.conditions.append(scheduled)
    else:
        _set_condition(status, base, "PodScheduled", "True")
    for c in base.conditions:
        if c.type not in KUBELET_CONDITIONS:
            status.conditions.append(c)


def generate_pod_status(
    pod: core_pb2.Pod,
    base: core_pb2.PodStatus,
    *,
    node_ip: str,
    sandbox: PodSandbox | None,
    containers: list[Container],
    runtime_name: str,
    waiting: Mapping[str, Waiting] | None = None,
    is_ready: Callable[[Container], bool] | None = None,
    is_started: Callable[[Container], bool] | None = None,
) -> core_pb2.PodStatus:
    """The status the pod should have now (see the module docstring).

    `is_ready` / `is_started` are the prober's verdicts for a running container
    (readiness probe; startup probe); without them a running container is both.
    """
    waiting = dict(waiting or {})
    status = core_pb2.PodStatus()
    history = latest_containers(containers)
    _init_waiting(pod, history, waiting)
    # Once an app container has run, the pod is initialized for this sandbox's life,
    # even if its exited init containers were removed since (their last status stays).
    initialized = any(history.get(spec.name) for spec in pod.spec.containers)
    _container_statuses(
        pod,
        base,
        status,
        history,
        initialized,
        runtime_name,
        waiting,
        is_ready or (lambda c: True),
        is_started or (lambda c: True),
    )
    init_statuses = [] if initialized else list(status.init_container_statuses)
    sidecars = sidecar_names(pod)
    phase = init_phase(pod, init_statuses) or pod_phase(
        pod,
        list(status.container_statuses),
        [s for s in status.init_container_statuses if s.name in sidecars],
    )
    if base.phase in TERMINAL_PHASES:
        phase = base.phase  # a terminal phase never changes back
    status.phase = phase
    _addresses_and_start(pod, base, status, node_ip, sandbox)
    _pod_conditions(status, base, init_statuses, sidecars)
    return status


@dataclass
class _Written:
    resource_version: int
    status: core_pb2.PodStatus


def _rv(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return 0


class StatusManager:
    """Writes pod statuses, only when they changed (see the module docstring)."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self._written: dict[str, _Written] = {}
        self.writes = 0

    def latest_status(self, pod: core_pb2.Pod) -> core_pb2.PodStatus:
        """The newest status known for `pod`: its own, or the one last written if newer."""
        written = self._written.get(pod.metadata.uid)
        if written is not None and _rv(pod.metadata.resource_version) <= written.resource_version:
            return written.status
        return pod.status

    async def set_pod_status(self, pod: core_pb2.Pod, status: core_pb2.PodStatus) -> bool:
        """Write `status` unless the API server already has it. True if written."""
        if self.latest_status(pod) == status:
            return False
        new = core_pb2.Pod()
        new.CopyFrom(pod)
        new.status.CopyFrom(status)
        uid = pod.metadata.uid
        for _ in range(5):
            try:
                with podtrace.status_write(pod, status):  # the write carries its span
                    written = await self.client.update_status(new)
            except errors.NotFound:
                self.forget(uid)
                return False
            except errors.Conflict:
                fresh = await self._fresh(pod)
                if fresh is None:
                    return False
                new.CopyFrom(fresh)
                new.status.CopyFrom(status)
                continue
            self.writes += 1
            self._written[uid] = _Written(_rv(written.metadata.resource_version), written.status)
            log.info(
                "pod status updated",
                extra={
                    "pod": f"{pod.metadata.namespace}/{pod.metadata.name}",
                    "phase": status.phase,
                    "podIP": status.pod_ip,
                },
            )
            return True
        raise errors.Conflict("pod status kept conflicting")

    async def _fresh(self, pod: core_pb2.Pod) -> core_pb2.Pod | None:
        try:
            fresh = await self.client.get(core_pb2.Pod, pod.metadata.name, pod.metadata.namespace)
        except errors.NotFound:
            self.forget(pod.metadata.uid)
            return None
        if fresh.metadata.uid != pod.metadata.uid:
            return None  # deleted and re-created under the same name: not ours to write
        return fresh

    def forget(self, uid: str) -> None:
        self._written.pop(uid, None)
        podtrace.forget(uid)
