"""The `containerd` runtime: the runtime interface over CRI gRPC (Kubernetes' remote runtime).

Kubernetes' kubelet reaches containerd through k8s.io/cri-client's
remote_runtime.go and remote_image.go: one gRPC connection to a unix socket,
one CRI call per operation, errors turned into the kubelet's own. This
module is that client, with protos/cri.proto as the wire format:

    tinykube kubelet --runtime containerd \\
        --runtime-endpoint unix:///run/containerd/containerd.sock

Design notes.

* The channel is opened on first use, inside the running event loop (a
  grpc.aio channel belongs to the loop that made it), and every call has a
  deadline: `timeout` for quick calls, longer for a pull or a stop.
* Errors: NOT_FOUND -> NotFoundError (ignored by stop/remove, which must be
  idempotent), a failed PullImage -> ImagePullError (ErrImagePull with
  containerd's message), a failed StartContainer -> ContainerStartError
  (RunContainerError), anything else -> ContainerRuntimeError. An
  unreachable socket is UNAVAILABLE -> ContainerRuntimeError: the pod worker
  retries, and the node's status shows the runtime down.
* Logs: the sandbox's log_directory is `<log_root>/<namespace>_<name>_<uid>`
  and each container logs to `<container name>/<attempt>.log` inside it, the
  layout of Kubernetes' /var/log/pods; the kubelet (this adapter) creates
  the directories, the runtime the files. cri_logs reads them; the kubelet
  rotates them (logrotation.py) with CRI ReopenContainerLog.
* ListContainers carries no exit code or times, yet the PLEG and the pod
  status need them. ContainerStatus is asked for each listed container, but
  only when its state differs from the last status seen: a container's
  timestamps and exit code never change within one state, so a relist of
  20 running containers costs one ListContainers call, not 21 calls.
* Sandbox IPs come from PodSandboxStatus (ListPodSandbox has none); they are
  cached per sandbox id, since a sandbox keeps its IP for its whole life.
* Pod-spec extras (mounts, cgroup limits, ports, the security context)
  arrive in the ContainerConfig and PodSandboxConfig (filled in by
  cri_convert.py); one without them runs with containerd's defaults.
* Streams: `exec_stream` is CRI Exec, its URL spoken to over SPDY/3.1
  (cri_exec.py, spdy.py); port-forward enters the namespace `sandbox_netns`
  reads from PodSandboxStatus's verbose info (netns_dial.py), as containerd's
  own PortForward does.
* The pod's log directory goes with the pod: remove_pod_logs deletes
  `<log_root>/*_<uid>` once the kubelet has removed the pod.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

import grpc
from google.protobuf.message import Message

from kubelet.errors import (
    ContainerRuntimeError,
    ContainerStartError,
    ExecTimeout,
    ImagePullError,
    NotFoundError,
)
from kubelet.runtime import cri_logs
from kubelet.runtime.cri_exec import CRIExecSession
from kubelet.runtime.cri_messages import (
    container_from_cri,
    image_user_from_cri,
    sandbox_from_cri,
    to_cri_container_config,
    to_cri_sandbox_config,
)
from kubelet.runtime.interface import (
    POD_UID_LABEL,
    Container,
    ContainerConfig,
    ContainerRuntime,
    ContainerState,
    ExecResult,
    ImageUser,
    LogLine,
    PodSandbox,
    PodSandboxConfig,
    RuntimeStatus,
    RuntimeVersion,
    SandboxState,
)
from kubelet.runtime.streaming import ExecOptions, ExecSession
from protos import cri_pb2 as cri
from protos import cri_pb2_grpc as cri_grpc

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "unix:///run/containerd/containerd.sock"
DEFAULT_LOG_ROOT = "/var/log/pods"
PULL_TIMEOUT = 300.0
T = TypeVar("T")


def grpc_target(endpoint: str) -> str:
    """`unix:///run/x.sock` or a bare `/run/x.sock` -> the gRPC target `unix:///run/x.sock`."""
    if endpoint.startswith("/"):
        return f"unix://{endpoint}"
    return endpoint


def _error(err: grpc.aio.AioRpcError, what: str) -> ContainerRuntimeError:
    details = err.details() or str(err.code())
    if err.code() == grpc.StatusCode.NOT_FOUND:
        return NotFoundError(f"{what}: {details}")
    return ContainerRuntimeError(f"{what}: {details}")


class CRIRuntime(ContainerRuntime):
    """A ContainerRuntime backed by a CRI endpoint (containerd)."""

    name = "containerd"
    kubelet_rotates_logs = True

    def __init__(
        self,
        endpoint: str = DEFAULT_ENDPOINT,
        *,
        log_root: str = DEFAULT_LOG_ROOT,
        timeout: float = 30.0,
        runtime_handler: str = "",
    ) -> None:
        self.endpoint = endpoint
        self.log_root = log_root
        self.timeout = timeout
        self.runtime_handler = runtime_handler
        self._channel: grpc.aio.Channel | None = None
        self._rt: cri_grpc.RuntimeServiceStub | None = None
        self._img: cri_grpc.ImageServiceStub | None = None
        self._ips: dict[str, str] = {}
        self._statuses: dict[str, Container] = {}

    # ---- plumbing --------------------------------------------------------------------------

    def _stubs(self) -> tuple[cri_grpc.RuntimeServiceStub, cri_grpc.ImageServiceStub]:
        if self._rt is None or self._img is None:
            self._channel = grpc.aio.insecure_channel(grpc_target(self.endpoint))
            self._rt = cri_grpc.RuntimeServiceStub(self._channel)
            self._img = cri_grpc.ImageServiceStub(self._channel)
        return self._rt, self._img

    @property
    def rt(self) -> cri_grpc.RuntimeServiceStub:
        return self._stubs()[0]

    @property
    def img(self) -> cri_grpc.ImageServiceStub:
        return self._stubs()[1]

    async def _call(
        self,
        what: str,
        call: Callable[..., Awaitable[T]],
        request: Message,
        *,
        timeout: float | None = None,
        error: type[ContainerRuntimeError] | None = None,
    ) -> T:
        try:
            return await call(request, timeout=timeout or self.timeout)
        except grpc.aio.AioRpcError as err:
            if error is not None and err.code() != grpc.StatusCode.NOT_FOUND:
                raise error(err.details() or str(err.code())) from None
            raise _error(err, what) from None

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
        self._channel = self._rt = self._img = None

    # ---- runtime ---------------------------------------------------------------------------

    async def version(self) -> RuntimeVersion:
        resp = await self._call("version", self.rt.Version, cri.VersionRequest(version="v1"))
        return RuntimeVersion(resp.runtime_name, resp.runtime_version, resp.runtime_api_version)

    async def status(self) -> RuntimeStatus:
        resp = await self._call("status", self.rt.Status, cri.StatusRequest())
        conditions = {c.type: c for c in resp.status.conditions}
        runtime = conditions.get("RuntimeReady")
        network = conditions.get("NetworkReady")
        failing = [f"{c.type}: {c.reason} {c.message}".strip() for c in conditions.values()]
        return RuntimeStatus(
            runtime_ready=bool(runtime and runtime.status),
            network_ready=bool(network and network.status),
            message="; ".join(
                m for c, m in zip(conditions.values(), failing, strict=True) if not c.status
            ),
        )

    async def update_runtime_config(self, pod_cidr: str) -> None:
        request = cri.UpdateRuntimeConfigRequest(
            runtime_config=cri.RuntimeConfig(network_config=cri.NetworkConfig(pod_cidr=pod_cidr))
        )
        await self._call("update runtime config", self.rt.UpdateRuntimeConfig, request)

    # ---- sandboxes -------------------------------------------------------------------------

    async def run_pod_sandbox(self, config: PodSandboxConfig) -> PodSandbox:
        cri_config = to_cri_sandbox_config(config, self.log_root)
        await asyncio.to_thread(Path(cri_config.log_directory).mkdir, parents=True, exist_ok=True)
        request = cri.RunPodSandboxRequest(config=cri_config, runtime_handler=self.runtime_handler)
        resp = await self._call("run pod sandbox", self.rt.RunPodSandbox, request, timeout=120)
        log.info("sandbox created", extra={"pod": config.name, "sandbox": resp.pod_sandbox_id})
        return await self.pod_sandbox_status(resp.pod_sandbox_id)

    async def stop_pod_sandbox(self, sandbox_id: str) -> None:
        with contextlib.suppress(NotFoundError):
            await self._call(
                "stop pod sandbox",
                self.rt.StopPodSandbox,
                cri.StopPodSandboxRequest(pod_sandbox_id=sandbox_id),
                timeout=120,
            )

    async def remove_pod_sandbox(self, sandbox_id: str) -> None:
        with contextlib.suppress(NotFoundError):
            await self._call(
                "remove pod sandbox",
                self.rt.RemovePodSandbox,
                cri.RemovePodSandboxRequest(pod_sandbox_id=sandbox_id),
                timeout=120,
            )
        self._ips.pop(sandbox_id, None)

    async def remove_pod_logs(self, pod_uid: str) -> None:
        if not pod_uid or "/" in pod_uid:
            return

        def remove() -> None:
            for directory in Path(self.log_root).glob(f"*_{pod_uid}"):
                shutil.rmtree(directory, ignore_errors=True)

        await asyncio.to_thread(remove)

    async def pod_sandbox_status(self, sandbox_id: str) -> PodSandbox:
        resp = await self._call(
            f"sandbox {sandbox_id}",
            self.rt.PodSandboxStatus,
            cri.PodSandboxStatusRequest(pod_sandbox_id=sandbox_id),
        )
        ip = resp.status.network.ip
        if ip:
            self._ips[sandbox_id] = ip
        return sandbox_from_cri(resp.status, ip)

    async def list_pod_sandboxes(self, *, pod_uid: str = "") -> list[PodSandbox]:
        selector = {POD_UID_LABEL: pod_uid} if pod_uid else {}
        request = cri.ListPodSandboxRequest(filter=cri.PodSandboxFilter(label_selector=selector))
        resp = await self._call("list pod sandboxes", self.rt.ListPodSandbox, request)
        out = [sandbox_from_cri(item, self._ips.get(item.id, "")) for item in resp.items]
        missing = [s for s in out if s.state == SandboxState.READY and s.id not in self._ips]
        if missing:
            found = await asyncio.gather(
                *(self.pod_sandbox_status(s.id) for s in missing), return_exceptions=True
            )
            for sandbox, status in zip(missing, found, strict=False):
                if isinstance(status, PodSandbox):
                    sandbox.ip = status.ip
        return out

    # ---- images ----------------------------------------------------------------------------

    async def image_status(self, image: str) -> str | None:
        request = cri.ImageStatusRequest(image=cri.ImageSpec(image=image))
        resp = await self._call(f"image status {image}", self.img.ImageStatus, request)
        if not resp.HasField("image") or not resp.image.id:
            return None
        return str(resp.image.repo_digests[0] if resp.image.repo_digests else resp.image.id)

    async def image_user(self, image: str) -> ImageUser:
        request = cri.ImageStatusRequest(image=cri.ImageSpec(image=image))
        resp = await self._call(f"image status {image}", self.img.ImageStatus, request)
        return image_user_from_cri(resp.image)

    async def pull_image(self, image: str) -> str:
        request = cri.PullImageRequest(image=cri.ImageSpec(image=image))
        resp = await self._call(
            f"pull {image}", self.img.PullImage, request, timeout=PULL_TIMEOUT, error=ImagePullError
        )
        log.info("image pulled", extra={"image": image, "ref": resp.image_ref})
        return (await self.image_status(image)) or resp.image_ref

    async def list_images(self) -> list[str]:
        """Every tag on the node (CRI ListImages), for tests and `crictl images`-like views."""
        resp = await self._call("list images", self.img.ListImages, cri.ListImagesRequest())
        return sorted(tag for image in resp.images for tag in image.repo_tags)

    async def remove_image(self, image: str) -> None:
        request = cri.RemoveImageRequest(image=cri.ImageSpec(image=image))
        with contextlib.suppress(NotFoundError):
            await self._call(f"remove image {image}", self.img.RemoveImage, request)

    # ---- containers ------------------------------------------------------------------------

    async def create_container(
        self, sandbox_id: str, config: ContainerConfig, sandbox_config: PodSandboxConfig
    ) -> str:
        cri_sandbox = to_cri_sandbox_config(sandbox_config, self.log_root)
        cri_config = to_cri_container_config(config, sandbox_config)
        log_dir = Path(cri_sandbox.log_directory) / config.name
        await asyncio.to_thread(log_dir.mkdir, parents=True, exist_ok=True)
        request = cri.CreateContainerRequest(
            pod_sandbox_id=sandbox_id, config=cri_config, sandbox_config=cri_sandbox
        )
        resp = await self._call(
            f"create container {config.name}", self.rt.CreateContainer, request, timeout=120
        )
        return str(resp.container_id)

    async def start_container(self, container_id: str) -> None:
        request = cri.StartContainerRequest(container_id=container_id)
        await self._call(
            f"start container {container_id}",
            self.rt.StartContainer,
            request,
            timeout=120,
            error=ContainerStartError,
        )

    async def stop_container(self, container_id: str, timeout: float) -> None:
        seconds = max(0, math.ceil(timeout))
        request = cri.StopContainerRequest(container_id=container_id, timeout=seconds)
        with contextlib.suppress(NotFoundError):
            await self._call(
                f"stop container {container_id}",
                self.rt.StopContainer,
                request,
                timeout=seconds + self.timeout,
            )

    async def remove_container(self, container_id: str) -> None:
        request = cri.RemoveContainerRequest(container_id=container_id)
        with contextlib.suppress(NotFoundError):
            await self._call(f"remove container {container_id}", self.rt.RemoveContainer, request)
        self._statuses.pop(container_id, None)

    async def list_containers(self, *, sandbox_id: str = "") -> list[Container]:
        request = cri.ListContainersRequest(filter=cri.ContainerFilter(pod_sandbox_id=sandbox_id))
        resp = await self._call("list containers", self.rt.ListContainers, request)
        out: list[Container | None] = []
        stale: list[tuple[int, cri.Container]] = []
        for item in resp.containers:
            cached = self._statuses.get(item.id)
            state = ContainerState(cri.ContainerState.Name(item.state))
            if cached is not None and cached.state == state:
                out.append(_copy(cached))
            else:
                stale.append((len(out), item))
                out.append(None)
        if stale:
            found = await asyncio.gather(
                *(self.container_status(item.id) for _, item in stale), return_exceptions=True
            )
            for (index, item), status in zip(stale, found, strict=False):
                if isinstance(status, Container):
                    status.sandbox_id = item.pod_sandbox_id
                    out[index] = status
        return [c for c in out if c is not None]

    async def container_status(self, container_id: str) -> Container:
        request = cri.ContainerStatusRequest(container_id=container_id)
        resp = await self._call(f"container {container_id}", self.rt.ContainerStatus, request)
        container = container_from_cri(resp.status)
        cached = self._statuses.get(container_id)
        container.sandbox_id = container.sandbox_id or (cached.sandbox_id if cached else "")
        if not container.sandbox_id:
            container.sandbox_id = await self._sandbox_of(container_id)
        container.log_path = resp.status.log_path
        self._statuses[container_id] = _copy(container)
        return container

    async def container_pid(self, container_id: str) -> int:
        """ContainerStatus(verbose): containerd's info["info"] is JSON with the task's "pid"."""
        request = cri.ContainerStatusRequest(container_id=container_id, verbose=True)
        resp = await self._call(f"container {container_id}", self.rt.ContainerStatus, request)
        if resp.status.state != cri.CONTAINER_RUNNING:
            return 0
        try:
            pid = json.loads(resp.info.get("info") or "{}").get("pid", 0)
        except (ValueError, AttributeError):
            return 0
        return pid if isinstance(pid, int) and pid > 0 else 0

    async def _sandbox_of(self, container_id: str) -> str:
        request = cri.ListContainersRequest(filter=cri.ContainerFilter(id=container_id))
        resp = await self._call("list containers", self.rt.ListContainers, request)
        return resp.containers[0].pod_sandbox_id if resp.containers else ""

    # ---- exec and logs ---------------------------------------------------------------------

    async def exec_sync(
        self, container_id: str, command: Sequence[str], timeout: float
    ) -> ExecResult:
        seconds = max(1, math.ceil(timeout)) if timeout > 0 else 0
        request = cri.ExecSyncRequest(container_id=container_id, cmd=list(command), timeout=seconds)
        deadline = (seconds + 10.0) if seconds else None
        try:
            resp = await self.rt.ExecSync(request, timeout=deadline)
        except grpc.aio.AioRpcError as err:
            details = err.details() or ""
            if err.code() == grpc.StatusCode.DEADLINE_EXCEEDED or "exceeded" in details:
                raise ExecTimeout(f"command {list(command)} timed out after {timeout}s") from None
            if "executable file not found" in details or "no such file" in details:
                return ExecResult(127, b"", details.encode())
            if "permission denied" in details:
                return ExecResult(126, b"", details.encode())
            raise _error(err, f"exec in {container_id}") from None
        return ExecResult(resp.exit_code, resp.stdout, resp.stderr)

    async def exec_stream(self, container_id: str, options: ExecOptions) -> ExecSession:
        """CRI Exec -> a URL of containerd's streaming server, spoken to over SPDY (cri_exec)."""
        request = cri.ExecRequest(
            container_id=container_id,
            cmd=list(options.command),
            tty=options.tty,
            stdin=options.stdin,
            stdout=options.stdout,
            stderr=options.stderr,
        )
        resp = await self._call(f"exec in {container_id}", self.rt.Exec, request)
        return await CRIExecSession.start(resp.url, options)

    async def sandbox_netns(self, sandbox_id: str) -> str:
        """PodSandboxStatus(verbose): the network namespace in containerd's runtimeSpec, else
        the sandbox task's /proc/PID/ns/net; "" for a hostNetwork sandbox (none of its own)."""
        request = cri.PodSandboxStatusRequest(pod_sandbox_id=sandbox_id, verbose=True)
        resp = await self._call(f"sandbox {sandbox_id}", self.rt.PodSandboxStatus, request)
        try:
            info = json.loads(resp.info.get("info") or "{}")
        except ValueError:
            info = {}
        spec = info.get("runtimeSpec") if isinstance(info, dict) else None
        if isinstance(spec, dict):
            for ns in (spec.get("linux") or {}).get("namespaces") or []:
                if ns.get("type") == "network":
                    return str(ns.get("path") or _proc_netns(info.get("pid"), sandbox_id))
            return ""
        return _proc_netns(info.get("pid") if isinstance(info, dict) else None, sandbox_id)

    async def container_logs(
        self, container_id: str, *, follow: bool = False, tail: int | None = None
    ) -> AsyncIterator[LogLine]:
        path = (await self.container_status(container_id)).log_path  # NotFoundError once removed

        async def exited() -> bool:
            try:
                current = await self.container_status(container_id)
            except NotFoundError:
                return True
            return current.state in (ContainerState.EXITED, ContainerState.UNKNOWN)

        if not path:
            return
        async for line in cri_logs.read_log(path, follow=follow, tail=tail, exited=exited):
            yield line

    async def reopen_container_log(self, container_id: str) -> None:
        """containerd closes the log file (renamed aside by the kubelet), opens a new one."""
        request = cri.ReopenContainerLogRequest(container_id=container_id)
        await self._call(f"reopen log of {container_id}", self.rt.ReopenContainerLog, request)


def _proc_netns(pid: object, sandbox_id: str) -> str:
    if isinstance(pid, int) and pid > 0:
        return f"/proc/{pid}/ns/net"
    raise ContainerRuntimeError(f"sandbox {sandbox_id} has no network namespace to enter")


def _copy(container: Container) -> Container:
    return replace(container, labels=dict(container.labels))
