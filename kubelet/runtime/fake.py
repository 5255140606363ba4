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
  timers run). `image_errors[image] = "..."` makes a pull fail;
  `image_users[image] = ImageUser(uid=1000)` says who an image runs as
  (unset: the image names no user, i.e. root, as for most images).
* `container_configs[id]` is the ContainerConfig a container was created
  with (its env, mounts, security), `sandbox_configs[id]` a live sandbox's.
* `behave(..., logs=[...])` writes those lines to a container's log when it
  starts; `write_log(container_id, text)` adds more later (followers see it).
  A container's `log_path`, set by a test, is a file the kubelet's log manager
  rotates; `reopen_container_log` then makes it anew, empty, as containerd does.
* `behave(..., term_after=S)`: after SIGTERM the container takes S seconds
  to exit (exit code 0); `term_after=None` ignores SIGTERM, so stop_container
  waits its whole timeout and then SIGKILLs (exit 137). Both signals are
  recorded in `calls` as `("signal", id, "SIGTERM")`. The waiting goes
  through `self.sleep` (asyncio.sleep by default), which tests replace to
  record the durations instead of spending them.
* `execs[cmd_tuple] = ExecResult(...)` (or `exec_handler(container, cmd)`)
  scripts exec_sync; `echo`, `true`, `false`, `cat <file>` of
  `files[(container name, path)]` and `test -d|-f|-e PATH` over them (a
  directory is a prefix of some file's path) work out of the box; anything else exits
  127 like a missing executable.
* `exec_stream` plays `cat` (echo), `tar cf -` / `tar xmf -` (over `files`,
  what `cp` runs) and otherwise answers as exec_sync; `port_forward` echoes
  on a port the pod's containers declare (fake_streams.py).
* `kill(container_id, exit_code)` makes a running container exit now
  (a crash, an OOM kill), for PLEG and restart tests.
* `network_ready` / `runtime_ready` drive status() for node condition tests.
* `pids[container_id] = N` gives a running container a process (for stats
  tests); without one it has none (container_pid answers 0).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from kubelet.errors import ContainerRuntimeError, ContainerStartError, ImagePullError, NotFoundError
from kubelet.runtime import fake_streams
from kubelet.runtime.interface import (
    CONTAINER_NAME_LABEL,
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
from kubelet.runtime.ipam import PodIPAM
from kubelet.runtime.streaming import ExecOptions, ExecSession

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
    logs: tuple[str, ...] = ()
    term_after: float | None = 0.0  # None: SIGTERM is ignored


class FakeRuntime(ContainerRuntime):
    """The hollow node's runtime: sandboxes and containers in memory, nothing runs."""

    name = "fake"
    kubelet_rotates_logs = True

    def __init__(self, pod_cidr: str = "") -> None:
        self.ipam = PodIPAM(pod_cidr)
        self.sandboxes: dict[str, PodSandbox] = {}
        self.containers: dict[str, Container] = {}
        # What each container was created with (its env, mounts, ...), for tests to read.
        self.container_configs: dict[str, ContainerConfig] = {}
        self.calls: list[tuple[Any, ...]] = []
        self.behaviours: dict[str, ContainerBehaviour] = {}
        self.image_errors: dict[str, str] = {}
        self.image_users: dict[str, ImageUser] = {}
        self.sandbox_configs: dict[str, PodSandboxConfig] = {}
        self.images: set[str] = set()  # pulled so far
        self.runtime_ready = True
        self.network_ready = True
        self.logs: dict[str, list[LogLine]] = {}
        self.execs: dict[tuple[str, ...], ExecResult] = {}
        self.exec_handler: Callable[[Container, tuple[str, ...]], ExecResult | None] | None = None
        self.files: dict[tuple[str, str], bytes] = {}
        self.pids: dict[str, int] = {}
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
        self._ids = itertools.count(1)
        self._log_written = asyncio.Event()

    # ---- test helpers ------------------------------------------------------------------

    def behave(
        self,
        container_name: str,
        *,
        start_error: str = "",
        exit_code: int | None = None,
        exit_after: float = 0.0,
        logs: Sequence[str] = (),
        term_after: float | None = 0.0,
    ) -> None:
        self.behaviours[container_name] = ContainerBehaviour(
            start_error, exit_code, exit_after, tuple(logs), term_after
        )

    def write_log(self, container_id: str, text: str, stream: str = "stdout") -> None:
        self.logs.setdefault(container_id, []).append(LogLine(time.time(), stream, text))
        self._log_written.set()

    def kill(self, container_id: str, exit_code: int = 137, reason: str = "Error") -> None:
        """A running container dies now (crash, OOM kill)."""
        container = self._get(container_id)
        if container.state == ContainerState.RUNNING:
            self._exit(container, exit_code, reason)
            self._log_written.set()

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
        self.sandbox_configs[sandbox_id] = config
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
        self.sandbox_configs.pop(sandbox_id, None)

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

    async def image_user(self, image: str) -> ImageUser:
        self.calls.append(("image_user", image))
        return self.image_users.get(image, ImageUser())

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
        self.container_configs[container_id] = config
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
        for line in behaviour.logs:
            self.write_log(container_id, line)

    async def stop_container(self, container_id: str, timeout: float) -> None:
        self.calls.append(("stop_container", container_id, timeout))
        container = self.containers.get(container_id)
        if container is None:
            return
        self._advance(container)
        if container.state == ContainerState.RUNNING:
            # CRI StopContainer: SIGTERM, then SIGKILL once `timeout` seconds have passed.
            self.calls.append(("signal", container_id, "SIGTERM"))
            behaviour = self.behaviours.get(container.name, ContainerBehaviour())
            term_after = behaviour.term_after
            if term_after is not None and term_after <= timeout:
                if term_after > 0:
                    await self.sleep(term_after)
                if container.state == ContainerState.RUNNING:
                    self._exit(container, 0, "Completed")  # nginx exits 0 on SIGTERM
            else:
                await self.sleep(timeout)
                if container.state == ContainerState.RUNNING:
                    self.calls.append(("signal", container_id, "SIGKILL"))
                    self._exit(container, 137, "Error")
            self._log_written.set()
        elif container.state == ContainerState.CREATED:
            self._exit(container, 0, "Completed")

    async def remove_container(self, container_id: str) -> None:
        self.calls.append(("remove_container", container_id))
        self.containers.pop(container_id, None)
        self.logs.pop(container_id, None)

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

    async def container_pid(self, container_id: str) -> int:
        container = self._get(container_id)
        self._advance(container)
        running = container.state == ContainerState.RUNNING
        return self.pids.get(container_id, 0) if running else 0

    # ---- logs and exec -----------------------------------------------------------------

    async def exec_sync(
        self, container_id: str, command: Sequence[str], timeout: float
    ) -> ExecResult:
        cmd = tuple(command)
        self.calls.append(("exec_sync", container_id, cmd))
        container = self._get(container_id)
        self._advance(container)
        if container.state != ContainerState.RUNNING:
            raise NotFoundError(f"container {container_id} is not running")
        return self._scripted(container, cmd)

    def _scripted(self, container: Container, cmd: tuple[str, ...]) -> ExecResult:
        if self.exec_handler is not None:
            handled = self.exec_handler(container, cmd)
            if handled is not None:
                return handled
        if cmd in self.execs:
            return self.execs[cmd]
        return self._builtin_exec(container, cmd)

    async def exec_stream(self, container_id: str, options: ExecOptions) -> ExecSession:
        """A played session (fake_streams.py): `cat` echoes, `tar` reads and writes `files`."""
        self.calls.append(("exec_stream", container_id, options.command))
        container = self._get(container_id)
        self._advance(container)
        if container.state != ContainerState.RUNNING:
            raise NotFoundError(f"container {container_id} is not running")

        def record(what: str, *args: object) -> None:
            self.calls.append((what, container_id, *args))

        session = fake_streams.FakeExecSession(options, record)
        fake_streams.play(
            session, self.files, container.name, lambda cmd: self._scripted(container, cmd)
        )
        return session

    async def port_forward(
        self, sandbox_id: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """An echo of a port the sandbox's containers declare; others refused."""
        self.calls.append(("port_forward", sandbox_id, port))
        if sandbox_id not in self.sandboxes:
            raise NotFoundError(f"pod sandbox {sandbox_id} not found")
        declared = {
            p.container_port
            for cid, config in self.container_configs.items()
            if cid in self.containers and self.containers[cid].sandbox_id == sandbox_id
            for p in config.ports
        }
        reader, writer = await fake_streams.echo_connection(declared, port, sandbox_id)
        return reader, writer

    def _builtin_exec(self, container: Container, cmd: tuple[str, ...]) -> ExecResult:
        if not cmd:
            return ExecResult(126, b"", b"exec: no command\n")
        if cmd[0] == "echo":
            return ExecResult(0, (" ".join(cmd[1:]) + "\n").encode())
        if cmd[0] in ("true", "false"):
            return ExecResult(0 if cmd[0] == "true" else 1)
        if cmd[0] == "cat" and len(cmd) == 2:
            data = self.files.get((container.name, cmd[1]))
            if data is None:
                return ExecResult(1, b"", f"cat: {cmd[1]}: No such file or directory\n".encode())
            return ExecResult(0, data)
        if cmd[0] == "test" and len(cmd) == 3 and cmd[1] in ("-d", "-f", "-e"):
            ours = [p for (name, p) in self.files if name == container.name]
            is_file = cmd[2] in ours
            is_dir = any(p.startswith(cmd[2].rstrip("/") + "/") for p in ours)
            found = {"-d": is_dir, "-f": is_file, "-e": is_dir or is_file}[cmd[1]]
            return ExecResult(0 if found else 1)
        message = f'exec: "{cmd[0]}": executable file not found in $PATH\n'
        return ExecResult(127, b"", message.encode())

    async def container_logs(
        self, container_id: str, *, follow: bool = False, tail: int | None = None
    ) -> AsyncIterator[LogLine]:
        container = self._get(container_id)
        lines = self.logs.get(container_id, [])
        sent = max(0, len(lines) - tail) if tail is not None else 0
        while True:
            lines = self.logs.get(container_id, [])
            while sent < len(lines):
                yield lines[sent]
                sent += 1
            self._advance(container)
            if not follow or container.state == ContainerState.EXITED:
                return
            if container_id not in self.containers:
                return
            self._log_written.clear()
            # Scripted exits are lazy: look again now and then.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._log_written.wait(), 0.1)

    async def reopen_container_log(self, container_id: str) -> None:
        self.calls.append(("reopen_container_log", container_id))
        container = self._get(container_id)
        if container.state != ContainerState.RUNNING:
            raise ContainerRuntimeError(f"container {container_id} is not running")
        if container.log_path:
            await asyncio.to_thread(Path(container.log_path).touch)

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
