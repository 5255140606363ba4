"""A pod's resolv.conf: cluster DNS, the node's own, or the pod's (kubelet network/dns/dns.go).

The kubelet decides, per pod, what its containers' /etc/resolv.conf says, from
the pod's `dnsPolicy` and `dnsConfig` and the kubelet's `--cluster-dns` /
`--cluster-domain`, and hands it to the runtime in the sandbox config (CRI
DNSConfig); containerd or Docker writes the file. With `--cluster-dns
169.254.20.10` (the node agent's cluster DNS, netplugin/dns) a pod in namespace
`shop` gets:

    nameserver 169.254.20.10
    search shop.svc.cluster.local svc.cluster.local cluster.local
    options ndots:5

`ndots:5` makes a short name such as `web-app-service` (no dot at all) try the
search domains first, so it finds the Service in the pod's own namespace. The
node's own search domains (its /etc/resolv.conf) follow the cluster's.

    dnsPolicy                  hostNetwork  resolv.conf
    ClusterFirst (default)     no           cluster DNS, as above
    ClusterFirst               yes          the node's (as Default)
    ClusterFirstWithHostNet    either       cluster DNS
    Default                    either       the node's
    None                       either       nothing but the pod's dnsConfig

Without `--cluster-dns` the cluster policies fall back to the node's resolv.conf,
as Kubernetes does. The node's, with no dnsConfig to add, is left to the runtime
(None here: it copies the node's file).

`dnsConfig` is then merged in (appendDNSConfig): its nameservers appended and
its searches appended, each list without repeats (first one kept), its options
merged by name, a pod's value replacing the policy's (`ndots:2` over `ndots:5`;
`edns0` has no value). Example, ClusterFirst in `shop` with dnsConfig
{nameservers: [10.0.0.53], searches: [example.com, cluster.local],
options: [{name: ndots, value: "2"}, {name: edns0}]}:

    nameserver 169.254.20.10
    nameserver 10.0.0.53
    search shop.svc.cluster.local svc.cluster.local cluster.local example.com
    options ndots:2 edns0

Finally the limits of libc's resolver: at most 3 nameservers and 32 search
domains of at most 2048 characters together (a domain over 253 is dropped);
what goes past them is left out, with a Warning event DNSConfigForming naming
the line applied.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from kubelet.runtime.interface import DNSConfig
from protos import core_pb2

NDOTS = "ndots:5"
HOST_RESOLV_CONF = "/etc/resolv.conf"  # the kubelet's --resolv-conf default
MAX_NAMESERVERS = 3
MAX_SEARCH_PATHS = 32
MAX_SEARCH_CHARS = 2048
MAX_DOMAIN_LENGTH = 253

# (reason, message) -> a Warning event on the pod.
Warn = Callable[[str, str], None]


def parse_resolv_conf(text: str) -> DNSConfig:
    """A resolv.conf's nameservers, search domains (the last `search` line) and options."""
    servers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        if fields[0] == "nameserver" and len(fields) > 1:
            servers.append(fields[1])
        elif fields[0] == "search":
            searches = [d.removesuffix(".") for d in fields[1:] if d != "."]
        elif fields[0] == "options":
            options.extend(fields[1:])
    return DNSConfig(tuple(servers), tuple(searches), tuple(options))


def read_resolv_conf(path: str = HOST_RESOLV_CONF) -> DNSConfig:
    """The node's resolver config; an unreadable file is an empty one."""
    try:
        return parse_resolv_conf(Path(path).read_text())
    except OSError:
        return DNSConfig()


def _dns_type(pod: core_pb2.Pod, cluster_dns: Sequence[str]) -> str:
    """getPodDNSType: "none", "cluster" or "host"."""
    policy = pod.spec.dns_policy or "ClusterFirst"
    if policy == "None":
        return "none"
    if policy == "ClusterFirstWithHostNet" or (
        policy == "ClusterFirst" and not pod.spec.host_network
    ):
        return "cluster" if cluster_dns else "host"
    return "host"


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def merge_options(
    base: Sequence[str], extra: Sequence[core_pb2.PodDNSConfigOption]
) -> tuple[str, ...]:
    """mergeDNSOptions: by name, the pod's value winning; `name` alone when no value."""
    table: dict[str, str] = {}
    for option in base:
        name, _, value = option.partition(":")
        table[name] = value
    for pod_option in extra:
        table[pod_option.name] = pod_option.value if pod_option.HasField("value") else ""
    return tuple(f"{name}:{value}" if value else name for name, value in table.items())


def append_dns_config(base: DNSConfig, config: core_pb2.PodDNSConfig) -> DNSConfig:
    """appendDNSConfig: the pod's dnsConfig added to what its policy gave."""
    return DNSConfig(
        servers=_unique([*base.servers, *config.nameservers]),
        searches=_unique([*base.searches, *config.searches]),
        options=merge_options(base.options, list(config.options)),
    )


def fit_limits(config: DNSConfig, warn: Warn | None = None) -> DNSConfig:
    """formDNSConfigFitsLimits: at most 3 nameservers, 32 searches, 2048 characters."""
    servers = config.servers
    if len(servers) > MAX_NAMESERVERS:
        servers = servers[:MAX_NAMESERVERS]
        if warn is not None:
            warn(
                "DNSConfigForming",
                "Nameserver limits were exceeded, some nameservers have been omitted, the "
                f"applied nameserver line is: {' '.join(servers)}",
            )
    kept = [d for d in config.searches[:MAX_SEARCH_PATHS] if len(d) <= MAX_DOMAIN_LENGTH]
    while kept and len(" ".join(kept)) > MAX_SEARCH_CHARS:
        kept.pop()  # the last domains go first
    if tuple(kept) != config.searches and warn is not None:
        warn(
            "DNSConfigForming",
            "Search Line limits were exceeded, some search paths have been omitted, the "
            f"applied search line is: {' '.join(kept)}",
        )
    return DNSConfig(servers, tuple(kept), config.options)


def pod_dns(
    pod: core_pb2.Pod,
    cluster_dns: Sequence[str],
    cluster_domain: str,
    host_dns: Callable[[], DNSConfig] | None = None,
    warn: Warn | None = None,
) -> DNSConfig | None:
    """The DNS config for the pod's sandbox; None = the node's resolv.conf, the runtime's copy.

    `host_dns` gives the node's resolver config (read_resolv_conf); without it the
    node's search domains are not known here and a dnsConfig merges into nothing.
    """
    kind = _dns_type(pod, cluster_dns)
    has_config = pod.spec.HasField("dns_config")
    if kind == "host" and not has_config:
        return None
    host = host_dns() if host_dns is not None else DNSConfig()
    if kind == "none":
        base = DNSConfig()
    elif kind == "host":
        base = host
    else:
        domain = cluster_domain.strip(".")
        namespace = pod.metadata.namespace or "default"
        cluster = (f"{namespace}.svc.{domain}", f"svc.{domain}", domain) if domain else ()
        base = DNSConfig(
            servers=tuple(cluster_dns),
            searches=_unique([*cluster, *host.searches]),
            options=(NDOTS,),
        )
    if has_config:
        base = append_dns_config(base, pod.spec.dns_config)
    return fit_limits(base, warn)
