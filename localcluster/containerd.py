"""A private containerd: its own root, state, socket and runc root (kind's per-node runtime).

Why private instances. Tests, `tinykube up` and the benchmarks each need a
containerd they fully own: several can run on one host beside the host's own
containerd, and stopping one must leave nothing behind. DESIGN §6 lists what
must be separate for that to work -- every path containerd and runc write:

    <base>/config.toml          the config below
    <base>/root                 content store, snapshots (overlayfs), metadata
    <base>/state                shim sockets, bundles, and (netns_mounts_under_state_dir)
                                the pods' network namespaces
    <base>/containerd.sock      the gRPC (and CRI) socket; .ttrpc beside it
    <base>/runc                 runc's --root (container state files)
    <base>/opt                  the opt plugin's directory (else /opt/containerd)
    <base>/containerd.log       its stderr

CRI plugin settings that matter here: `restrict_oom_score_adj = true` (the
machines lack CAP_SYS_RESOURCE; without it every sandbox fails with "can't get
final child's PID from pipe: EOF"), `sandbox_image` (our offline pause image),
`cni.bin_dir` / `cni.conf_dir`, the stream server on port 0 (no clash between
instances), the overlayfs snapshotter, and optionally `registry.config_path`
(a hosts.toml tree that sends docker.io pulls to a local registry).

Teardown, in order, each step idempotent and run even when start failed:

1. through CRI, stop and remove every pod sandbox (this stops the
   containers and calls CNI DEL, so the bridge plugin frees the IP and
   deletes the veth);
2. SIGTERM containerd (SIGKILL after 5 s);
3. kill whatever survived it: the runc containers under our runc root and
   the shims whose command line names our socket (found in /proc by that
   path, which no other process can have);
4. unmount everything mounted under <base>, deepest first (rootfs overlays,
   netns bind mounts, shm).

The spawn, readiness loop, signals and leftover hunt are localcluster/daemon.py's
(PrivateDaemon), shared with dockerd.py.

Failure modes: a containerd that does not answer within `timeout` raises
ContainerdError with the tail of its log; the instance is stopped first.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

from localcluster.daemon import PrivateDaemon, kill_leftovers, started
from localcluster.daemon import mounts_under as mounts_under  # callers import them from here
from localcluster.daemon import unmount_under as unmount_under

log = logging.getLogger(__name__)

CNI_BIN_DIR = "/usr/lib/cni"  # Debian's containernetworking-plugins
K8S_NAMESPACE = "k8s.io"  # the containerd namespace the CRI plugin uses


class ContainerdError(RuntimeError):
    """containerd would not start or answer."""


@dataclass
class ContainerdConfig:
    """What differs between instances; paths default to places under `base`."""

    base: Path
    sandbox_image: str = "registry.k8s.io/pause:3.9"
    cni_bin_dir: str = CNI_BIN_DIR
    cni_conf_dir: str = ""  # default <base>/cni/net.d
    registry_config_path: str = ""  # a hosts.toml tree; empty: containerd's defaults
    log_level: str = "info"
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def root(self) -> Path:
        return self.base / "root"

    @property
    def state(self) -> Path:
        return self.base / "state"

    @property
    def socket(self) -> Path:
        return self.base / "containerd.sock"

    @property
    def runc_root(self) -> Path:
        return self.base / "runc"

    @property
    def config_file(self) -> Path:
        return self.base / "config.toml"

    @property
    def log_file(self) -> Path:
        return self.base / "containerd.log"

    @property
    def cni_conf(self) -> str:
        return self.cni_conf_dir or str(self.base / "cni" / "net.d")

    @property
    def endpoint(self) -> str:
        """The kubelet's --runtime-endpoint for this instance."""
        return f"unix://{self.socket}"

    def render(self) -> str:
        """config.toml (version 2) for this instance."""
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        registry = ""
        if self.registry_config_path:
            registry = f'\n[{cri}.registry]\n  config_path = "{self.registry_config_path}"\n'
        return f"""version = 2
root = "{self.root}"
state = "{self.state}"
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
]

[grpc]
  address = "{self.socket}"

[ttrpc]
  address = "{self.socket}.ttrpc"

[debug]
  level = "{self.log_level}"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{self.base / "opt"}"

[{cri}]
  sandbox_image = "{self.sandbox_image}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false

[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[{cri}.containerd.runtimes.runc.options]
  Root = "{self.runc_root}"
  SystemdCgroup = false

[{cri}.cni]
  bin_dir = "{self.cni_bin_dir}"
  conf_dir = "{self.cni_conf}"
{registry}"""


class Containerd(PrivateDaemon[ContainerdConfig]):
    """One containerd process for `config`; `start()` waits until CRI answers."""

    name = "containerd"
    error = ContainerdError
    poll_interval = 0.05

    def start(self, timeout: float = 20.0) -> None:
        cfg = self.config
        for path in (cfg.root, cfg.state, cfg.runc_root, Path(cfg.cni_conf)):
            path.mkdir(parents=True, exist_ok=True)
        cfg.config_file.write_text(cfg.render())
        with contextlib.suppress(FileNotFoundError):
            cfg.socket.unlink()
        self.spawn(["containerd", "--config", str(cfg.config_file)], timeout)

    def probe(self) -> str | None:
        """CRI Version (the socket appears before CRI is up)."""
        import grpc

        from protos import cri_pb2, cri_pb2_grpc

        with grpc.insecure_channel(f"unix://{self.socket}") as channel:
            stub = cri_pb2_grpc.RuntimeServiceStub(channel)
            try:
                stub.Version(cri_pb2.VersionRequest(), timeout=2)
                return None
            except grpc.RpcError as err:
                return str(err.details())

    def restart(self, timeout: float = 20.0) -> None:
        """Stop the daemon alone and start it again: the shims, and so the containers, live on.

        This is what an upgrade or a crash of containerd looks like to the
        kubelet: the CRI socket goes away for a while, the pods keep running,
        and the new daemon finds them again through its shims.
        """
        self.terminate(5.0)
        self.start(timeout)

    def stop(self) -> None:
        """Everything in the module docstring's teardown; safe to call twice."""
        if self.running:
            with contextlib.suppress(Exception):
                self.remove_all_sandboxes()
        self.terminate(5.0)
        self.kill_leftovers()
        unmount_under(self.config.base)

    def remove_all_sandboxes(self) -> None:
        import grpc

        from protos import cri_pb2, cri_pb2_grpc

        with grpc.insecure_channel(f"unix://{self.socket}") as channel:
            stub = cri_pb2_grpc.RuntimeServiceStub(channel)
            items = stub.ListPodSandbox(cri_pb2.ListPodSandboxRequest(), timeout=10).items
            for sandbox in items:
                for call, req in (
                    (stub.StopPodSandbox, cri_pb2.StopPodSandboxRequest),
                    (stub.RemovePodSandbox, cri_pb2.RemovePodSandboxRequest),
                ):
                    try:
                        call(req(pod_sandbox_id=sandbox.id), timeout=30)
                    except grpc.RpcError as err:
                        log.warning(
                            "sandbox teardown failed",
                            extra={"sandbox": sandbox.id, "error": err.details()},
                        )

    def kill_leftovers(self) -> None:
        """Kill runc containers under our runc root and shims bound to our socket."""
        marker = str(self.socket).encode()
        kill_leftovers(self.config.runc_root, lambda arg: arg in (marker, marker + b".ttrpc"))


def running(
    config: ContainerdConfig, timeout: float = 20.0
) -> contextlib.AbstractContextManager[Containerd]:
    """A started containerd, stopped and cleaned up however the block ends."""
    return started(Containerd(config), timeout)
