"""Services and Endpoints written as a user writes them, for the network cluster and its tests.

The network cluster (netcluster.py) has pods without Pod objects -- bare
namespaces wired by tinykube-cni -- so no endpoints controller can find them:
whoever drives it writes each Service's Endpoints by hand, as a user does for a
Service without a selector. The proxy's unit tests need the same two objects
without any cluster at all.

Both builders write the object as Kubernetes JSON and decode it with the real
codec (apimachinery.codec.from_dict), so the caller speaks the language of a
manifest -- `targetPort: "web"`, `sessionAffinity: ClientIP` -- and gets back
the typed message the API server would decode from it (not yet defaulted).
For example

    service("web", "10.96.0.10", [{"name": "http", "port": 80, "targetPort": 8080}])
    endpoints("web", [(["10.244.1.5", "10.244.2.7"], [], [("http", 8080, "TCP")])])

are the Service and Endpoints of two ready pods behind ClusterIP 10.96.0.10:80.
"""

from __future__ import annotations

from typing import Any

from apimachinery.codec import from_dict
from protos import core_pb2

# One subset of an Endpoints object: (ready IPs, not-ready IPs, [(port name, number, protocol)]).
Subset = tuple[list[str], list[str], list[tuple[str, int, str]]]


def service(
    name: str,
    cluster_ip: str,
    ports: list[dict[str, Any]],
    *,
    namespace: str = "default",
    type_: str = "ClusterIP",
    affinity: str = "None",
) -> core_pb2.Service:
    """A Service selecting `app: <name>`; `ports` as in a manifest's spec.ports."""
    spec = {
        "type": type_,
        "clusterIP": cluster_ip,
        "ports": ports,
        "selector": {"app": name},
        "sessionAffinity": affinity,
    }
    obj = from_dict(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        }
    )
    assert isinstance(obj, core_pb2.Service)
    return obj


def endpoints(
    name: str, subsets: list[Subset], *, namespace: str = "default"
) -> core_pb2.Endpoints:
    """subsets: (ready IPs, not-ready IPs, [(port name, number, protocol)])."""
    obj = from_dict(
        {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": name, "namespace": namespace},
            "subsets": [
                {
                    "addresses": [{"ip": ip} for ip in ready],
                    "notReadyAddresses": [{"ip": ip} for ip in unready],
                    "ports": [{"name": n, "port": p, "protocol": proto} for n, p, proto in ports],
                }
                for ready, unready, ports in subsets
            ],
        }
    )
    assert isinstance(obj, core_pb2.Endpoints)
    return obj
