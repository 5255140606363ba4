"""A pod's resolv.conf: cluster DNS or the node's own (kubelet network/dns/dns.go).

The kubelet decides, per pod, what its containers' /etc/resolv.conf says, from
the pod's `dnsPolicy` and the kubelet's `--cluster-dns` / `--cluster-domain`,
and hands it to the runtime in the sandbox config (CRI DNSConfig); containerd
writes the file. With `--cluster-dns 169.254.20.10` (the node agent's cluster
DNS, netplugin/dns) a pod in namespace `shop` gets:

    nameserver 169.254.20.10
    search shop.svc.cluster.local svc.cluster.local cluster.local
    options ndots:5

`ndots:5` makes a short name such as `web-app-service` (no dot at all) try the
search domains first, so it finds the Service in the pod's own namespace.

    dnsPolicy                  hostNetwork  resolv.conf
    ClusterFirst (default)     no           cluster DNS, as above
    ClusterFirst               yes          the node's (as Default)
    ClusterFirstWithHostNet    either       cluster DNS
    Default                    either       the node's: the runtime's own choice

Without `--cluster-dns` every policy falls back to the node's resolv.conf, as
Kubernetes does (with a warning event there; here a debug log).
"""

from __future__ import annotations

from collections.abc import Sequence

from kubelet.runtime.interface import DNSConfig
from protos import core_pb2

NDOTS = "ndots:5"


def pod_dns(pod: core_pb2.Pod, cluster_dns: Sequence[str], cluster_domain: str) -> DNSConfig | None:
    """The DNS config for the pod's sandbox; None = the node's resolv.conf."""
    policy = pod.spec.dns_policy or "ClusterFirst"
    if not cluster_dns or policy == "Default":
        return None
    if policy == "ClusterFirst" and pod.spec.host_network:
        return None
    if policy not in ("ClusterFirst", "ClusterFirstWithHostNet"):
        return None
    domain = cluster_domain.strip(".")
    namespace = pod.metadata.namespace or "default"
    return DNSConfig(
        servers=tuple(cluster_dns),
        searches=(f"{namespace}.svc.{domain}", f"svc.{domain}", domain),
        options=(NDOTS,),
    )
