"""The Pod Lifecycle Event Generator: noticing what changed in the runtime (generic PLEG).

Nothing in CRI tells the kubelet that a container exited. Kubernetes'
generic PLEG therefore *relists*: every second it lists every sandbox and
container, compares the list with the previous one, and turns each
difference into an event for that pod; the pod's worker is woken and syncs
at once, instead of at the next periodic resync (a minute later). Restarts
after a crash, the status showing `Error`, and CrashLoopBackOff all start
here.

The comparison is a pure function, `compute_events(old, new)`, of two
snapshots `{pod uid: {container id: state}}`; sandboxes count as containers
(READY = running, NOTREADY = exited), as in Kubernetes, so a sandbox whose
network went away wakes its pod too. Per container id, with the state
missing from a snapshot read as NON_EXISTENT (Kubernetes' generateEvents):

    old state        new state       events
    ---------------  --------------  ----------------------------------
    same             same            none
    anything         RUNNING         ContainerStarted
    anything         EXITED          ContainerDied
    anything         UNKNOWN         ContainerChanged  (CREATED counts as unknown)
    EXITED           NON_EXISTENT    ContainerRemoved
    RUNNING/UNKNOWN  NON_EXISTENT    ContainerDied, ContainerRemoved

Worked example: a relist at t=1 saw {pod u: {sb1: RUNNING, c1: RUNNING}};
at t=2 c1 has exited and the kubelet already started c2:

    new = {u: {sb1: RUNNING, c1: EXITED, c2: RUNNING}}
    events: (u, ContainerDied, c1), (u, ContainerStarted, c2)

Events are ordered by pod uid, then container id, so the output is
deterministic. The very first relist compares with an empty snapshot, so a
restarted kubelet sees ContainerStarted for everything that runs: its
workers sync each pod once, adopting it (nothing is restarted, see
kuberuntime_manager).

Failure modes: a relist that fails (the runtime is restarting) is logged and
skipped -- the old snapshot stays, so nothing is lost, only delayed.
`healthy()` is False when no relist has succeeded for `unhealthy_after`
seconds (Kubernetes: 3 minutes); the kubelet could report that in the
node's Ready condition.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from kubelet.errors import ContainerRuntimeError
from kubelet.runtime.interface import (
    POD_UID_LABEL,
    ContainerRuntime,
    ContainerState,
    SandboxState,
)

log = logging.getLogger(__name__)

RELIST_PERIOD = 1.0
RELIST_THRESHOLD = 180.0


class PLEGState(enum.Enum):
    """A container's or sandbox's state as the PLEG compares it between relists."""

    RUNNING = "running"
    EXITED = "exited"
    UNKNOWN = "unknown"
    NON_EXISTENT = "non-existent"


class EventType(enum.Enum):
    """What changed for one container between two relists (Kubernetes' names)."""

    CONTAINER_STARTED = "ContainerStarted"
    CONTAINER_DIED = "ContainerDied"
    CONTAINER_REMOVED = "ContainerRemoved"
    CONTAINER_CHANGED = "ContainerChanged"


@dataclass(frozen=True)
class PodLifecycleEvent:
    """One change the PLEG saw: a container of this pod started, died, was removed."""

    pod_uid: str
    type: EventType
    container_id: str


# {pod uid: {container or sandbox id: state}}
Snapshot = Mapping[str, Mapping[str, PLEGState]]


def container_state(state: ContainerState) -> PLEGState:
    if state == ContainerState.RUNNING:
        return PLEGState.RUNNING
    if state == ContainerState.EXITED:
        return PLEGState.EXITED
    return PLEGState.UNKNOWN  # CREATED, UNKNOWN


def sandbox_state(state: SandboxState) -> PLEGState:
    return PLEGState.RUNNING if state == SandboxState.READY else PLEGState.EXITED


def _events_for(uid: str, cid: str, old: PLEGState, new: PLEGState) -> list[PodLifecycleEvent]:
    if old == new:
        return []
    if new == PLEGState.RUNNING:
        return [PodLifecycleEvent(uid, EventType.CONTAINER_STARTED, cid)]
    if new == PLEGState.EXITED:
        return [PodLifecycleEvent(uid, EventType.CONTAINER_DIED, cid)]
    if new == PLEGState.UNKNOWN:
        return [PodLifecycleEvent(uid, EventType.CONTAINER_CHANGED, cid)]
    if old == PLEGState.EXITED:
        return [PodLifecycleEvent(uid, EventType.CONTAINER_REMOVED, cid)]
    return [
        PodLifecycleEvent(uid, EventType.CONTAINER_DIED, cid),
        PodLifecycleEvent(uid, EventType.CONTAINER_REMOVED, cid),
    ]


def compute_events(old: Snapshot, new: Snapshot) -> list[PodLifecycleEvent]:
    """The events that take `old` to `new` (see the module docstring's table)."""
    events: list[PodLifecycleEvent] = []
    for uid in sorted(set(old) | set(new)):
        before = old.get(uid, {})
        after = new.get(uid, {})
        for cid in sorted(set(before) | set(after)):
            events.extend(
                _events_for(
                    uid,
                    cid,
                    before.get(cid, PLEGState.NON_EXISTENT),
                    after.get(cid, PLEGState.NON_EXISTENT),
                )
            )
    return events


async def snapshot(runtime: ContainerRuntime) -> dict[str, dict[str, PLEGState]]:
    """One relist of the runtime, as a Snapshot."""
    out: dict[str, dict[str, PLEGState]] = {}
    sandbox_pod: dict[str, str] = {}
    for sandbox in await runtime.list_pod_sandboxes():
        if not sandbox.pod_uid:
            continue
        sandbox_pod[sandbox.id] = sandbox.pod_uid
        out.setdefault(sandbox.pod_uid, {})[sandbox.id] = sandbox_state(sandbox.state)
    for container in await runtime.list_containers():
        uid = container.labels.get(POD_UID_LABEL) or sandbox_pod.get(container.sandbox_id, "")
        if uid:
            out.setdefault(uid, {})[container.id] = container_state(container.state)
    return out


class GenericPLEG:
    """Relists the runtime every `relist_period` and reports each pod's events."""

    def __init__(
        self,
        runtime: ContainerRuntime,
        on_events: Callable[[str, list[PodLifecycleEvent]], None],
        *,
        relist_period: float = RELIST_PERIOD,
        unhealthy_after: float = RELIST_THRESHOLD,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.runtime = runtime
        self.on_events = on_events
        self.relist_period = relist_period
        self.unhealthy_after = unhealthy_after
        self.clock = clock
        self._last: dict[str, dict[str, PLEGState]] = {}
        self._last_relist = clock()
        self.relists = 0

    async def relist(self) -> list[PodLifecycleEvent]:
        """One relist; hands each pod's events to on_events and returns them all."""
        new = await snapshot(self.runtime)
        events = compute_events(self._last, new)
        self._last = new
        self._last_relist = self.clock()
        self.relists += 1
        by_pod: dict[str, list[PodLifecycleEvent]] = {}
        for event in events:
            by_pod.setdefault(event.pod_uid, []).append(event)
        for uid, pod_events in by_pod.items():
            log.debug(
                "pod lifecycle events",
                extra={"uid": uid, "events": ",".join(e.type.value for e in pod_events)},
            )
            self.on_events(uid, pod_events)
        return events

    def healthy(self) -> bool:
        return self.clock() - self._last_relist <= self.unhealthy_after

    async def run(self) -> None:
        while True:
            try:
                await self.relist()
            except ContainerRuntimeError as exc:
                log.warning("PLEG relist failed", extra={"error": str(exc)})
            await asyncio.sleep(self.relist_period)
