"""tinykube's network plugin: the three pieces that give pods a real network.

    netplugin/cni/      tinykube-cni, the CNI plugin containerd (or the kubelet, for
                        Docker) runs for every pod sandbox: a veth pair, an address
                        from the node's podCIDR, a default route via the bridge tk0
    netplugin/overlay/  the VXLAN device and, per other node, a route, a neighbour
                        and an FDB entry (flannel's VXLAN backend)
    netplugin/proxy/    Services and Endpoints as one nftables table, replaced in one
                        transaction per sync (kube-proxy's nftables mode)
    netplugin/agent.py  the per-node agent (`tinykube netplugin`) that runs the overlay
                        and the proxy from the API, and writes the CNI config

Every change any of them makes to the kernel is logged at INFO as the `ip`,
`bridge`, `sysctl` or `nft` command that would make it by hand
(netplugin/commands.py), and `--dry-run` prints those commands without running them.
"""
