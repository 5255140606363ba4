"""The service proxy's model: Services joined with Endpoints into ServicePorts.

The objects come from localcluster.netcluster_objects (`service`, `endpoints`),
which the other proxy tests and the network benchmark share: they write the
objects as Kubernetes JSON and decode them with the real codec, so the tests
speak the same language as a manifest. WEB and WEB_EP are shared with the
rules tests.
"""

from __future__ import annotations

import pytest

from localcluster.netcluster_objects import endpoints, service
from netplugin.proxy.model import (
    DEFAULT_AFFINITY_TIMEOUT,
    Endpoint,
    ModelError,
    ServicePort,
    build,
    service_ports,
)

WEB = service(
    "web",
    "10.96.0.10",
    [
        {"name": "http", "port": 80, "targetPort": "web", "protocol": "TCP", "nodePort": 30080},
        {"name": "dns", "port": 53, "targetPort": 5353, "protocol": "UDP"},
    ],
    type_="NodePort",
)
WEB_EP = endpoints(
    "web",
    [
        (["10.244.2.7", "10.244.1.5"], [], [("http", 8080, "TCP"), ("dns", 5353, "UDP")]),
        ([], ["10.244.1.9"], [("http", 80, "TCP"), ("dns", 5353, "UDP")]),
    ],
)


def test_multi_port_service_joins_endpoints_by_port_name_and_protocol() -> None:
    http, dns = service_ports(WEB, WEB_EP)
    assert http == ServicePort(
        namespace="default",
        name="web",
        port_name="http",
        protocol="tcp",
        cluster_ip="10.96.0.10",
        port=80,
        node_port=30080,
        endpoints=(Endpoint("10.244.1.5", 8080), Endpoint("10.244.2.7", 8080)),
    )
    assert dns.protocol == "udp" and dns.port == 53 and dns.node_port == 0
    assert dns.endpoints == (Endpoint("10.244.1.5", 5353), Endpoint("10.244.2.7", 5353))
    assert http.key == "default/web/tcp/80"


def test_unready_endpoints_are_left_out() -> None:
    only_unready = endpoints("web", [([], ["10.244.1.9"], [("http", 80, "TCP")])])
    http, dns = service_ports(WEB, only_unready)
    assert http.endpoints == () and dns.endpoints == ()


def test_missing_endpoints_object_means_no_endpoints() -> None:
    assert all(p.endpoints == () for p in service_ports(WEB, None))


def test_endpoint_port_of_another_protocol_does_not_match() -> None:
    ep = endpoints("web", [(["10.244.1.5"], [], [("http", 8080, "UDP")])])
    http, _ = service_ports(WEB, ep)
    assert http.endpoints == ()


def test_node_port_only_for_node_port_services() -> None:
    svc = service("a", "10.96.0.11", [{"port": 80, "nodePort": 30001}])
    (port,) = service_ports(svc, None)
    assert port.node_port == 0 and port.protocol == "tcp"


def test_headless_external_name_and_sctp_are_not_proxied() -> None:
    assert service_ports(service("h", "None", [{"port": 80}]), None) == []
    ext = service("e", "", [{"port": 80}], type_="ExternalName")
    assert service_ports(ext, None) == []
    sctp = service("s", "10.96.0.12", [{"port": 80, "protocol": "SCTP"}])
    assert service_ports(sctp, None) == []


def test_client_ip_affinity_gets_the_default_timeout() -> None:
    svc = service("a", "10.96.0.11", [{"port": 80}], affinity="ClientIP")
    (port,) = service_ports(svc, None)
    assert port.affinity_timeout == DEFAULT_AFFINITY_TIMEOUT == 10800
    (plain,) = service_ports(service("b", "10.96.0.12", [{"port": 80}]), None)
    assert plain.affinity_timeout == 0


def test_client_ip_affinity_keeps_the_services_own_timeout() -> None:
    svc = service("a", "10.96.0.11", [{"port": 80}], affinity="ClientIP")
    svc.spec.session_affinity_config.client_ip.timeout_seconds = 60
    (port,) = service_ports(svc, None)
    assert port.affinity_timeout == 60


def test_bad_cluster_ip_is_named_and_skipped_without_stopping_the_others() -> None:
    bad = service("bad", "fd00::1", [{"port": 80}])
    with pytest.raises(ModelError, match=r"service default/bad clusterIP: 'fd00::1'"):
        service_ports(bad, None)
    good = service("good", "10.96.0.20", [{"port": 80}])
    assert [p.name for p in build([bad, good], {})] == ["good"]


def test_build_sorts_by_key_and_joins_by_namespace_and_name() -> None:
    other = service("web", "10.96.0.30", [{"name": "http", "port": 80}], namespace="other")
    ports = build([WEB, other], {"default/web": WEB_EP})
    assert [p.key for p in ports] == [
        "default/web/tcp/80",
        "default/web/udp/53",
        "other/web/tcp/80",
    ]
    assert ports[2].endpoints == ()
