"""Which UDP flows the proxy forgets after a sync (conntrack.stale_flows), and how it says so."""

from __future__ import annotations

from netplugin.commands import CommandLog
from netplugin.proxy.conntrack import StaleFlow, clear, stale_flows, udp_endpoints
from netplugin.proxy.model import Endpoint, ServicePort

A = Endpoint("10.244.1.5", 5353)
B = Endpoint("10.244.2.7", 5353)


def dns(*eps: Endpoint, node_port: int = 0, protocol: str = "udp") -> ServicePort:
    return ServicePort("kube-system", "dns", "dns", protocol, "10.96.0.10", 53, node_port, eps)


def test_an_endpoint_leaving_a_udp_port_makes_its_flows_stale() -> None:
    before = udp_endpoints([dns(A, B, node_port=30053)])
    assert stale_flows(before, udp_endpoints([dns(B, node_port=30053)])) == [
        StaleFlow("10.96.0.10", 53, "10.244.1.5"),
        StaleFlow("", 30053, "10.244.1.5"),
    ]


def test_a_removed_service_makes_all_its_flows_stale_and_nothing_else_does() -> None:
    before = udp_endpoints([dns(A, B)])
    assert [f.endpoint for f in stale_flows(before, {})] == ["10.244.1.5", "10.244.2.7"]
    assert stale_flows(before, udp_endpoints([dns(A, B)])) == []
    assert stale_flows(before, udp_endpoints([dns(A, B, Endpoint("10.244.3.3", 5353))])) == []


def test_tcp_ports_are_left_to_conntrack() -> None:
    assert udp_endpoints([dns(A, protocol="tcp")]) == {}


def test_the_deletion_is_logged_as_a_conntrack_command_and_skipped_in_a_dry_run() -> None:
    cmds = CommandLog(dry_run=True)
    flows = [StaleFlow("10.96.0.10", 53, "10.244.1.5"), StaleFlow("", 30053, "10.244.1.5")]
    assert clear(flows, cmds) == 0
    assert cmds.commands == [
        "conntrack -D -p udp --orig-dst 10.96.0.10 --orig-port-dst 53 --reply-src 10.244.1.5",
        "conntrack -D -p udp --orig-port-dst 30053 --reply-src 10.244.1.5",
    ]
