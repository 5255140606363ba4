"""Pod workers: one worker per pod, so each pod's operations run one at a time (pod_workers.go).

Everything the kubelet does to a pod -- start it, refresh its status, stop
it -- goes through that pod's worker, keyed by pod uid. A worker runs at
most one operation at a time and keeps only the *latest* pod object it was
given: ten updates arriving while a sync runs cause one more sync, with the
newest object, not ten. Different pods proceed in parallel.

A pod's life in its worker is one way, as in Kubernetes:

    syncing ──(deletionTimestamp set / terminal phase / gone from the API)──> terminating
    terminating ──(containers and sandbox stopped)──> terminated
    terminated ──(the API object is gone)──> worker removed

Once terminating, a pod is never synced (started) again, whatever update
arrives: that, together with sandboxes being identified by pod uid, is why
a pod never runs twice on a node. A pod re-created under the same
namespace/name (new uid) gets a new worker, which waits to start until the
old one has terminated.

The three operations are the PodSyncer's (kubelet.py implements them):

    sync_pod(pod)                        make what should run, run; write status
    sync_terminating_pod(pod, grace)     stop containers (grace seconds) and the sandbox
    sync_terminated_pod(pod, removed)    clean up; delete the API object if it was being deleted

Failures and resync: an operation that raises is retried after a backoff
(0.5 s doubling to 10 s, Kubernetes' backOffPeriod), and the pod's status
carries the reason meanwhile. A successful sync is repeated every
`resync_interval` (the kubelet's syncFrequency), or sooner when the sync
says so (the end of a CrashLoopBackOff or ImagePullBackOff); `wake(uid)`
runs it at once (the PLEG saw a container change, a probe result flipped).

Worked example, graceful deletion of pod p (uid u, grace 30 s):

    informer: MODIFIED p with deletionTimestamp  -> update_pod(p): state terminating, wake
    worker:   sync_terminating_pod(p, 30)         -> stop_container(timeout=30), stop sandbox
    worker:   sync_terminated_pod(p, removed=False) -> delete p with grace 0, precondition uid u
    informer: DELETED p                            -> remove_pod(p): removed, wake
    worker:   sync_terminated_pod(p, removed=True)  -> forget p; the worker ends
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from dataclasses import dataclass, field
from typing import Protocol

from protos import core_pb2

log = logging.getLogger(__name__)

BACKOFF_INITIAL = 0.5
BACKOFF_MAX = 10.0
# Kubernetes never stops a container with less than this (minimumGracePeriodInSeconds).
MINIMUM_GRACE_SECONDS = 2


class PodSyncer(Protocol):
    """The three operations a pod's worker runs (kubelet.py implements them)."""

    async def sync_pod(self, pod: core_pb2.Pod) -> float | None:
        """Sync; may ask to be called again within that many seconds (a backoff ends)."""
        ...

    async def sync_terminating_pod(self, pod: core_pb2.Pod, grace_seconds: int) -> None: ...

    async def sync_terminated_pod(self, pod: core_pb2.Pod, removed: bool) -> None: ...


class WorkerState(enum.Enum):
    """Where a pod is in its one-way life on this node (see the module docstring)."""

    SYNCING = "syncing"
    TERMINATING = "terminating"
    TERMINATED = "terminated"


def full_name(pod: core_pb2.Pod) -> str:
    return f"{pod.metadata.namespace}/{pod.metadata.name}"


def grace_period(pod: core_pb2.Pod, default: int = 30) -> int:
    """The seconds containers get to stop: the deletion's, else the spec's, else `default`."""
    meta = pod.metadata
    if meta.HasField("deletion_grace_period_seconds"):
        grace = int(meta.deletion_grace_period_seconds)
    elif pod.spec.HasField("termination_grace_period_seconds"):
        grace = int(pod.spec.termination_grace_period_seconds)
    else:
        grace = default
    return max(grace, MINIMUM_GRACE_SECONDS)


def wants_termination(pod: core_pb2.Pod) -> bool:
    return pod.metadata.HasField("deletion_timestamp") or pod.status.phase in (
        "Succeeded",
        "Failed",
    )


@dataclass
class _Worker:
    pod: core_pb2.Pod
    state: WorkerState = WorkerState.SYNCING
    removed: bool = False  # the API object is gone
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    failures: int = 0
    timer: asyncio.TimerHandle | None = None
    task: asyncio.Task[None] | None = None


class PodWorkers:
    """One worker per pod uid, each running its pod's syncs one at a time (podWorkers)."""

    def __init__(
        self,
        syncer: PodSyncer,
        *,
        resync_interval: float = 60.0,
        default_grace_seconds: int = 30,
    ) -> None:
        self.syncer = syncer
        self.resync_interval = resync_interval
        self.default_grace_seconds = default_grace_seconds
        self._workers: dict[str, _Worker] = {}

    # ---- inputs ------------------------------------------------------------------------

    def update_pod(self, pod: core_pb2.Pod) -> None:
        """A new version of a pod bound to this node (added, modified or resynced)."""
        worker = self._worker(pod)
        worker.pod = pod
        if worker.state == WorkerState.SYNCING and wants_termination(pod):
            worker.state = WorkerState.TERMINATING
        self._wake(worker)

    def remove_pod(self, pod: core_pb2.Pod) -> None:
        """The pod is gone from the API server (deleted, or found orphaned)."""
        worker = self._worker(pod)
        worker.removed = True
        if worker.state == WorkerState.SYNCING:
            worker.state = WorkerState.TERMINATING
        self._wake(worker)

    # ---- queries -----------------------------------------------------------------------

    def wake(self, uid: str) -> None:
        """Run the pod's worker now, with the pod it has (a PLEG event, a probe result)."""
        worker = self._workers.get(uid)
        if worker is not None:
            self._wake(worker)

    def known_uids(self) -> set[str]:
        return set(self._workers)

    def state(self, uid: str) -> WorkerState | None:
        worker = self._workers.get(uid)
        return worker.state if worker is not None else None

    def is_terminating(self, uid: str) -> bool:
        return self.state(uid) in (WorkerState.TERMINATING, WorkerState.TERMINATED)

    async def stop(self) -> None:
        """Cancel every worker (kubelet shutdown: the pods themselves keep running)."""
        workers, self._workers = list(self._workers.values()), {}
        for worker in workers:
            if worker.timer is not None:
                worker.timer.cancel()
            if worker.task is not None:
                worker.task.cancel()
        for worker in workers:
            if worker.task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await worker.task

    # ---- the worker loop ---------------------------------------------------------------

    def _worker(self, pod: core_pb2.Pod) -> _Worker:
        uid = pod.metadata.uid
        worker = self._workers.get(uid)
        if worker is None:
            worker = _Worker(pod)
            self._workers[uid] = worker
            worker.task = asyncio.get_running_loop().create_task(self._run(uid, worker))
        return worker

    def _wake(self, worker: _Worker, after: float = 0.0) -> None:
        if worker.timer is not None:
            worker.timer.cancel()
            worker.timer = None
        if after <= 0:
            worker.wake.set()
        else:
            worker.timer = asyncio.get_running_loop().call_later(after, worker.wake.set)

    def _blocked_by_namesake(self, uid: str, pod: core_pb2.Pod) -> bool:
        """Another pod with this namespace/name is still stopping on this node."""
        name = full_name(pod)
        return any(
            other_uid != uid and full_name(w.pod) == name and w.state != WorkerState.SYNCING
            for other_uid, w in self._workers.items()
        )

    async def _run(self, uid: str, worker: _Worker) -> None:
        context = {"pod": full_name(worker.pod), "uid": uid}
        while True:
            await worker.wake.wait()
            worker.wake.clear()
            pod = worker.pod
            try:
                if worker.state == WorkerState.SYNCING:
                    if self._blocked_by_namesake(uid, pod):
                        self._wake(worker, BACKOFF_INITIAL)
                        continue
                    retry_after = await self.syncer.sync_pod(pod)
                    worker.failures = 0
                    if worker.state == WorkerState.SYNCING and not worker.wake.is_set():
                        after = self.resync_interval
                        if retry_after is not None:
                            after = min(after, max(retry_after, 0.01))
                        self._wake(worker, after)
                    continue
                if worker.state == WorkerState.TERMINATING:
                    grace = grace_period(pod, self.default_grace_seconds)
                    await self.syncer.sync_terminating_pod(pod, grace)
                    worker.state = WorkerState.TERMINATED
                removed = worker.removed
                await self.syncer.sync_terminated_pod(pod, removed)
                if worker.removed and not removed:
                    # The object went away while we deleted it: clean up as "removed" too.
                    await self.syncer.sync_terminated_pod(pod, True)
                worker.failures = 0
                if worker.removed:
                    if self._workers.get(uid) is worker:
                        del self._workers[uid]
                    log.info("pod worker finished", extra=context)
                    return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = min(BACKOFF_INITIAL * 2**worker.failures, BACKOFF_MAX)
                worker.failures += 1
                log.warning(
                    "error syncing pod, retrying",
                    extra={
                        **context,
                        "state": worker.state.value,
                        "error": f"{type(exc).__name__}: {exc}",
                        "retry_in": delay,
                    },
                )
                if not worker.wake.is_set():
                    self._wake(worker, delay)
