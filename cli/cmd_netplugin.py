"""`tinykube netplugin`: the per-node network agent in the foreground (flanneld + kube-proxy).

    tinykube netplugin --node-name node1 --node-ip 192.168.56.11
    tinykube netplugin --node-name node1 --iface eth1 --server unix:/run/tinykube/api.sock
    tinykube netplugin --node-name node1 --iface eth1 --dry-run  # print, change nothing
    tinykube netplugin --cleanup                             # remove what it made

The node IP is never guessed: give --node-ip (the interface holding it is
found) or --iface (its first IPv4 address is taken), or both (the interface
must hold the address). Run it in the node's network namespace. Every kernel
change is logged at INFO on stderr as the `ip` / `bridge` / `nft` / `sysctl`
command that makes it; --dry-run prints those commands on stdout instead of
running them. SIGTERM or SIGINT stops the agent and leaves the network as it
is: pods keep talking, and the next agent changes nothing.

The API server address is --server here, else the global `tinykube
--server` / `--kubeconfig` (whose credentials the agent then uses, as the
node's identity), else $KUBECONFIG / ~/.tinykube/config / 127.0.0.1:6443.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import click

from cli.context import Options, until_signalled

if TYPE_CHECKING:
    from netplugin.agent import AgentConfig


@click.command("netplugin")
@click.option("--node-name", default="", help="This node's Node name (required unless --cleanup).")
@click.option("--node-ip", default="", help="The node IP: the overlay's VXLAN endpoint.")
@click.option("--iface", default="", help="The underlay interface (its first IPv4 is the node IP).")
@click.option(
    "--server", default=None, metavar="ADDRESS", help="API server: HOST:PORT or unix:/PATH."
)
@click.option(
    "--cni-conf-dir",
    default="/etc/cni/net.d",
    show_default=True,
    help="Where the CNI conflist is written once the node has a podCIDR.",
)
@click.option(
    "--cni-data-dir",
    default=None,
    help="The IPAM directory the conflist names [default: /var/lib/tinykube/cni].",
)
@click.option(
    "--masquerade/--no-masquerade",
    default=True,
    show_default=True,
    help="Masquerade pod traffic leaving the cluster CIDR.",
)
@click.option(
    "--proxy/--no-proxy",
    default=True,
    show_default=True,
    help="Run the service proxy (ClusterIP/NodePort nftables rules).",
)
@click.option(
    "--cluster-dns/--no-cluster-dns",
    default=True,
    show_default=True,
    help="Serve cluster DNS on 169.254.20.10 (on this node's loopback) for the pods here.",
)
@click.option(
    "--resync-period",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Seconds between reconciles nobody asked for (repairs drift).",
)
@click.option(
    "--dry-run", is_flag=True, help="Print the commands one pass would run; change nothing."
)
@click.option("--cleanup", is_flag=True, help="Remove everything the plugin created on this node.")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.pass_context
def netplugin(
    ctx: click.Context,
    node_name: str,
    node_ip: str,
    iface: str,
    server: str | None,
    cni_conf_dir: str,
    cni_data_dir: str | None,
    masquerade: bool,
    proxy: bool,
    cluster_dns: bool,
    resync_period: float,
    dry_run: bool,
    cleanup: bool,
    verbose: bool,
) -> None:
    """Run the network agent for one node in the foreground."""
    # First, before anything imports pyroute2: a long-lived process should not
    # carry every netlink family pyroute2's package __init__ imports.
    from netplugin import pyroute2_light

    pyroute2_light.load()

    from apimachinery.client import Client
    from cli.main import configure_logging
    from netplugin.agent import AgentError, NetPluginAgent
    from netplugin.agent_node import cleanup as cleanup_node
    from netplugin.commands import CommandLog
    from netplugin.nodeip import NodeIPError

    configure_logging(logging.DEBUG if verbose else logging.INFO)
    logger = logging.getLogger("cli.netplugin")
    cmds = CommandLog(dry_run=dry_run)
    if cleanup:
        cleanup_node(cmds, cni_conf_dir, proxy=proxy)
        if dry_run:
            click.echo("\n".join(cmds.commands))
        return
    if not node_name:
        raise click.UsageError("--node-name is required (unless --cleanup)")
    config = agent_config(node_name, node_ip, iface, cni_conf_dir, cni_data_dir, masquerade)
    config.proxy, config.dns, config.resync_period = proxy, cluster_dns, resync_period
    opts = ctx.find_object(Options)

    async def run() -> None:
        # --server here is an address as given (a unix socket on a node); otherwise the
        # CLI's own resolution, with a kubeconfig's TLS identity (`tinykube --kubeconfig`).
        resolved = opts if opts is not None and not server else None
        client = resolved.new_client() if resolved else Client(server or "127.0.0.1:6443")
        agent = NetPluginAgent(config, client, cmds)
        try:
            if dry_run:
                commands = await agent.dry_run()
                click.echo("\n".join(commands))
                return
            if await until_signalled(agent.run()):
                logger.info("stopped", extra={"node": node_name})
        finally:
            await client.close()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    except (AgentError, NodeIPError) as err:
        click.echo(f"error: {err}", err=True)
        raise click.exceptions.Exit(1) from None


def agent_config(
    node_name: str,
    node_ip: str,
    iface: str,
    cni_conf_dir: str,
    cni_data_dir: str | None,
    masquerade: bool,
    *,
    flag: str = "",
) -> AgentConfig:
    """The agent's settings from its flags, here or under the kubelet's --network-agent (`flag`).

    Loads pyroute2 light first (netplugin/pyroute2_light.py), so call it before anything
    imports pyroute2. The node IP is never guessed: --node-ip or --iface, or both.
    """
    from netplugin import pyroute2_light

    pyroute2_light.load()
    from netplugin.agent import AgentConfig
    from netplugin.constants import CNI_DATA_DIR

    if not node_ip and not iface:
        needs = f"{flag} needs" if flag else "give"
        raise click.UsageError(
            f"{needs} --node-ip or --iface: the node IP is never guessed from the default route"
        )
    return AgentConfig(
        node_name=node_name,
        node_ip=node_ip,
        iface=iface,
        cni_conf_dir=cni_conf_dir,
        cni_data_dir=cni_data_dir or CNI_DATA_DIR,
        masquerade=masquerade,
    )
