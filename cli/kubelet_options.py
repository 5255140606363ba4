"""The flags of `tinykube kubelet`, in groups, and the one dataclass they fill (options.go).

Kubernetes keeps the kubelet's flags apart from its main (cmd/kubelet/app/
options); so does tinykube: each group is a stack of click options applied
by one decorator, shown in `--help` in the order given, and every flag lands
in one field of `KubeletFlags`:

    runtime_options        which container runtime, its socket and directories
    node_options           the Node: its IP, the kubelet server's port, capacity
    registration_options   --server, labels, taints, reservations
    security_options       --kubeconfig, TLS bootstrapping, the server's mutual TLS
    timing_options         lease, status, sync, back-off periods
    log_options            container log rotation (containerLogMaxSize, -MaxFiles)
    network_agent_options  the in-process network agent

cli/cmd_kubelet.py turns a KubeletFlags into the kubelet's configuration,
runtime and client. Nothing here imports the kubelet's packages.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def options(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    """Several click options as one decorator, shown in --help in the order given."""

    def apply(fn: F) -> F:
        for decorator in reversed(decorators):
            fn = decorator(fn)
        return fn

    return apply


runtime_options = options(
    click.option("--node-name", required=True, help="The Node this kubelet registers and runs."),
    click.option(
        "--runtime",
        "runtime_name",
        default="fake",
        show_default=True,
        help="Container runtime: fake (hollow node), containerd (CRI) "
        "or docker (Docker Engine API).",
    ),
    click.option(
        "--runtime-endpoint",
        default=None,
        help="The runtime's socket [containerd: unix:///run/containerd/containerd.sock, "
        "docker: unix:///var/run/docker.sock].",
    ),
    click.option(
        "--pod-log-dir",
        default="/var/log/pods",
        show_default=True,
        help="Where the containerd and docker runtimes keep container logs.",
    ),
    click.option(
        "--cni-conf-dir",
        default="/etc/cni/net.d",
        show_default=True,
        help="docker runtime: where the kubelet finds the CNI network config.",
    ),
    click.option(
        "--cni-bin-dir",
        default="/opt/cni/bin:/usr/lib/cni",
        show_default=True,
        help="docker runtime: where the kubelet finds CNI plugins (a : separated list).",
    ),
    click.option(
        "--pod-infra-container-image",
        default="registry.k8s.io/pause:3.9",
        show_default=True,
        help="docker runtime: the image of each pod's sandbox (pause) container.",
    ),
    click.option(
        "--root-dir",
        default="/var/lib/kubelet",
        show_default=True,
        help="The kubelet's directory: pods' volumes under <root-dir>/pods/<uid>.",
    ),
)

node_options = options(
    click.option(
        "--node-ip", default="", help="The node's InternalIP (default: the host's address)."
    ),
    click.option(
        "--kubelet-port",
        default=10250,
        show_default=True,
        type=click.IntRange(0, 65535),
        help="Port of the kubelet server (logs, exec); 0 = any free port.",
    ),
    click.option(
        "--address",
        "kubelet_address",
        default="0.0.0.0",
        show_default=True,
        help="Address the kubelet server listens on (or unix:PATH, a local socket).",
    ),
    click.option(
        "--cluster-dns",
        multiple=True,
        metavar="IP",
        help="DNS server for pods' resolv.conf (repeatable); the node agent serves 169.254.20.10.",
    ),
    click.option("--cluster-domain", default="cluster.local", show_default=True),
    click.option("--capacity-cpu", default="4", show_default=True, help="CPU capacity reported."),
    click.option("--capacity-memory", default="8Gi", show_default=True, help="Memory capacity."),
    click.option("--max-pods", default=110, show_default=True, type=click.IntRange(min=1)),
)

registration_options = options(
    click.option("--server", default=None, metavar="HOST:PORT", help="API server address."),
    click.option("--node-labels", default="", help="Extra node labels: key=value,key2=value2."),
    click.option(
        "--register-with-taints", default="", help="Taints at registration: key=value:Effect,..."
    ),
    click.option("--kube-reserved", default="", help="Reserved for system daemons: cpu=500m,..."),
    click.option("--system-reserved", default="", help="Reserved for the OS: cpu=250m,..."),
)

security_options = options(
    click.option(
        "--kubeconfig",
        default="",
        metavar="PATH",
        help="The kubelet's kubeconfig (its identity and the API server); replaces --server.",
    ),
    click.option(
        "--bootstrap-kubeconfig",
        default="",
        metavar="PATH",
        help="A kubeconfig with a bootstrap token (`tinykube join`), used to obtain "
        "--kubeconfig's certificate when that file does not exist yet.",
    ),
    click.option(
        "--cert-dir",
        default="/var/lib/kubelet/pki",
        metavar="DIR",
        show_default=True,
        help="Where the bootstrapped and rotated client certificates are kept.",
    ),
    click.option(
        "--rotate-certificates/--no-rotate-certificates",
        default=True,
        show_default=True,
        help="Renew the client certificate before it expires.",
    ),
    click.option(
        "--tls-cert-file", default="", metavar="PATH", help="The kubelet server's certificate."
    ),
    click.option(
        "--tls-private-key-file", default="", metavar="PATH", help="The kubelet server's key."
    ),
    click.option(
        "--client-ca-file",
        default="",
        metavar="PATH",
        help="The CA whose client certificates may call the kubelet server (mutual TLS).",
    ),
)

timing_options = options(
    click.option("--lease-duration", default=40, show_default=True, type=click.IntRange(min=1)),
    click.option("--node-status-update-frequency", default=10.0, show_default=True, type=float),
    click.option("--sync-frequency", default=60.0, show_default=True, type=float),
    click.option(
        "--crash-backoff",
        default="10,300",
        show_default=True,
        metavar="INITIAL,MAX",
        help="CrashLoopBackOff in seconds: first delay, doubling up to MAX (tests shorten it).",
    ),
    click.option(
        "--image-backoff",
        default="10,300",
        show_default=True,
        metavar="INITIAL,MAX",
        help="ImagePullBackOff in seconds: first delay, doubling up to MAX.",
    ),
)


def _log_max_size(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """--container-log-max-size: a whole number of bytes written as a quantity; negative
    turns the kubelet's rotation off. Checked here so the error names the flag."""
    from apimachinery import quantity

    form = "expected a quantity of bytes such as 10Mi, 512Ki or 1Gi (negative: never rotate)"
    try:
        size = quantity.parse_quantity(value)
    except quantity.QuantityError:
        raise click.BadParameter(f"{value!r} is not a quantity: {form}") from None
    if size.denominator != 1:
        raise click.BadParameter(f"{value!r} is not a whole number of bytes: {form}")
    return value


def _log_max_files(ctx: click.Context, param: click.Parameter, value: int) -> int:
    """--container-log-max-files: Kubernetes' rule, the current file and at least one more."""
    if value <= 1:
        raise click.BadParameter(
            f"{value}: containerLogMaxFiles must be greater than 1 (an integer >= 2: the "
            "current file and at least one rotated file)"
        )
    return value


log_options = options(
    click.option(
        "--container-log-max-size",
        default="10Mi",
        show_default=True,
        callback=_log_max_size,
        metavar="QUANTITY",
        help="Rotate a container's log file once it reaches this size (e.g. 10Mi); "
        "negative: never rotate.",
    ),
    click.option(
        "--container-log-max-files",
        default=5,
        show_default=True,
        type=int,
        callback=_log_max_files,
        help="Log files kept per container, the current one included (at least 2).",
    ),
)

network_agent_options = options(
    click.option(
        "--network-agent",
        is_flag=True,
        help="Also run this node's network agent (`tinykube netplugin`) in this process.",
    ),
    click.option("--iface", default="", help="--network-agent: the underlay interface."),
    click.option(
        "--cni-data-dir",
        default=None,
        help="--network-agent: the IPAM directory the conflist names "
        "[default: /var/lib/tinykube/cni].",
    ),
    click.option(
        "--masquerade/--no-masquerade",
        default=True,
        show_default=True,
        help="--network-agent: masquerade pod traffic leaving the cluster CIDR.",
    ),
)


@dataclass(frozen=True)
class KubeletFlags:
    """The command line of `tinykube kubelet`, one field per flag (the groups above)."""

    node_name: str
    runtime_name: str
    runtime_endpoint: str | None
    pod_log_dir: str
    cni_conf_dir: str
    cni_bin_dir: str
    pod_infra_container_image: str
    root_dir: str
    node_ip: str
    kubelet_port: int
    kubelet_address: str
    cluster_dns: tuple[str, ...]
    cluster_domain: str
    capacity_cpu: str
    capacity_memory: str
    max_pods: int
    server: str | None
    node_labels: str
    register_with_taints: str
    kube_reserved: str
    system_reserved: str
    kubeconfig: str
    bootstrap_kubeconfig: str
    cert_dir: str
    rotate_certificates: bool
    tls_cert_file: str
    tls_private_key_file: str
    client_ca_file: str
    lease_duration: int
    node_status_update_frequency: float
    sync_frequency: float
    crash_backoff: str
    image_backoff: str
    container_log_max_size: str
    container_log_max_files: int
    network_agent: bool
    iface: str
    cni_data_dir: str | None
    masquerade: bool
    verbose: bool
