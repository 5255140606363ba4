"""The service proxy: Services and Endpoints as one nftables table (kube-proxy's nftables mode).

    model.py     Services + Endpoints -> a sorted list of ServicePort (ready endpoints only)
    rules.py     ServicePorts -> the `nft -f` script for the whole table (pure)
    nft.py       running `nft -f -` atomically, reading the table, the route and sysctl
    proxier.py   the Proxier: informer events mark it dirty, batched syncs apply the table

Used by the node agent:

    proxier = Proxier(factory, node_name="node1", node_ips=["10.201.0.11"],
                      cluster_cidr="10.244.0.0/16", cmds=cmds)
    factory.start()
    await proxier.run()          # until cancelled
    ...
    cleanup(cmds)                # `tinykube netplugin --cleanup`
"""

from __future__ import annotations

from netplugin.proxy.proxier import Proxier, cleanup

__all__ = ["Proxier", "cleanup"]
