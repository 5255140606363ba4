"""The cluster as the page draws it: API objects in, one JSON document out (pure).

The browser gets one document per change (cli/dashboard/live.py sends it), never
the API's objects themselves: they are large, and the page would have to redo
what kubectl's printers already know (a pod's STATUS is a walk over its
container statuses, cli/pod_columns.py). So each object is cut here to what the
page shows, with the same words `tinykube get -o wide` prints:

    {"generation": 7, "time": "2024-05-01T10:00:00Z",
     "context": {"server": "unix:/var/lib/tinykube/clusters/demo/api.sock", "namespace": "default"},
     "nodes": [{"name": "node1", "ready": "True", "podCIDR": "10.244.0.0/24",
                "internalIP": "10.201.0.11", "vtepMAC": "02:..", "unschedulable": false, ...}],
     "pods": [{"namespace": "default", "name": "web-app-5d4f-x2x7q", "node": "node1",
               "phase": "Running", "status": "Running", "ready": "1/1", "restarts": 0,
               "podIP": "10.244.0.5", "owner": "ReplicaSet/web-app-5d4f",
               "placement": {"chosen": "node1", "scored": [...], ...},   # the scheduler's record
               "placementLines": ["chosen node1: 2 of 2 nodes feasible, 2 evaluated", ...]}],
     "services": [{"name": "web-app-service", "clusterIP": "10.96.0.10",
                   "ports": [{"name": "", "port": 80, "protocol": "TCP", "targetPort": "80"}],
                   "endpoints": [{"ip": "10.244.0.5", "ready": true, "pod": "web-app-..",
                                  "node": "node1", "ports": ["80/TCP"]}]}],
     "errors": {"nodes": "nodes is forbidden: User \\"bob\\" cannot list ..."},
     "trace": null}

Lists are sorted (nodes and pods by name, services by namespace/name), so two
documents of the same state are the same bytes, and the page's redraw is stable.
The placement record is scheduler/record.py's own reading of the pod's
`scheduler.tinykube.io/placement` annotation, with its `describe` lines.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from cli.pod_columns import pod_summary
from netplugin.constants import ANNOTATION_NODE_IP, ANNOTATION_VTEP_MAC
from scheduler import record


def _node_ready(node: Any) -> tuple[str, str]:
    for cond in node.status.conditions:
        if cond.type == "Ready":
            return cond.status or "Unknown", cond.reason
    return "Unknown", ""


def _internal_ip(node: Any) -> str:
    return next((a.address for a in node.status.addresses if a.type == "InternalIP"), "")


def node_view(node: Any) -> dict[str, Any]:
    ready, reason = _node_ready(node)
    annotations = node.metadata.annotations
    return {
        "name": node.metadata.name,
        "ready": ready,
        "reason": reason,
        "unschedulable": bool(node.spec.unschedulable),
        "taints": [f"{t.key}:{t.effect}" for t in node.spec.taints],
        "podCIDR": node.spec.pod_cidr,
        "internalIP": _internal_ip(node),
        "nodeIP": annotations.get(ANNOTATION_NODE_IP, ""),
        "vtepMAC": annotations.get(ANNOTATION_VTEP_MAC, ""),
        "kubelet": node.status.node_info.kubelet_version,
        "runtime": node.status.node_info.container_runtime_version,
    }


def _owner(meta: Any) -> str:
    for ref in meta.owner_references:
        if ref.controller:
            return f"{ref.kind}/{ref.name}"
    return ""


def _placement(pod: Any) -> tuple[dict[str, Any] | None, list[str]]:
    found = record.from_pod(pod)
    if found is None:
        return None, record.describe_lines(pod)  # [] or the "unreadable" line
    return found.to_dict(), found.lines()


def pod_view(pod: Any) -> dict[str, Any]:
    summary = pod_summary(pod)
    placement, lines = _placement(pod)
    meta = pod.metadata
    return {
        "namespace": meta.namespace,
        "name": meta.name,
        "uid": meta.uid,
        "node": pod.spec.node_name,
        "phase": pod.status.phase or "Pending",
        "status": summary.reason or "Pending",
        "ready": f"{summary.ready}/{summary.total}",
        "restarts": summary.restarts,
        "podIP": pod.status.pod_ip,
        "hostIP": pod.status.host_ip,
        "owner": _owner(meta),
        "created": meta.creation_timestamp.seconds if meta.HasField("creation_timestamp") else 0,
        "deleting": meta.HasField("deletion_timestamp"),
        "placement": placement,
        "placementLines": lines,
    }


def _endpoint_rows(endpoints: Any) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for subset in [] if endpoints is None else endpoints.subsets:
        ports = [f"{p.port}/{p.protocol or 'TCP'}" for p in subset.ports]
        for ready, addresses in ((True, subset.addresses), (False, subset.not_ready_addresses)):
            for a in addresses:
                row = rows.setdefault(
                    a.ip,
                    {
                        "ip": a.ip,
                        "ready": ready,
                        "pod": a.target_ref.name,
                        "node": a.node_name,
                        "ports": [],
                    },
                )
                row["ports"] = sorted({*row["ports"], *ports})
    return [rows[ip] for ip in sorted(rows)]


def service_view(service: Any, endpoints: Any) -> dict[str, Any]:
    spec = service.spec
    ports = []
    for p in spec.ports:
        target = p.target_port
        which = target.WhichOneof("value")
        ports.append(
            {
                "name": p.name,
                "port": p.port,
                "protocol": p.protocol or "TCP",
                "targetPort": str(getattr(target, which)) if which else str(p.port),
                "nodePort": p.node_port,
            }
        )
    return {
        "namespace": service.metadata.namespace,
        "name": service.metadata.name,
        "type": spec.type or "ClusterIP",
        "clusterIP": spec.cluster_ip,
        "ports": ports,
        "endpoints": _endpoint_rows(endpoints),
    }


def _key(obj: Any) -> str:
    return f"{obj.metadata.namespace}/{obj.metadata.name}"


def snapshot(
    *,
    nodes: Iterable[Any],
    pods: Iterable[Any],
    services: Iterable[Any],
    endpoints: Iterable[Any],
    context: dict[str, str],
    errors: dict[str, str],
    generation: int,
    trace: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The whole document (see the module docstring)."""
    by_key = {_key(e): e for e in endpoints}
    return {
        "generation": generation,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "context": context,
        "nodes": [node_view(n) for n in sorted(nodes, key=lambda n: n.metadata.name)],
        "pods": [pod_view(p) for p in sorted(pods, key=_key)],
        "services": [service_view(s, by_key.get(_key(s))) for s in sorted(services, key=_key)],
        "errors": dict(sorted(errors.items())),
        "trace": trace,
    }
