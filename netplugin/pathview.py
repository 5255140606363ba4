"""The packet path of a Service request, read off the proxy's and the overlay's own state (pure).

What happens to `curl http://10.96.0.10/` from a pod on node1 is written down in
two places of this package: the proxy's nftables table (proxy/rules.py renders it
from Services and Endpoints) and the overlay's route, neighbour and FDB entries
(overlay/network.py derives them from the Nodes and the annotations every agent
publishes). Both are pure functions of API objects, and the agents apply exactly
what they return. So anyone who can read those objects can compute, with the
agents' own functions, the entries each node holds, and draw the packet's way
through them. This module does that for one service port and one client node;
the dashboard (cli/dashboard/) draws the result. Nothing here touches a kernel.

The path, for the seed (web-app-service 10.96.0.10:80, replicas on node1 and
node2) and a client pod on node1:

    client      a pod on node1 (10.244.0.0/24) connects to 10.96.0.10:80/tcp
    nft         nat-prerouting: jump services
    nft         services: ip daddr . meta l4proto . th dport vmap @service-ips
                    element 10.96.0.10 . tcp . 80 : goto service-default/web-app-service/tcp/80
    nft         service-default/web-app-service/tcp/80:
                    numgen random mod 2 == 0 goto endpoint-...__10.244.0.5/80
                    goto endpoint-...__10.244.1.7/80
      branch 1/2 (10.244.0.5, node1)              branch 1/2 (10.244.1.7, node2)
    nft   endpoint chain: dnat to 10.244.0.5:80   endpoint chain: dnat to 10.244.1.7:80
    route 10.244.0.0/24 dev tk0 (same node)       10.244.1.0/24 via 10.244.1.0 dev tinykube.1 onlink
    pod   web-app-...-a (eth0 10.244.0.5)         neighbour 10.244.1.0 lladdr 02:..:02
                                                  fdb 02:..:02 dst 10.201.0.12
                                                  vxlan UDP 10.201.0.11 -> 10.201.0.12:8472, VNI 1
                                                  node2: tinykube.1 -> 10.244.1.0/24 dev tk0
                                                  pod web-app-...-b (eth0 10.244.1.7)

Each nft line is cut out of the very script the proxy would load (rules.render of
this one service port, with the agent's default cluster CIDR), so the rule text is
the kernel's, not a paraphrase. A branch whose overlay entries cannot exist yet (the
destination node has not published its VTEP MAC, or has no podCIDR) ends in a
"missing" hop naming what is missing, and is marked incomplete: the packet would be
dropped there. A service port without ready endpoints ends in the reject chain, as
the proxy programs it (clients are refused, not left hanging).

Limits, said plainly: this is the state the agents *program*, not a read-back of
each node's kernel. An agent that is down or failing keeps an older table; its node's
own log (netplugin.commands) shows what it actually ran.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from netplugin.constants import (
    BRIDGE,
    CLUSTER_CIDR,
    NFT_TABLE,
    VXLAN_DEVICE,
    VXLAN_ID,
    VXLAN_PORT,
)
from netplugin.overlay.network import (
    desired_state,
    lease_from_node,
    leases_from_nodes,
    node_internal_ip,
)
from netplugin.proxy import model, rules


class PathError(ValueError):
    """The question cannot be answered: an unknown port or client node (the message says which)."""


@dataclass(frozen=True)
class Hop:
    """One step of the packet's way: where it happens and the entries that decide it."""

    node: str  # the node whose kernel acts ("" for the underlay wire between nodes)
    kind: str  # client, nft, reject, route, neighbour, fdb, vxlan, bridge, pod, missing
    title: str  # one line for a reader
    detail: tuple[str, ...] = ()  # the rule or entry text, as nft / ip / bridge print it


@dataclass(frozen=True)
class Branch:
    """The way to one endpoint, after the service chain has picked it."""

    endpoint: str  # "10.244.1.7:80"
    share: str  # "1/2": the chance this endpoint is picked for a new connection
    pod: str  # the endpoint's pod (targetRef), "" if the Endpoints do not say
    node: str  # the node whose podCIDR holds the endpoint's address, "" if none does
    hops: tuple[Hop, ...]
    complete: bool  # every entry the packet needs exists


@dataclass(frozen=True)
class PacketPath:
    service: str  # "default/web-app-service:80/tcp"
    cluster_ip: str
    port: int
    protocol: str
    client_node: str
    common: tuple[Hop, ...]  # the client and the nft steps shared by every branch
    branches: tuple[Branch, ...] = ()
    note: str = ""
    ports: tuple[str, ...] = field(default=())  # every port name of the Service, for a picker

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (camelCase, as the API's)."""
        data = asdict(self)
        data["clusterIP"] = data.pop("cluster_ip")
        data["clientNode"] = data.pop("client_node")
        return data


# ---- the proxy's table, cut to one service port -----------------------------------------


@dataclass(frozen=True)
class _Table:
    chains: dict[str, list[str]]
    elements: dict[str, list[str]]


def parse_script(script: str) -> _Table:
    """Chains and set/map elements of a script rules.render wrote (its layout is fixed)."""
    chains: dict[str, list[str]] = {}
    elements: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in script.splitlines():
        if line.startswith("\tchain ") and line.endswith(" {"):
            current = chains.setdefault(line[len("\tchain ") : -2], [])
        elif line.startswith("add element ") and line.endswith(" {"):
            current = elements.setdefault(line.split()[-2], [])
        elif line in ("\t}", "}"):
            current = None
        elif current is not None:
            current.append(line.strip().rstrip(","))
    return _Table(chains, elements)


def _port_table(port: model.ServicePort) -> _Table:
    return parse_script(rules.render([port], rules.RulesConfig(cluster_cidr=CLUSTER_CIDR)).script)


def _nft(node: str, chain: str, table: _Table, title: str) -> Hop:
    lines = [f"table ip {NFT_TABLE} chain {chain} {{", *table.chains.get(chain, []), "}"]
    return Hop(node, "nft", title, tuple(lines))


def _common_hops(port: model.ServicePort, table: _Table, client: str, cidr: str) -> list[Hop]:
    target = f"{port.cluster_ip}:{port.port}/{port.protocol}"
    hops = [
        Hop(client, "client", f"a pod on {client} connects to {target}", (f"src {cidr}",)),
        _nft(client, "nat-prerouting", table, "prerouting hook: every packet jumps to services"),
    ]
    key = f"{port.cluster_ip} . {port.protocol} . {port.port} :"
    if not port.endpoints:
        refused = table.elements.get("no-endpoint-services", [])
        element = next((e for e in refused if e.startswith(key)), "")
        hops.append(
            Hop(
                client,
                "reject",
                "no ready endpoints: the filter hook refuses the connection",
                (f"element @no-endpoint-services {{ {element} }}", *table.chains["reject-chain"]),
            )
        )
        return hops
    element = next((e for e in table.elements.get("service-ips", []) if e.startswith(key)), "")
    services = list(table.chains.get("services", []))
    hops.append(
        Hop(
            client,
            "nft",
            "one verdict-map lookup on (address, protocol, port)",
            (
                f"table ip {NFT_TABLE} chain services {{",
                *services,
                "}",
                f"element @service-ips {{ {element} }}",
            ),
        )
    )
    n = len(port.endpoints)
    why = "one endpoint: always it" if n == 1 else f"numgen picks one of {n}, each 1/{n}"
    hops.append(_nft(client, rules.service_chain(port), table, why))
    return hops


# ---- routing: the same node's bridge, or the overlay to another node ---------------------


@dataclass(frozen=True)
class _Nodes:
    """What routing needs of the cluster's Nodes: podCIDRs and the objects themselves."""

    by_name: dict[str, Any]
    cidrs: dict[str, ipaddress.IPv4Network]

    @classmethod
    def of(cls, nodes: Iterable[Any]) -> _Nodes:
        by_name = {str(n.metadata.name): n for n in nodes}
        cidrs = {}
        for name, node in by_name.items():
            try:
                cidrs[name] = ipaddress.IPv4Network(node.spec.pod_cidr)
            except ValueError:
                continue  # none yet (or not IPv4): no pod can live there
        return cls(by_name, cidrs)

    def owner(self, ip: str) -> str:
        """The node whose podCIDR holds `ip` (what every node's routing table decides on)."""
        address = ipaddress.IPv4Address(ip)
        return next((name for name, cidr in self.cidrs.items() if address in cidr), "")

    def underlay_ip(self, name: str) -> str:
        lease, _ = lease_from_node(self.by_name[name])
        return lease.node_ip if lease else node_internal_ip(self.by_name[name])


def _local_delivery(node: str, cidr: ipaddress.IPv4Network, ip: str, pod: str) -> list[Hop]:
    gateway = cidr.network_address + 1
    return [
        Hop(
            node,
            "route",
            f"{cidr} is this node's podCIDR: out through the bridge {BRIDGE}",
            (f"{cidr} dev {BRIDGE} proto kernel scope link src {gateway}",),
        ),
        Hop(node, "pod", f"pod {pod or '?'}: eth0 {ip}", (f"the veth on {BRIDGE} -> eth0 {ip}",)),
    ]


def _overlay_hops(nodes: _Nodes, client: str, dest: str) -> tuple[list[Hop], bool]:
    """Route, neighbour and FDB entries on `client` for `dest`'s podCIDR, as the overlay
    computes them; a missing hop naming the reason when `dest` has none."""
    own = str(nodes.cidrs[client])
    state = desired_state(leases_from_nodes(nodes.by_name.values(), client), own)
    cidr = str(nodes.cidrs[dest])
    route = next((r for r in state.routes if r.dst == cidr), None)
    if route is None:
        _, reason = lease_from_node(nodes.by_name[dest])
        why = reason or "its podCIDR or VTEP MAC is claimed by another node"
        title = f"no overlay entries for {dest} on {client}: {why}"
        return [Hop(client, "missing", title, ("the packet would be dropped here",))], False
    neigh = next(n for n in state.neighbours if n.ip == route.gateway)
    fdb = next(f for f in state.fdb if f.mac == neigh.mac)
    device = VXLAN_DEVICE
    source = nodes.underlay_ip(client)
    hops = [
        Hop(
            client,
            "route",
            f"{cidr} lives on {dest}: into the VXLAN device",
            (f"{route.dst} via {route.gateway} dev {device} onlink",),
        ),
        Hop(
            client,
            "neighbour",
            f"the gateway's MAC is {dest}'s VTEP (no ARP)",
            (f"{neigh.ip} dev {device} lladdr {neigh.mac} PERMANENT",),
        ),
        Hop(
            client,
            "fdb",
            f"that MAC is behind {fdb.dst}",
            (f"{fdb.mac} dev {device} dst {fdb.dst} self permanent",),
        ),
        Hop(
            "",
            "vxlan",
            f"encapsulated: UDP {source} -> {fdb.dst}:{VXLAN_PORT}, VNI {VXLAN_ID}",
            (f"outer IPv4 {source} -> {fdb.dst}", f"UDP dport {VXLAN_PORT}, VNI {VXLAN_ID}"),
        ),
        Hop(
            dest,
            "vxlan",
            f"{dest}'s {device} unwraps the frame",
            (f"{device}: VNI {VXLAN_ID}, port {VXLAN_PORT}",),
        ),
    ]
    return hops, True


def _branch(
    port: model.ServicePort,
    ep: model.Endpoint,
    table: _Table,
    nodes: _Nodes,
    client: str,
    pods: dict[str, tuple[str, str]],
) -> Branch:
    chain = rules.endpoint_chain(port, ep)
    hops = [_nft(client, chain, table, f"DNAT to {ep}: conntrack remembers it for the reply")]
    pod, _ = pods.get(ep.ip, ("", ""))
    dest = nodes.owner(ep.ip)
    complete = True
    if not dest:
        title = f"no node's podCIDR holds {ep.ip}: no route"
        hops.append(Hop(client, "missing", title, ("the packet would be dropped here",)))
        complete = False
    elif dest == client:
        hops.extend(_local_delivery(client, nodes.cidrs[client], ep.ip, pod))
    else:
        overlay, complete = _overlay_hops(nodes, client, dest)
        hops.extend(overlay)
        if complete:
            hops.extend(_local_delivery(dest, nodes.cidrs[dest], ep.ip, pod))
    share = f"1/{len(port.endpoints)}"
    return Branch(str(ep), share, pod, dest, tuple(hops), complete)


# ---- the question ------------------------------------------------------------------------


def _endpoint_pods(endpoints: Any) -> dict[str, tuple[str, str]]:
    """ip -> (pod name, node name) from the Endpoints' targetRefs."""
    found: dict[str, tuple[str, str]] = {}
    if endpoints is None:
        return found
    for subset in endpoints.subsets:
        for address in [*subset.addresses, *subset.not_ready_addresses]:
            found[address.ip] = (address.target_ref.name, address.node_name)
    return found


def _pick_port(ports: list[model.ServicePort], wanted: str, name: str) -> model.ServicePort:
    if not ports:
        raise PathError(f"service {name} has no port the proxy programs (headless or ExternalName)")
    if not wanted:
        return ports[0]
    for port in ports:
        if wanted in (port.port_name, str(port.port)):
            return port
    raise PathError(f"service {name} has no port {wanted!r}")


def service_path(
    service: Any, endpoints: Any, nodes: Iterable[Any], client_node: str, port: str = ""
) -> PacketPath:
    """The way of a new connection from a pod on `client_node` to the Service's `port`
    (a port name or number; the first port when empty). PathError for a question that
    has no answer: an unknown port, an unknown client node, one without a podCIDR."""
    name = f"{service.metadata.namespace}/{service.metadata.name}"
    try:
        ports = model.service_ports(service, endpoints)
    except model.ModelError as err:
        raise PathError(str(err)) from None
    chosen = _pick_port(ports, port, name)
    known = _Nodes.of(nodes)
    if client_node not in known.by_name:
        raise PathError(f'node "{client_node}" not found')
    if client_node not in known.cidrs:
        raise PathError(f"node {client_node} has no podCIDR yet: no pod runs there")
    table = _port_table(chosen)
    common = _common_hops(chosen, table, client_node, str(known.cidrs[client_node]))
    pods = _endpoint_pods(endpoints)
    branches = tuple(
        _branch(chosen, ep, table, known, client_node, pods) for ep in chosen.endpoints
    )
    note = ""
    if chosen.affinity_timeout:
        note = (
            f"ClientIP affinity: a client seen in the last {chosen.affinity_timeout} s "
            "goes to the endpoint it had"
        )
    return PacketPath(
        service=str(chosen),
        cluster_ip=chosen.cluster_ip,
        port=chosen.port,
        protocol=chosen.protocol,
        client_node=client_node,
        common=tuple(common),
        branches=branches,
        note=note,
        ports=tuple(p.port_name or str(p.port) for p in ports),
    )
