"""ContainerRuntime: the kubelet's one door to whatever runs containers, modelled on CRI.

Kubernetes' kubelet never talks to containerd or Docker directly: it speaks
the Container Runtime Interface (CRI), a gRPC API with two services
(RuntimeService, ImageService). tinykube's kubelet does the same through this
abstract class, whose methods are CRI's calls with Python names, so the pod
worker's code is the same whether the node is hollow or real:

    this class                      CRI (k8s.io/cri-api runtime/v1)
    ---------------------------     ------------------------------------------
    version()                       RuntimeService.Version
    status()                        RuntimeService.Status (RuntimeReady, NetworkReady)
    update_runtime_config(cidr)     RuntimeService.UpdateRuntimeConfig (pod CIDR)
    run_pod_sandbox(config)         RunPodSandbox + PodSandboxStatus (for the IP)
    stop_pod_sandbox(id)            StopPodSandbox      (idempotent)
    remove_pod_sandbox(id)          RemovePodSandbox    (idempotent)
    pod_sandbox_status(id)          PodSandboxStatus
    list_pod_sandboxes(pod_uid=)    ListPodSandbox with a label filter
    image_status(image)             ImageService.ImageStatus -> image ref or None
    image_user(image)               ImageService.ImageStatus -> its uid / username
    pull_image(image)               ImageService.PullImage -> image ref
    create_container(sb, config)    CreateContainer
    start_container(id)             StartContainer
    stop_container(id, timeout)     StopContainer (SIGTERM, SIGKILL after `timeout` s)
    remove_container(id)            RemoveContainer     (idempotent)
    list_containers(sandbox_id=)    ListContainers with a sandbox filter
    container_status(id)            ContainerStatus
    exec_sync(id, cmd, timeout)     ExecSync -> ExecResult(exit_code, stdout, stderr)
    exec_stream(id, options)        Exec -> an ExecSession with stdin/stdout/stderr attached
    port_forward(sandbox, port)     PortForward -> a connection inside the sandbox's network
    container_logs(id, follow, tail) reading the CRI log file (ContainerStatus.log_path)
    reopen_container_log(id)        ReopenContainerLog (after the kubelet rotated the file)
    container_pid(id)               ContainerStatus verbose info "pid" (for cgroup stats)

How the three runtimes fill it in:

* `fake` (runtime/fake.py): in memory; sandboxes get an IP from the node's
  podCIDR, containers "run" until stopped. The hollow node.
* `containerd` (runtime/cri.py): a grpc.aio client of containerd's CRI
  socket; each method is one CRI call and the dataclasses below are built
  from CRI's messages. containerd calls the CNI plugin inside RunPodSandbox.
* `docker` (runtime/docker.py): the Docker SDK behind asyncio.to_thread, as
  Kubernetes' dockershim did: a sandbox is a `pause` container holding the
  network namespace, the kubelet-side adapter calls the CNI plugin itself,
  and the labels below are stored as Docker labels.

Identity. The kubelet recognises its own sandboxes after a restart by the pod
uid, never by name: a sandbox carries the labels `io.kubernetes.pod.uid`,
`io.kubernetes.pod.name`, `io.kubernetes.pod.namespace` (as Kubernetes'
kuberuntime does) and a container `io.kubernetes.container.name`. Runtimes
must store `labels` and give them back in list/status calls; the dataclasses
also expose the parsed fields (`pod_uid`, `name`) so callers need not read
labels. `attempt` counts sandboxes (and containers) made for the same pod
(container name), which is what `restartCount` reports.

Logs and exec (the kubelet server, probes, preStop hooks). CRI has no
"read logs" call: the runtime writes each container's output to the file
named by the sandbox's log_directory + the container's log_path, one line
per record in the CRI format `2024-05-01T10:00:00.123456789Z stdout F text`
(F = full line, P = partial), and the kubelet reads that file. Here that
reading sits behind `container_logs`, so a runtime without files (the fake)
can serve lines from memory. Its contract:

* yields LogLine(time, stream, text) oldest first; `tail=N` starts at the
  last N lines (the last N *full* lines: P records are joined first);
* without `follow` it ends at the current end of the log;
* with `follow` it keeps yielding new lines as they are written, across a
  rotation of the file, and ends once the container has exited and everything
  written has been yielded (re-check the state every ~0.2 s, or on inotify);
  cancelling the iterator (the caller went away) must leave nothing running;
* a container that has been removed raises NotFoundError; a container that
  exists but never wrote anything yields nothing.

`exec_sync(container_id, command, timeout)` is CRI ExecSync: run `command`
(no shell) in the running container, wait at most `timeout` seconds, and
return the exit code with stdout/stderr as bytes. A command that cannot be
started (not found) is *not* an error: it returns the runtime's exit code
(126/127) and message, as `kubectl exec` shows. Only a container that is
not running, or a transport failure, raises (NotFoundError /
ContainerRuntimeError). A timeout raises ExecTimeout.

Conventions: ids are opaque strings. Every method may raise
kubelet.errors.ContainerRuntimeError; an unknown id raises NotFoundError,
except in the stop/remove calls, which succeed on something already gone
(CRI requires them to be idempotent). Times are Unix seconds (float).
The dataclasses are plain values: protobuf stays inside real adapters.
"""

from __future__ import annotations

import abc
import asyncio
import enum
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from kubelet.errors import ContainerRuntimeError
from kubelet.runtime.netns_dial import open_connection as open_in_netns
from kubelet.runtime.streaming import ExecOptions, ExecSession

# Labels shared with Kubernetes' kuberuntime (pkg/kubelet/types/labels.go).
POD_UID_LABEL = "io.kubernetes.pod.uid"
POD_NAME_LABEL = "io.kubernetes.pod.name"
POD_NAMESPACE_LABEL = "io.kubernetes.pod.namespace"
CONTAINER_NAME_LABEL = "io.kubernetes.container.name"


class SandboxState(enum.Enum):
    """CRI PodSandboxState."""

    READY = "SANDBOX_READY"
    NOTREADY = "SANDBOX_NOTREADY"


class ContainerState(enum.Enum):
    """CRI ContainerState."""

    CREATED = "CONTAINER_CREATED"
    RUNNING = "CONTAINER_RUNNING"
    EXITED = "CONTAINER_EXITED"
    UNKNOWN = "CONTAINER_UNKNOWN"


@dataclass(frozen=True)
class RuntimeVersion:
    """CRI VersionResponse: which runtime, which version, which CRI version."""

    runtime_name: str  # "fake", "containerd", "docker"
    runtime_version: str  # "1.6.20"
    runtime_api_version: str = "v1"  # the CRI version spoken

    def __str__(self) -> str:
        """The node's containerRuntimeVersion: `containerd://1.6.20`."""
        return f"{self.runtime_name}://{self.runtime_version}"


@dataclass(frozen=True)
class RuntimeStatus:
    """CRI Status: the two conditions the node's Ready condition depends on."""

    runtime_ready: bool = True
    network_ready: bool = True
    message: str = ""


@dataclass(frozen=True)
class PortMapping:
    """CRI PortMapping: a container port, published on the node if host_port is set."""

    container_port: int
    protocol: str = "TCP"
    host_port: int = 0
    host_ip: str = ""


@dataclass(frozen=True)
class DNSConfig:
    """CRI DNSConfig: the sandbox's resolv.conf (kubelet/network_dns.py decides it)."""

    servers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class SeccompProfile:
    """CRI SecurityProfile: the runtime's default filter, none, or a profile file on the node."""

    type: str = "Unconfined"  # "RuntimeDefault", "Unconfined" or "Localhost"
    localhost_ref: str = ""  # Localhost: the profile's absolute path on the node


@dataclass(frozen=True)
class LinuxSandboxSecurity:
    """CRI LinuxSandboxSecurityContext: the pod-level securityContext, for the sandbox."""

    run_as_user: int | None = None
    run_as_group: int | None = None
    supplemental_groups: tuple[int, ...] = ()
    privileged: bool = False  # any container of the pod is privileged
    seccomp: SeccompProfile = SeccompProfile()


@dataclass(frozen=True)
class PodSandboxConfig:
    """CRI PodSandboxConfig: what a runtime needs to set up a pod's shared namespaces."""

    name: str
    namespace: str
    uid: str
    attempt: int = 0
    hostname: str = ""
    host_network: bool = False
    port_mappings: tuple[PortMapping, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    dns: DNSConfig | None = None  # None: the node's own resolv.conf
    host_pid: bool = False  # hostPID: the node's PID namespace
    host_ipc: bool = False  # hostIPC: the node's IPC namespace
    share_process_namespace: bool = False  # one PID namespace for the pod's containers
    security: LinuxSandboxSecurity | None = None  # None: the runtime's defaults


@dataclass
class PodSandbox:
    """A sandbox as the runtime reports it (CRI PodSandbox + PodSandboxStatus)."""

    id: str
    name: str
    namespace: str
    pod_uid: str
    attempt: int
    state: SandboxState
    created_at: float
    ip: str = ""  # empty for hostNetwork pods: they use the node's address
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Mount:
    """CRI Mount: a host path bind-mounted at container_path."""

    container_path: str
    host_path: str
    read_only: bool = False


@dataclass(frozen=True)
class LinuxResources:
    """CRI LinuxContainerResources (cgroup settings); 0 means unset."""

    cpu_period: int = 0
    cpu_quota: int = 0
    cpu_shares: int = 0
    memory_limit_in_bytes: int = 0


@dataclass(frozen=True)
class LinuxContainerSecurity:
    """CRI LinuxContainerSecurityContext: who the container's process is and what it may do.

    kubelet/runtime/security_context.py computes it from the pod's and the
    container's securityContext. `run_as_user` None (and no username) means
    the image's USER; capability names are Kubernetes' ("NET_RAW", "ALL").
    """

    run_as_user: int | None = None
    run_as_username: str = ""
    run_as_group: int | None = None
    supplemental_groups: tuple[int, ...] = ()
    readonly_rootfs: bool = False
    privileged: bool = False
    no_new_privs: bool = False
    capabilities_add: tuple[str, ...] = ()
    capabilities_drop: tuple[str, ...] = ()
    seccomp: SeccompProfile = SeccompProfile()

    def user_spec(self) -> str:
        """Docker's and runc's `user[:group]`: "1000:3000", "nobody", "" for the image's."""
        user = self.run_as_username or (
            str(self.run_as_user) if self.run_as_user is not None else ""
        )
        if user and self.run_as_group is not None:
            return f"{user}:{self.run_as_group}"
        return user


@dataclass(frozen=True)
class ImageUser:
    """CRI Image.uid / Image.username: who an image runs as, from its config's User.

    Both unset: the image names no user, which Kubernetes treats as root.
    """

    uid: int | None = None
    username: str = ""

    @classmethod
    def parse(cls, user: str) -> ImageUser:
        """An image config's User -> ImageUser: "1000:1000" -> uid 1000, "nginx" -> username.

        The group after ':' is dropped, as containerd's ImageStatus does.
        """
        name = user.split(":", 1)[0]
        if not name:
            return cls()
        try:
            return cls(uid=int(name))
        except ValueError:
            return cls(username=name)


@dataclass(frozen=True)
class ContainerConfig:
    """CRI ContainerConfig: one container of the pod spec, resolved for the runtime.

    `mounts`, `resources`, `ports` and `security` are what a runtime that starts real
    processes applies (kubelet/runtime/cri_convert.py computes them from the
    pod spec); the fake runtime records them and otherwise ignores them.
    """

    name: str
    image: str
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    working_dir: str = ""
    env: tuple[tuple[str, str], ...] = ()
    attempt: int = 0
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    mounts: tuple[Mount, ...] = ()
    resources: LinuxResources | None = None
    ports: tuple[PortMapping, ...] = ()
    security: LinuxContainerSecurity | None = None  # None: the runtime's defaults
    stdin: bool = False  # keep stdin open (`kubectl attach`, `run -i`)
    stdin_once: bool = False  # close it when the first attached client detaches
    tty: bool = False  # a terminal: stdout and stderr become one stream


@dataclass
class Container:
    """A container as the runtime reports it (CRI Container + ContainerStatus)."""

    id: str
    sandbox_id: str
    name: str
    attempt: int
    image: str  # the image as asked for ("nginx:1.25")
    image_ref: str  # what it resolved to ("docker.io/library/nginx@sha256:...")
    state: ContainerState
    created_at: float
    started_at: float = 0.0
    finished_at: float = 0.0
    exit_code: int = 0
    reason: str = ""  # "Completed", "Error", "OOMKilled"
    message: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    log_path: str = ""  # ContainerStatus.log_path: the file the runtime writes the output to


@dataclass(frozen=True)
class ExecResult:
    """CRI ExecSyncResponse."""

    exit_code: int
    stdout: bytes = b""
    stderr: bytes = b""


@dataclass(frozen=True)
class LogLine:
    """One full line of a container's log (a CRI log record, partials joined)."""

    time: float
    stream: str  # "stdout" or "stderr"
    text: str  # without the trailing newline


class ContainerRuntime(abc.ABC):
    """The CRI surface the kubelet uses; see the module docstring for the mapping."""

    #: The scheme of container ids in pod status: `fake://abc`, `containerd://abc`.
    name: str = "runtime"
    #: Log rotation: the kubelet's (logrotation.py: rename, reopen_container_log) or, when
    #: False, the runtime's own (Docker's json-file driver), which the kubelet hands its
    #: containerLogMaxSize in bytes (< 0: no rotation) and containerLogMaxFiles.
    kubelet_rotates_logs: bool = False
    log_max_size: int = 10 * 1024 * 1024
    log_max_files: int = 5

    @abc.abstractmethod
    async def version(self) -> RuntimeVersion: ...

    @abc.abstractmethod
    async def status(self) -> RuntimeStatus: ...

    @abc.abstractmethod
    async def update_runtime_config(self, pod_cidr: str) -> None:
        """Tell the runtime the node's podCIDR once the node IPAM controller has set it."""

    # ---- sandboxes ---------------------------------------------------------------------

    @abc.abstractmethod
    async def run_pod_sandbox(self, config: PodSandboxConfig) -> PodSandbox:
        """Create and start a sandbox (network namespace + IP); returns it READY."""

    @abc.abstractmethod
    async def stop_pod_sandbox(self, sandbox_id: str) -> None:
        """Stop every container in it and tear down its network (release its IP)."""

    @abc.abstractmethod
    async def remove_pod_sandbox(self, sandbox_id: str) -> None:
        """Remove a sandbox and its containers; stops it first if needed."""

    @abc.abstractmethod
    async def pod_sandbox_status(self, sandbox_id: str) -> PodSandbox: ...

    @abc.abstractmethod
    async def list_pod_sandboxes(self, *, pod_uid: str = "") -> list[PodSandbox]:
        """Every sandbox, or those of one pod (by the pod uid label)."""

    # ---- images ------------------------------------------------------------------------

    @abc.abstractmethod
    async def image_status(self, image: str) -> str | None:
        """The image reference if `image` is present on the node, else None."""

    @abc.abstractmethod
    async def pull_image(self, image: str) -> str:
        """Pull `image`; returns the image reference (its digest form) to report as imageID."""

    async def image_user(self, image: str) -> ImageUser:
        """Who `image` runs as (ImageStatus' uid/username), for the runAsNonRoot check.

        Not abstract: a runtime that cannot tell answers "no user named", which the
        kubelet treats as root -- so runAsNonRoot refuses rather than trusts.
        """
        return ImageUser()

    # ---- containers --------------------------------------------------------------------

    @abc.abstractmethod
    async def create_container(
        self, sandbox_id: str, config: ContainerConfig, sandbox_config: PodSandboxConfig
    ) -> str:
        """Create (not start) a container in the sandbox; returns its id."""

    @abc.abstractmethod
    async def start_container(self, container_id: str) -> None: ...

    @abc.abstractmethod
    async def stop_container(self, container_id: str, timeout: float) -> None:
        """Ask the container to stop; kill it after `timeout` seconds. Idempotent."""

    @abc.abstractmethod
    async def remove_container(self, container_id: str) -> None: ...

    @abc.abstractmethod
    async def list_containers(self, *, sandbox_id: str = "") -> list[Container]: ...

    @abc.abstractmethod
    async def container_status(self, container_id: str) -> Container: ...

    # ---- logs and exec (not abstract: a runtime may lack them; callers get an error) -----

    async def exec_sync(
        self, container_id: str, command: Sequence[str], timeout: float
    ) -> ExecResult:
        """Run `command` in the running container; see "Logs and exec" above."""
        raise ContainerRuntimeError(f"runtime {self.name} does not support exec")

    def container_logs(
        self, container_id: str, *, follow: bool = False, tail: int | None = None
    ) -> AsyncIterator[LogLine]:
        """The container's log lines; see "Logs and exec" above."""
        raise ContainerRuntimeError(f"runtime {self.name} does not support logs")

    async def reopen_container_log(self, container_id: str) -> None:
        """CRI ReopenContainerLog: go on writing the container's output to a new file."""
        raise ContainerRuntimeError(f"runtime {self.name} does not reopen container logs")

    # ---- streaming: exec -i and port-forward (runtime/streaming.py) -------------------------

    async def exec_stream(self, container_id: str, options: ExecOptions) -> ExecSession:
        """CRI Exec: start `options.command` in the running container, streams attached."""
        raise ContainerRuntimeError(f"runtime {self.name} does not support streaming exec")

    async def sandbox_netns(self, sandbox_id: str) -> str:
        """The path of the sandbox's network namespace; "" when it is the node's own."""
        raise ContainerRuntimeError(f"runtime {self.name} does not support port forwarding")

    async def port_forward(
        self, sandbox_id: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """CRI PortForward: a connection to 127.0.0.1:`port` in the sandbox's network."""
        return await open_in_netns(await self.sandbox_netns(sandbox_id), port)

    async def container_pid(self, container_id: str) -> int:
        """The host PID of a running container's first process, 0 when it has none.

        The kubelet's stats (kubelet/stats/) find the container's cgroup from it
        (/proc/PID/cgroup). CRI has no call for it: containerd tells it in
        ContainerStatus' verbose info, Docker in `State.Pid`. Not abstract: a
        runtime that runs no processes answers 0.
        """
        return 0

    async def remove_pod_logs(self, pod_uid: str) -> None:
        """Delete the pod's log directory once the pod is gone. Nothing by default."""
        return None

    async def close(self) -> None:
        """Release connections (a CRI channel, a Docker client). Nothing by default."""
        return None
