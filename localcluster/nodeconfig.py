"""What a node's daemons are configured with: one source for the VMs and `tinykube up`.

A tinykube node runs two or three daemons -- a container runtime (containerd,
or dockerd), the kubelet with the network plugin's agent in its process
(`--network-agent`), and on the control-plane node the API server -- and each
needs a config file or a command line that agrees with the others: the
kubelet's `--runtime-endpoint` must be the socket containerd listens on,
containerd's `cni.conf_dir` must be where the network agent writes its
conflist, and so on. kind keeps these facts in one Go
template per node; tinykube keeps them in `NodeConfig` and the `render_*`
functions below, so that the Vagrant VMs (through `tinykube node
render-config`) and the namespace nodes of `tinykube up` run exactly the same
configuration, and the local end-to-end tests exercise what the VMs run.

Two path layouts, one set of fields:

    NodePaths()                  a real machine (the Vagrant VMs): containerd's
                                 own defaults (/etc/containerd/config.toml,
                                 /var/lib/containerd, /run/containerd/...), the
                                 CNI directories every runtime looks in
                                 (/etc/cni/net.d, /opt/cni/bin), /var/lib/kubelet
    NodePaths.under(base)        a namespace node of `tinykube up`: every path
                                 under one directory, so several nodes share a
                                 host's filesystem without meeting (DESIGN §6)

Every path is absolute. `render_all(cfg)` maps each path to the file's
content; `write_all(cfg, root)` writes them below `root` (a DESTDIR: the
content still names the real paths, so a test can render into a temporary
directory and read what a VM would get).

Worked example -- node2 of the Vagrant cluster, containerd, no mirror, its
kubelet joining by bootstrap token:

    cfg = NodeConfig(node_name="node2", node_ip="192.168.56.12",
                     server="192.168.56.11:6443", tls_bootstrap=True)
    render_all(cfg) ==
        /etc/containerd/config.toml   (root /var/lib/containerd, socket
                                       /run/containerd/containerd.sock, CNI
                                       /opt/cni/bin + /etc/cni/net.d,
                                       restrict_oom_score_adj = true)
        /etc/tinykube/kubelet.env     TINYKUBE_KUBELET_ARGS=--node-name node2
                                      --node-ip 192.168.56.12 --kubeconfig
                                      /etc/tinykube/kubelet.conf
                                      --bootstrap-kubeconfig ... --tls-cert-file
                                      /etc/tinykube/pki/kubelet-node2.crt ...
                                      --runtime containerd ... --network-agent ...

Security. Every daemon authenticates with the cluster's PKI, laid out by
`tinykube pki init --dir PKI_DIR` (localcluster/pki.py names the files):
the API server serves mTLS on NODE_IP:6443 and bearer tokens on
NODE_IP:6444, with its serving certificate, the client CA, its client
certificate to the kubelets and the CSR signer's CA; a kubelet is
system:node:NAME through its kubeconfig -- the one pki init wrote
(`kubelet-NAME.conf`), or with `tls_bootstrap` the one it obtains itself
through `--bootstrap-kubeconfig` (`tinykube join` writes that) -- and serves
logs and exec over mTLS with its serving certificate. The kubeconfig names
the API server, so the kubelet gets no `--server`; `server` stays the
address the node was told (render-config's `--server`, the VMs' join). The
PKI directory is /etc/tinykube on a VM (kubeadm's /etc/kubernetes) and the
cluster directory for `tinykube up`, whose nodes share one PKI. The CLI's
config is no longer rendered: it is a kubeconfig with credentials
(admin.conf), which the provisioning hands to the users of the
control-plane node.

With `registry_mirror="127.0.0.1:5000"` (an offline cluster) the containerd
config gains `registry.config_path` and the tree under it one hosts.toml per
mirrored registry (docker.io, registry.k8s.io). With `runtime="docker"` the
containerd files give way to /etc/docker/daemon.json, and the kubelet talks
to dockerd's socket.

The systemd units (vagrant/systemd/) are static files that read the `.env`
files: `ExecStart=/opt/tinykube/bin/tinykube kubelet $TINYKUBE_KUBELET_ARGS`
(an unbraced `$VAR` is split on whitespace by systemd into separate words), so
arguments may not hold whitespace or quotes: NodeConfig.validate() refuses
them with the field's name.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from localcluster import pki
from localcluster.containerd import ContainerdConfig
from localcluster.pki import PkiLayout
from localcluster.registry import MIRRORED_HOSTS, hosts_toml
from netplugin.constants import CNI_DATA_DIR, DNS_ADDRESS

Runtime = Literal["containerd", "docker"]
RUNTIMES: tuple[Runtime, ...] = ("containerd", "docker")

DEFAULT_SANDBOX_IMAGE = "registry.k8s.io/pause:3.9"
APISERVER_PORT = pki.APISERVER_PORT
TOKEN_PORT = pki.TOKEN_PORT

# Names of the variables in the EnvironmentFiles the systemd units read.
KUBELET_ENV = "TINYKUBE_KUBELET_ARGS"
APISERVER_ENV = "TINYKUBE_APISERVER_ARGS"

_UNSAFE = re.compile(r"[\s\"'\\$%]")
_NODE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


class NodeConfigError(ValueError):
    """A NodeConfig field is unusable; the message names the field and the value."""


@dataclass(frozen=True)
class NodePaths:
    """Every path a node's daemons use (absolute); the defaults are a real machine's."""

    containerd_base: str = "/var/lib/containerd"  # ContainerdConfig.base: its opt dir and log
    containerd_config: str = "/etc/containerd/config.toml"
    containerd_root: str = "/var/lib/containerd"
    containerd_state: str = "/run/containerd"
    containerd_socket: str = "/run/containerd/containerd.sock"
    runc_root: str = "/run/containerd/runc"
    registry_hosts_dir: str = "/etc/containerd/certs.d"  # containerd's registry.config_path
    docker_config: str = "/etc/docker/daemon.json"
    docker_data_root: str = "/var/lib/docker"
    docker_exec_root: str = "/run/docker"
    docker_socket: str = "/run/docker.sock"
    cni_bin_dir: str = "/opt/cni/bin"
    cni_conf_dir: str = "/etc/cni/net.d"
    cni_data_dir: str = CNI_DATA_DIR
    kubelet_root_dir: str = "/var/lib/kubelet"
    pod_log_dir: str = "/var/log/pods"
    apiserver_data_dir: str = "/var/lib/tinykube/apiserver"
    env_dir: str = "/etc/tinykube"  # the EnvironmentFiles and the CLI's config

    @classmethod
    def under(cls, base: str | Path) -> NodePaths:
        """A namespace node's layout: everything below `base` (containerd's as ContainerdConfig's).

        `NodePaths.under("/var/lib/tinykube/clusters/demo/node1")` puts containerd at
        .../node1/containerd/{config.toml,root,state,containerd.sock,runc}, the CNI
        directories at .../node1/cni/{bin,net.d,data}, the kubelet at .../node1/kubelet.
        """
        b = Path(base)
        if not b.is_absolute():
            raise NodeConfigError(f"node directory must be an absolute path, got {str(base)!r}")
        c = b / "containerd"
        return cls(
            containerd_base=str(c),
            containerd_config=str(c / "config.toml"),
            containerd_root=str(c / "root"),
            containerd_state=str(c / "state"),
            containerd_socket=str(c / "containerd.sock"),
            runc_root=str(c / "runc"),
            registry_hosts_dir=str(c / "certs.d"),
            docker_config=str(b / "docker" / "daemon.json"),
            docker_data_root=str(b / "docker" / "data"),
            docker_exec_root=str(b / "docker" / "exec"),
            docker_socket=str(b / "docker" / "docker.sock"),
            cni_bin_dir=str(b / "cni" / "bin"),
            cni_conf_dir=str(b / "cni" / "net.d"),
            cni_data_dir=str(b / "cni" / "data"),
            kubelet_root_dir=str(b / "kubelet"),
            pod_log_dir=str(b / "pods"),
            apiserver_data_dir=str(b / "apiserver"),
            env_dir=str(b / "etc"),
        )


@dataclass(frozen=True)
class NodeConfig:
    """One node: who it is, where its API server is, which runtime, and its paths."""

    node_name: str
    node_ip: str
    server: str = f"127.0.0.1:{APISERVER_PORT}"  # the API server as this node reaches it
    runtime: Runtime = "containerd"
    iface: str = ""  # the underlay interface; the netplugin checks it holds node_ip
    control_plane: bool = False  # runs the API server too
    registry_mirror: str = ""  # HOST:PORT of a plain-HTTP mirror for docker.io; "" = none
    sandbox_image: str = DEFAULT_SANDBOX_IMAGE
    kubelet_port: int = 10250
    masquerade: bool = True  # pod traffic leaving the cluster CIDR (off in local tests)
    cluster_dns: bool = True  # the netplugin serves DNS_ADDRESS; pods' resolv.conf names it
    paths: NodePaths = field(default_factory=NodePaths)
    pki_dir: str = pki.DEFAULT_PKI_DIR  # `tinykube pki init --dir` (shared by a local cluster)
    tls_bootstrap: bool = False  # the kubelet obtains its certificate with a bootstrap token

    @property
    def pki(self) -> PkiLayout:
        return PkiLayout(self.pki_dir)

    def validate(self) -> None:
        """Raise NodeConfigError naming the first unusable field."""
        if not _NODE_NAME.match(self.node_name):
            raise NodeConfigError(f"node name {self.node_name!r} is not a lowercase RFC 1123 name")
        try:
            ipaddress.ip_address(self.node_ip)
        except ValueError:
            raise NodeConfigError(f"node IP {self.node_ip!r} is not an IP address") from None
        if self.runtime not in RUNTIMES:
            raise NodeConfigError(f"runtime {self.runtime!r} is not one of {', '.join(RUNTIMES)}")
        if not self.server:
            raise NodeConfigError("server (the API server address) is empty")
        if not 0 <= self.kubelet_port <= 65535:
            raise NodeConfigError(f"kubelet port {self.kubelet_port} is out of range")
        for name, value in (
            ("server", self.server),
            ("iface", self.iface),
            ("registry mirror", self.registry_mirror),
            ("sandbox image", self.sandbox_image),
            ("pki dir", self.pki_dir),
            *((f"path {key}", str(val)) for key, val in vars(self.paths).items()),
        ):
            if _UNSAFE.search(value):
                raise NodeConfigError(f"{name} {value!r} holds whitespace, a quote, $ or %")
        for key, val in [*vars(self.paths).items(), ("pki_dir", self.pki_dir)]:
            if not str(val).startswith("/"):
                raise NodeConfigError(f"path {key} {val!r} is not absolute")

    @property
    def runtime_endpoint(self) -> str:
        """The kubelet's --runtime-endpoint: the runtime's unix socket."""
        sock = (
            self.paths.containerd_socket
            if self.runtime == "containerd"
            else self.paths.docker_socket
        )
        return f"unix://{sock}"


@dataclass
class _ContainerdAt(ContainerdConfig):
    """ContainerdConfig at explicit paths: a VM keeps config, root and state apart."""

    config_path: str = ""
    root_path: str = ""
    state_path: str = ""
    socket_path: str = ""
    runc_root_path: str = ""

    @property
    def root(self) -> Path:
        return Path(self.root_path) if self.root_path else super().root

    @property
    def state(self) -> Path:
        return Path(self.state_path) if self.state_path else super().state

    @property
    def socket(self) -> Path:
        return Path(self.socket_path) if self.socket_path else super().socket

    @property
    def runc_root(self) -> Path:
        return Path(self.runc_root_path) if self.runc_root_path else super().runc_root

    @property
    def config_file(self) -> Path:
        return Path(self.config_path) if self.config_path else super().config_file


def containerd_config(cfg: NodeConfig) -> ContainerdConfig:
    """The ContainerdConfig for `cfg` (`Containerd(containerd_config(cfg)).start()` runs it)."""
    p = cfg.paths
    return _ContainerdAt(
        base=Path(p.containerd_base),
        sandbox_image=cfg.sandbox_image,
        cni_bin_dir=p.cni_bin_dir,
        cni_conf_dir=p.cni_conf_dir,
        registry_config_path=p.registry_hosts_dir if cfg.registry_mirror else "",
        config_path=p.containerd_config,
        root_path=p.containerd_root,
        state_path=p.containerd_state,
        socket_path=p.containerd_socket,
        runc_root_path=p.runc_root,
    )


def render_containerd(cfg: NodeConfig) -> str:
    """containerd's config.toml (ContainerdConfig.render at this node's paths)."""
    return containerd_config(cfg).render()


def render_registry_hosts(cfg: NodeConfig) -> dict[str, str]:
    """{"docker.io/hosts.toml": ..., ...} relative to registry_hosts_dir; {} without a mirror."""
    if not cfg.registry_mirror:
        return {}
    return {
        f"{host}/hosts.toml": hosts_toml(upstream, cfg.registry_mirror)
        for host, upstream in MIRRORED_HOSTS.items()
    }


def _dockerd_settings(cfg: NodeConfig) -> dict[str, Any]:
    """dockerd's settings as daemon.json keys (the flags are the same names)."""
    p = cfg.paths
    settings: dict[str, Any] = {
        "data-root": p.docker_data_root,
        "exec-root": p.docker_exec_root,
        "bridge": "none",  # pods get their network from tinykube-cni, not docker0
        "iptables": False,  # the netplugin owns the packet filter
        "ip-masq": False,
        "ip-forward": False,  # the provisioning (or `tinykube up`) sets the sysctl itself
    }
    if cfg.registry_mirror:
        settings["registry-mirrors"] = [f"http://{cfg.registry_mirror}"]
        settings["insecure-registries"] = [cfg.registry_mirror]
    return settings


_SINGULAR = {"registry-mirrors": "registry-mirror", "insecure-registries": "insecure-registry"}


def render_dockerd_flags(cfg: NodeConfig) -> list[str]:
    """dockerd's command line for a private instance (the socket included)."""
    flags = ["-H", f"unix://{cfg.paths.docker_socket}"]
    for key, value in _dockerd_settings(cfg).items():
        if isinstance(value, bool):
            flags.append(f"--{key}={'true' if value else 'false'}")
        elif isinstance(value, list):
            flags.extend(f"--{_SINGULAR[key]}={item}" for item in value)
        else:
            flags.append(f"--{key}={value}")
    return flags


def render_daemon_json(cfg: NodeConfig) -> str:
    """/etc/docker/daemon.json: the flags' settings without `hosts`.

    Ubuntu's docker.service already passes `-H fd://`; dockerd refuses a setting
    given both as a flag and in the file, so the socket stays the unit's.
    """
    return json.dumps(_dockerd_settings(cfg), indent=2, sort_keys=True) + "\n"


def kubelet_args(cfg: NodeConfig) -> list[str]:
    """`tinykube kubelet` arguments for this node (its identity: module docstring)."""
    p = cfg.paths
    cert_dir = f"{p.kubelet_root_dir}/pki"
    return [
        "--node-name",
        cfg.node_name,
        "--node-ip",
        cfg.node_ip,
        *pki.kubelet_args(cfg.pki, cfg.node_name, bootstrap=cfg.tls_bootstrap, cert_dir=cert_dir),
        "--runtime",
        cfg.runtime,
        "--runtime-endpoint",
        cfg.runtime_endpoint,
        "--root-dir",
        p.kubelet_root_dir,
        "--pod-log-dir",
        p.pod_log_dir,
        "--kubelet-port",
        str(cfg.kubelet_port),
        # the docker runtime's own CNI calls and sandbox (containerd has them in its config)
        "--cni-conf-dir",
        p.cni_conf_dir,
        "--cni-bin-dir",
        p.cni_bin_dir,
        "--pod-infra-container-image",
        cfg.sandbox_image,
        *(["--cluster-dns", DNS_ADDRESS] if cfg.cluster_dns else []),
        *network_agent_args(cfg),
    ]


def network_agent_args(cfg: NodeConfig) -> list[str]:
    """The kubelet's flags for its in-process network agent (`tinykube netplugin`'s work).

    The agent shares the kubelet's --node-name, --node-ip, client (its
    kubeconfig's identity) and --cni-conf-dir, and serves cluster DNS because
    --cluster-dns names its address; these are the rest. The node IP is always
    explicit, never a guess.
    """
    args = ["--network-agent", "--cni-data-dir", cfg.paths.cni_data_dir]
    if cfg.iface:
        args += ["--iface", cfg.iface]  # then the agent checks that it holds the node IP
    if not cfg.masquerade:
        args.append("--no-masquerade")
    return args


def apiserver_args(cfg: NodeConfig, extra_listen: Sequence[str] = ()) -> list[str]:
    """`tinykube apiserver` arguments on the control-plane node.

    It listens on the node IP: mTLS on 6443 (the kubelets and their agents, the
    admin's kubeconfig) and bearer tokens on 6444 (a kubelet joining with a
    bootstrap token); `extra_listen` adds addresses (`tinykube up` adds the
    host CLI's unix socket). Its scheduler and controllers dial a private
    socket of their own, so no address here is theirs.
    """
    args = ["--data-dir", cfg.paths.apiserver_data_dir]
    for address in [f"{cfg.node_ip}:{APISERVER_PORT}", *extra_listen]:
        args += ["--listen", address]
    args += ["--token-listen", f"{cfg.node_ip}:{TOKEN_PORT}"]
    return [*args, *pki.apiserver_args(cfg.pki)]


def env_file(name: str, args: list[str]) -> str:
    """A systemd EnvironmentFile holding one variable with the arguments."""
    for arg in args:
        if _UNSAFE.search(arg) or not arg:
            raise NodeConfigError(f"argument {arg!r} cannot be passed through {name}")
    return f"{name}={' '.join(args)}\n"


def render_all(cfg: NodeConfig) -> dict[str, str]:
    """Every file the node needs: absolute path -> content."""
    cfg.validate()
    p = cfg.paths
    files: dict[str, str] = {}
    if cfg.runtime == "containerd":
        files[p.containerd_config] = render_containerd(cfg)
        for rel, content in render_registry_hosts(cfg).items():
            files[f"{p.registry_hosts_dir}/{rel}"] = content
    else:
        files[p.docker_config] = render_daemon_json(cfg)
    env = p.env_dir
    files[f"{env}/kubelet.env"] = env_file(KUBELET_ENV, kubelet_args(cfg))
    if cfg.control_plane:
        files[f"{env}/apiserver.env"] = env_file(APISERVER_ENV, apiserver_args(cfg))
    return files


def directories(cfg: NodeConfig) -> list[str]:
    """The directories the node's daemons expect to exist (write_all makes them)."""
    p = cfg.paths
    dirs = [p.cni_bin_dir, p.cni_conf_dir, p.cni_data_dir, p.kubelet_root_dir, p.pod_log_dir]
    if cfg.runtime == "containerd":
        dirs += [p.containerd_root, p.containerd_state, p.runc_root]
    if cfg.control_plane:
        dirs.append(p.apiserver_data_dir)
    return dirs


def destination(path: str, root: str | Path = "/") -> Path:
    """Where render_all's `path` is written below `root` (a DESTDIR)."""
    return Path(root) / path.lstrip("/")


def write_all(cfg: NodeConfig, root: str | Path = "/") -> list[Path]:
    """Write render_all(cfg) below `root`, make directories(cfg); returns the changed files.

    Each file is written to a temporary name and renamed, so a daemon never
    reads half a config; an unchanged file is left alone (its mtime too).
    """
    for directory in directories(cfg):
        destination(directory, root).mkdir(parents=True, exist_ok=True)
    changed: list[Path] = []
    for path, content in sorted(render_all(cfg).items()):
        target = destination(path, root)
        try:
            if target.read_text() == content:
                continue
        except FileNotFoundError:
            pass
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(content)
        tmp.replace(target)
        changed.append(target)
    return changed
