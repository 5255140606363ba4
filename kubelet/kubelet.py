"""The Kubelet: wires registration, the lease, the pod source, pod workers and status together.

`Kubelet(client, config, runtime).run()` runs until cancelled:

1. ask the runtime for its version, retrying until it answers (a runtime
   daemon may start after the kubelet); start the container log manager
   (logrotation.py: logs past containerLogMaxSize rotated, on runtimes that
   leave it to the kubelet; Docker is given the limits instead); open the
   kubelet server (logs, exec; server.py) so the port it got is the one the
   Node publishes;
2. register the Node (nodestatus.register_node) -- or adopt the existing one;
3. start the Node informer and wait for it: the podCIDR, once the node IPAM
   controller sets it, goes to the runtime (CRI UpdateRuntimeConfig) and
   every pod waiting for a network is woken;
4. start the Lease controller and the node status loop;
5. start the pod source; once it has synced, start the PLEG (pleg.py: a
   relist every second wakes the worker of any pod whose containers
   changed) and run housekeeping: sandboxes in
   the runtime whose pod uid is not bound here any more (deleted while the
   kubelet was down) are stopped and removed, and so are volume directories
   under <root-dir>/pods that no pod or sandbox owns any more (their tmpfs
   unmounted first). Housekeeping then repeats every housekeeping_interval.

Stopping the kubelet (cancelling run) stops its loops, not its pods: a real
runtime keeps the containers running and the next kubelet adopts them by pod
uid (kuberuntime_manager.compute_pod_actions reuses a READY sandbox). The
fake runtime lives in the kubelet process, so a restarted hollow kubelet
process forgets its pods and starts them again (new IPs); within one
process, handing the same FakeRuntime to a new Kubelet exercises adoption.

Syncing one pod (`sync_pod`, called by its pod worker) is a list of steps,
`self.sync_steps`, each `async (PodSyncContext) -> None`, run in order:

    volumes   volume_manager.refresh: configMap, secret, downwardAPI and projected
              volumes already set up are rewritten if their sources changed
    runtime   kuberuntime_manager.sync_pod: sandbox, images, containers,
              restarts (restartPolicy + CrashLoopBackOff), liveness kills
    probes    prober.manager.update_pod: probe workers follow the containers
    status    status.generate_pod_status (readiness from the prober) +
              StatusManager (write if changed)

More steps (admission, say) extend the list, not this code. A step that records an
error in the context still lets the following steps run (so the status
shows ErrImagePull); the error is raised at the end and the pod worker
retries with backoff.

Terminating (`sync_terminating_pod`) stops containers with the grace period
and removes the sandbox (releasing its IP); then `sync_terminated_pod`
deletes the pod object with grace 0 and a uid precondition -- the kubelet
removes the object once it has stopped the pod, which is what makes
Kubernetes' graceful deletion work. When the object is finally gone the pod's
volume directories (<root_dir>/pods/<uid>) and its log directory go too.

Pod inputs: before creating containers the runtime manager asks the
VolumeManager (volume_manager.py) for the pod's volumes and the ConfigMaps
and Secrets its env names, read through this kubelet's client; a hollow node
(the fake runtime) checks them but writes nothing under root_dir.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apimachinery import errors as api_errors
from apimachinery.client import Client, M
from apimachinery.events import EventRecorder
from kubelet import podtrace
from kubelet.backoff import Backoff
from kubelet.config import KubeletConfig
from kubelet.errors import ContainerRuntimeError, VolumeError
from kubelet.kuberuntime_manager import KubeRuntimeManager, SyncResult
from kubelet.lease import NodeLeaseController
from kubelet.logrotation import ContainerLogManager
from kubelet.nodestatus import (
    NodeStatusSetter,
    NodeStatusUpdater,
    machine_capacity,
    register_node,
)
from kubelet.pleg import GenericPLEG, PodLifecycleEvent
from kubelet.pod_workers import PodWorkers, full_name
from kubelet.prober.manager import ProberManager
from kubelet.runtime.interface import Container, ContainerRuntime, RuntimeVersion
from kubelet.server import KubeletServer
from kubelet.sources import NodeSource, PodSource, ServiceSource
from kubelet.status import StatusManager, generate_pod_status
from kubelet.volume_manager import VolumeManager
from protos import core_pb2

log = logging.getLogger(__name__)

_RUNTIME_RETRY_MAX = 5.0


@dataclass
class PodSyncContext:
    """What one sync of one pod has learnt so far; passed along the sync steps."""

    pod: core_pb2.Pod
    result: SyncResult = field(default_factory=SyncResult)
    errors: list[Exception] = field(default_factory=list)


SyncStep = Callable[[PodSyncContext], Awaitable[None]]


class Kubelet:
    """The node agent: registers the Node, runs the pods bound to it, reports their status."""

    def __init__(self, client: Client, config: KubeletConfig, runtime: ContainerRuntime) -> None:
        config.validate()
        if runtime.name != "fake":  # a real node reports the machine it runs on
            config.capacity.update(machine_capacity())
        self.client = client
        self.config = config
        self.runtime = runtime
        self.recorder = EventRecorder(client, "kubelet", host=config.node_name)
        podtrace.configure(client, config.node_name)  # spans of traced pods (podtrace.py)
        self.service_source = ServiceSource(client)
        self.prober = ProberManager(
            runtime, self.recorder, self.wake_pod, time_unit=config.probe_time_unit
        )
        self.runtime_manager = KubeRuntimeManager(
            runtime,
            self.recorder,
            crash_backoff=Backoff(config.crash_backoff_initial, config.crash_backoff_max),
            image_backoff=Backoff(config.image_backoff_initial, config.image_backoff_max),
            probes=self.prober,
            volumes=VolumeManager(
                config.root_dir,
                self._get_object,
                on_disk=runtime.name != "fake",
                allocatable=config.allocatable(),
            ),
            seccomp_root=str(Path(config.root_dir) / "seccomp"),
            allocatable=config.allocatable(),
            host_ip=config.node_ip,
            services=self.service_source.in_namespace,
            cluster_dns=tuple(config.cluster_dns),
            cluster_domain=config.cluster_domain,
        )
        self.pleg = GenericPLEG(
            runtime, self._on_pod_events, relist_period=config.pleg_relist_period
        )
        self.server = KubeletServer(
            self,
            config.kubelet_address,
            config.kubelet_port,
            config.node_name,
            run_dir=os.path.abspath(config.root_dir),
        )
        self.status_manager = StatusManager(client)
        self.pod_workers = PodWorkers(
            self,
            resync_interval=config.sync_frequency,
            default_grace_seconds=config.default_termination_grace_seconds,
        )
        self.status_setter = NodeStatusSetter(config)
        self.node_source = NodeSource(client, config.node_name, self._on_node)
        self.pod_source = PodSource(client, config.node_name, self)
        self.lease = NodeLeaseController(
            client,
            config.node_name,
            lease_duration_seconds=config.lease_duration_seconds,
            renew_interval=config.lease_renew_interval,
            node_uid=lambda: self.node_uid,
        )
        self.node_status = NodeStatusUpdater(
            client,
            config,
            self.status_setter,
            runtime_version=lambda: self._version,
            runtime_status=runtime.status,
            current_node=self.node_source.node,
            on_ready_change=self._on_ready_change,
        )
        self.sync_steps: list[SyncStep] = [
            self._volume_step,
            self._runtime_step,
            self._probe_step,
            self._status_step,
        ]
        self.node_uid = ""
        self.pod_cidr = ""
        self._version = RuntimeVersion(runtime.name, "unknown")
        self._started = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._cidr_lock = asyncio.Lock()

    # ---- lifecycle ---------------------------------------------------------------------

    async def run(self) -> None:
        """Register, then keep the node and its pods in shape until cancelled."""
        context = {"node": self.config.node_name}
        try:
            self._version = await self._wait_for_runtime()
            self._start_log_rotation()
            port = await self.server.start()
            if port:
                self.config.kubelet_port = port  # published in the Node's daemonEndpoints
            node = await register_node(
                self.client,
                self.config,
                self.status_setter,
                self._version,
                await self.runtime.status(),
            )
            self.node_uid = node.metadata.uid
            self.recorder.event(node, "Normal", "Starting", "Starting kubelet.")
            self._spawn(self.node_source.run(), "node informer")
            await self.node_source.informer.wait_for_sync()
            seen = self.node_source.node()
            if seen is not None:
                await self._apply_pod_cidr(seen.spec.pod_cidr)
            self._spawn(self.lease.run(), "lease")
            self._spawn(self.node_status.run(), "node status")
            # Service variables are part of a container's config: know the Services first.
            self._spawn(self.service_source.run(), "service informer")
            await self.service_source.informer.wait_for_sync()
            self._spawn(self.pod_source.run(), "pod source")
            await self.pod_source.informer.wait_for_sync()
            self._spawn(self.pleg.run(), "pleg")
            await self.housekeeping()
            self._started.set()
            log.info("kubelet started", extra={**context, "runtime": str(self._version)})
            while True:
                await asyncio.sleep(self.config.housekeeping_interval)
                try:
                    await self.housekeeping()
                except (ContainerRuntimeError, api_errors.StatusError) as exc:
                    log.warning("housekeeping failed", extra={**context, "error": str(exc)})
        finally:
            await self._shutdown()

    async def wait_started(self, timeout: float | None = None) -> bool:
        """True once registered and the pod source has synced (tests)."""
        try:
            await asyncio.wait_for(self._started.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    async def _shutdown(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        await self.pod_workers.stop()
        await self.prober.stop()
        await self.server.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.recorder.flush(), 1.0)
        await self.recorder.close()

    def _start_log_rotation(self) -> None:
        """Hand containerLogMaxSize/MaxFiles to the runtime (Docker rotates by itself with
        them), and start the container log manager where rotation is the kubelet's."""
        runtime, config = self.runtime, self.config
        runtime.log_max_size = config.container_log_max_bytes()
        runtime.log_max_files = config.container_log_max_files
        self.log_manager = ContainerLogManager(
            runtime,
            runtime.log_max_size,
            runtime.log_max_files,
            interval=config.container_log_monitor_interval,
        )
        if runtime.kubelet_rotates_logs and runtime.log_max_size >= 0:
            self._spawn(self.log_manager.run(), "container log manager")

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=f"kubelet {name}")
        self._tasks.append(task)

    async def _wait_for_runtime(self) -> RuntimeVersion:
        delay = 0.2
        while True:
            try:
                return await self.runtime.version()
            except ContainerRuntimeError as exc:
                log.warning(
                    "container runtime not answering",
                    extra={"node": self.config.node_name, "error": str(exc), "retry_in": delay},
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RUNTIME_RETRY_MAX)

    # ---- the node ----------------------------------------------------------------------

    def _on_node(self, node: core_pb2.Node) -> None:
        if node.spec.pod_cidr and node.spec.pod_cidr != self.pod_cidr:
            self._spawn(self._apply_pod_cidr(node.spec.pod_cidr), "pod cidr")

    async def _apply_pod_cidr(self, cidr: str) -> None:
        if not cidr:
            return
        async with self._cidr_lock:
            if cidr == self.pod_cidr:
                return
            await self.runtime.update_runtime_config(cidr)
            self.pod_cidr = cidr
        log.info("pod CIDR set", extra={"node": self.config.node_name, "podCIDR": cidr})
        for pod in self.pod_source.pods():  # pods waiting for a network can start now
            self.pod_workers.update_pod(pod)

    def _on_ready_change(self, node: core_pb2.Node, status: str) -> None:
        reason = "NodeReady" if status == "True" else "NodeNotReady"
        self.recorder.event(
            node, "Normal", reason, f"Node {node.metadata.name} status is now: {reason}"
        )

    # ---- pod source handler ------------------------------------------------------------

    def update_pod(self, pod: core_pb2.Pod) -> None:
        self.pod_workers.update_pod(pod)

    def remove_pod(self, pod: core_pb2.Pod) -> None:
        self.pod_workers.remove_pod(pod)

    def wake_pod(self, uid: str) -> None:
        """Sync this pod now (a PLEG event, a probe result changed)."""
        self.pod_workers.wake(uid)

    def _on_pod_events(self, uid: str, events: list[PodLifecycleEvent]) -> None:
        self.pod_workers.wake(uid)

    # ---- what the kubelet server asks --------------------------------------------------

    def find_pod(self, namespace: str, name: str) -> core_pb2.Pod | None:
        return self.pod_source.informer.store.get(f"{namespace}/{name}")

    async def pod_containers(self, pod: core_pb2.Pod) -> list[Container]:
        _, containers = await self.runtime_manager.pod_state(pod)
        return containers

    async def _get_object(self, kind: type[M], namespace: str, name: str) -> M:
        """A ConfigMap or Secret the pod refers to, read through the kubelet's client."""
        return await self.client.get(kind, name, namespace)

    # ---- PodSyncer: what the pod workers call -----------------------------------------

    async def sync_pod(self, pod: core_pb2.Pod) -> float | None:
        ctx = PodSyncContext(pod)
        with podtrace.syncing(pod):  # a SyncPod span if this sync acts on a traced pod
            for step in self.sync_steps:
                await step(ctx)
        if ctx.errors:
            raise ctx.errors[0]
        return ctx.result.retry_after

    async def _probe_step(self, ctx: PodSyncContext) -> None:
        sandbox = ctx.result.sandbox
        ip = sandbox.ip if sandbox is not None and sandbox.ip else self.config.node_ip
        self.prober.update_pod(ctx.pod, ctx.result.containers, ip)

    async def _volume_step(self, ctx: PodSyncContext) -> None:
        """A running pod's API-data volumes follow their sources (VolumeManager.refresh).

        A failure leaves the files as they were: an event, never a failed sync.
        """
        try:
            await self.runtime_manager.volumes.refresh(ctx.pod)
        except VolumeError as exc:
            self.recorder.event(
                ctx.pod, "Warning", "FailedMount", f"MountVolume.SetUp failed: {exc}"
            )
        except ContainerRuntimeError as exc:  # an object unreadable: the API server away
            log.warning(
                "volume refresh failed", extra={"pod": full_name(ctx.pod), "error": str(exc)}
            )

    async def _runtime_step(self, ctx: PodSyncContext) -> None:
        ctx.result = await self.runtime_manager.sync_pod(ctx.pod)
        if ctx.result.sandbox is not None:  # a sandbox made by this sync: its CNI ADD's span
            podtrace.network_added(ctx.pod, ctx.result.sandbox.id)
        if ctx.result.error is not None:
            ctx.errors.append(ctx.result.error)

    async def _status_step(self, ctx: PodSyncContext) -> None:
        pod = ctx.pod
        status = generate_pod_status(
            pod,
            self.status_manager.latest_status(pod),
            node_ip=self.config.node_ip,
            sandbox=ctx.result.sandbox,
            containers=ctx.result.containers,
            runtime_name=self.runtime.name,
            waiting=ctx.result.waiting,
            is_ready=lambda c: self.prober.is_ready(pod, c),
            is_started=lambda c: self.prober.is_started(pod, c),
        )
        await self.status_manager.set_pod_status(pod, status)

    async def sync_terminating_pod(self, pod: core_pb2.Pod, grace_seconds: int) -> None:
        sandboxes = await self.runtime.list_pod_sandboxes(pod_uid=pod.metadata.uid)
        log.info(
            "stopping pod",
            extra={"pod": full_name(pod), "grace": grace_seconds, "sandboxes": len(sandboxes)},
        )
        await self.prober.remove_pod(pod.metadata.uid)
        # A pod that finished keeps its exited containers (and logs) until it is deleted.
        finished = pod.status.phase in ("Succeeded", "Failed")
        keep = finished and not pod.metadata.HasField("deletion_timestamp")
        await self.runtime_manager.kill_pod(pod, sandboxes, grace_seconds, remove=not keep)

    async def sync_terminated_pod(self, pod: core_pb2.Pod, removed: bool) -> None:
        meta = pod.metadata
        if removed or meta.HasField("deletion_timestamp"):
            # What a finished pod kept for its logs goes before its object does.
            kept = await self.runtime.list_pod_sandboxes(pod_uid=meta.uid)
            if kept:
                await self.runtime_manager.kill_pod(pod, kept, 0)
        if removed:
            self.status_manager.forget(meta.uid)
            await self.prober.remove_pod(meta.uid)
            # The pod is gone for good: its volume directories and log files go too.
            await self.runtime_manager.volumes.cleanup(meta.uid)
            await self.runtime.remove_pod_logs(meta.uid)
            return
        if not meta.HasField("deletion_timestamp"):
            return  # a finished pod: stopped, its object stays until someone deletes it
        try:
            await self.client.delete(
                core_pb2.Pod,
                meta.name,
                meta.namespace,
                grace_period_seconds=0,
                precondition_uid=meta.uid,
            )
        except (api_errors.NotFound, api_errors.Conflict):
            return  # already gone, or a new pod took the name
        log.info("pod deleted after stopping", extra={"pod": full_name(pod)})

    # ---- housekeeping ------------------------------------------------------------------

    async def housekeeping(self) -> None:
        """Stop sandboxes whose pod is no longer bound here (HandlePodCleanups), and remove
        the volume directories no pod or sandbox owns (cleanupOrphanedPodDirs)."""
        if not self.pod_source.has_synced():
            return
        known = self.pod_source.uids() | self.pod_workers.known_uids()
        orphans: dict[str, core_pb2.Pod] = {}
        sandboxes = await self.runtime.list_pod_sandboxes()
        volumes = self.runtime_manager.volumes
        for uid in volumes.pod_uids_on_disk() - known - {s.pod_uid for s in sandboxes}:
            log.info("removing orphaned pod directory", extra={"uid": uid})
            await volumes.cleanup(uid)
        for sandbox in sandboxes:
            if sandbox.pod_uid and sandbox.pod_uid not in known and sandbox.pod_uid not in orphans:
                ghost = core_pb2.Pod(api_version="v1", kind="Pod")
                ghost.metadata.name = sandbox.name
                ghost.metadata.namespace = sandbox.namespace
                ghost.metadata.uid = sandbox.pod_uid
                orphans[sandbox.pod_uid] = ghost
        for ghost in orphans.values():
            log.info(
                "cleaning up orphaned pod",
                extra={"pod": full_name(ghost), "uid": ghost.metadata.uid},
            )
            self.pod_workers.remove_pod(ghost)
