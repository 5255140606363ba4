"""Init containers: each runs to success, one at a time and in order, before any app container;
sidecars (restartPolicy Always) start in that order too and then keep running.

Kubernetes' rules (kuberuntime_manager.go computeInitContainerActions and
kubelet_pods.go getPhase), as the kubelet applies them on every sync. The
*frontier* is the last init container that has a container in the current
sandbox; the ones before it have done their part, so only the sidecars among
them need care (started again if they exited, with CrashLoopBackOff):

    the pod's sandbox is new        start the first init container (a pod whose
                                    sandbox is re-created runs them all again)
    frontier N is running           a regular one: wait, its exit is a runtime
                                    event that syncs the pod again; a sidecar:
                                    once started (startupProbe succeeded, or
                                    none), go on as if it had succeeded
    N exited 0 (or N is a           start N+1; after the last, the app
    started sidecar)                containers start as in a pod without any
                                    (and once one has, the pod stays initialized
                                    in this sandbox, even if the exited init
                                    containers are removed)
    N exited non-zero               restartPolicy Never: the pod is Failed (and
                                    then stopped like any finished pod); else N
                                    is started again after its CrashLoopBackOff
                                    (an init container is never restarted for
                                    exiting 0, whatever the restartPolicy)
    a sidecar exited                started again after its CrashLoopBackOff,
                                    whatever the restartPolicy and exit code
    a sidecar failed its            killed ("Init container proxy failed
    startup or liveness probe       liveness probe") and started again

Once the pod has finished -- every app container exited and the restartPolicy
restarts none (`pod_finished`) -- the running sidecars are stopped (Killing:
"Stopping container proxy") and none is started again, so the pod can end
Succeeded or Failed (Kubernetes' KillPod for such a pod).

What the status shows meanwhile (status.py: init_phase, incomplete_init):
phase Pending (Failed for the Never case), condition Initialized False
"containers with incomplete status: [migrate]", and every container not
started yet waiting with reason PodInitializing -- so `tinykube get pods`
prints `Init:0/2`, `Init:Error`, `Init:CrashLoopBackOff` or
`PodInitializing`, as kubectl does.

Worked example: init containers [migrate, seed], app [web], restartPolicy
Always. Sync 1: new sandbox, start migrate. migrate exits 1: sync 2 waits
out a 10 s backoff (migrate waiting CrashLoopBackOff, the pod Init:
CrashLoopBackOff), sync 3 starts migrate again. It exits 0: sync 4 starts
seed; seed exits 0: sync 5 starts web, and Initialized turns True.
With a sidecar: init containers [proxy (sidecar, startupProbe), seed], app
[web]. Sync 1 starts proxy; syncs wait while its startupProbe has not
succeeded; then seed starts; seed exits 0 and web starts, proxy running
beside it. proxy crashes: the next sync starts it again (after its backoff),
web untouched.
"""

from __future__ import annotations

from typing import Protocol

from kubelet.backoff import Backoff
from kubelet.kuberuntime_container import next_attempt, policy_restarts, restart_decision
from kubelet.pod_actions import PodActions, soonest
from kubelet.runtime.interface import Container, ContainerState
from kubelet.sidecars import is_sidecar
from protos import core_pb2


class ProbeResults(Protocol):
    """What the runtime manager asks the prober (prober/manager.py implements it)."""

    def failed_probe(self, pod: core_pb2.Pod, container: Container) -> str:
        """ "liveness" or "startup" if that probe failed for this container, else ""."""
        ...

    def is_started(self, pod: core_pb2.Pod, container: Container) -> bool:
        """Whether its startupProbe has succeeded (True without one)."""
        ...


def _newest(containers: list[Container], name: str, sandbox_id: str) -> Container | None:
    if not sandbox_id:
        return None
    mine = [c for c in containers if c.name == name and c.sandbox_id == sandbox_id]
    return max(mine, key=lambda c: (c.attempt, c.created_at), default=None)


def pod_finished(pod: core_pb2.Pod, sandbox_id: str, containers: list[Container]) -> bool:
    """Every app container has exited in this sandbox and the restartPolicy restarts none."""
    policy = pod.spec.restart_policy or "Always"
    if policy == "Always" or not sandbox_id:
        return False
    for spec in pod.spec.containers:
        newest = _newest(containers, spec.name, sandbox_id)
        if newest is None or newest.state != ContainerState.EXITED:
            return False
        if policy_restarts(policy, newest.exit_code):
            return False
    return True


class _InitSync:
    """One computation of init container actions (see the module docstring)."""

    def __init__(
        self,
        pod: core_pb2.Pod,
        containers: list[Container],
        actions: PodActions,
        backoff: Backoff,
        probes: ProbeResults | None,
    ) -> None:
        self.pod = pod
        self.containers = containers
        self.actions = actions
        self.backoff = backoff
        self.probes = probes

    def start(self, spec: core_pb2.Container) -> None:
        seen = [c for c in self.containers if c.name == spec.name]
        self.actions.start.append(spec)
        self.actions.attempts[spec.name] = next_attempt(
            spec.name, seen, self.pod.status.init_container_statuses
        )

    def restart(self, spec: core_pb2.Container, exited: Container, always: bool) -> None:
        """Start an exited init container again once its CrashLoopBackOff allows."""
        decision = restart_decision(self.pod, exited, self.backoff, always=always)
        if decision.waiting is not None:
            self.actions.waiting[spec.name] = decision.waiting
        self.actions.retry_after = soonest(self.actions.retry_after, decision.retry_after)
        if decision.restart:
            self.start(spec)

    def sidecar_up(self, spec: core_pb2.Container, newest: Container | None) -> bool:
        """Keep a sidecar running; True if it runs and has started."""
        if newest is None or newest.state in (ContainerState.CREATED, ContainerState.UNKNOWN):
            self.start(spec)
            return False
        if newest.state == ContainerState.EXITED:
            self.restart(spec, newest, always=True)
            return False
        failed = self.probes.failed_probe(self.pod, newest) if self.probes else ""
        if failed:
            message = f"Init container {spec.name} failed {failed} probe"
            self.actions.kill[newest.id] = (newest, message)
            return False
        return self.probes is None or self.probes.is_started(self.pod, newest)

    def frontier(self, spec: core_pb2.Container, newest: Container) -> bool:
        """The last init container that has run: True once it is done (succeeded, started)."""
        if is_sidecar(spec):
            return self.sidecar_up(spec, newest)
        if newest.state == ContainerState.CREATED:
            self.start(spec)  # created but never started (a crash between the two calls)
            return False
        if newest.state == ContainerState.RUNNING:
            return False
        if newest.exit_code == 0:
            return True
        if (self.pod.spec.restart_policy or "Always") != "Never":
            self.restart(spec, newest, always=False)
        return False  # under Never the pod is Failed: init_phase says so, and nothing starts


def init_actions(
    pod: core_pb2.Pod,
    sandbox_id: str,
    containers: list[Container],
    actions: PodActions,
    backoff: Backoff,
    probes: ProbeResults | None = None,
) -> bool:
    """Fill `actions` for the init containers; True once the pod is initialized in this sandbox.

    `sandbox_id` is the sandbox the pod keeps ("" when a new one is made).
    """
    specs = list(pod.spec.init_containers)
    if not specs:
        return True
    sync = _InitSync(pod, containers, actions, backoff, probes)
    newest = [_newest(containers, spec.name, sandbox_id) for spec in specs]
    apps = {spec.name for spec in pod.spec.containers}
    # Initialized before (its exited init containers may have been removed since).
    initialized = bool(sandbox_id) and any(
        c.name in apps and c.sandbox_id == sandbox_id for c in containers
    )
    if initialized and pod_finished(pod, sandbox_id, containers):
        for spec, current in zip(specs, newest, strict=True):
            if is_sidecar(spec) and current is not None and current.state == ContainerState.RUNNING:
                actions.kill[current.id] = (current, "")
        return True
    last = (
        len(specs)
        if initialized
        else max((i for i, c in enumerate(newest) if c is not None), default=-1)
    )
    for i, spec in enumerate(specs[: max(last, 0)]):  # done before: only sidecars need care
        if is_sidecar(spec):
            sync.sidecar_up(spec, newest[i])
    if initialized:
        return True
    if last == -1:
        sync.start(specs[0])  # a new sandbox: the first init container
        return False
    current = newest[last]
    assert current is not None
    if not sync.frontier(specs[last], current):
        return False
    if last + 1 < len(specs):
        sync.start(specs[last + 1])
        return False
    return True
