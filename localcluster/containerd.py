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

Failure modes: a containerd that does not answer within `timeout` raises
ContainerdError with the tail of its log; the instance is stopped first.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

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


class Containerd:
    """One containerd process for `config`; `start()` waits until CRI answers."""

    def __init__(self, config: ContainerdConfig) -> None:
        self.config = config
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.config.socket

    @property
    def endpoint(self) -> str:
        return self.config.endpoint

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 20.0) -> None:
        cfg = self.config
        for path in (cfg.root, cfg.state, cfg.runc_root, Path(cfg.cni_conf)):
            path.mkdir(parents=True, exist_ok=True)
        cfg.config_file.write_text(cfg.render())
        with contextlib.suppress(FileNotFoundError):
            cfg.socket.unlink()
        logfile = cfg.log_file.open("ab")
        try:
            self.proc = subprocess.Popen(
                ["containerd", "--config", str(cfg.config_file)],
                stdout=logfile,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={**os.environ, **cfg.extra_env},
            )
        finally:
            logfile.close()
        log.info("containerd started", extra={"pid": self.proc.pid, "socket": str(cfg.socket)})
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def wait_ready(self, timeout: float) -> None:
        """Poll CRI Version until it answers (the socket appears before CRI is up)."""
        import grpc

        from protos import cri_pb2, cri_pb2_grpc

        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise ContainerdError(f"containerd exited: {self.log_tail()}")
            if self.socket.exists():
                with grpc.insecure_channel(f"unix://{self.socket}") as channel:
                    stub = cri_pb2_grpc.RuntimeServiceStub(channel)
                    try:
                        stub.Version(cri_pb2.VersionRequest(), timeout=2)
                        return
                    except grpc.RpcError as err:
                        last = str(err.details())
            time.sleep(0.05)
        raise ContainerdError(
            f"containerd did not answer in {timeout}s ({last}): {self.log_tail()}"
        )

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.config.log_file.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def restart(self, timeout: float = 20.0) -> None:
        """Stop the daemon alone and start it again: the shims, and so the containers, live on.

        This is what an upgrade or a crash of containerd looks like to the
        kubelet: the CRI socket goes away for a while, the pods keep running,
        and the new daemon finds them again through its shims.
        """
        if self.proc is not None:
            _terminate(self.proc, 5.0)
            self.proc = None
        self.start(timeout)

    def stop(self) -> None:
        """Everything in the module docstring's teardown; safe to call twice."""
        if self.running:
            with contextlib.suppress(Exception):
                self.remove_all_sandboxes()
        if self.proc is not None:
            _terminate(self.proc, 5.0)
            self.proc = None
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
        runc_root = self.config.runc_root
        if runc_root.is_dir():
            for ns_dir in runc_root.iterdir():
                if not ns_dir.is_dir():
                    continue
                for container in ns_dir.iterdir():
                    subprocess.run(
                        ["runc", "--root", str(ns_dir), "delete", "--force", container.name],
                        capture_output=True,
                        check=False,
                    )
        marker = str(self.socket).encode()
        for pid in _pids_with_arg(marker):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                log.info("killed leftover shim", extra={"pid": pid})


def _terminate(proc: subprocess.Popen[bytes], grace: float) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _pids_with_arg(marker: bytes) -> list[int]:
    """Processes whose command line contains `marker` (our socket path), not ourselves."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(arg == marker or arg == marker + b".ttrpc" for arg in args):
            out.append(int(entry.name))
    return out


def mounts_under(base: Path) -> list[str]:
    """Mount points at or below `base` (from /proc/self/mountinfo), deepest first."""
    prefix = str(base.resolve())
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].replace("\\040", " ")
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return sorted(set(found), key=lambda p: (-p.count("/"), p))


def unmount_under(base: Path) -> None:
    """Detach every mount under `base` (lazy: a busy one goes when its last user does)."""
    if not base.exists():
        return
    for point in mounts_under(base):
        result = subprocess.run(["umount", "-l", point], capture_output=True, check=False)
        if result.returncode != 0:
            log.warning(
                "unmount failed", extra={"path": point, "error": result.stderr.decode().strip()}
            )


@contextlib.contextmanager
def running(config: ContainerdConfig, timeout: float = 20.0) -> Iterator[Containerd]:
    """A started containerd, stopped and cleaned up however the block ends."""
    daemon = Containerd(config)
    try:
        daemon.start(timeout)
        yield daemon
    finally:
        daemon.stop()
