"""The `fake` runtime: a hollow node's containers (Kubernetes' kubemark / FakeRuntimeService).

Nothing is started: a sandbox is a record with an IP from the node's
podCIDR, an image pull succeeds at once, a container is a record that is
"running" from start_container until stop_container. This is enough for the
whole control plane to treat the node as real -- the scheduler places pods
on it, the endpoints controller publishes the pods' IPs, the node lifecycle
controller watches its Lease -- at a cost of a few kilobytes per pod, so a
laptop can run hundreds of hollow nodes.

State lives in this object's memory only. A kubelet *process* that restarts
with `--runtime fake` starts with an empty runtime: it forgets its pods and
"starts" them again (new sandbox ids, new IPs, restartCount unchanged since
attempt counting starts over). A real runtime keeps its sandboxes across a
kubelet restart and the kubelet adopts them by pod uid; tests exercise that
path by handing the same FakeRuntime object to a second Kubelet.

For tests:

* `calls` records every call as `(method, argument)`, e.g.
  `("run_pod_sandbox", "<pod uid>")`, `("stop_container", "<id>", 30.0)`;
  `count(method)` counts them.
* `behave(container_name, ...)` scripts one container name (in any pod):
  `start_error="..."` makes start_container fail (RunContainerError);
  `exit_code=N, exit_after=S` makes a started container exit with N after S
  seconds (evaluated lazily when the container is next looked at, so no
  timers run). `image_errors[image] = "..."` makes a pull fail.
* `network_ready` / `runtime_ready` drive status() for node condition tests.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from dataclasses import dataclass, replace
from typing import Any

from kubelet.errors import ContainerStartError, ImagePullError, NotFoundError
from kubelet.runtime.interface import (
    CONTAINER_NAME_LABEL,
    POD_UID_LABEL,
    Container,
    ContainerConfig,
    ContainerRuntime,
    ContainerState,
    PodSandbox,
    PodSandboxConfig,
    RuntimeStatus,
    RuntimeVersion,
    SandboxState,
)
from kubelet.runtime.ipam import PodIPAM

FAKE_VERSION = "0.1.0"


def image_ref(image: str) -> str:
    """The digest reference a registry would resolve `image` to, made up but stable.

    `nginx:1.25` -> `docker.io/library/nginx@sha256:<sha256 of "nginx:1.25">`,
    the form Kubernetes shows as a container's imageID.
    """
    repo = image.split("@", 1)[0]
    last = repo.rsplit("/", 1)[-1]
    if ":" in last:
        repo = repo[: len(repo) - len(last)] + last.split(":", 1)[0]
    if "/" not in repo:
        repo = f"library/{repo}"
    first = repo.split("/", 1)[0]
    if "." not in first and ":" not in first and first != "localhost":
        repo = f"docker.io/{repo}"
    return f"{repo}@sha256:{hashlib.sha256(image.encode()).hexdigest()}"


@dataclass(frozen=True)
class ContainerBehaviour:
    """How containers of one name behave in the fake runtime."""

    start_error: str = ""
    exit_code: int | None = None
    exit_after: float = 0.0


class FakeRuntime(ContainerRuntime):
    name = "fake"

    def __init__(self, pod_cidr: str = "") -> None:
        self.ipam = PodIPAM(pod_cidr)
        self.sandboxes: dict[str, PodSandbox] = {}
        self.containers: dict[str, Container] = {}
        self.calls: list[tuple[Any, ...]] = []
        self.behaviours: dict[str, ContainerBehaviour] = {}
        self.image_errors: dict[str, str] = {}
        self.images: set[str] = set()  # pulled so far
        self.runtime_ready = True
        self.network_ready = True
        self._ids = itertools.count(1)

    # ---- test helpers ------------------------------------------------------------------

    def behave(
        self,
        container_name: str,
        *,
        start_error: str = "",
        exit_code: int | None = None,
        exit_after: float = 0.0,
    ) -> None:
        self.behaviours[container_name] = ContainerBehaviour(start_error, exit_code, exit_after)

    def count(self, method: str) -> int:
        return sum(1 for call in self.calls if call[0] == method)

    def running(self) -> list[Container]:
        return [c for c in self._all_containers() if c.state == ContainerState.RUNNING]

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):012x}"

    # ---- runtime -----------------------------------------------------------------------

    async def version(self) -> RuntimeVersion:
        self.calls.append(("version",))
        return RuntimeVersion("fake", FAKE_VERSION)

    async def status(self) -> RuntimeStatus:
        message = ""
        if not self.runtime_ready:
            message = "container runtime is down"
        elif not self.network_ready:
            message = "network plugin is not ready"
        return RuntimeStatus(self.runtime_ready, self.network_ready, message)

    async def update_runtime_config(self, pod_cidr: str) -> None:
        self.calls.append(("update_runtime_config", pod_cidr))
        self.ipam.set_cidr(pod_cidr)

    # ---- sandboxes ---------------------------------------------------------------------

    async def run_pod_sandbox(self, config: PodSandboxConfig) -> PodSandbox:
        self.calls.append(("run_pod_sandbox", config.uid))
        sandbox_id = self._new_id("sb")
        ip = "" if config.host_network else self.ipam.allocate(sandbox_id)
        labels = dict(config.labels)
        labels[POD_UID_LABEL] = config.uid
        sandbox = PodSandbox(
            id=sandbox_id,
            name=config.name,
            namespace=config.namespace,
            pod_uid=config.uid,
            attempt=config.attempt,
            state=SandboxState.READY,
            created_at=time.time(),
            ip=ip,
            labels=labels,
            annotations=dict(config.annotations),
        )
        self.sandboxes[sandbox_id] = sandbox
        return replace(sandbox)

    async def stop_pod_sandbox(self, sandbox_id: str) -> None:
        self.calls.append(("stop_pod_sandbox", sandbox_id))
        sandbox = self.sandboxes.get(sandbox_id)
        if sandbox is None:
            return
        for container in self._all_containers():
            if container.sandbox_id == sandbox_id and container.state == ContainerState.RUNNING:
                self._exit(container, 137, "Error")
        sandbox.state = SandboxState.NOTREADY
        self.ipam.release(sandbox_id)

    async def remove_pod_sandbox(self, sandbox_id: str) -> None:
        self.calls.append(("remove_pod_sandbox", sandbox_id))
        if sandbox_id not in self.sandboxes:
            return
        await self.stop_pod_sandbox(sandbox_id)
        for cid in [c.id for c in self.containers.values() if c.sandbox_id == sandbox_id]:
            del self.containers[cid]
        del self.sandboxes[sandbox_id]

    async def pod_sandbox_status(self, sandbox_id: str) -> PodSandbox:
        sandbox = self.sandboxes.get(sandbox_id)
        if sandbox is None:
            raise NotFoundError(f"pod sandbox {sandbox_id} not found")
        return replace(sandbox)

    async def list_pod_sandboxes(self, *, pod_uid: str = "") -> list[PodSandbox]:
        return [replace(s) for s in self.sandboxes.values() if not pod_uid or s.pod_uid == pod_uid]

    # ---- images ------------------------------------------------------------------------

    async def image_status(self, image: str) -> str | None:
        return image_ref(image) if image in self.images else None

    async def pull_image(self, image: str) -> str:
        self.calls.append(("pull_image", image))
        if image in self.image_errors:
            raise ImagePullError(self.image_errors[image])
        self.images.add(image)
        return image_ref(image)

    # ---- containers --------------------------------------------------------------------

    async def create_container(
        self, sandbox_id: str, config: ContainerConfig, sandbox_config: PodSandboxConfig
    ) -> str:
        self.calls.append(("create_container", config.name))
        sandbox = self.sandboxes.get(sandbox_id)
        if sandbox is None or sandbox.state != SandboxState.READY:
            raise NotFoundError(f"pod sandbox {sandbox_id} not found or not ready")
        container_id = self._new_id("c")
        labels = dict(config.labels)
        labels[CONTAINER_NAME_LABEL] = config.name
        labels[POD_UID_LABEL] = sandbox.pod_uid
        self.containers[container_id] = Container(
            id=container_id,
            sandbox_id=sandbox_id,
            name=config.name,
            attempt=config.attempt,
            image=config.image,
            image_ref=image_ref(config.image),
            state=ContainerState.CREATED,
            created_at=time.time(),
            labels=labels,
            annotations=dict(config.annotations),
        )
        return container_id

    async def start_container(self, container_id: str) -> None:
        self.calls.append(("start_container", container_id))
        container = self._get(container_id)
        behaviour = self.behaviours.get(container.name, ContainerBehaviour())
        if behaviour.start_error:
            self._exit(container, 128, "StartError", behaviour.start_error)
            raise ContainerStartError(behaviour.start_error)
        container.state = ContainerState.RUNNING
        container.started_at = time.time()

    async def stop_container(self, container_id: str, timeout: float) -> None:
        self.calls.append(("stop_container", container_id, timeout))
        container = self.containers.get(container_id)
        if container is None:
            return
        self._advance(container)
        if container.state == ContainerState.RUNNING:
            # SIGTERM honoured at once: nginx exits 0 on SIGQUIT/SIGTERM in well under a second.
            self._exit(container, 0, "Completed")
        elif container.state == ContainerState.CREATED:
            self._exit(container, 0, "Completed")

    async def remove_container(self, container_id: str) -> None:
        self.calls.append(("remove_container", container_id))
        self.containers.pop(container_id, None)

    async def list_containers(self, *, sandbox_id: str = "") -> list[Container]:
        return [
            replace(c)
            for c in self._all_containers()
            if not sandbox_id or c.sandbox_id == sandbox_id
        ]

    async def container_status(self, container_id: str) -> Container:
        container = self._get(container_id)
        self._advance(container)
        return replace(container)

    # ---- internals ---------------------------------------------------------------------

    def _get(self, container_id: str) -> Container:
        container = self.containers.get(container_id)
        if container is None:
            raise NotFoundError(f"container {container_id} not found")
        return container

    def _all_containers(self) -> list[Container]:
        for container in self.containers.values():
            self._advance(container)
        return list(self.containers.values())

    def _advance(self, container: Container) -> None:
        """Apply a scripted exit whose time has come."""
        if container.state != ContainerState.RUNNING:
            return
        behaviour = self.behaviours.get(container.name)
        if behaviour is None or behaviour.exit_code is None:
            return
        if time.time() >= container.started_at + behaviour.exit_after:
            reason = "Completed" if behaviour.exit_code == 0 else "Error"
            self._exit(container, behaviour.exit_code, reason)

    @staticmethod
    def _exit(container: Container, code: int, reason: str, message: str = "") -> None:
        container.state = ContainerState.EXITED
        container.exit_code = code
        container.reason = reason
        container.message = message
        container.finished_at = time.time()
