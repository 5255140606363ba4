"""One namespace node of a local cluster: its config, its daemons, and how each is stopped.

A node of `tinykube up` is what a Vagrant VM is, minus the VM: a network
namespace (`tk-<cluster>-node1`, eth1 on the underlay bridge) in which run

    containerd     --config <node>/containerd/config.toml   (its own root, state, socket, runc root)
      or dockerd   --config-file <node>/docker/daemon.json -H unix://<node>/docker/docker.sock
    tinykube kubelet  --node-name node1 --node-ip 10.201.0.11 --address 10.201.0.11 ...
                      --network-agent --iface eth1 ...   (the netplugin agent in-process)
    tinykube apiserver --listen 10.201.0.11:6443 --listen unix:<dir>/api.sock
                       --token-listen 10.201.0.11:6444 --tls-cert-file ...   (node1 only)

each started as `nsenter --net=/run/netns/tk-<cluster>-node1 -- <argv>`, so it
sees the node's links and addresses but the host's filesystem (paths stay
valid from outside, which is what lets `down` clean up from the host).
Every config file and command line comes from localcluster.nodeconfig --
the same renderer the VMs' provisioning uses -- with the namespace layout
`NodePaths.under(<cluster dir>/node1)` (so each node has its own CNI conf,
bin and IPAM data directories) and no masquerade (nothing leaves the
machine); only `--address` (the kubelet server on eth1's address alone) and
the short timings of `--fast-failover` are added here.

Processes. `spawn()` starts each in its own session (so its process group
is its pid and a stop reaches its children), stdout and stderr to
`<cluster>/logs/<node>-<component>.log`, and returns a ProcessRecord (pid
+ start time) that the cluster saves at once. `stop_process()` sends SIGTERM
to the group, waits, then SIGKILL -- only when the record still matches
the live process (clusterstate.ProcessRecord.alive).

containerd's teardown (`stop_containerd`) works with or without a live
daemon, because `down` must also work after a crash: through CRI, stop and
remove every sandbox while containerd answers (CNI DEL frees the pod
addresses); stop containerd; kill the shims and runc containers it left
(found by its socket path and runc root); unmount everything under the
node's directory. dockerd's (`stop_dockerd`, for `--runtime docker`) is the
same in Docker's terms: remove the kubelet's containers through the API,
stop dockerd, kill what names its exec root, unmount. With Docker, the
pause image is not behind a docker.io mirror: `start_dockerd` pulls it from
the registry by address and tags it `registry.k8s.io/pause:3.9`
(Dockerd.preload_images). containerd's teardown, as commands:

    crictl -r unix://<sock> stopp $(crictl -r unix://<sock> pods -q); crictl ... rmp -a
    kill -TERM -<containerd pid>
    runc --root <node>/containerd/runc/k8s.io delete --force <id>   # each leftover
    umount -l <each mount under <node>>                              # deepest first
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from localcluster import nodeconfig
from localcluster.clusterstate import ProcessRecord, process_start_time
from localcluster.containerd import Containerd, ContainerdError, unmount_under
from localcluster.dockerd import Dockerd, DockerdConfig, DockerdError
from localcluster.netns import Machine, NetNS
from localcluster.processes import REPO, tinykube_cmd

log = logging.getLogger(__name__)

# Short timings for failover tests (as tests/e2e/hollow.py): a dead node is
# NotReady after ~6 s and its pods are evicted 5 s later.
FAST_APISERVER = ("--node-monitor-grace-period", "6", "--default-toleration-seconds", "5")
FAST_KUBELET = ("--lease-duration", "3", "--node-status-update-frequency", "1")


class NodeError(RuntimeError):
    """A node daemon would not start; carries the component and its log path."""

    def __init__(self, component: str, log_path: str, detail: str) -> None:
        super().__init__(f"{component} failed: {detail} (log: {log_path})")
        self.component = component
        self.log_path = log_path


def spawn(
    argv: Sequence[str],
    log_path: Path,
    ns: NetNS | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> tuple[subprocess.Popen[bytes], ProcessRecord]:
    """Start argv (inside `ns` if given) in its own session, output to log_path;
    `extra_env` is added to this process's environment (nsenter passes it on)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    full = [*(ns.prefix() if ns is not None else []), *argv]
    env = {**os.environ, **extra_env} if extra_env else None
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(
            full,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=REPO,
            start_new_session=True,
            env=env,
        )
    record = ProcessRecord(
        pid=proc.pid,
        start_time=process_start_time(proc.pid, zombie_ok=True),
        argv=full,
        log=str(log_path),
    )
    log.info("process started", extra={"pid": proc.pid, "argv": " ".join(full)})
    return proc, record


def _wait_gone(record: ProcessRecord, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(record.pid)
        if not record.alive():
            return True
        time.sleep(0.05)
    return not record.alive()


def _reap(pid: int) -> None:
    """Collect our own exited child, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def signal_process(record: ProcessRecord, sig: signal.Signals) -> bool:
    """Send `sig` to the record's process group if it is still the process we started."""
    if not record.alive():
        return False
    try:
        os.killpg(record.pid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        os.kill(record.pid, sig)
    return True


def stop_process(record: ProcessRecord, grace: float = 10.0) -> None:
    """SIGTERM the group, SIGKILL after `grace` seconds; a dead or foreign pid is left alone."""
    if not record.alive():
        return
    if signal_process(record, signal.SIGTERM) and not _wait_gone(record, grace):
        signal_process(record, signal.SIGKILL)
        _wait_gone(record, 5.0)
    # Members of its group may outlive the leader (children it did not stop).
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if _group_has_members(record.pid):
            os.killpg(record.pid, signal.SIGKILL)


def _group_has_members(pgid: int) -> bool:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] != "Z":
            return True
    return False


def kill9(record: ProcessRecord) -> None:
    """SIGKILL to the group, as a crash would (tests)."""
    signal_process(record, signal.SIGKILL)
    _wait_gone(record, 5.0)


@dataclass
class LocalNode:
    """A node namespace and the configuration of its daemons."""

    machine: Machine
    config: nodeconfig.NodeConfig
    log_dir: Path
    fast_failover: bool = False

    @property
    def name(self) -> str:
        return self.machine.name

    @property
    def ns(self) -> NetNS:
        return self.machine.ns

    @property
    def paths(self) -> nodeconfig.NodePaths:
        return self.config.paths

    def log_path(self, component: str) -> Path:
        return self.log_dir / f"{self.name}-{component}.log"

    def key(self, component: str) -> str:
        """The process's key in the state file: `node1-kubelet`."""
        return f"{self.name}-{component}"

    def write_config(self) -> None:
        """Render the node's files (nodeconfig) and make the directories its daemons use."""
        nodeconfig.write_all(self.config)
        p = self.paths
        for path in (
            p.cni_bin_dir,
            p.cni_conf_dir,
            p.cni_data_dir,
            p.kubelet_root_dir,
            p.pod_log_dir,
        ):
            Path(path).mkdir(parents=True, exist_ok=True)
        install_cni_bin_dir(p.cni_bin_dir)

    # ---- the API server (the control-plane node) ----------------------------------------

    def apiserver_argv(self, extra_listen: Sequence[str] = (), socket_group: str = "") -> list[str]:
        """The API server's command line: nodeconfig's (the VMs'), plus `extra_listen`
        (the host CLI's socket) and the group that may open its unix sockets."""
        argv = [
            *tinykube_cmd(),
            "apiserver",
            *nodeconfig.apiserver_args(self.config, extra_listen),
        ]
        if socket_group:
            argv += ["--unix-socket-group", socket_group]
        return argv

    def start_apiserver(
        self,
        extra_listen: Sequence[str],
        log_path: Path,
        ready: Callable[[], object],
        socket_group: str = "",
        timeout: float = 30.0,
    ) -> tuple[subprocess.Popen[bytes], ProcessRecord]:
        """`tinykube apiserver` in this node's namespace, TLS on the node's address and on
        each of `extra_listen`; waits until `ready()` succeeds."""
        for address in extra_listen:
            if address.startswith("unix:"):
                Path(address.removeprefix("unix:")).unlink(missing_ok=True)
        argv = self.apiserver_argv(extra_listen, socket_group)
        if self.fast_failover:
            argv.extend(FAST_APISERVER)
        proc, record = spawn(argv, log_path, self.ns)
        record.node = self.name
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise NodeError("apiserver", str(log_path), f"exited with {proc.returncode}")
            with contextlib.suppress(Exception):
                ready()
                return proc, record
            if time.monotonic() > deadline:
                stop_process(record, 5.0)
                raise NodeError("apiserver", str(log_path), f"did not answer in {timeout:.0f} s")
            time.sleep(0.2)

    # ---- containerd -----------------------------------------------------------------------

    def containerd(self) -> Containerd:
        """A handle on this node's containerd (for CRI calls and teardown; not started)."""
        return Containerd(nodeconfig.containerd_config(self.config))

    def start_containerd(
        self, timeout: float = 30.0
    ) -> tuple[subprocess.Popen[bytes], ProcessRecord]:
        p = self.paths
        for path in (p.containerd_root, p.containerd_state, p.runc_root):
            Path(path).mkdir(parents=True, exist_ok=True)
        daemon = self.containerd()
        with contextlib.suppress(FileNotFoundError):
            daemon.socket.unlink()
        log_path = self.log_path("containerd")
        proc, record = spawn(
            ["containerd", "--config", self.paths.containerd_config], log_path, self.ns
        )
        record.node = self.name
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise NodeError(
                    self.key("containerd"), str(log_path), f"exited with {proc.returncode}"
                )
            try:
                daemon.wait_ready(min(2.0, max(0.1, deadline - time.monotonic())))
                return proc, record
            except ContainerdError:
                if time.monotonic() >= deadline:
                    stop_process(record, 5.0)
                    raise NodeError(
                        self.key("containerd"), str(log_path), f"no CRI answer in {timeout:.0f}s"
                    ) from None

    def stop_containerd(self, record: ProcessRecord | None) -> None:
        """The module docstring's teardown; works when containerd is dead too."""
        daemon = self.containerd()
        if record is not None and record.alive():
            try:
                daemon.remove_all_sandboxes()
            except Exception as err:  # a hung or half-started daemon: kill it anyway
                log.warning("sandbox teardown failed", extra={"node": self.name, "error": err})
            stop_process(record, 10.0)
        daemon.kill_leftovers()
        unmount_under(Path(self.paths.containerd_base))

    # ---- dockerd (--runtime docker) ----------------------------------------------------------

    def dockerd(self) -> Dockerd:
        """A handle on this node's dockerd (readiness, image preload, teardown; not started)."""
        base = Path(self.paths.docker_config).parent
        return Dockerd(DockerdConfig(base=base, socket_path=self.paths.docker_socket))

    def dockerd_argv(self) -> list[str]:
        """dockerd with the rendered daemon.json (the VMs' file) plus what a unit passes."""
        daemon = self.dockerd()
        return [
            "dockerd",
            "--config-file",
            self.paths.docker_config,
            "-H",
            daemon.endpoint,
            "--pidfile",
            str(daemon.config.pidfile),
            "--exec-opt",
            "native.cgroupdriver=cgroupfs",
        ]

    def start_dockerd(
        self, preload: Sequence[str] = (), timeout: float = 60.0
    ) -> tuple[subprocess.Popen[bytes], ProcessRecord]:
        """Start dockerd in the namespace, wait for its API, pull `preload` via the mirror."""
        daemon = self.dockerd()
        for stale in (daemon.socket, daemon.config.pidfile):
            stale.unlink(missing_ok=True)
        Path(self.paths.docker_data_root).mkdir(parents=True, exist_ok=True)
        Path(self.paths.docker_exec_root).mkdir(parents=True, exist_ok=True)
        log_path = self.log_path("dockerd")
        proc, record = spawn(self.dockerd_argv(), log_path, self.ns)
        record.node = self.name
        try:
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    raise NodeError(self.key("dockerd"), str(log_path), "exited")
                try:
                    daemon.wait_ready(2.0)
                    break
                except DockerdError:
                    if time.monotonic() >= deadline:
                        raise NodeError(
                            self.key("dockerd"), str(log_path), "no API answer"
                        ) from None
            if preload:
                try:
                    daemon.preload_images(preload, self.config.registry_mirror)
                except DockerdError as err:
                    raise NodeError(self.key("dockerd"), str(log_path), str(err)) from None
        except BaseException:
            stop_process(record, 5.0)
            raise
        return proc, record

    def stop_dockerd(self, record: ProcessRecord | None) -> None:
        """Remove the kubelet's containers, stop dockerd, kill leftovers, unmount."""
        daemon = self.dockerd()
        if record is not None and record.alive():
            try:
                daemon.remove_kubelet_containers()
            except Exception as err:
                log.warning("container teardown failed", extra={"node": self.name, "error": err})
            stop_process(record, 15.0)
        daemon.kill_leftovers()
        unmount_under(daemon.config.base)

    # ---- either runtime ------------------------------------------------------------------

    @property
    def runtime_component(self) -> str:
        return "containerd" if self.config.runtime == "containerd" else "dockerd"

    def start_runtime(
        self, preload: Sequence[str] = ()
    ) -> tuple[subprocess.Popen[bytes], ProcessRecord]:
        self.write_config()
        if self.config.runtime == "containerd":
            return self.start_containerd()
        return self.start_dockerd(preload)

    def stop_runtime(self, record: ProcessRecord | None) -> None:
        if self.config.runtime == "containerd":
            self.stop_containerd(record)
        else:
            self.stop_dockerd(record)

    # ---- the kubelet, with the network agent in its process ---------------------------------

    def kubelet_argv(self) -> list[str]:
        args = [
            *tinykube_cmd(),
            "kubelet",
            *nodeconfig.kubelet_args(self.config),
            "--address",
            self.config.node_ip,
        ]
        if self.fast_failover:
            args.extend(FAST_KUBELET)
        return args

    def start_kubelet(
        self, extra_env: Mapping[str, str] | None = None
    ) -> tuple[subprocess.Popen[bytes], ProcessRecord]:
        """The kubelet in the node's namespace; `extra_env` adds to its environment (fault
        tests arm kubelet/faultpoints.py with it; never set by `tinykube up`)."""
        if extra_env:
            log.info("kubelet started with extra environment", extra={"env": dict(extra_env)})
        proc, record = spawn(self.kubelet_argv(), self.log_path("kubelet"), self.ns, extra_env)
        record.node = self.name
        return proc, record


def install_cni_bin_dir(dest: str) -> None:
    """The node's CNI bin dir: tinykube-cni and the loopback plugin containerd runs first."""
    from netplugin.cni.install import install_bin_dir

    install_bin_dir(dest)
