"""The packet path of a Service request, computed from the proxy's and the overlay's state.

The objects are the seed's as a two-node cluster holds them: web-app-service
(10.96.0.10:80) with one ready replica on each node, and the Nodes with the
podCIDRs and the annotations each agent publishes (VTEP MAC, node IP). The
rule and entry text each hop carries must be what the proxy's render and the
overlay's plan produce, so the tests compare with those functions' own output.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from apimachinery import codec
from netplugin.constants import ANNOTATION_NODE_IP, ANNOTATION_VTEP_MAC
from netplugin.overlay.network import Change, NeighEntry
from netplugin.pathview import PathError, parse_script, service_path
from netplugin.proxy import model, rules

MAC1, MAC2 = "02:00:00:00:00:01", "02:00:00:00:00:02"


def node(name: str, cidr: str, ip: str, mac: str = "") -> Any:
    annotations = {ANNOTATION_NODE_IP: ip, **({ANNOTATION_VTEP_MAC: mac} if mac else {})}
    return codec.from_dict(
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "annotations": annotations},
            "spec": {"podCIDR": cidr},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}]},
        }
    )


def service(affinity: bool = False) -> Any:
    spec: dict[str, Any] = {
        "clusterIP": "10.96.0.10",
        "selector": {"app": "web-app"},
        "ports": [{"name": "http", "port": 80, "targetPort": 80, "protocol": "TCP"}],
    }
    if affinity:
        spec["sessionAffinity"] = "ClientIP"
    return codec.from_dict(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web-app-service", "namespace": "default"},
            "spec": spec,
        }
    )


def endpoints(*ready: tuple[str, str, str]) -> Any:
    addresses = [
        {"ip": ip, "nodeName": node, "targetRef": {"kind": "Pod", "name": pod}}
        for ip, pod, node in ready
    ]
    subsets = [{"addresses": addresses, "ports": [{"name": "http", "port": 80}]}] if ready else []
    return codec.from_dict(
        {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": "web-app-service", "namespace": "default"},
            "subsets": subsets,
        }
    )


NODES = [
    node("node1", "10.244.0.0/24", "10.201.0.11", MAC1),
    node("node2", "10.244.1.0/24", "10.201.0.12", MAC2),
]
SEED_EP = endpoints(("10.244.0.5", "web-a", "node1"), ("10.244.1.7", "web-b", "node2"))


def rendered(svc: Any, ep: Any) -> Any:
    (port,) = model.service_ports(svc, ep)
    return port, parse_script(rules.render([port], rules.RulesConfig()).script)


def test_the_nft_steps_are_the_proxys_own_rules() -> None:
    path = service_path(service(), SEED_EP, NODES, "node1")
    port, table = rendered(service(), SEED_EP)
    kinds = [h.kind for h in path.common]
    assert kinds == ["client", "nft", "nft", "nft"]
    lookup = path.common[2].detail
    assert "ip daddr . meta l4proto . th dport vmap @service-ips" in lookup
    assert (
        f"element @service-ips {{ 10.96.0.10 . tcp . 80 : goto {rules.service_chain(port)} }}"
        in lookup
    )
    service_rules = path.common[3].detail[1:-1]
    assert list(service_rules) == table.chains[rules.service_chain(port)]
    assert service_rules[0].startswith("numgen random mod 2 == 0 goto endpoint-")
    assert path.service == "default/web-app-service:http/tcp"


def test_same_node_endpoint_goes_through_the_bridge() -> None:
    path = service_path(service(), SEED_EP, NODES, "node1")
    local = next(b for b in path.branches if b.node == "node1")
    assert local.complete and local.pod == "web-a" and local.share == "1/2"
    assert [h.kind for h in local.hops] == ["nft", "route", "pod"]
    assert "meta l4proto tcp dnat to 10.244.0.5:80" in local.hops[0].detail
    assert local.hops[1].detail == ("10.244.0.0/24 dev tk0 proto kernel scope link src 10.244.0.1",)


def test_other_node_endpoint_crosses_the_overlay_with_its_three_entries() -> None:
    path = service_path(service(), SEED_EP, NODES, "node1")
    remote = next(b for b in path.branches if b.node == "node2")
    assert remote.complete and remote.pod == "web-b"
    kinds = [h.kind for h in remote.hops]
    assert kinds == ["nft", "route", "neighbour", "fdb", "vxlan", "vxlan", "route", "pod"]
    route, neigh, fdb, wire = remote.hops[1:5]
    assert route.detail == ("10.244.1.0/24 via 10.244.1.0 dev tinykube.1 onlink",)
    assert neigh.detail == (f"10.244.1.0 dev tinykube.1 lladdr {MAC2} PERMANENT",)
    assert fdb.detail == (f"{MAC2} dev tinykube.1 dst 10.201.0.12 self permanent",)
    assert wire.node == "" and "UDP 10.201.0.11 -> 10.201.0.12:8472, VNI 1" in wire.title
    # The same entries the overlay itself would add on node1.
    assert " ".join(Change("add", NeighEntry("10.244.1.0", MAC2)).argv("tinykube.1")).startswith(
        "ip neigh add 10.244.1.0 lladdr " + MAC2
    )
    assert [h.node for h in remote.hops[-2:]] == ["node2", "node2"]


def test_a_node_without_its_vtep_mac_is_a_missing_hop() -> None:
    nodes = [NODES[0], node("node2", "10.244.1.0/24", "10.201.0.12")]
    path = service_path(service(), SEED_EP, nodes, "node1")
    remote = next(b for b in path.branches if b.node == "node2")
    assert not remote.complete
    assert remote.hops[-1].kind == "missing"
    assert "no VTEP MAC annotation" in remote.hops[-1].title


def test_no_ready_endpoints_end_in_the_reject_chain() -> None:
    path = service_path(service(), endpoints(), NODES, "node2")
    assert path.branches == ()
    reject = path.common[-1]
    assert reject.kind == "reject"
    assert "element @no-endpoint-services { 10.96.0.10 . tcp . 80 : goto reject-chain }" in (
        reject.detail
    )
    assert "meta l4proto tcp reject with tcp reset" in reject.detail


def test_affinity_is_noted_and_to_dict_is_json_ready() -> None:
    path = service_path(service(affinity=True), SEED_EP, NODES, "node2", port="80")
    assert "ClientIP affinity" in path.note and "10800" in path.note
    data = json.loads(json.dumps(path.to_dict()))
    assert data["clusterIP"] == "10.96.0.10" and data["clientNode"] == "node2"
    assert data["branches"][0]["hops"][0]["kind"] == "nft"
    assert data["ports"] == ["http"]


@pytest.mark.parametrize(
    ("client", "port", "message"),
    [
        ("node9", "", 'node "node9" not found'),
        ("node1", "https", "has no port 'https'"),
    ],
)
def test_questions_without_an_answer_name_what_is_wrong(
    client: str, port: str, message: str
) -> None:
    with pytest.raises(PathError, match=message):
        service_path(service(), SEED_EP, NODES, client, port)


def test_a_client_node_without_a_pod_cidr_is_refused() -> None:
    nodes = [*NODES, node("node3", "", "10.201.0.13")]
    with pytest.raises(PathError, match="node3 has no podCIDR yet"):
        service_path(service(), SEED_EP, nodes, "node3")
