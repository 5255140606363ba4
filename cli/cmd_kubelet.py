"""`tinykube kubelet`: run a node agent in the foreground (Kubernetes' kubelet command).

    tinykube kubelet --node-name node1 --runtime fake
    tinykube kubelet --node-name node1 --runtime containerd \\
        --runtime-endpoint unix:///run/containerd/containerd.sock --node-ip 192.168.56.11
    tinykube kubelet --node-name node1 --runtime docker \\
        --runtime-endpoint unix:///var/run/docker.sock --cni-conf-dir /etc/cni/net.d
    tinykube kubelet --node-name node2 --runtime fake --node-ip 10.0.0.12 \\
        --capacity-cpu 8 --capacity-memory 16Gi --max-pods 50 --server 10.0.0.1:6443

With `--runtime fake` the node is hollow (kubemark): it registers, renews
its Lease, takes the pods bound to it and reports them Running with an IP
from its podCIDR, without starting anything -- so several can run on one
machine, each with its own `--kubelet-port` (0: any free port; the Node's
daemonEndpoints publish the one it got, which is how the apiserver reaches
its logs and exec) and, if wanted, `--address`. A real node keeps its pods'
volumes under `--root-dir` (default /var/lib/kubelet).

With `--network-agent` the same process also runs the node's network agent
(`tinykube netplugin`: overlay, service proxy, cluster DNS on 169.254.20.10
when --cluster-dns names it), as the API server runs the scheduler and the
controllers: one interpreter and one gRPC channel per node instead of two
(k3s's agent embeds flannel and kube-proxy the same way). This is how
`tinykube up` and the Vagrant VMs run their nodes:

    tinykube kubelet --node-name node1 --runtime containerd --node-ip 10.201.0.11 \\
        --iface eth1 --cluster-dns 169.254.20.10 --network-agent

If either loop fails, both stop and the process exits non-zero.

The process logs structured lines on stderr, like `tinykube apiserver`;
SIGTERM or SIGINT stops the kubelet's loops and exits 0. The pods are not
stopped: a real runtime keeps them running for the next kubelet, and a
hollow node's pods vanish with its process (the node lifecycle controller
then notices the silent Lease).

The API server address is `--server` here, else the global `tinykube
--server`, else $TINYKUBE_SERVER / the config file / 127.0.0.1:6443.

How the command is built: its flags come in groups (the runtime, the Node,
registration, timings, the network agent), each a stack of click options
applied by one decorator, and land in one `KubeletFlags`. Then three steps
that never mix, as the kubelet's own main separates them: the flags become
a validated `KubeletConfig` and a runtime (`kubelet_config`, `new_runtime`),
and `serve` runs the loops until a signal. Only `kubelet` itself imports the
kubelet's packages, so `tinykube --help` and the other verbs load none of it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from cli.context import Options, first_to_end, until_signalled
from netplugin.constants import DNS_ADDRESS

if TYPE_CHECKING:
    from kubelet.config import KubeletConfig
    from kubelet.runtime.interface import ContainerRuntime
    from netplugin.agent import AgentConfig

F = TypeVar("F", bound=Callable[..., Any])


def _pairs(text: str, flag: str) -> dict[str, str]:
    """`a=1,b=2` -> {"a": "1", "b": "2"}; a bad item is a usage error naming the flag."""
    out: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected key=value, got {item!r}", param_hint=flag)
        out[key] = value
    return out


def _backoff(text: str, flag: str) -> tuple[float, float]:
    """`INITIAL,MAX` in seconds."""
    first, sep, most = text.partition(",")
    try:
        return float(first), float(most if sep else first)
    except ValueError:
        raise click.BadParameter(
            f"expected INITIAL,MAX seconds, got {text!r}", param_hint=flag
        ) from None


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
        help="Address the kubelet server listens on.",
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
    lease_duration: int
    node_status_update_frequency: float
    sync_frequency: float
    crash_backoff: str
    image_backoff: str
    network_agent: bool
    iface: str
    cni_data_dir: str | None
    masquerade: bool
    verbose: bool


@click.command("kubelet")
@runtime_options
@node_options
@registration_options
@timing_options
@network_agent_options
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.pass_context
def kubelet(ctx: click.Context, /, **params: Any) -> None:
    """Run a kubelet for one node in the foreground."""
    flags = KubeletFlags(**params)
    agent = network_agent_config(flags)  # first: the agent's pyroute2 must load light
    from cli.main import configure_logging
    from kubelet.errors import KubeletError

    opts = ctx.find_object(Options)
    address = flags.server or (opts.server if opts is not None else "127.0.0.1:6443")
    try:
        config = kubelet_config(flags)
        runtime = new_runtime(flags)
    except KubeletError as err:
        click.echo(f"error: {err}", err=True)
        raise click.exceptions.Exit(1) from None
    configure_logging(logging.DEBUG if flags.verbose else logging.INFO)
    serve(address, config, runtime, agent)


def network_agent_config(flags: KubeletFlags) -> AgentConfig | None:
    """The in-process network agent's settings under --network-agent, else None.

    Called before anything imports pyroute2 (see cmd_netplugin.agent_config)."""
    if not flags.network_agent:
        return None
    from cli.cmd_netplugin import agent_config

    f = flags
    agent = agent_config(
        f.node_name, f.node_ip, f.iface, f.cni_conf_dir, f.cni_data_dir, f.masquerade,
        flag="--network-agent",
    )  # fmt: skip
    agent.dns = DNS_ADDRESS in f.cluster_dns  # served when the pods are told to use it
    return agent


def kubelet_config(flags: KubeletFlags) -> KubeletConfig:
    """The validated KubeletConfig; KubeletError (or a usage error) names what is wrong."""
    from kubelet.config import KubeletConfig, TaintSpec

    f = flags
    config = KubeletConfig(
        node_name=f.node_name,
        node_ip=f.node_ip,
        capacity={"cpu": f.capacity_cpu, "memory": f.capacity_memory, "pods": str(f.max_pods)},
        kube_reserved=_pairs(f.kube_reserved, "--kube-reserved"),
        system_reserved=_pairs(f.system_reserved, "--system-reserved"),
        labels=_pairs(f.node_labels, "--node-labels"),
        register_with_taints=[
            TaintSpec.parse(t) for t in f.register_with_taints.split(",") if t.strip()
        ],
        lease_duration_seconds=f.lease_duration,
        lease_renew_interval=max(f.lease_duration / 4, 0.1),
        node_status_update_frequency=f.node_status_update_frequency,
        sync_frequency=f.sync_frequency,
        kubelet_port=f.kubelet_port,
        kubelet_address=f.kubelet_address,
        root_dir=f.root_dir,
        cluster_dns=f.cluster_dns,
        cluster_domain=f.cluster_domain,
    )
    crash = _backoff(f.crash_backoff, "--crash-backoff")
    config.crash_backoff_initial, config.crash_backoff_max = crash
    image = _backoff(f.image_backoff, "--image-backoff")
    config.image_backoff_initial, config.image_backoff_max = image
    config.validate()
    return config


def new_runtime(flags: KubeletFlags) -> ContainerRuntime:
    """The container runtime `--runtime` names, with its endpoint and directories."""
    from kubelet import runtime as runtimes

    f = flags
    options: dict[str, str] = {}
    if f.runtime_name == "containerd":
        endpoint = f.runtime_endpoint or "unix:///run/containerd/containerd.sock"
        options = {"endpoint": endpoint, "log_root": f.pod_log_dir}
    elif f.runtime_name == "docker":
        options = {
            "endpoint": f.runtime_endpoint or "unix:///var/run/docker.sock",
            "log_root": f.pod_log_dir,
            "cni_conf_dir": f.cni_conf_dir,
            "cni_bin_dir": f.cni_bin_dir,
            "cni_cache_dir": str(Path(f.root_dir) / "cni-results"),
            "pause_image": f.pod_infra_container_image,
        }
    return runtimes.new_runtime(f.runtime_name, **options)


def serve(
    address: str, config: KubeletConfig, runtime: ContainerRuntime, agent: AgentConfig | None
) -> None:
    """Run the kubelet (and the network agent) until a signal; a failing agent exits 1."""
    from apimachinery.client import Client
    from kubelet.kubelet import Kubelet

    logger = logging.getLogger("cli.kubelet")

    async def run() -> None:
        client = Client(address)
        daemons = [Kubelet(client, config, runtime).run()]
        if agent is not None:
            from netplugin.agent import NetPluginAgent
            from netplugin.commands import CommandLog

            daemons.append(NetPluginAgent(agent, client, CommandLog()).run())
        try:
            if await until_signalled(first_to_end(*daemons)):
                logger.info("stopped", extra={"node": config.node_name})
        finally:
            await runtime.close()
            await client.close()

    agent_errors: tuple[type[Exception], ...] = ()  # without the agent: catch nothing here
    if agent is not None:  # (and a kubelet without it never imports the agent, nor pyroute2)
        from netplugin.agent import AgentError
        from netplugin.nodeip import NodeIPError

        agent_errors = (AgentError, NodeIPError)
    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    except agent_errors as err:
        click.echo(f"error: network agent: {err}", err=True)
        raise click.exceptions.Exit(1) from None
