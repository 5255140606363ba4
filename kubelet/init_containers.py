"""Init containers: each runs to success, one at a time and in order, before any app container.

Kubernetes' rules (kuberuntime_manager.go computeInitContainerActions and
kubelet_pods.go getPhase), as the kubelet applies them on every sync:

    the pod's sandbox is new        start the first init container (a pod whose
                                    sandbox is re-created runs them all again)
    init container N has not run    start it; nothing after it starts
    N is running                    wait; its exit is a runtime event, which
                                    syncs the pod again
    N exited 0                      look at N+1; after the last, the app
                                    containers start as in a pod without any
                                    (and once one has, the pod stays initialized
                                    in this sandbox, even if the exited init
                                    containers are removed)
    N exited non-zero               restartPolicy Never: the pod is Failed (and
                                    then stopped like any finished pod); else N
                                    is started again after its CrashLoopBackOff
                                    (an init container is never restarted for
                                    exiting 0, whatever the restartPolicy)

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
"""

from __future__ import annotations

from kubelet.backoff import Backoff
from kubelet.kuberuntime_container import next_attempt, restart_decision
from kubelet.pod_actions import PodActions
from kubelet.runtime.interface import Container, ContainerState
from protos import core_pb2


def _newest(containers: list[Container], name: str, sandbox_id: str) -> Container | None:
    mine = [c for c in containers if c.name == name and c.sandbox_id == sandbox_id]
    return max(mine, key=lambda c: (c.attempt, c.created_at), default=None)


def init_actions(
    pod: core_pb2.Pod,
    sandbox_id: str,
    containers: list[Container],
    actions: PodActions,
    backoff: Backoff,
) -> bool:
    """Fill `actions` for the init containers; True once all have succeeded in this sandbox.

    `sandbox_id` is the sandbox the pod keeps ("" when a new one is made).
    """
    apps = {spec.name for spec in pod.spec.containers}
    if any(c.name in apps and c.sandbox_id == sandbox_id for c in containers if sandbox_id):
        return True  # initialized before (its exited init containers may have been removed)
    statuses = pod.status.init_container_statuses
    for spec in pod.spec.init_containers:
        newest = _newest(containers, spec.name, sandbox_id) if sandbox_id else None
        if newest is None or newest.state == ContainerState.CREATED:
            seen = [c for c in containers if c.name == spec.name]
            actions.start.append(spec)
            actions.attempts[spec.name] = next_attempt(spec.name, seen, statuses)
            return False
        if newest.state == ContainerState.RUNNING:
            return False
        if newest.exit_code == 0:
            continue
        if (pod.spec.restart_policy or "Always") == "Never":
            return False  # the pod is Failed: init_phase says so, and nothing starts
        decision = restart_decision(pod, newest, backoff)
        if decision.waiting is not None:
            actions.waiting[spec.name] = decision.waiting
        if decision.retry_after is not None:
            later = [t for t in (actions.retry_after, decision.retry_after) if t is not None]
            actions.retry_after = min(later)
        if decision.restart:
            actions.start.append(spec)
            seen = [c for c in containers if c.name == spec.name]
            actions.attempts[spec.name] = next_attempt(spec.name, seen, statuses)
        return False
    return True
