"""The `docker` runtime: the runtime interface over the Docker Engine API (Kubernetes' dockershim).

Before CRI runtimes were common, the kubelet drove Docker itself; from 1.5
to 1.23 that code was dockershim, a CRI server translating each CRI call
into Docker API calls. This module is that translation, in-process, with
the `docker` Python SDK (its low-level APIClient):

    tinykube kubelet --runtime docker --runtime-endpoint unix:///var/run/docker.sock \\
        --cni-conf-dir /etc/cni/net.d --cni-bin-dir /opt/cni/bin

    interface call          Docker Engine API (what dockershim did)
    ---------------------   -------------------------------------------------------------
    run_pod_sandbox         create + start the pause image (network none, IPC shareable),
                            then CNI ADD on /proc/<pause pid>/ns/net (cni_invoke.py)
    stop_pod_sandbox        stop the pod's containers, CNI DEL, stop the pause container
    remove_pod_sandbox      remove the pod's containers and the pause container (force)
    list_pod_sandboxes      GET /containers/json?filters={"label":["io.kubernetes.docker.type=
                            podsandbox", "io.kubernetes.pod.uid=<uid>"]}
    create_container        POST /containers/create, network and IPC container:<pause id>
    start/stop/remove       POST /containers/<id>/start; /kill with the stop signal, then
                            SIGKILL after the grace (docker_stop.py); DELETE ?force=1
    list_containers         GET /containers/json (labels), inspect for what changed
    image_status/pull_image GET /images/<name>/json, POST /images/create
    image_user              GET /images/<name>/json: Config.User
    exec_sync               POST /containers/<id>/exec, /exec/<id>/start, GET /exec/<id>/json
                            (docker_exec.py)
    exec_stream             the same, the start call upgraded to a raw socket (docker_attach.py)
    port_forward            a socket made in the pause container's SandboxKey netns
    container_logs          the json-file log (docker_logs.py), like a CRI log file

Names, labels, the create requests and the state mapping are pure functions
in docker_convert.py, the security context's fields in docker_security.py;
the thread hop and the error translation are in
docker_client.py; the json-file log reader in docker_logs.py; the graceful
stop in docker_stop.py. Design notes:

* Every SDK call blocks (requests over a unix socket), so each goes through
  asyncio.to_thread in `_call` (docker_client.call), which also turns the
  SDK's exceptions into the kubelet's: 404 -> NotFoundError, a failed pull -> ImagePullError
  (ErrImagePull with Docker's message), a failed start -> ContainerStartError,
  an unreachable daemon -> ContainerRuntimeError with Docker's own words
  ("Cannot connect to the Docker daemon at unix://...").
* status() never raises: a daemon that does not answer /_ping is
  RuntimeReady=false with that message, so the Node turns NotReady
  (nodestatus.py) and recovers on the next update once dockerd is back.
  NetworkReady is "a CNI config exists in --cni-conf-dir".
* The API version is pinned (1.41, dockerd 20.10): the SDK otherwise asks
  the daemon at construction, and the kubelet must start before dockerd.
* The pod IP is the CNI ADD result, cached on disk by cni_invoke (libcni's
  result cache) and in memory, so a restarted kubelet still reports it and
  DEL gets its prevResult.
* Adoption: everything is found again by labels and names alone; nothing
  in the kubelet's memory is needed (kill -9 the kubelet, start it again).
* Relists: GET /containers/json has no exit codes or times; a container is
  inspected only when its state differs from the last status seen (as in
  cri.py), so a relist of 20 running containers is one API call.
* Logs: dockershim symlinked <log root>/<ns>_<pod>_<uid>/<container>/<attempt>.log to
  Docker's json log, as this module does; Docker rotates it (max-size, docker_convert.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from kubelet.errors import (
    ContainerRuntimeError,
    ContainerStartError,
    ImagePullError,
    NotFoundError,
)
from kubelet.runtime import docker_convert as conv
from kubelet.runtime import docker_exec, docker_logs, docker_stop
from kubelet.runtime.cni_invoke import CNIInvoker, PodNetworkArgs
from kubelet.runtime.docker_attach import DockerExecSession
from kubelet.runtime.docker_client import (
    DEFAULT_ENDPOINT,
    base_url,
    call,
    image_ref,
    new_api_client,
    reraise,
    symlink,
)
from kubelet.runtime.interface import (
    CONTAINER_NAME_LABEL,
    POD_NAME_LABEL,
    POD_NAMESPACE_LABEL,
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

log = logging.getLogger(__name__)

DEFAULT_LOG_ROOT = "/var/log/pods"
DEFAULT_CNI_CONF_DIR = "/etc/cni/net.d"
DEFAULT_CNI_BIN_DIR = "/opt/cni/bin:/usr/lib/cni"
DEFAULT_CNI_CACHE_DIR = "/var/lib/cni/results"
PAUSE_IMAGE = "registry.k8s.io/pause:3.9"
PAUSE_STOP_TIMEOUT = 2  # seconds; dockershim's defaultSandboxGracePeriod
T = TypeVar("T")
P = ParamSpec("P")


class DockerRuntime(ContainerRuntime):
    """A ContainerRuntime backed by a Docker daemon, with the kubelet calling CNI."""

    name = "docker"

    def __init__(
        self,
        endpoint: str = DEFAULT_ENDPOINT,
        *,
        log_root: str = DEFAULT_LOG_ROOT,
        cni_conf_dir: str = DEFAULT_CNI_CONF_DIR,
        cni_bin_dir: str = DEFAULT_CNI_BIN_DIR,
        cni_cache_dir: str = DEFAULT_CNI_CACHE_DIR,
        pause_image: str = PAUSE_IMAGE,
        timeout: float = 30.0,
    ) -> None:
        self.endpoint = endpoint
        self.log_root = log_root
        self.pause_image = pause_image
        self.timeout = timeout
        self.cni = CNIInvoker(cni_conf_dir, cni_bin_dir, cni_cache_dir)
        self._client: Any = None
        self._ips: dict[str, str] = {}
        self._statuses: dict[str, Container] = {}
        self._image_refs: dict[str, str] = {}

    # ---- plumbing --------------------------------------------------------------------------

    @property
    def api(self) -> Any:
        """The SDK's low-level client, made on first use (it connects lazily)."""
        if self._client is None:
            self._client = new_api_client(self.endpoint, self.timeout)
        return self._client

    async def _call(self, what: str, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`fn(*args, **kwargs)` in a thread, its exceptions turned into the kubelet's."""
        return await call(self.endpoint, what, None, fn, *args, **kwargs)

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await asyncio.to_thread(client.close)

    # ---- runtime ---------------------------------------------------------------------------

    async def version(self) -> RuntimeVersion:
        info = await self._call("version", self.api.version)
        return RuntimeVersion("docker", str(info.get("Version", "")), str(info.get("ApiVersion")))

    async def status(self) -> RuntimeStatus:
        net_ready, net_message = await asyncio.to_thread(self.cni.ready)
        try:
            await self._call("ping", self.api.ping)
        except ContainerRuntimeError as err:
            message = f"container runtime is down: {err}"
            return RuntimeStatus(False, net_ready, "; ".join(filter(None, [message, net_message])))
        return RuntimeStatus(True, net_ready, net_message)

    async def update_runtime_config(self, pod_cidr: str) -> None:
        """Nothing to tell Docker: the CNI config (written by the network plugin) holds the CIDR."""
        return None

    # ---- sandboxes -------------------------------------------------------------------------

    def _pod_log_dir(self, config: PodSandboxConfig) -> Path:
        return Path(self.log_root) / f"{config.namespace}_{config.name}_{config.uid}"

    async def run_pod_sandbox(self, config: PodSandboxConfig) -> PodSandbox:
        if await self.image_status(self.pause_image) is None:
            await self.pull_image(self.pause_image)
        request = await asyncio.to_thread(conv.sandbox_create, config, self.pause_image)
        sandbox_id = await self._create("run pod sandbox", request)
        step = "start sandbox container"
        try:
            await self._call("start pod sandbox", self.api.start, sandbox_id)
            attrs = await self._call("inspect pod sandbox", self.api.inspect_container, sandbox_id)
            ip = ""
            if not config.host_network:
                step = "set up sandbox container network"
                pid = int(attrs["State"]["Pid"])
                args = PodNetworkArgs(
                    config.namespace, config.name, sandbox_id, config.port_mappings
                )
                result = await self.cni.add(sandbox_id, f"/proc/{pid}/ns/net", args)
                ip = result.ip
            self._ips[sandbox_id] = ip
            await asyncio.to_thread(self._pod_log_dir(config).mkdir, parents=True, exist_ok=True)
        except BaseException as err:
            with contextlib.suppress(Exception):
                await self._call(
                    "remove pod sandbox", self.api.remove_container, sandbox_id, force=True
                )
            if isinstance(err, ContainerRuntimeError):
                raise type(err)(
                    f"failed to {step} {sandbox_id[:12]} for pod {config.name!r}: {err}"
                ) from None
            raise
        log.info("sandbox created", extra={"pod": config.name, "sandbox": sandbox_id, "ip": ip})
        return conv.sandbox_from_inspect(attrs, ip)

    async def _create(self, what: str, request: dict[str, Any]) -> str:
        """POST /containers/create; a name held by a stale container gets a random suffix."""
        import docker.errors

        host = self.api.create_host_config(**request.pop("host_config"))

        def create(name: str) -> dict[str, Any]:
            out: dict[str, Any] = self.api.create_container(name=name, host_config=host, **request)
            return out

        name = request.pop("name")
        try:
            try:
                created = await asyncio.to_thread(create, name)
            except docker.errors.APIError as err:
                if err.status_code != 409:
                    return await self._call(what, reraise, err)
                created = await self._call(what, create, conv.randomized(name))
            except Exception as err:
                return await self._call(what, reraise, err)
        except NotFoundError as err:  # "No such image": not an unknown id
            raise ContainerRuntimeError(str(err)) from None
        return str(created["Id"])

    async def _inspect(self, what: str, cid: str, kind: str) -> dict[str, Any]:
        attrs: dict[str, Any] = await self._call(what, self.api.inspect_container, cid)
        labels = (attrs.get("Config") or {}).get("Labels") or {}
        if labels.get(conv.TYPE_LABEL) != kind:
            raise NotFoundError(f"{what}: {cid} is not a kubelet {kind}")
        return attrs

    async def _ip(self, sandbox_id: str) -> str:
        ip = self._ips.get(sandbox_id)
        if ip is None:  # made by an earlier kubelet: its ADD result is in the CNI cache
            ip = await asyncio.to_thread(self.cni.cached_ip, sandbox_id)
            self._ips[sandbox_id] = ip
        return ip

    async def stop_pod_sandbox(self, sandbox_id: str) -> None:
        try:
            attrs = await self._inspect(f"sandbox {sandbox_id}", sandbox_id, conv.TYPE_SANDBOX)
        except NotFoundError:
            return
        for item in await self._list(conv.TYPE_CONTAINER, {conv.SANDBOX_ID_LABEL: sandbox_id}):
            if item.get("State") == "running":
                await self.stop_container(str(item["Id"]), 0)
        state = attrs.get("State") or {}
        pid = int(state.get("Pid") or 0) if state.get("Running") else 0
        if await asyncio.to_thread(self.cni.cached_result, sandbox_id) is not None:
            labels = (attrs.get("Config") or {}).get("Labels") or {}
            args = PodNetworkArgs(
                labels.get(POD_NAMESPACE_LABEL, ""),
                labels.get(POD_NAME_LABEL, ""),
                sandbox_id,
            )
            await self.cni.delete(sandbox_id, f"/proc/{pid}/ns/net" if pid else "", args)
        self._ips.pop(sandbox_id, None)
        await self.stop_container(sandbox_id, PAUSE_STOP_TIMEOUT)

    async def remove_pod_sandbox(self, sandbox_id: str) -> None:
        await self.stop_pod_sandbox(sandbox_id)
        for item in await self._list(conv.TYPE_CONTAINER, {conv.SANDBOX_ID_LABEL: sandbox_id}):
            await self.remove_container(str(item["Id"]))
        with contextlib.suppress(NotFoundError):
            what = f"remove pod sandbox {sandbox_id}"
            await self._call(what, self.api.remove_container, sandbox_id, force=True)
        self._ips.pop(sandbox_id, None)

    async def remove_pod_logs(self, pod_uid: str) -> None:
        if not pod_uid or "/" in pod_uid:
            return

        def remove() -> None:
            for directory in Path(self.log_root).glob(f"*_{pod_uid}"):
                shutil.rmtree(directory, ignore_errors=True)

        await asyncio.to_thread(remove)

    async def pod_sandbox_status(self, sandbox_id: str) -> PodSandbox:
        attrs = await self._inspect(f"sandbox {sandbox_id}", sandbox_id, conv.TYPE_SANDBOX)
        return conv.sandbox_from_inspect(attrs, await self._ip(sandbox_id))

    async def _list(self, kind: str, labels: dict[str, str]) -> list[dict[str, Any]]:
        selector = [f"{conv.TYPE_LABEL}={kind}", *(f"{k}={v}" for k, v in labels.items())]
        items: list[dict[str, Any]] = await self._call(
            f"list {kind}s", self.api.containers, all=True, filters={"label": selector}
        )
        return items

    async def list_pod_sandboxes(self, *, pod_uid: str = "") -> list[PodSandbox]:
        items = await self._list(conv.TYPE_SANDBOX, {POD_UID_LABEL: pod_uid} if pod_uid else {})
        out = []
        for item in items:
            running = item.get("State") == "running"
            ip = await self._ip(str(item["Id"])) if running else ""
            out.append(conv.sandbox_from_summary(item, ip))
        return out

    # ---- images ----------------------------------------------------------------------------

    async def image_status(self, image: str) -> str | None:
        try:
            attrs = await self._call(f"image status {image}", self.api.inspect_image, image)
        except NotFoundError:
            return None
        ref = image_ref(attrs)
        self._image_refs[str(attrs.get("Id", ""))] = ref
        return ref

    async def image_user(self, image: str) -> ImageUser:
        """The image's Config.User, parsed as containerd's ImageStatus does."""
        try:
            attrs = await self._call(f"image status {image}", self.api.inspect_image, image)
        except NotFoundError:
            return ImageUser()
        return ImageUser.parse(str((attrs.get("Config") or {}).get("User") or ""))

    async def pull_image(self, image: str) -> str:
        def pull() -> None:
            for event in self.api.pull(image, stream=True, decode=True):
                if isinstance(event, dict) and event.get("error"):
                    raise ImagePullError(f"pull {image}: {event['error']}")

        try:
            await call(self.endpoint, f"pull {image}", ImagePullError, pull)
        except ImagePullError:
            raise
        except ContainerRuntimeError as err:
            raise ImagePullError(str(err)) from None
        ref = await self.image_status(image)
        if ref is None:
            raise ImagePullError(f"pull {image}: the image is not present after the pull")
        log.info("image pulled", extra={"image": image, "ref": ref})
        return ref

    # ---- containers ------------------------------------------------------------------------

    async def create_container(
        self, sandbox_id: str, config: ContainerConfig, sandbox_config: PodSandboxConfig
    ) -> str:
        if (await self.pod_sandbox_status(sandbox_id)).state != SandboxState.READY:
            # As containerd's CRI: not in a sandbox whose pause is gone (dockerd restarted);
            # the kubelet's next sync replaces the sandbox, and no dead container is left.
            raise ContainerRuntimeError(f'sandbox container "{sandbox_id}" is not running')
        # In a thread: a Localhost seccomp profile is a file to read (docker_security.py).
        limits = (self.log_max_size, self.log_max_files)
        request = await asyncio.to_thread(
            conv.container_create, config, sandbox_id, sandbox_config, log_limits=limits
        )
        return await self._create(f"create container {config.name}", request)

    async def start_container(self, container_id: str) -> None:
        what = f"start container {container_id}"
        await call(self.endpoint, what, ContainerStartError, self.api.start, container_id)
        # Docker names the json log file at start (LogPath is empty before): link it now,
        # as dockershim's StartContainer did.
        attrs = await self._call("inspect container", self.api.inspect_container, container_id)
        target = str(attrs.get("LogPath") or "")
        labels = (attrs.get("Config") or {}).get("Labels") or {}
        pod_dir = "_".join(labels.get(k, "") for k in (POD_NAMESPACE_LABEL, POD_NAME_LABEL))
        uid = labels.get(POD_UID_LABEL, "")
        name = labels.get(CONTAINER_NAME_LABEL, "")
        if target and uid and name:
            attempt = conv.attempt_of(str(attrs.get("Name", "")))
            link = Path(self.log_root) / f"{pod_dir}_{uid}" / name / f"{attempt}.log"
            await asyncio.to_thread(symlink, link, target)

    async def stop_container(self, container_id: str, timeout: float) -> None:
        """Stop signal, SIGKILL after `timeout` s, without holding a thread (docker_stop.py)."""
        await docker_stop.stop(self._call, self.api, container_id, timeout)

    async def remove_container(self, container_id: str) -> None:
        with contextlib.suppress(NotFoundError):
            await self._call(
                f"remove container {container_id}",
                self.api.remove_container,
                container_id,
                force=True,
            )
        self._statuses.pop(container_id, None)

    async def list_containers(self, *, sandbox_id: str = "") -> list[Container]:
        labels = {conv.SANDBOX_ID_LABEL: sandbox_id} if sandbox_id else {}
        items = await self._list(conv.TYPE_CONTAINER, labels)
        out: list[Container | None] = []
        stale: list[tuple[int, str]] = []
        for item in items:
            cid, state = conv.container_from_summary(item)
            cached = self._statuses.get(cid)
            if cached is not None and cached.state == state:
                out.append(_copy(cached))
            else:
                stale.append((len(out), cid))
                out.append(None)
        if stale:
            found = await asyncio.gather(
                *(self.container_status(cid) for _, cid in stale), return_exceptions=True
            )
            for (index, _), status in zip(stale, found, strict=True):
                if isinstance(status, Container):
                    out[index] = status
                elif not isinstance(status, NotFoundError):
                    raise status  # removed meanwhile is fine; anything else is not
        return [c for c in out if c is not None]

    async def container_status(self, container_id: str) -> Container:
        attrs = await self._inspect(f"container {container_id}", container_id, conv.TYPE_CONTAINER)
        image_id = str(attrs.get("Image", ""))
        ref = self._image_refs.get(image_id)
        if ref is None:
            try:
                ref = image_ref(await self._call("image", self.api.inspect_image, image_id))
            except NotFoundError:
                ref = image_id
            self._image_refs[image_id] = ref
        container = conv.container_from_inspect(attrs, ref)
        self._statuses[container_id] = _copy(container)
        return container

    async def container_pid(self, container_id: str) -> int:
        """GET /containers/<id>/json: `State.Pid` (0 once the container has stopped)."""
        attrs = await self._inspect(f"container {container_id}", container_id, conv.TYPE_CONTAINER)
        pid = (attrs.get("State") or {}).get("Pid") or 0
        return pid if isinstance(pid, int) and pid > 0 else 0

    # ---- exec and logs ---------------------------------------------------------------------

    async def exec_sync(
        self, container_id: str, command: Sequence[str], timeout: float
    ) -> ExecResult:
        """POST /containers/<id>/exec, /exec/<id>/start, GET /exec/<id>/json (docker_exec.py)."""
        return await docker_exec.exec_sync(self._call, self.api, container_id, command, timeout)

    async def exec_stream(self, container_id: str, options: ExecOptions) -> ExecSession:
        """The exec's start call hijacked into a duplex socket (docker_attach.py)."""
        return await DockerExecSession.start(
            self._call, self.api, self.endpoint, container_id, options
        )

    async def sandbox_netns(self, sandbox_id: str) -> str:
        """The pause container's SandboxKey (else /proc/PID/ns/net); "" for hostNetwork."""
        attrs = await self._inspect(f"sandbox {sandbox_id}", sandbox_id, conv.TYPE_SANDBOX)
        if (attrs.get("HostConfig") or {}).get("NetworkMode") == "host":
            return ""
        key = str((attrs.get("NetworkSettings") or {}).get("SandboxKey") or "")
        found: bool = bool(key) and await asyncio.to_thread(Path(key).exists)
        if found:
            return key
        pid = (attrs.get("State") or {}).get("Pid") or 0
        if isinstance(pid, int) and pid > 0:
            return f"/proc/{pid}/ns/net"
        raise ContainerRuntimeError(f"sandbox {sandbox_id} is not running: no network to enter")

    async def container_logs(
        self, container_id: str, *, follow: bool = False, tail: int | None = None
    ) -> AsyncIterator[LogLine]:
        attrs = await self._inspect(f"container {container_id}", container_id, conv.TYPE_CONTAINER)
        path = str(attrs.get("LogPath") or "")

        async def exited() -> bool:
            try:
                current = await self.container_status(container_id)
            except NotFoundError:
                return True
            return current.state in (ContainerState.EXITED, ContainerState.UNKNOWN)

        if not path:
            return
        async for line in docker_logs.read_log(path, follow=follow, tail=tail, exited=exited):
            yield line


def _copy(container: Container) -> Container:
    return replace(container, labels=dict(container.labels))


__all__ = ["DEFAULT_ENDPOINT", "DockerRuntime", "SandboxState", "base_url"]
