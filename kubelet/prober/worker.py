"""One probe worker: a loop per (pod, container, probe kind) (Kubernetes' prober/worker.go).

A worker lives as long as its pod, across restarts of its container. The
manager tells it which container instance to probe (`set_container`), and a
new instance resets it: counters to zero, the result to the kind's initial
value, exactly as a fresh container in Kubernetes starts:

    kind       initial result   on failureThreshold failures    on successThreshold successes
    liveness   success          failure -> container killed      success
    readiness  failure          failure -> Ready=False           success -> Ready=True
    startup    unknown          failure -> container killed      success -> started; liveness
                                                                 and readiness begin

Timing: every periodSeconds, the worker probes if its container runs, has
run for initialDelaySeconds, and (for liveness and readiness) has passed
its startup probe. Each attempt is bounded by timeoutSeconds. A result
changes only after `threshold` consecutive attempts agree; then the manager
is told (which wakes the pod's worker). After a liveness or startup
failure the worker holds until the container is replaced, so a container
being killed is not probed again.

All durations are multiplied by `time_unit` (1.0 in production), which is
how tests run a `periodSeconds: 1` probe every 50 ms.

initialDelaySeconds is a duration, so it is measured on the monotonic clock
(apimachinery/clock.py): the container's startedAt, a wall-clock stamp from
the runtime, is turned into a monotonic reading once, when the worker is
given the container, and a later step of the wall clock (+5 minutes) cannot
make a 300 s initial delay end at once, nor -5 minutes double it.

Worked example, readiness `periodSeconds: 10, failureThreshold: 3,
successThreshold: 1` on a container started at t=0: t=0 probe ok ->
Ready=True; t=10, 20 fail (1, 2: still ready); t=30 fail (3) -> Ready=False;
t=40 ok -> Ready=True.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Awaitable, Callable

from apimachinery.clock import Clock
from kubelet import podtrace
from kubelet.prober.prober import ProbeOutcome, ProbeTarget, Result
from protos import core_pb2

log = logging.getLogger(__name__)


class ProbeKind(enum.Enum):
    """Liveness, readiness or startup: the value is the word the Unhealthy event uses."""

    LIVENESS = "Liveness"
    READINESS = "Readiness"
    STARTUP = "Startup"


INITIAL_RESULT = {
    ProbeKind.LIVENESS: Result.SUCCESS,
    ProbeKind.READINESS: Result.FAILURE,
    ProbeKind.STARTUP: Result.UNKNOWN,
}

ProbeFn = Callable[[core_pb2.Probe, ProbeTarget], Awaitable[ProbeOutcome]]


class ProbeWorker:
    """Probes one container of one pod with one probe, on its period, across restarts."""

    def __init__(
        self,
        kind: ProbeKind,
        pod: core_pb2.Pod,
        spec: core_pb2.Container,
        probe: core_pb2.Probe,
        *,
        run_probe: ProbeFn,
        may_probe: Callable[[ProbeWorker], bool],
        on_result: Callable[[ProbeWorker, ProbeOutcome], None],
        on_change: Callable[[ProbeWorker], None],
        time_unit: float = 1.0,
        clock: Clock | None = None,
    ) -> None:
        self.kind = kind
        self.pod = pod
        self.spec = spec
        self.probe = probe
        self._run_probe = run_probe
        self._may_probe = may_probe
        self._on_result = on_result
        self._on_change = on_change
        self.time_unit = time_unit
        self.clock = clock if clock is not None else Clock()
        self.container_id = ""
        self.started_at = 0.0  # wall clock, as the runtime reports it
        self._started_mono = 0.0  # the same instant on the monotonic clock
        self.pod_ip = ""
        self.result = INITIAL_RESULT[kind]
        self.last_outcome: ProbeOutcome | None = None
        self._last_raw: Result | None = None
        self._run = 0
        self.on_hold = False
        self.probes = 0
        self._stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    @property
    def key(self) -> tuple[str, str, ProbeKind]:
        return (self.pod.metadata.uid, self.spec.name, self.kind)

    def set_container(self, container_id: str, started_at: float, pod_ip: str) -> None:
        """The container instance to probe ("" when none runs)."""
        self.pod_ip = pod_ip
        if container_id == self.container_id:
            return
        self.container_id = container_id
        self.started_at = started_at
        self._started_mono = self.clock.wall_to_monotonic(started_at)
        self.result = INITIAL_RESULT[self.kind]
        self._last_raw = None
        self._run = 0
        self.on_hold = False

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(
            self.run(), name=f"probe {self.kind.value} {self.spec.name}"
        )

    async def stop(self) -> None:
        self._stop.set()
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task

    async def run(self) -> None:
        period = max(1, int(self.probe.period_seconds or 10)) * self.time_unit
        while not self._stop.is_set():
            try:
                await self.probe_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug in a probe must not end the worker
                log.warning(
                    "probe failed unexpectedly", extra={"kind": self.kind.value, "error": repr(exc)}
                )
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), period)

    async def probe_once(self) -> bool:
        """One tick of the loop; True if a probe ran."""
        if not self.container_id or self.on_hold:
            return False
        if self.kind == ProbeKind.STARTUP and self.result == Result.SUCCESS:
            return False  # a startup probe stops once it has succeeded
        if not self._may_probe(self):
            return False
        delay = float(self.probe.initial_delay_seconds) * self.time_unit
        if self.clock.monotonic() - self._started_mono < delay:
            return False
        probed = self.container_id
        started_ns = time.time_ns()
        outcome = await self._run_probe(self.probe, ProbeTarget(self.pod_ip, probed, self.spec))
        self.probes += 1
        if probed != self.container_id:
            return True  # replaced meanwhile: this answer is about the old one
        self.last_outcome = outcome
        if outcome.result == Result.UNKNOWN:
            return True  # keep the last result (Kubernetes does the same)
        self._on_result(self, outcome)
        if outcome.result == self._last_raw:
            self._run += 1
        else:
            self._last_raw = outcome.result
            self._run = 1
        if outcome.result == Result.SUCCESS:
            threshold = int(self.probe.success_threshold or 1)
        else:
            threshold = int(self.probe.failure_threshold or 3)
        if self._run >= threshold and self.result != outcome.result:
            self.result = outcome.result
            log.info(
                "probe result changed",
                extra={
                    "kind": self.kind.value,
                    "container": self.spec.name,
                    "id": self.container_id,
                    "result": self.result.value,
                },
            )
            if self.kind != ProbeKind.READINESS and self.result == Result.FAILURE:
                self.on_hold = True
            podtrace.probe_changed(  # the cause of the status write that follows
                self.pod,
                self.kind.value,
                self.spec.name,
                self.result.value,
                outcome.output,
                started_ns,
            )
            self._on_change(self)
        return True
