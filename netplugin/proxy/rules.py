"""The service proxy's nftables ruleset: a pure function from service ports to `nft -f` text.

Layout (kube-proxy's nftables mode, in one table `ip tinykube`):

    nat-prerouting   (nat, prerouting, dstnat)  jump services        pods, the underlay
    nat-output       (nat, output, dstnat)      jump services        the node itself
    services         ip daddr @cluster-ips ip saddr != CLUSTER_CIDR jump mark-for-masquerade
                     ip daddr . meta l4proto . th dport vmap @service-ips
                     fib daddr type local ip daddr != 127.0.0.0/8
                         meta l4proto . th dport vmap @service-nodeports
    service-ips      map  10.96.0.10 . tcp . 80  : goto service-default/web/tcp/80
    service-nodeports map tcp . 30080            : goto external-default/web/tcp/80
    external-KEY     jump mark-for-masquerade; goto service-KEY          (NodePort)
    service-KEY      [ip saddr @affinity-KEY__EP goto endpoint-KEY__EP]  (ClientIP affinity)
                     numgen random mod 3 == 0 goto endpoint-KEY__A        (3 ready endpoints)
                     numgen random mod 2 == 0 goto endpoint-KEY__B
                     goto endpoint-KEY__C
    endpoint-KEY__EP ip saddr EP_IP jump mark-for-masquerade             (hairpin)
                     [update @affinity-KEY__EP { ip saddr }]
                     meta l4proto tcp dnat to EP_IP:EP_PORT
    nat-postrouting  (nat, postrouting, srcnat) jump masquerading
    masquerading     meta mark & 0x4000 == 0 return; meta mark set meta mark ^ 0x4000;
                     masquerade fully-random

    filter-forward   (filter, forward, -110)  ct state new jump service-endpoints-check
                                              ct state new jump cluster-ips-check
    filter-output    (filter, output, -110)   ct state new jump service-endpoints-check
    filter-output-post-dnat (filter, output, -90) ct state new jump cluster-ips-check
    filter-input     (filter, input, -110)    ct state new jump nodeport-endpoints-check
    service-endpoints-check   ip daddr . meta l4proto . th dport vmap @no-endpoint-services
    nodeport-endpoints-check  ip daddr != 127.0.0.0/8 meta l4proto . th dport
                                  vmap @no-endpoint-nodeports
    cluster-ips-check         ip daddr @cluster-ips goto reject-chain   (a port no Service has)
    reject-chain     meta l4proto tcp reject with tcp reset; reject     (refused, not hung)

Why verdict maps: the first packet of a connection costs one hash lookup in
`service-ips` whether there are 10 Services or 5000, where a chain of one
rule per Service (iptables mode) costs a linear scan. Only that first packet
is looked at: NAT decisions are stored in conntrack, and later packets of the
connection never enter these chains.

Why `numgen random mod N-i` rules: endpoint i (of N ready ones) is taken
with probability 1/(N-i) if none before it was, so each gets exactly 1/N:
with 3, A gets 1/3, B gets 2/3 * 1/2 = 1/3, C the remaining 1/3. kube-proxy
draws once and jumps through an anonymous verdict map
(`numgen random mod N vmap { 0 : goto A, ... }`); measured here, the kernel
and nft re-check verdict-map elements so that 5000 Services with two
endpoints took 31 s to load that way (13 s with one shared named map keyed by
`numgen ... offset K`) against 1.5 s with these plain rules. The per-packet
price is N-1 random draws on a connection's first packet only.

Why the 0x4000 mark instead of masquerading directly: the decision "this
connection must be masqueraded" is made in prerouting (where we know it is
NodePort, hairpin or from outside the cluster), but masquerade can only run in
postrouting, after routing chose the output interface and its address. The
mark carries the decision between the two, then is cleared so it does not leak
into anything else that reads marks.

Hairpin: pod 10.244.1.5 connects to its own Service and numgen picks
10.244.1.5 itself. Without masquerade it would get a packet from itself to
itself and answer locally, never through the DNAT. The endpoint chain's
`ip saddr 10.244.1.5 jump mark-for-masquerade` makes the source the bridge
address 10.244.1.1, so the reply comes back through the node and is un-NATed.
With bridge netfilter on (below), the DNATed packet is bridged straight back
out of the port it came in on, which the bridge only does for a port in
hairpin mode: tinykube-cni sets it (`hairpinMode: true`).

Pod → ClusterIP → another pod on the same bridge: the reply from the second
pod is addressed to the first one's own subnet and goes straight across the
bridge at layer 2, skipping the node's IP stack and so its conntrack -- the
client sees an answer from the wrong address and resets. The Proxier turns on
net.bridge.bridge-nf-call-iptables (per network namespace since Linux 5.3;
bridged IPv4 then passes the ip-family hooks, nftables included), which keeps
the client's source address. Where br_netfilter is unavailable,
`masquerade_bridged` adds `oifname tk0 ct status dnat ip saddr CLUSTER_CIDR`
to the masquerade marking instead (the server then sees the bridge address).

No endpoints: the Service's ClusterIP . protocol . port goes into
`no-endpoint-services` (and its NodePort into `no-endpoint-nodeports`), whose
elements jump to reject-chain, checked by filter chains before DNAT: a client
gets a TCP reset (or ICMP port unreachable for UDP) at once instead of a
packet routed nowhere and a connect() that hangs.

Session affinity: one dynamic set per endpoint of a ClientIP Service, holding
client addresses with the Service's timeout. The endpoint chain refreshes the
client's entry (`update`) on every new connection; the service chain sends a
client found in an endpoint's set straight to that endpoint before numgen.

The transaction (see `render`): add the table (so the next commands cannot
fail on a missing one), flush its rules and its fixed maps, delete chains and
sets that are no longer wanted, then declare everything again. nft applies the
whole script atomically: a packet sees the old ruleset or the new, never half.
Affinity sets are declared, never flushed, so clients keep their endpoint
across syncs.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from netplugin.constants import BRIDGE, NFT_TABLE
from netplugin.proxy.model import Endpoint, ServicePort

MASQUERADE_MARK = 0x4000  # kube-proxy's masquerade bit
FILTER_PRIORITY = -110  # dstnat - 10: before DNAT, so the original destination is seen
POST_DNAT_PRIORITY = -90  # dstnat + 10: after DNAT, only unmatched ClusterIP ports remain
MAX_NAME = 256  # NFT_CHAIN_MAXNAMELEN (with the terminating NUL: names up to 255)

# The table's fixed maps and sets: flushed and refilled on every sync.
FIXED_SETS: dict[str, str] = {
    "service-ips": "map service-ips { type ipv4_addr . inet_proto . inet_service : verdict; }",
    "service-nodeports": "map service-nodeports { type inet_proto . inet_service : verdict; }",
    "no-endpoint-services": (
        "map no-endpoint-services { type ipv4_addr . inet_proto . inet_service : verdict; }"
    ),
    "no-endpoint-nodeports": (
        "map no-endpoint-nodeports { type inet_proto . inet_service : verdict; }"
    ),
    "cluster-ips": "set cluster-ips { type ipv4_addr; }",
}


class RenderError(ValueError):
    """The input cannot be rendered (an invalid CIDR, a name nft would refuse)."""


@dataclass(frozen=True)
class RulesConfig:
    """What the ruleset depends on besides the service ports."""

    table: str = NFT_TABLE
    cluster_cidr: str = ""  # "": never masquerade ClusterIP traffic by source
    bridge: str = BRIDGE
    masquerade_bridged: bool = False  # no br_netfilter: masquerade same-bridge service traffic

    def __post_init__(self) -> None:
        if self.cluster_cidr:
            try:
                ipaddress.IPv4Network(self.cluster_cidr)
            except ValueError:
                raise RenderError(
                    f"cluster_cidr: {self.cluster_cidr!r} is not an IPv4 network"
                ) from None


@dataclass(frozen=True)
class Ruleset:
    """One sync's `nft -f` script and the objects it leaves in the table."""

    script: str
    chains: frozenset[str]  # every chain in the table afterwards
    sets: frozenset[str]  # the affinity sets afterwards (the fixed ones are not listed)
    lines: int  # lines in the script, for logs and benchmarks
    fingerprint: str  # sha256 of the script without its deletes: the state it leaves


def service_chain(port: ServicePort) -> str:
    return _checked(f"service-{port.key}")


def external_chain(port: ServicePort) -> str:
    return _checked(f"external-{port.key}")


def endpoint_chain(port: ServicePort, ep: Endpoint) -> str:
    return _checked(f"endpoint-{port.key}__{ep.ip}/{ep.port}")


def affinity_set(port: ServicePort, ep: Endpoint) -> str:
    return _checked(f"affinity-{port.key}__{ep.ip}/{ep.port}")


def _checked(name: str) -> str:
    if len(name) >= MAX_NAME:
        raise RenderError(f"nft name too long ({len(name)} characters): {name[:60]}...")
    return name


_BASE_CHAINS: dict[str, tuple[str, list[str]]] = {
    # name: (type hook priority, rules)
    "nat-prerouting": ("type nat hook prerouting priority dstnat", ["jump services"]),
    "nat-output": ("type nat hook output priority -100", ["jump services"]),
    "nat-postrouting": ("type nat hook postrouting priority srcnat", ["jump masquerading"]),
    "filter-forward": (
        f"type filter hook forward priority {FILTER_PRIORITY}",
        ["ct state new jump service-endpoints-check", "ct state new jump cluster-ips-check"],
    ),
    "filter-output": (
        f"type filter hook output priority {FILTER_PRIORITY}",
        ["ct state new jump service-endpoints-check"],
    ),
    "filter-output-post-dnat": (
        f"type filter hook output priority {POST_DNAT_PRIORITY}",
        ["ct state new jump cluster-ips-check"],
    ),
    "filter-input": (
        f"type filter hook input priority {FILTER_PRIORITY}",
        ["ct state new jump nodeport-endpoints-check"],
    ),
}

_HELPER_CHAINS: dict[str, list[str]] = {
    "services": [
        "ip daddr . meta l4proto . th dport vmap @service-ips",
        "fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport"
        " vmap @service-nodeports",
    ],
    "mark-for-masquerade": [f"meta mark set meta mark | {MASQUERADE_MARK:#x}"],
    "masquerading": [
        f"meta mark & {MASQUERADE_MARK:#x} == 0 return",
        f"meta mark set meta mark ^ {MASQUERADE_MARK:#x}",
        "masquerade fully-random",
    ],
    "service-endpoints-check": ["ip daddr . meta l4proto . th dport vmap @no-endpoint-services"],
    "nodeport-endpoints-check": [
        "ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @no-endpoint-nodeports"
    ],
    "cluster-ips-check": ["ip daddr @cluster-ips goto reject-chain"],
    "reject-chain": ["meta l4proto tcp reject with tcp reset", "reject"],
}


class _Builder:
    def __init__(self, config: RulesConfig) -> None:
        self.config = config
        self.chains: dict[str, list[str]] = {}
        self.elements: dict[str, list[str]] = {name: [] for name in FIXED_SETS}
        self.affinity: dict[str, int] = {}  # set name -> timeout

    def add_port(self, port: ServicePort) -> None:
        if not port.endpoints:
            target = "goto reject-chain"
            self.elements["no-endpoint-services"].append(
                f"{port.cluster_ip} . {port.protocol} . {port.port} : {target}"
            )
            if port.node_port:
                self.elements["no-endpoint-nodeports"].append(
                    f"{port.protocol} . {port.node_port} : {target}"
                )
            self.elements["cluster-ips"].append(port.cluster_ip)
            return
        svc = service_chain(port)
        rules: list[str] = []
        for ep in port.endpoints:
            chain = endpoint_chain(port, ep)
            ep_rules = [f"ip saddr {ep.ip} jump mark-for-masquerade"]
            if port.affinity_timeout:
                aff = affinity_set(port, ep)
                self.affinity[aff] = port.affinity_timeout
                rules.append(f"ip saddr @{aff} goto {chain}")
                ep_rules.append(f"update @{aff} {{ ip saddr }}")
            ep_rules.append(f"meta l4proto {port.protocol} dnat to {ep.ip}:{ep.port}")
            self.chains[chain] = ep_rules
        if len(port.endpoints) == 1:
            rules.append(f"goto {endpoint_chain(port, port.endpoints[0])}")
        else:
            n = len(port.endpoints)
            for i, ep in enumerate(port.endpoints[:-1]):
                rules.append(f"numgen random mod {n - i} == 0 goto {endpoint_chain(port, ep)}")
            rules.append(f"goto {endpoint_chain(port, port.endpoints[-1])}")
        self.chains[svc] = rules
        self.elements["service-ips"].append(
            f"{port.cluster_ip} . {port.protocol} . {port.port} : goto {svc}"
        )
        self.elements["cluster-ips"].append(port.cluster_ip)
        if port.node_port:
            ext = external_chain(port)
            self.chains[ext] = ["jump mark-for-masquerade", f"goto {svc}"]
            self.elements["service-nodeports"].append(
                f"{port.protocol} . {port.node_port} : goto {ext}"
            )

    def helper_chains(self) -> dict[str, list[str]]:
        chains = dict(_HELPER_CHAINS)
        cidr = self.config.cluster_cidr
        if cidr:
            # From outside the pod network (the node itself, the underlay) to a
            # ClusterIP: masquerade, so the reply comes back through this node.
            mark = f"ip daddr @cluster-ips ip saddr != {cidr} jump mark-for-masquerade"
            chains["services"] = [mark, *chains["services"]]
        return chains

    def base_chains(self) -> dict[str, tuple[str, list[str]]]:
        chains = dict(_BASE_CHAINS)
        cfg = self.config
        if cfg.masquerade_bridged and cfg.cluster_cidr:
            hook, rules = chains["nat-postrouting"]
            mark = (
                f'oifname "{cfg.bridge}" ct status dnat ip saddr {cfg.cluster_cidr}'
                " jump mark-for-masquerade"
            )
            chains["nat-postrouting"] = (hook, [mark, *rules])
        return chains


def render(
    ports: Sequence[ServicePort],
    config: RulesConfig | None = None,
    *,
    existing_chains: Iterable[str] = (),
    existing_sets: Iterable[str] = (),
) -> Ruleset:
    """The one-transaction script that makes the table hold exactly `ports`.

    `existing_chains` / `existing_sets` are what the table holds now (the
    Proxier remembers them from its last sync, or reads them after a restart);
    the ones no longer wanted are deleted in the same transaction. Same input,
    same bytes: ports are rendered in the order given (model.build sorts them).
    """
    cfg = config or RulesConfig()
    b = _Builder(cfg)
    for port in ports:
        b.add_port(port)
    base = b.base_chains()
    helpers = b.helper_chains()
    chains = {**{name: rules for name, (_, rules) in base.items()}, **helpers, **b.chains}
    t = f"ip {cfg.table}"
    out = [
        f"# tinykube service proxy: {len(ports)} service ports, the whole table in one transaction",
        f"add table {t}",
        f"flush table {t}",
    ]
    for name, decl in FIXED_SETS.items():
        out.append(f"add {decl.replace(name, f'{t} {name}', 1)}")
        out.append(f"flush {decl.split()[0]} {t} {name}")
    deletes = [f"delete chain {t} {name}" for name in sorted(set(existing_chains) - set(chains))]
    stale_sets = set(existing_sets) - set(b.affinity) - set(FIXED_SETS)
    deletes.extend(f"delete set {t} {name}" for name in sorted(stale_sets))
    head = len(out)
    out.append(f"table {t} {{")
    for name, timeout in b.affinity.items():
        out.append(f"\tset {name} {{ type ipv4_addr; flags dynamic,timeout; timeout {timeout}s; }}")
    for name, (hook, rules) in base.items():
        out.append(f"\tchain {name} {{")
        out.append(f"\t\t{hook}; policy accept;")
        out.extend(f"\t\t{rule}" for rule in rules)
        out.append("\t}")
    for name, rules in {**helpers, **b.chains}.items():
        out.append(f"\tchain {name} {{")
        out.extend(f"\t\t{rule}" for rule in rules)
        out.append("\t}")
    out.append("}")
    # Elements last: a verdict map's elements are checked once each as they are
    # added, but every rule that looks the map up re-checks all of its elements;
    # rules added before the elements keep a sync linear in the number of services.
    for name, decl in FIXED_SETS.items():
        elements = sorted(set(b.elements[name])) if decl.startswith("set") else b.elements[name]
        if elements:
            out.append(f"add element {t} {name} {{")
            out.extend(f"\t{e}," for e in elements)
            out.append("}")
    # What the table will hold, whatever it held before: equal fingerprints, equal tables.
    fingerprint = hashlib.sha256("\n".join(out).encode()).hexdigest()
    out[head:head] = deletes
    script = "\n".join(out) + "\n"
    return Ruleset(
        fingerprint=fingerprint,
        script=script,
        chains=frozenset(chains),
        sets=frozenset(b.affinity),
        lines=len(out),
    )


def delete_script(table: str = NFT_TABLE) -> str:
    """The script that removes the table, whether or not it exists (add first, then delete)."""
    return f"add table ip {table}\ndelete table ip {table}\n"
