"""Cluster DNS for pods, answered on every node (see server.py for the design).

`NodeLocalDNS` is what the node agent runs: it puts DNS_ADDRESS on the node
namespace's loopback link, reads Services and Endpoints from the agent's informer factory and
answers on DNS_ADDRESS:53 (UDP and TCP). `cleanup` removes the address.
"""

from __future__ import annotations

import asyncio

from apimachinery.factory import SharedInformerFactory
from netplugin.commands import CommandLog
from netplugin.constants import CLUSTER_DOMAIN, DNS_ADDRESS, DNS_DEVICE
from netplugin.dns.server import ClusterDNS, ServiceRecords, serve, upstream_servers

__all__ = ["ClusterDNS", "NodeLocalDNS", "ServiceRecords", "cleanup", "ensure_address"]


def ensure_address(cmds: CommandLog, address: str = DNS_ADDRESS, dev: str = DNS_DEVICE) -> None:
    """address/32 on the node namespace's loopback link; idempotent.

    Loopback rather than a dummy link: an address on any link of the namespace
    is local to all of it, and not every kernel has the dummy driver."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        index = ipr.link_lookup(ifname=dev)[0]
        held = {a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(index=index, family=2)}
        if address not in held and cmds.change("ip", "addr", "add", f"{address}/32", "dev", dev):
            ipr.addr("add", index=index, address=address, prefixlen=32)


def cleanup(cmds: CommandLog, address: str = DNS_ADDRESS, dev: str = DNS_DEVICE) -> None:
    """Remove the DNS address; idempotent."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=dev)
        if not found:
            return
        held = {a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(index=found[0], family=2)}
        if address in held and cmds.change("ip", "addr", "del", f"{address}/32", "dev", dev):
            ipr.addr("del", index=found[0], address=address, prefixlen=32)


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
        manage_address: bool = True,
    ) -> None:
        services = factory.informer("services")
        endpoints = factory.informer("endpoints")
        records = ServiceRecords(services.store.get, endpoints.store.get, domain)
        self.dns = ClusterDNS(records, upstream_servers(skip=address))
        self.cmds = cmds
        self.address = address
        self.port = port
        self.manage_address = manage_address

    async def run(self) -> None:
        """Serve until cancelled (the stores fill in as the factory's informers sync)."""
        if self.manage_address:
            await asyncio.to_thread(ensure_address, self.cmds, self.address)
        if self.cmds.dry_run:
            return
        stop = await serve(self.dns, self.address, self.port)
        try:
            await asyncio.Event().wait()
        finally:
            stop()
