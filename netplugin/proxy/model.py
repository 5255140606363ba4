"""Services and Endpoints, reduced to what the proxy programs: one ServicePort per port.

kube-proxy does not program "Services": it programs *service ports*
(ServicePortName = namespace/name:port). A Service with ports http (80/TCP)
and dns (53/UDP) is two independent things to the data path, each with its
own virtual address (ClusterIP . protocol . port), its own NodePort, its own
list of backends. So the first step of every sync turns the API objects into
a flat, typed, sorted list of `ServicePort`s; rules.py then renders that list
without ever looking at a protobuf message (DESIGN §7.4: protobuf stays at the
boundary).

Joining a Service with its Endpoints. The endpoints controller
(controllers/endpoints.py) has already resolved named targetPorts
per pod, so an EndpointPort carries a number. What ties it back to a Service
port is the port *name* and protocol (kube-proxy matches the same way).
Worked example:

    Service default/web  clusterIP 10.96.0.10  type NodePort
      ports: http 80/TCP targetPort "web" nodePort 30080
             dns  53/UDP targetPort 5353
    Endpoints default/web
      subset 1  addresses [10.244.1.5, 10.244.2.7]  ports [http 8080/TCP, dns 5353/UDP]
      subset 2  notReadyAddresses [10.244.1.9]      ports [http 80/TCP, dns 5353/UDP]

    -> ServicePort(default/web, http, tcp, 10.96.0.10:80, nodePort 30080,
                   endpoints 10.244.1.5:8080, 10.244.2.7:8080)
       ServicePort(default/web, dns,  udp, 10.96.0.10:53, nodePort 0,
                   endpoints 10.244.1.5:5353, 10.244.2.7:5353)

10.244.1.9 is not ready and is left out: the proxy balances over ready
endpoints only, and a Service whose endpoints are all unready gets the
"no endpoints" treatment (connections refused) like one with none at all.

What is skipped, with the reason logged once per sync at DEBUG: headless
Services (clusterIP None), ExternalName Services, a clusterIP that is not an
IPv4 address (the table is family ip), SCTP ports (not supported here).
sessionAffinity ClientIP keeps its timeout: sessionAffinityConfig.clientIP.
timeoutSeconds, which the API server defaults to Kubernetes' 10800 s.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_AFFINITY_TIMEOUT = 10800  # seconds: Kubernetes' sessionAffinityConfig default (3 h)
PROTOCOLS = {"TCP": "tcp", "UDP": "udp"}


class ModelError(ValueError):
    """A Service or Endpoints object the proxy cannot program; the message names it."""


@dataclass(frozen=True, order=True)
class Endpoint:
    """One ready backend of a service port: a pod IP and the port number it serves on."""

    ip: str
    port: int

    def __str__(self) -> str:
        return f"{self.ip}:{self.port}"


@dataclass(frozen=True)
class ServicePort:
    """One port of one Service, with everything the data path needs to know about it."""

    namespace: str
    name: str
    port_name: str
    protocol: str  # "tcp" or "udp" (nft's spelling)
    cluster_ip: str
    port: int
    node_port: int = 0  # 0: no NodePort
    endpoints: tuple[Endpoint, ...] = ()  # ready ones only, sorted
    affinity_timeout: int = 0  # seconds; 0: no session affinity

    @property
    def key(self) -> str:
        """ns/name/protocol/port: unique per service port, and valid inside nft names."""
        return f"{self.namespace}/{self.name}/{self.protocol}/{self.port}"

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}:{self.port_name or self.port}/{self.protocol}"


def _ipv4(text: str, what: str) -> str:
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise ModelError(f"{what}: {text!r} is not an IPv4 address") from None


def _affinity_timeout(spec: Any) -> int:
    if spec.session_affinity != "ClientIP":
        return 0
    # The API server defaults it; a Service stored before that carried none.
    seconds = int(spec.session_affinity_config.client_ip.timeout_seconds)
    return seconds or DEFAULT_AFFINITY_TIMEOUT


def ready_endpoints(endpoints: Any, port_name: str, protocol: str) -> tuple[Endpoint, ...]:
    """The ready (ip, port) pairs of `endpoints` for the Service port named `port_name`."""
    found: set[Endpoint] = set()
    if endpoints is None:
        return ()
    for subset in endpoints.subsets:
        for eport in subset.ports:
            if eport.name != port_name or (eport.protocol or "TCP") != protocol:
                continue
            for address in subset.addresses:
                ip = _ipv4(address.ip, f"endpoints {_name(endpoints)} address")
                found.add(Endpoint(ip, int(eport.port)))
    return tuple(sorted(found, key=lambda e: (ipaddress.IPv4Address(e.ip), e.port)))


def _name(obj: Any) -> str:
    return f"{obj.metadata.namespace}/{obj.metadata.name}"


def service_ports(service: Any, endpoints: Any) -> list[ServicePort]:
    """The programmable ports of one Service (empty when the proxy has nothing to do for it)."""
    spec = service.spec
    name = _name(service)
    if spec.type == "ExternalName" or spec.cluster_ip in ("", "None"):
        log.debug("service not proxied", extra={"service": name, "reason": "headless"})
        return []
    cluster_ip = _ipv4(spec.cluster_ip, f"service {name} clusterIP")
    affinity = _affinity_timeout(spec)
    result = []
    for sport in spec.ports:
        protocol = sport.protocol or "TCP"
        if protocol not in PROTOCOLS:
            log.debug(
                "service port not proxied",
                extra={"service": name, "port": sport.port, "protocol": protocol},
            )
            continue
        if not 0 < sport.port < 65536:
            raise ModelError(f"service {name}: port {sport.port} out of range 1-65535")
        result.append(
            ServicePort(
                namespace=service.metadata.namespace,
                name=service.metadata.name,
                port_name=sport.name,
                protocol=PROTOCOLS[protocol],
                cluster_ip=cluster_ip,
                port=int(sport.port),
                node_port=int(sport.node_port) if spec.type in ("NodePort", "LoadBalancer") else 0,
                endpoints=ready_endpoints(endpoints, sport.name, protocol),
                affinity_timeout=affinity,
            )
        )
    return result


def build(services: Iterable[Any], endpoints: Mapping[str, Any]) -> list[ServicePort]:
    """Every programmable service port, sorted by key; `endpoints` is keyed "ns/name".

    A Service the proxy cannot program (ModelError) is logged and left out, so
    one bad object never stops the others from being served.
    """
    ports: list[ServicePort] = []
    for service in services:
        try:
            ports.extend(service_ports(service, endpoints.get(_name(service))))
        except ModelError as exc:
            log.warning("service skipped", extra={"service": _name(service), "error": str(exc)})
    ports.sort(key=lambda p: p.key)
    return ports
