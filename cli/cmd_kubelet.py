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

Container logs are rotated as Kubernetes' kubelet rotates them
(kubelet/logrotation.py): `--container-log-max-size 10Mi` and
`--container-log-max-files 5` (the defaults; containerLogMaxSize and
containerLogMaxFiles in a KubeletConfiguration) bound each container's log
files, on containerd by the kubelet itself and on Docker by the daemon's
json-file driver, which is given the same two figures.

The process logs structured lines on stderr, like `tinykube apiserver`;
SIGTERM or SIGINT stops the kubelet's loops and exits 0. The pods are not
stopped: a real runtime keeps them running for the next kubelet, and a
hollow node's pods vanish with its process (the node lifecycle controller
then notices the silent Lease).

Security, as Kubernetes' kubelet has it (kubelet/certificate/ for the how):

    tinykube kubelet --node-name node2 --runtime containerd --node-ip 10.0.0.12 \
        --kubeconfig /etc/tinykube/kubelet.conf \
        --bootstrap-kubeconfig /etc/tinykube/bootstrap-kubelet.conf \
        --cert-dir /var/lib/kubelet/pki \
        --tls-cert-file /etc/tinykube/pki/kubelet-node2.crt \
        --tls-private-key-file /etc/tinykube/pki/kubelet-node2.key \
        --client-ca-file /etc/tinykube/pki/ca.crt

`--kubeconfig` is who the kubelet is (system:node:NAME) and which API server
it talks to, over TLS. With `--bootstrap-kubeconfig` (written by `tinykube
join`), a kubeconfig that does not exist yet -- or whose certificate expired
-- is first obtained by TLS bootstrapping, and the certificate is renewed
before it expires (`--rotate-certificates`, on by default). The network
agent (`--network-agent`) shares the kubelet's client. The three `--tls-*` /
`--client-ca-file` flags make the kubelet server (logs, exec on
--kubelet-port) mutual TLS that only the API server and administrators may
call; with a kubeconfig they are required, unless the server is on a unix
socket (`--address unix:PATH`).

Without `--kubeconfig` the kubelet dials `--server` in plain text, else the
global `tinykube --server`, else $TINYKUBE_SERVER / the config file /
127.0.0.1:6443, and its server may be plain too (logged as a warning): the
way clusters without a PKI run their nodes, which this path is kept for.

How the command is built: its flags come in groups (the runtime, the Node,
registration, security, timings, container log rotation, the network
agent), each a stack of click options applied by one decorator, and land in
one `KubeletFlags`. Then three steps that never mix, as the kubelet's own
main separates them: the flags become a validated `KubeletConfig` and a
runtime (`kubelet_config`, `new_runtime`), and `serve` runs the loops until
a signal. Only `kubelet` itself imports the
kubelet's packages, so `tinykube --help` and the other verbs load none of it.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cli.context import Options, first_to_end, until_signalled
from cli.kubelet_options import (
    KubeletFlags,
    log_options,
    network_agent_options,
    node_options,
    registration_options,
    runtime_options,
    security_options,
    timing_options,
)
from netplugin.constants import DNS_ADDRESS

if TYPE_CHECKING:
    from apimachinery.client import Client
    from kubelet.certificate.client_config import ClientOptions
    from kubelet.certificate.manager import CertificateManager
    from kubelet.config import KubeletConfig
    from kubelet.runtime.interface import ContainerRuntime
    from kubelet.server import ServingTLS
    from netplugin.agent import AgentConfig


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


@click.command("kubelet")
@runtime_options
@node_options
@registration_options
@security_options
@timing_options
@log_options
@network_agent_options
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.pass_context
def kubelet(ctx: click.Context, /, **params: Any) -> None:
    """Run a kubelet for one node in the foreground."""
    flags = KubeletFlags(**params)
    agent = network_agent_config(flags)  # first: the agent's pyroute2 must load light
    from apimachinery.certs import CertError
    from cli.main import configure_logging
    from kubelet.errors import KubeletError

    opts = ctx.find_object(Options)
    address = flags.server or (opts.server if opts is not None else "127.0.0.1:6443")
    client_options = kubelet_client_options(flags)
    try:
        config = kubelet_config(flags)
        serving = serving_tls(flags, client_options is not None)
        runtime = new_runtime(flags)
    except (KubeletError, CertError) as err:
        click.echo(f"error: {err}", err=True)
        raise click.exceptions.Exit(1) from None
    except OSError as err:
        click.echo(f"error: {err.filename}: {err.strerror or err}", err=True)
        raise click.exceptions.Exit(1) from None
    configure_logging(logging.DEBUG if flags.verbose else logging.INFO)
    serve(address, config, runtime, agent, client=client_options, serving=serving)


def kubelet_client_options(flags: KubeletFlags) -> ClientOptions | None:
    """The --kubeconfig family as ClientOptions; None for the plain --server path."""
    if flags.bootstrap_kubeconfig and not flags.kubeconfig:
        raise click.UsageError(
            "--bootstrap-kubeconfig needs --kubeconfig: the path the kubelet writes its own "
            "kubeconfig to"
        )
    if not flags.kubeconfig:
        return None
    if flags.server:
        raise click.UsageError("--server and --kubeconfig: give one (the kubeconfig names it)")
    from kubelet.certificate.client_config import ClientOptions

    return ClientOptions(
        node_name=flags.node_name,
        kubeconfig=flags.kubeconfig,
        bootstrap_kubeconfig=flags.bootstrap_kubeconfig,
        cert_dir=flags.cert_dir,
        rotate_certificates=flags.rotate_certificates,
    )


def serving_tls(flags: KubeletFlags, secured: bool) -> ServingTLS | None:
    """The kubelet server's TLS from the three flags (all or none); required when `secured`
    (the kubelet has a kubeconfig) unless the server is a unix socket."""
    from kubelet.server import ServingTLS

    given = {
        "--tls-cert-file": flags.tls_cert_file,
        "--tls-private-key-file": flags.tls_private_key_file,
        "--client-ca-file": flags.client_ca_file,
    }
    missing = [flag for flag, value in given.items() if not value]
    if len(missing) == len(given):
        if secured and not flags.kubelet_address.startswith("unix:"):
            raise click.UsageError(
                f"the kubelet server on {flags.kubelet_address}:{flags.kubelet_port} needs "
                f"{', '.join(given)} when the kubelet has a --kubeconfig: logs and exec are "
                "served over mutual TLS only (an --address unix:PATH needs none)"
            )
        return None
    if missing:
        raise click.UsageError(f"the kubelet server's TLS also needs {', '.join(missing)}")
    return ServingTLS.from_files(
        flags.tls_cert_file, flags.tls_private_key_file, flags.client_ca_file
    )


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
        container_log_max_size=f.container_log_max_size,
        container_log_max_files=f.container_log_max_files,
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


async def connect(
    address: str, options: ClientOptions | None
) -> tuple[Client, CertificateManager | None]:
    """The kubelet's client: from its kubeconfig (bootstrapped, rotated), else plain to --server."""
    from apimachinery.client import Client

    if options is None:
        return Client(address), None
    from kubelet.certificate.client_config import build_client

    return await build_client(options)


def serve(
    address: str,
    config: KubeletConfig,
    runtime: ContainerRuntime,
    agent: AgentConfig | None,
    *,
    client: ClientOptions | None = None,
    serving: ServingTLS | None = None,
) -> None:
    """Run the kubelet (and the network agent) until a signal; a failing agent exits 1."""
    from kubelet import podtrace
    from kubelet.kubelet import Kubelet

    logger = logging.getLogger("cli.kubelet")

    async def daemons() -> None:
        api, rotation = await connect(address, client)  # may bootstrap: wait for a certificate
        try:
            kubelet = Kubelet(api, config, runtime)
            if serving is not None:
                kubelet.server.use_tls(serving)
            elif not config.kubelet_address.startswith("unix:"):
                logger.warning(
                    "kubelet server without TLS: whoever reaches the port may read logs and exec",
                    extra={"node": config.node_name, "port": config.kubelet_port},
                )
            loops = [kubelet.run()]
            if rotation is not None:
                loops.append(rotation.run())
            if agent is not None:
                from netplugin.agent import NetPluginAgent
                from netplugin.commands import CommandLog

                loops.append(NetPluginAgent(agent, api, CommandLog()).run())
                podtrace.use_cni_data_dir(agent.cni_data_dir)  # CNI ADD spans from its journal
            await first_to_end(*loops)
        finally:
            if rotation is not None:
                await rotation.close()
            await api.close()

    async def run() -> None:
        try:
            if await until_signalled(daemons()):
                logger.info("stopped", extra={"node": config.node_name})
        finally:
            await runtime.close()

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
    except _client_errors() as err:
        click.echo(f"error: {err}", err=True)
        raise click.exceptions.Exit(1) from None


def _client_errors() -> tuple[type[Exception], ...]:
    """What a failed start of the client raises: a bad kubeconfig, a refused or failed
    bootstrap, an API server that answers with an error."""
    from apimachinery.certs import CertError
    from apimachinery.errors import StatusError
    from apimachinery.kubeconfig import KubeconfigError
    from kubelet.certificate.csr import CertificateRequestError

    return (CertError, CertificateRequestError, KubeconfigError, StatusError)
