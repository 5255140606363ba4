"""Names and numbers the network plugin's pieces agree on (and a reader looks up).

The CNI plugin, the node agent, the service proxy, `tinykube up` and the Vagrant
provisioning all meet on these; changing one here changes it everywhere.
"""

from __future__ import annotations

BRIDGE = "tk0"  # the per-node pod bridge; holds the podCIDR's gateway address (.1)
VXLAN_DEVICE = "tinykube.1"  # flannel names its device flannel.<VNI>
VXLAN_ID = 1  # the VNI
VXLAN_PORT = 8472  # the Linux kernel's historical VXLAN port, as flannel uses
VXLAN_OVERHEAD = 50  # outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8 bytes

CLUSTER_CIDR = "10.244.0.0/16"  # pods (the node IPAM controller's default)
SERVICE_CIDR = "10.96.0.0/12"  # ClusterIPs (apiserver/allocators.py)

NFT_TABLE = "tinykube"  # the one nftables table (family ip) the proxy owns
NFT_NAT_TABLE = "tinykube-nat"  # masquerade for pod traffic leaving the cluster CIDR

CNI_NETWORK_NAME = "tinykube"
CNI_PLUGIN_TYPE = "tinykube-cni"  # the executable containerd looks up in its cni bin_dir
CNI_CONF_FILE = "10-tinykube.conflist"  # written by the node agent into the CNI conf dir
CNI_VERSION = "1.0.0"
CNI_DATA_DIR = "/var/lib/tinykube/cni"  # the on-disk IPAM (one file per address)

# Node annotations the agent publishes for the other nodes' agents (flannel keeps
# the same facts in flannel.alpha.coreos.com/backend-data and .../public-ip).
ANNOTATION_VTEP_MAC = "netplugin.tinykube.io/vtep-mac"
ANNOTATION_NODE_IP = "netplugin.tinykube.io/node-ip"

# Cluster DNS on every node (netplugin/dns): NodeLocal DNSCache's well-known link-local
# address, held by the node namespace's loopback link; the kubelet's --cluster-dns.
DNS_ADDRESS = "169.254.20.10"
DNS_DEVICE = "lo"
CLUSTER_DOMAIN = "cluster.local"
