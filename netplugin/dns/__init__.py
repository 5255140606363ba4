"""Cluster DNS for pods, answered on every node (see server.py for the design).

`NodeLocalDNS` is what the node agent runs: it owns the dummy link holding
DNS_ADDRESS, reads Services and Endpoints from the agent's informer factory and
answers on DNS_ADDRESS:53 (UDP and TCP). `cleanup` removes the link.
"""

from __future__ import annotations

import asyncio

from apimachinery.factory import SharedInformerFactory
from netplugin.commands import CommandLog
from netplugin.constants import CLUSTER_DOMAIN, DNS_ADDRESS, DNS_INTERFACE
from netplugin.dns.server import ClusterDNS, ServiceRecords, serve, upstream_servers

__all__ = ["ClusterDNS", "NodeLocalDNS", "ServiceRecords", "cleanup", "ensure_link"]


def ensure_link(cmds: CommandLog, address: str = DNS_ADDRESS, name: str = DNS_INTERFACE) -> None:
    """A dummy link holding address/32, up, in the current network namespace; idempotent."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=name)
        if not found:
            if not cmds.change("ip", "link", "add", name, "type", "dummy"):
                return
            ipr.link("add", ifname=name, kind="dummy")
            found = ipr.link_lookup(ifname=name)
        index = found[0]
        held = {a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(index=index, family=2)}
        if address not in held and cmds.change("ip", "addr", "add", f"{address}/32", "dev", name):
            ipr.addr("add", index=index, address=address, prefixlen=32)
        state = ipr.get_links(index)[0].get_attr("IFLA_OPERSTATE")
        if state not in ("UP", "UNKNOWN") and cmds.change("ip", "link", "set", name, "up"):
            ipr.link("set", index=index, state="up")


def cleanup(cmds: CommandLog, name: str = DNS_INTERFACE) -> None:
    """Remove the DNS link; idempotent."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=name)
        if found and cmds.change("ip", "link", "del", name):
            ipr.link("del", index=found[0])


class NodeLocalDNS:
    """Cluster DNS on this node: register on the factory before it starts, then run()."""

    def __init__(
        self,
        factory: SharedInformerFactory,
        cmds: CommandLog,
        *,
        address: str = DNS_ADDRESS,
        port: int = 53,
        domain: str = CLUSTER_DOMAIN,
        manage_link: bool = True,
    ) -> None:
        services = factory.informer("services")
        endpoints = factory.informer("endpoints")
        records = ServiceRecords(services.store.get, endpoints.store.get, domain)
        self.dns = ClusterDNS(records, upstream_servers(skip=address))
        self.cmds = cmds
        self.address = address
        self.port = port
        self.manage_link = manage_link

    async def run(self) -> None:
        """Serve until cancelled (the stores fill in as the factory's informers sync)."""
        if self.manage_link:
            await asyncio.to_thread(ensure_link, self.cmds, self.address)
        if self.cmds.dry_run:
            return
        stop = await serve(self.dns, self.address, self.port)
        try:
            await asyncio.Event().wait()
        finally:
            stop()
