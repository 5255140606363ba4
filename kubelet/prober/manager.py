"""The probe manager: every pod's probe workers and what their results drive (prober_manager.go).

After each sync of a pod the kubelet calls `update_pod(pod, containers,
pod_ip)`: a worker is started for every probe the spec declares (once per
pod, container and kind; the app containers' and the sidecars', an init
container with restartPolicy Always) and told which container instance runs now. When
the pod goes, `remove_pod(uid)` stops its workers.

The results are read back in two places:

* the status step asks `is_ready(pod, container)` and `is_started(pod,
  container)` for each running container: the readiness verdict becomes the
  container's `ready` and, over all containers, the Ready and ContainersReady
  conditions (so the endpoints controller stops sending traffic to a pod that
  failed its readiness probe); the startup verdict becomes `started`;
* the runtime manager asks `failed_probe(pod, container)`: "liveness" or
  "startup" when that probe has failed for this container instance, and
  kills the container (Killing: "Container web failed liveness probe, will be
  restarted"); restartPolicy and backoff decide the restart.

Every failed attempt is an event (Warning Unhealthy, "Liveness probe failed:
HTTP probe failed with statuscode: 500"), aggregated by the recorder. Every
change of a result calls `on_change(pod uid)`, which wakes the pod's worker,
so a readiness flip reaches the API within one sync, not one resync period.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal

from apimachinery.events import EventRecorder
from kubelet.prober.prober import ProbeOutcome, ProbeTarget, Result, run_probe
from kubelet.prober.worker import INITIAL_RESULT, ProbeKind, ProbeWorker
from kubelet.runtime.interface import Container, ContainerRuntime, ContainerState
from kubelet.sidecars import is_sidecar
from protos import core_pb2

log = logging.getLogger(__name__)

ProbeField = Literal["startup_probe", "liveness_probe", "readiness_probe"]

_PROBE_FIELDS: tuple[tuple[ProbeKind, ProbeField], ...] = (
    (ProbeKind.STARTUP, "startup_probe"),
    (ProbeKind.LIVENESS, "liveness_probe"),
    (ProbeKind.READINESS, "readiness_probe"),
)


class ProberManager:
    """Every pod's probe workers, and the verdicts the status and the restarts read."""

    def __init__(
        self,
        runtime: ContainerRuntime,
        recorder: EventRecorder | None = None,
        on_change: Callable[[str], None] | None = None,
        *,
        time_unit: float = 1.0,
    ) -> None:
        self.runtime = runtime
        self.recorder = recorder
        self.on_change = on_change or (lambda uid: None)
        self.time_unit = time_unit
        self.workers: dict[tuple[str, str, ProbeKind], ProbeWorker] = {}

    # ---- inputs ------------------------------------------------------------------------

    def update_pod(self, pod: core_pb2.Pod, containers: list[Container], pod_ip: str) -> None:
        uid = pod.metadata.uid
        newest: dict[str, Container] = {}
        for c in containers:
            old = newest.get(c.name)
            if old is None or (c.attempt, c.created_at) > (old.attempt, old.created_at):
                newest[c.name] = c
        sidecars = [spec for spec in pod.spec.init_containers if is_sidecar(spec)]
        for spec in [*sidecars, *pod.spec.containers]:  # sidecars are probed as app containers
            current = newest.get(spec.name)
            running = current is not None and current.state == ContainerState.RUNNING
            for kind, field_name in _PROBE_FIELDS:
                if not spec.HasField(field_name):
                    continue
                key = (uid, spec.name, kind)
                worker = self.workers.get(key)
                if worker is None:
                    worker = ProbeWorker(
                        kind,
                        pod,
                        spec,
                        getattr(spec, field_name),
                        run_probe=self._probe,
                        may_probe=self._may_probe,
                        on_result=self._on_result,
                        on_change=self._on_change,
                        time_unit=self.time_unit,
                    )
                    self.workers[key] = worker
                    worker.start()
                worker.pod = pod
                if running and current is not None:
                    worker.set_container(current.id, current.started_at, pod_ip)
                elif current is None or current.id != worker.container_id:
                    worker.set_container("", 0.0, pod_ip)

    async def remove_pod(self, uid: str) -> None:
        for key in [k for k in self.workers if k[0] == uid]:
            await self.workers.pop(key).stop()

    async def stop(self) -> None:
        workers, self.workers = list(self.workers.values()), {}
        for worker in workers:
            await worker.stop()

    # ---- verdicts ----------------------------------------------------------------------

    def _result(self, pod: core_pb2.Pod, container: Container, kind: ProbeKind) -> Result | None:
        """The worker's result for this container instance; None without such a probe."""
        worker = self.workers.get((pod.metadata.uid, container.name, kind))
        if worker is None:
            return None
        if worker.container_id != container.id:
            return INITIAL_RESULT[kind]
        return worker.result

    def is_started(self, pod: core_pb2.Pod, container: Container) -> bool:
        result = self._result(pod, container, ProbeKind.STARTUP)
        return result is None or result == Result.SUCCESS

    def is_ready(self, pod: core_pb2.Pod, container: Container) -> bool:
        if not self.is_started(pod, container):
            return False
        result = self._result(pod, container, ProbeKind.READINESS)
        return result is None or result == Result.SUCCESS

    def failed_probe(self, pod: core_pb2.Pod, container: Container) -> str:
        if self._result(pod, container, ProbeKind.STARTUP) == Result.FAILURE:
            return "startup"
        if self._result(pod, container, ProbeKind.LIVENESS) == Result.FAILURE:
            return "liveness"
        return ""

    # ---- worker callbacks --------------------------------------------------------------

    async def _probe(self, probe: core_pb2.Probe, target: ProbeTarget) -> ProbeOutcome:
        return await run_probe(probe, target, self.runtime)

    def _may_probe(self, worker: ProbeWorker) -> bool:
        if worker.kind == ProbeKind.STARTUP:
            return True
        startup = self.workers.get((worker.key[0], worker.key[1], ProbeKind.STARTUP))
        if startup is None:
            return True
        return startup.container_id == worker.container_id and startup.result == Result.SUCCESS

    def _on_result(self, worker: ProbeWorker, outcome: ProbeOutcome) -> None:
        if outcome.result == Result.FAILURE and self.recorder is not None:
            self.recorder.event(
                worker.pod,
                "Warning",
                "Unhealthy",
                f"{worker.kind.value} probe failed: {outcome.output}",
            )

    def _on_change(self, worker: ProbeWorker) -> None:
        self.on_change(worker.key[0])
