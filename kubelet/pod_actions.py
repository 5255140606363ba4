"""PodActions: what one sync of a pod must do to the runtime (kuberuntime_manager.go podActions).

Kubernetes computes, on every sync, a `podActions` value from the pod spec
and what the runtime reports, and only then acts on it: that split keeps
the decision (a pure function of spec + runtime state + backoff) apart from
the side effects (RunPodSandbox, CreateContainer, StopContainer), so the
decision can be read and tested on its own.

Two computations fill the same PodActions, as Kubernetes' computePodActions
and computeInitContainerActions fill the same podActions:

    kuberuntime_manager.compute_pod_actions   the sandbox to use or make, the
                                              app containers to (re)start or kill
    init_containers.init_actions              the next init container to start,
                                              or its CrashLoopBackOff wait

In Go both live in one package; here the value has a module of its own so
that each computation imports it and neither imports the other.

Worked example: a pod with app container `web` whose READY sandbox `sb2`
holds a `web` that exited 1 two seconds ago, restartPolicy Always, backoff
at 10 s: compute_pod_actions gives

    PodActions(sandbox=sb2, create_sandbox=False, attempt=3,
               kill_sandboxes=[<older sandboxes>], start=[],
               waiting={"web": Waiting("CrashLoopBackOff", "back-off 10s ...")},
               retry_after=8.0)

so sync_pod starts nothing, the status shows CrashLoopBackOff, and the pod
worker syncs again in 8 s, when `start` will hold `web` with its next attempt.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kubelet.runtime.interface import Container, PodSandbox
from kubelet.status import Waiting
from protos import core_pb2


@dataclass
class PodActions:
    """What sync_pod must do (computePodActions' podActions)."""

    sandbox: PodSandbox | None  # the READY sandbox to use, if any
    create_sandbox: bool
    attempt: int
    kill_sandboxes: list[str] = field(default_factory=list)
    start: list[core_pb2.Container] = field(default_factory=list)  # container specs, in order
    attempts: dict[str, int] = field(default_factory=dict)  # container name -> next attempt
    # Running containers to kill (a failed liveness/startup probe): id -> (container, message).
    kill: dict[str, tuple[Container, str]] = field(default_factory=dict)
    waiting: dict[str, Waiting] = field(default_factory=dict)  # CrashLoopBackOff
    retry_after: float | None = None  # the soonest backoff that ends


def soonest(a: float | None, b: float | None) -> float | None:
    """The earlier of two optional delays (None: no delay asked for)."""
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)
