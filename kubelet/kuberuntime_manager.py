"""Driving the container runtime for one pod (Kubernetes' kuberuntime_manager.go).

`sync_pod` makes the runtime match the pod spec in Kubernetes' order:

1. compute_pod_actions: look at the runtime's sandboxes and containers for
   this pod uid, and decide what to do (a PodActions, pod_actions.py). A
   READY sandbox is reused -- after a kubelet restart that is how the pod
   is adopted instead of started again. No READY sandbox: create
   one (attempt = the highest attempt seen + 1), and kill the dead ones.
   Init containers come first, one at a time, each to success -- a sidecar
   (restartPolicy Always) only until it has started, then it keeps running
   and is restarted whenever it exits (init_containers.py); until the last
   is done nothing else starts.
   Then each spec container without a container in the current sandbox is to be
   started. A container that exited is started again if restartPolicy says
   so and its CrashLoopBackOff has run out (kuberuntime_container.
   restart_decision); meanwhile it shows `waiting: CrashLoopBackOff` and the
   pod is synced again when the backoff ends (SyncResult.retry_after). A
   running container whose liveness or startup probe failed is killed
   (event Killing: "Container web failed liveness probe, will be
   restarted") and the computation runs again, now seeing it exited.
   The restart count is the container's attempt, kept by the runtime, so it
   survives a kubelet restart.
2. when a container is to be created: the pod's inputs (volume_manager.py:
   volumes on the host, the ConfigMaps/Secrets its env names). Unusable
   ones (an unknown volume type, a missing configMap) stop the sync: event
   FailedMount, every container waiting with CreateContainerConfigError;
3. run_pod_sandbox (the runtime allocates the IP);
4. per container, in spec order: ensure the image (image_manager.py: pull
   policy, ImagePullBackOff), ask the runtime who the image runs as when
   runAsNonRoot needs it, take the container's mounts from the volume
   manager (subPaths checked and pinned), create (cri_convert.
   container_config: runAsNonRoot verified, env valueFrom with the sandbox
   IP, mounts, cgroup limits, security context), start. A failure of one
   container (ErrImagePull, CreateContainerConfigError, RunContainerError)
   is remembered as that container's waiting reason and the others
   continue; the pod worker retries the pod later with backoff.
   Each container gets its termination-message file mounted
   (termination.py) and, once started, its postStart hook runs
   (lifecycle.py); a failed hook kills it (FailedPostStartHook, waiting
   reason PostStartHookError);
5. garbage: dead containers (exited, or created and never started) beyond the
   newest one per name (kept for `logs --previous` and lastState) are removed,
   as by Kubernetes' container GC; the exited ones left get their termination messages.

`kill_pod` stops the pod: every running container gracefully (ContainerKiller:
preStop hook, then stop_container(timeout=grace - hook time)), apps in parallel,
sidecars after them, last-declared first (sidecars.py), then stop_pod_sandbox
(the network and the IP go); then the containers and sandboxes are removed --
except a pod that only finished (Succeeded or Failed, not deleted): its exited
containers stay, and with them `logs`, until the pod is deleted, as Kubernetes'
container GC keeps them. Every step is idempotent: a kill cut short is redone.

Events, with Kubernetes' reasons: Pulling, Pulled, Created, Started, Killing, Failed,
BackOff, FailedCreatePodSandBox, SandboxChanged, FailedPreStopHook, FailedPostStartHook.
Spans of a traced pod (RunPodSandbox, StartContainer) are podtrace.py's."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from apimachinery.events import EventRecorder
from kubelet import envvars, errors, faultpoints, init_containers, kubelet_pods, lifecycle, podtrace
from kubelet.backoff import (
    CRASH_BACKOFF_INITIAL,
    CRASH_BACKOFF_MAX,
    IMAGE_BACKOFF_INITIAL,
    IMAGE_BACKOFF_MAX,
    Backoff,
)
from kubelet.image_manager import ImageManager
from kubelet.init_containers import ProbeResults
from kubelet.kuberuntime_container import (
    ContainerKiller,
    container_spec,
    next_attempt,
    pod_description,
    restart_decision,
)
from kubelet.network_dns import HOST_RESOLV_CONF, pod_dns, read_resolv_conf
from kubelet.pod_actions import PodActions, soonest
from kubelet.runtime import cri_convert, security_context
from kubelet.runtime.interface import (
    POD_NAME_LABEL,
    POD_NAMESPACE_LABEL,
    POD_UID_LABEL,
    Container,
    ContainerRuntime,
    ContainerState,
    DNSConfig,
    PodSandbox,
    PodSandboxConfig,
    PortMapping,
    SandboxState,
)
from kubelet.sidecars import TerminationOrdering
from kubelet.status import Waiting, latest_containers
from kubelet.termination import TerminationMessages
from kubelet.volume_manager import PodInputs, VolumeManager
from protos import core_pb2

log = logging.getLogger(__name__)

# The probes whose failure kills a container; their terminationGracePeriodSeconds, if set, wins.
_KILLING_PROBES: tuple[Literal["liveness_probe", "startup_probe"], ...] = (
    "liveness_probe",
    "startup_probe",
)


def pod_labels(pod: core_pb2.Pod) -> dict[str, str]:
    return {
        POD_UID_LABEL: pod.metadata.uid,
        POD_NAME_LABEL: pod.metadata.name,
        POD_NAMESPACE_LABEL: pod.metadata.namespace,
    }


def sandbox_config(
    pod: core_pb2.Pod,
    attempt: int = 0,
    dns: DNSConfig | None = None,
    seccomp_root: str = security_context.DEFAULT_SECCOMP_ROOT,
) -> PodSandboxConfig:
    """CRI PodSandboxConfig from the pod (generatePodSandboxConfig)."""
    ports = tuple(
        PortMapping(p.container_port, p.protocol or "TCP", p.host_port, p.host_ip)
        for c in pod.spec.containers
        for p in c.ports
    )
    return PodSandboxConfig(
        name=pod.metadata.name,
        namespace=pod.metadata.namespace,
        uid=pod.metadata.uid,
        attempt=attempt,
        hostname=pod.spec.hostname or pod.metadata.name,
        host_network=pod.spec.host_network,
        port_mappings=ports,
        labels={**dict(pod.metadata.labels), **pod_labels(pod)},
        annotations=dict(pod.metadata.annotations),
        dns=dns,
        host_pid=pod.spec.host_pid,
        host_ipc=pod.spec.host_ipc,
        share_process_namespace=pod.spec.share_process_namespace,
        security=security_context.sandbox_security(pod, seccomp_root),
    )


@dataclass
class SyncResult:
    """What a sync saw and did, for the status that follows."""

    sandbox: PodSandbox | None = None
    containers: list[Container] = field(default_factory=list)
    waiting: dict[str, Waiting] = field(default_factory=dict)
    error: Exception | None = None
    # Sync again after this many seconds (a backoff ends), sooner than the periodic resync.
    retry_after: float | None = None


def _newest(sandboxes: list[PodSandbox]) -> PodSandbox | None:
    ready = [s for s in sandboxes if s.state == SandboxState.READY]
    return max(ready, key=lambda s: (s.attempt, s.created_at), default=None)


class KubeRuntimeManager:
    """Makes the runtime's sandboxes and containers match one pod's spec, and stops pods."""

    def __init__(
        self,
        runtime: ContainerRuntime,
        recorder: EventRecorder | None = None,
        *,
        crash_backoff: Backoff | None = None,
        image_backoff: Backoff | None = None,
        probes: ProbeResults | None = None,
        dead_containers_per_name: int = 1,
        volumes: VolumeManager | None = None,
        host_ip: str = "",
        services: Callable[[str], list[core_pb2.Service]] | None = None,
        cluster_dns: tuple[str, ...] = (),
        cluster_domain: str = "cluster.local",
        seccomp_root: str = security_context.DEFAULT_SECCOMP_ROOT,
        allocatable: Mapping[str, str] | None = None,
        resolv_conf: str = HOST_RESOLV_CONF,
    ) -> None:
        self.runtime = runtime
        self.allocatable = dict(allocatable or {})  # for resourceFieldRefs to unset limits
        self.resolv_conf = resolv_conf  # the node's resolver config, for dnsPolicy Default
        self.seccomp_root = seccomp_root  # where Localhost seccomp profiles live
        # The Services of a namespace, for the containers' service variables (kubelet/envvars.py).
        self.services = services
        self.cluster_dns = cluster_dns
        self.cluster_domain = cluster_domain
        # Without one (unit tests, a bare manager): volumes are checked, nothing is read or written.
        self.volumes = volumes if volumes is not None else VolumeManager(on_disk=False)
        self.host_ip = host_ip
        self.recorder = recorder
        # (`is None`, not `or`: an empty Backoff is falsy, it has a length.)
        if crash_backoff is None:
            crash_backoff = Backoff(CRASH_BACKOFF_INITIAL, CRASH_BACKOFF_MAX)
        if image_backoff is None:
            image_backoff = Backoff(IMAGE_BACKOFF_INITIAL, IMAGE_BACKOFF_MAX)
        self.crash_backoff = crash_backoff
        self.image_backoff = image_backoff
        self.images = ImageManager(runtime, image_backoff, self._event)
        self.probes = probes
        self.killer = ContainerKiller(runtime, recorder)
        self.dead_containers_per_name = dead_containers_per_name
        pod_dir = self.volumes.pod_dir if self.volumes.on_disk else None
        self.messages = TerminationMessages(runtime, pod_dir)

    def _event(self, pod: core_pb2.Pod, type_: str, reason: str, message: str) -> None:
        if self.recorder is not None:
            self.recorder.event(pod, type_, reason, message)

    async def pod_state(self, pod: core_pb2.Pod) -> tuple[list[PodSandbox], list[Container]]:
        """Every sandbox of this pod uid and the containers in them."""
        sandboxes = await self.runtime.list_pod_sandboxes(pod_uid=pod.metadata.uid)
        containers: list[Container] = []
        for sandbox in sandboxes:
            containers.extend(await self.runtime.list_containers(sandbox_id=sandbox.id))
        return sandboxes, containers

    def compute_pod_actions(
        self, pod: core_pb2.Pod, sandboxes: list[PodSandbox], containers: list[Container]
    ) -> PodActions:
        current = _newest(sandboxes)
        attempt = max((s.attempt for s in sandboxes), default=-1) + 1
        actions = PodActions(sandbox=current, create_sandbox=current is None, attempt=attempt)
        actions.kill_sandboxes = [s.id for s in sandboxes if current is None or s.id != current.id]
        sandbox_id = current.id if current is not None else ""
        if not init_containers.init_actions(
            pod, sandbox_id, containers, actions, self.crash_backoff, self.probes
        ):
            return actions  # init containers first, one at a time (init_containers.py)
        for spec in pod.spec.containers:
            seen = [c for c in containers if c.name == spec.name]
            in_current = [c for c in seen if current is not None and c.sandbox_id == current.id]
            newest = max(in_current, key=lambda c: (c.attempt, c.created_at), default=None)
            if newest is None:
                needed = True
            elif newest.state == ContainerState.RUNNING:
                needed = False
                failed = self.probes.failed_probe(pod, newest) if self.probes else ""
                if failed:
                    message = f"Container {spec.name} failed {failed} probe, will be restarted"
                    actions.kill[newest.id] = (newest, message)
            elif newest.state == ContainerState.CREATED:
                needed = True  # created but never started (a crash between the two calls)
            else:
                decision = restart_decision(pod, newest, self.crash_backoff)
                needed = decision.restart
                if decision.waiting is not None:
                    actions.waiting[spec.name] = decision.waiting
                actions.retry_after = soonest(actions.retry_after, decision.retry_after)
            if needed:
                actions.start.append(spec)
                actions.attempts[spec.name] = next_attempt(
                    spec.name, seen, pod.status.container_statuses
                )
        return actions

    async def sync_pod(self, pod: core_pb2.Pod) -> SyncResult:
        sandboxes, containers = await self.pod_state(pod)
        actions = self.compute_pod_actions(pod, sandboxes, containers)
        if actions.kill:
            # Kill first; the next computation restarts them per restartPolicy and backoff.
            await self._kill_for_restart(pod, actions)
            sandboxes, containers = await self.pod_state(pod)
            actions = self.compute_pod_actions(pod, sandboxes, containers)
        result = SyncResult(waiting=dict(actions.waiting), retry_after=actions.retry_after)
        for sandbox_id in actions.kill_sandboxes:
            await self._kill_sandbox(sandbox_id, containers, grace=0)
        sandbox = actions.sandbox
        inputs = PodInputs()
        if actions.start:
            try:
                inputs = await self.volumes.prepare(pod)
                await kubelet_pods.read_env_from(pod, self.volumes.get_object, inputs)
            except errors.ContainerRuntimeError as exc:
                await self._inputs_failed(pod, actions, result, exc)
                return result
        if actions.create_sandbox:
            if sandboxes:
                message = "Pod sandbox changed, it will be killed and re-created."
                self._event(pod, "Normal", "SandboxChanged", message)
            try:
                with podtrace.sandbox(pod, actions.attempt):  # a span, if the pod is traced
                    sandbox = await self.runtime.run_pod_sandbox(
                        self._sandbox_config(pod, actions.attempt, True)
                    )
            except errors.ContainerRuntimeError as exc:
                self._event(
                    pod, "Warning", "FailedCreatePodSandBox", f"Failed to create pod sandbox: {exc}"
                )
                result.error = exc
                return result
            log.info(
                "pod sandbox started",
                extra={"pod": pod.metadata.name, "sandbox": sandbox.id, "ip": sandbox.ip},
            )
            await faultpoints.reached(faultpoints.AFTER_SANDBOX, pod)  # fault tests only
        assert sandbox is not None
        result.sandbox = sandbox
        config = self._sandbox_config(pod, sandbox.attempt)
        for spec in actions.start:
            try:
                await self._start_container(
                    pod, sandbox, config, spec, actions.attempts[spec.name], inputs
                )
            except errors.ImagePullBackOff as exc:
                result.waiting[spec.name] = Waiting(exc.reason, str(exc))
                result.retry_after = soonest(result.retry_after, self.images.retry_after(pod, spec))
            except lifecycle.PostStartHookError as exc:  # its events are out already
                result.waiting[spec.name] = Waiting(exc.reason, str(exc))
                result.error = result.error or exc
            except errors.ContainerRuntimeError as exc:
                result.waiting[spec.name] = Waiting(exc.reason, str(exc))
                result.error = result.error or exc
                # Kubernetes names a config error's cause in the event, other failures' reason.
                detail = str(exc) if isinstance(exc, errors.ContainerConfigError) else exc.reason
                self._event(pod, "Warning", "Failed", f"Error: {detail}")
        for name, waiting in actions.waiting.items():
            if waiting.reason == "CrashLoopBackOff":
                self._event(
                    pod,
                    "Warning",
                    "BackOff",
                    f"Back-off restarting failed container {name} in pod {pod_description(pod)}",
                )
        result.containers = await self.runtime.list_containers(sandbox_id=sandbox.id)
        result.containers = await self._remove_dead(pod, result.containers)
        await self.messages.fill(pod, result.containers)
        return result

    async def _inputs_failed(
        self, pod: core_pb2.Pod, actions: PodActions, result: SyncResult, exc: Exception
    ) -> None:
        """Volumes or referenced objects are unusable: no container can be created."""
        if isinstance(exc, errors.VolumeError):
            self._event(pod, "Warning", "FailedMount", f"MountVolume.SetUp failed: {exc}")
        else:
            self._event(pod, "Warning", "Failed", f"Error: {exc}")
        for spec in actions.start:
            result.waiting[spec.name] = Waiting("CreateContainerConfigError", str(exc))
        result.error = exc
        log.warning("pod inputs not ready", extra={"pod": pod_description(pod), "error": str(exc)})
        if actions.sandbox is not None:
            result.sandbox = actions.sandbox
            result.containers = await self.runtime.list_containers(sandbox_id=actions.sandbox.id)
            await self.messages.fill(pod, result.containers)

    async def _kill_for_restart(self, pod: core_pb2.Pod, actions: PodActions) -> None:
        grace_default = float(pod.spec.termination_grace_period_seconds or 30)
        ip = actions.sandbox.ip if actions.sandbox is not None else ""

        async def kill(container: Container, message: str) -> None:
            spec = container_spec(pod, container.name)
            grace = grace_default
            for probe_name in _KILLING_PROBES:
                if spec is not None and spec.HasField(probe_name):
                    probe: core_pb2.Probe = getattr(spec, probe_name)
                    if probe.HasField("termination_grace_period_seconds"):
                        grace = float(probe.termination_grace_period_seconds)
            await self.killer.kill_container(pod, container, grace, message, ip, ordering)

        ordering = TerminationOrdering(pod, [c for c, _ in actions.kill.values()])
        await asyncio.gather(*(kill(c, m) for c, m in actions.kill.values()))

    async def _remove_dead(self, pod: core_pb2.Pod, containers: list[Container]) -> list[Container]:
        """Keep the newest container of each name and `dead_containers_per_name` exited ones."""
        keep: list[Container] = []
        for history in latest_containers(containers).values():
            newest, older = history[0], history[1:]
            keep.append(newest)
            for i, c in enumerate(older):
                dead = c.state in (ContainerState.EXITED, ContainerState.CREATED)
                if i < self.dead_containers_per_name or not dead:
                    keep.append(c)
                else:
                    await self.runtime.remove_container(c.id)
                    self.messages.forget(pod.metadata.uid, c)
        return keep

    async def _start_container(
        self,
        pod: core_pb2.Pod,
        sandbox: PodSandbox,
        config: PodSandboxConfig,
        spec: core_pb2.Container,
        attempt: int,
        inputs: PodInputs,
    ) -> None:
        await self.images.ensure_image_exists(pod, spec)
        image_user = None
        if security_context.needs_image_user(pod, spec):
            image_user = await self.runtime.image_user(spec.image)
        # The subPath pins last until the runtime has started the container (subpath.py).
        async with self.volumes.container_mounts(pod, spec, inputs) as mounts:
            hosts = await kubelet_pods.etc_hosts(
                self.volumes, pod, spec, sandbox.ip, self.cluster_domain
            )
            container_config = cri_convert.container_config(
                pod,
                spec,
                attempt,
                pod_ip=sandbox.ip or self.host_ip,
                host_ip=self.host_ip,
                mounts=mounts,
                configmaps=inputs.configmap,
                secrets=inputs.secret,
                service_env=self._service_env(pod),
                image_user=image_user,
                seccomp_root=self.seccomp_root,
                extra_mounts=hosts,
                allocatable=self.allocatable,
                warn=lambda reason, message: self._event(pod, "Warning", reason, message),
            )
            container_config = self.messages.prepare(pod, spec, container_config)
            with podtrace.starting(pod, spec, attempt, sandbox.id):  # create + start: one span
                cid = await self.runtime.create_container(sandbox.id, container_config, config)
                self._event(pod, "Normal", "Created", f"Created container {spec.name}")
                await faultpoints.reached(faultpoints.AFTER_CREATE, pod)  # fault tests only
                await self.runtime.start_container(cid)
        self._event(pod, "Normal", "Started", f"Started container {spec.name}")
        await self._post_start(pod, spec, cid, sandbox.ip or self.host_ip)

    async def _post_start(
        self, pod: core_pb2.Pod, spec: core_pb2.Container, cid: str, pod_ip: str
    ) -> None:
        """The postStart hook; if it fails, the container is killed (lifecycle.py)."""
        failure = await lifecycle.post_start(self.runtime, pod, spec, cid, pod_ip)
        if not failure:
            return
        self._event(pod, "Warning", "FailedPostStartHook", failure)
        grace = float(pod.spec.termination_grace_period_seconds or 30)
        container = await self.runtime.container_status(cid)
        await self.killer.kill_container(pod, container, grace, "FailedPostStartHook", pod_ip)
        raise lifecycle.PostStartHookError(failure)

    def _sandbox_config(
        self, pod: core_pb2.Pod, attempt: int, warn: bool = False
    ) -> PodSandboxConfig:
        """The sandbox's config; with `warn`, DNS limits exceeded are an event (at creation)."""
        events = (lambda r, m: self._event(pod, "Warning", r, m)) if warn else None
        host = functools.partial(read_resolv_conf, self.resolv_conf)
        dns = pod_dns(pod, self.cluster_dns, self.cluster_domain, host, events)
        return sandbox_config(pod, attempt, dns, self.seccomp_root)

    def _service_env(self, pod: core_pb2.Pod) -> list[tuple[str, str]]:
        if self.services is None or not envvars.links_enabled(pod):
            return []
        return envvars.service_env(self.services(pod.metadata.namespace))

    async def kill_pod(
        self, pod: core_pb2.Pod | None, sandboxes: list[PodSandbox], grace: int, remove: bool = True
    ) -> None:
        """Stop every container given (in parallel, gracefully: preStop, SIGTERM, SIGKILL
        after `grace`) and the sandboxes, then remove them if `remove` (module docstring)."""
        containers: list[Container] = []
        for sandbox in sandboxes:
            containers.extend(await self.runtime.list_containers(sandbox_id=sandbox.id))
        running = [c for c in containers if c.state == ContainerState.RUNNING]
        ips = {s.id: s.ip for s in sandboxes}
        order = TerminationOrdering(pod, running)
        await asyncio.gather(
            *(
                self.killer.kill_container(
                    pod, c, float(grace), pod_ip=ips.get(c.sandbox_id, ""), ordering=order
                )
                for c in running
            )
        )
        for c in running:
            c.state = ContainerState.EXITED  # our copy: stopped above, not again below
        for sandbox in sandboxes:
            await self._kill_sandbox(sandbox.id, containers, grace, remove)
        if pod is not None:
            self.messages.forget_pod(pod.metadata.uid)
            self.crash_backoff.forget_prefix(f"{pod.metadata.uid}/")
            self.image_backoff.forget_prefix(f"{pod.metadata.uid}/")

    async def _kill_sandbox(
        self, sandbox_id: str, containers: list[Container], grace: int, remove: bool = True
    ) -> None:
        mine = [c for c in containers if c.sandbox_id == sandbox_id]
        running = [c for c in mine if c.state == ContainerState.RUNNING]
        await asyncio.gather(*(self.runtime.stop_container(c.id, grace) for c in running))
        await self.runtime.stop_pod_sandbox(sandbox_id)
        if not remove:
            return
        for c in mine:
            await self.runtime.remove_container(c.id)
        await self.runtime.remove_pod_sandbox(sandbox_id)
