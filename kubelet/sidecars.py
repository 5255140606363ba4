"""Native sidecars: init containers with `restartPolicy: Always` (Kubernetes 1.29+, KEP-753).

A sidecar is declared among the init containers, so it starts in their
order, but it is not run to completion: it keeps running beside the app
containers for the pod's whole life. What changes, module by module:

    init_containers.py   a sidecar counts as done once it has *started* (its
                         startupProbe succeeded, or it runs if it has none),
                         then the next init container starts; an exited
                         sidecar is started again with CrashLoopBackOff,
                         whatever the pod's restartPolicy; a failed startup
                         or liveness probe kills it for a restart
    status.py            it is listed in initContainerStatuses with `started`
                         and `ready`; Initialized turns True once the regular
                         init containers succeeded and the sidecars started;
                         Ready and ContainersReady count the sidecars' readiness
    kuberuntime_manager  once every app container has exited for good (a
                         restartPolicy Never/OnFailure pod that finished), the
                         sidecars are stopped and not restarted, so the pod
                         can end Succeeded or Failed
    (here)               termination order: the sidecars stop *after* the app
                         containers, the last-declared first

Termination order (`TerminationOrdering`, Kubernetes' terminationOrdering).
Every container being stopped gets its preStop hook at once; then an app
container (or a regular init container) is stopped straight away, while a
sidecar first waits for every app container, and every sidecar declared
after it, to have stopped -- and for no longer than the grace period. What
the wait took comes off its own grace period (never below the 2 s minimum).

Worked example: init containers [log-shipper (sidecar), migrate, proxy
(sidecar)], app [web], grace 30 s, web taking 4 s to stop on SIGTERM:

    t=0   preStop hooks of web, proxy and log-shipper start; web gets SIGTERM
    t=4   web exits -> proxy's turn: SIGTERM, grace 30 - 4 = 26 s
    t=5   proxy exits -> log-shipper's turn: SIGTERM, grace 25 s
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from kubelet.runtime.interface import Container
from protos import core_pb2


def is_sidecar(spec: core_pb2.Container) -> bool:
    """A restartable init container (Kubernetes' IsRestartableInitContainer)."""
    return spec.HasField("restart_policy") and spec.restart_policy == "Always"


def sidecar_names(pod: core_pb2.Pod) -> list[str]:
    """The pod's sidecars, in spec order."""
    return [spec.name for spec in pod.spec.init_containers if is_sidecar(spec)]


class TerminationOrdering:
    """Who must have stopped before each container of a pod may be stopped.

    Built from the pod spec and the containers being stopped now; a container
    not being stopped is already gone, so nothing waits for it.
    """

    def __init__(self, pod: core_pb2.Pod | None, stopping: Iterable[Container]) -> None:
        names = {c.name for c in stopping}
        self._stopped: dict[str, asyncio.Event] = {name: asyncio.Event() for name in names}
        self._before: dict[str, list[str]] = {}
        if pod is None:
            return
        apps = [spec.name for spec in pod.spec.containers if spec.name in names]
        later: list[str] = []  # the sidecars declared after the one at hand
        for spec in reversed(pod.spec.init_containers):
            if is_sidecar(spec):
                self._before[spec.name] = apps + [n for n in later if n in names]
                later.append(spec.name)

    async def wait_for_turn(self, container: Container, limit: float) -> float:
        """Wait until those before `container` have stopped (at most `limit` s); seconds waited."""
        started = time.monotonic()
        events = [self._stopped[n] for n in self._before.get(container.name, ())]
        if events:
            waits = [asyncio.ensure_future(e.wait()) for e in events]
            try:
                await asyncio.wait(waits, timeout=max(limit, 0.0))
            finally:
                for w in waits:
                    w.cancel()
        return time.monotonic() - started

    def stopped(self, container: Container) -> None:
        """`container` has stopped (or its stop failed): those waiting for it go on."""
        event = self._stopped.get(container.name)
        if event is not None:
            event.set()
