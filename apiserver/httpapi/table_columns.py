"""The columns of each kind's Table, as kube-apiserver prints them (pkg/printers/internalversion).

`kubectl get pods` shows NAME READY STATUS RESTARTS AGE because the server's
Table for pods has those columns (and IP, NODE, NOMINATED NODE, READINESS
GATES at priority 1 for `-o wide`). The names, order, priorities and cell
formats below are Kubernetes'; numbers are integers where Kubernetes'
cells are (a Deployment's UP-TO-DATE), text elsewhere.

The pod's STATUS is kubectl's summary, not `status.phase`:

1. the phase, or `status.reason` when set (Evicted);
2. the first init container not yet done gives `Init:<reason>`,
   `Init:ExitCode:N` or `Init:i/n`;
3. once initialized, the app containers last to first: a waiting reason
   (ContainerCreating, CrashLoopBackOff) or a terminated one (Completed,
   Error) replaces it, so the first container's trouble wins; `Completed`
   while another container still runs reads Running (or NotReady);
4. a deletion timestamp makes it Terminating.

A pod with one container waiting in ContainerCreating shows
`0/1 ContainerCreating`; once running and ready, `1/1 Running`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from google.protobuf.message import Message

from apimachinery import codec
from apimachinery.scheme import KindInfo
from apiserver.httpapi.call import object_dict
from apiserver.httpapi.tables import (
    AGE,
    DEFAULT,
    NAME,
    Column,
    created_at,
    human_duration,
    since,
)

NONE = "<none>"


def _init_step(pod: Any) -> str:
    """STATUS from the init containers (step 2), or "" when they are all done."""
    total = len(pod.spec.init_containers)
    for i, cs in enumerate(pod.status.init_container_statuses):
        state = cs.state
        if state.HasField("terminated") and state.terminated.exit_code == 0:
            continue
        if state.HasField("terminated"):
            t = state.terminated
            return f"Init:{t.reason}" if t.reason else f"Init:ExitCode:{t.exit_code}"
        if state.HasField("waiting") and state.waiting.reason not in ("", "PodInitializing"):
            return f"Init:{state.waiting.reason}"
        return f"Init:{i}/{total}"
    return ""


def pod_status(pod: Any) -> str:
    status = pod.status
    reason = status.reason or status.phase or "Pending"
    init = _init_step(pod)
    if init:
        reason = init
    else:
        running = False
        for cs in reversed(status.container_statuses):
            state = cs.state
            if state.HasField("waiting") and state.waiting.reason:
                reason = state.waiting.reason
            elif state.HasField("terminated"):
                t = state.terminated
                reason = t.reason or f"ExitCode:{t.exit_code}"
            elif cs.ready and state.HasField("running"):
                running = True
        if reason == "Completed" and running:
            ready = any(c.type == "Ready" and c.status == "True" for c in status.conditions)
            reason = "Running" if ready else "NotReady"
    if pod.metadata.HasField("deletion_timestamp"):
        return "Unknown" if status.reason == "NodeLost" else "Terminating"
    return str(reason)


def pod_ready(pod: Any, now: float) -> str:
    ready = sum(1 for cs in pod.status.container_statuses if cs.ready)
    return f"{ready}/{len(pod.spec.containers)}"


def pod_restarts(pod: Any, now: float) -> str:
    statuses = [*pod.status.init_container_statuses, *pod.status.container_statuses]
    count = sum(cs.restart_count for cs in statuses)
    last = [
        cs.last_state.terminated.finished_at.seconds
        for cs in statuses
        if cs.last_state.HasField("terminated") and cs.last_state.terminated.HasField("finished_at")
    ]
    if count and last:
        return f"{count} ({human_duration(now - max(last))} ago)"
    return str(count)


def _replicas(spec: Any) -> int:
    return int(spec.replicas) if spec.HasField("replicas") else 1


def label_selector(selector: Any) -> str:
    parts = [(k, f"{k}={v}") for k, v in selector.match_labels.items()]
    for req in selector.match_expressions:
        values = ",".join(sorted(req.values))
        text = {
            "In": f"{req.key} in ({values})",
            "NotIn": f"{req.key} notin ({values})",
            "Exists": req.key,
            "DoesNotExist": f"!{req.key}",
        }.get(req.operator, req.key)
        parts.append((req.key, text))
    return ",".join(t for _, t in sorted(parts)) or NONE


def _labels(m: Any) -> str:
    return ",".join(f"{k}={m[k]}" for k in sorted(m)) or NONE


def service_ports(svc: Any, now: float) -> str:
    out = []
    for p in svc.spec.ports:
        proto = p.protocol or "TCP"
        out.append(f"{p.port}:{p.node_port}/{proto}" if p.node_port else f"{p.port}/{proto}")
    return ",".join(out) or NONE


def service_external(svc: Any, now: float) -> str:
    spec = svc.spec
    if spec.type == "ExternalName":
        return str(spec.external_name) or NONE
    if spec.type == "LoadBalancer":
        ingress = [i.ip or i.hostname for i in svc.status.load_balancer.ingress]
        return ",".join([*ingress, *spec.external_ips]) or "<pending>"
    return ",".join(spec.external_ips) or NONE


def endpoints(ep: Any, now: float) -> str:
    shown: list[str] = []
    count = 0
    for subset in ep.subsets:
        targets = [f"{a.ip}:{p.port}" for p in subset.ports for a in subset.addresses]
        for target in targets or [a.ip for a in subset.addresses]:
            if count < 3:
                shown.append(target)
            count += 1
    text = ",".join(shown)
    return (text + f" + {count - 3} more...") if count > 3 else text or NONE


def node_status(node: Any, now: float) -> str:
    parts = ["Unknown"]
    for cond in node.status.conditions:
        if cond.type == "Ready":
            parts = ["Ready" if cond.status == "True" else "NotReady"]
    if node.spec.unschedulable:
        parts.append("SchedulingDisabled")
    return ",".join(parts)


def node_roles(node: Any, now: float) -> str:
    roles = {
        k.partition("/")[2]
        for k in node.metadata.labels
        if k.startswith("node-role.kubernetes.io/")
    }
    return ",".join(sorted(r for r in roles if r)) or NONE


def _address(kind: str) -> Column:
    def cell(node: Any, now: float) -> str:
        return next((a.address for a in node.status.addresses if a.type == kind), NONE)

    return Column(kind.replace("IP", "-IP"), cell, priority=1)


def event_last_seen(ev: Any, now: float) -> str:
    for name in ("last_timestamp", "event_time", "first_timestamp"):
        if ev.HasField(name):
            return since(ev, name, now)
    return since(ev.metadata, "creation_timestamp", now)


def _subjects(kind: str) -> Column:
    def cell(binding: Any, now: float) -> str:
        return ", ".join(s.name for s in binding.subjects if s.kind == kind)

    return Column(f"{kind}s" if kind != "ServiceAccount" else "ServiceAccounts", cell, priority=1)


def csr_condition(csr: Any, now: float) -> str:
    types = {c.type for c in csr.status.conditions}
    text = "Denied" if "Denied" in types else "Approved" if "Approved" in types else "Pending"
    text += ",Failed" if "Failed" in types else ""
    return text + (",Issued" if csr.status.certificate else "")


WORKLOAD_WIDE = [
    Column(
        "Containers",
        lambda o, n: ",".join(c.name for c in o.spec.template.spec.containers),
        priority=1,
    ),
    Column(
        "Images",
        lambda o, n: ",".join(c.image for c in o.spec.template.spec.containers),
        priority=1,
    ),
    Column("Selector", lambda o, n: label_selector(o.spec.selector), priority=1),
]
BINDING = [
    NAME,
    Column("Role", lambda o, n: f"{o.role_ref.kind}/{o.role_ref.name}"),
    AGE,
    _subjects("User"),
    _subjects("Group"),
    _subjects("ServiceAccount"),
]

COLUMNS: dict[str, list[Column]] = {
    "Pod": [
        NAME,
        Column("Ready", pod_ready),
        Column("Status", lambda o, n: pod_status(o)),
        Column("Restarts", pod_restarts),
        AGE,
        Column("IP", lambda o, n: o.status.pod_ip or NONE, priority=1),
        Column("Node", lambda o, n: o.spec.node_name or NONE, priority=1),
        Column("Nominated Node", lambda o, n: o.status.nominated_node_name or NONE, priority=1),
        Column("Readiness Gates", lambda o, n: NONE, priority=1),
    ],
    "Deployment": [
        NAME,
        Column("Ready", lambda o, n: f"{o.status.ready_replicas}/{_replicas(o.spec)}"),
        Column("Up-to-date", lambda o, n: int(o.status.updated_replicas), type="integer"),
        Column("Available", lambda o, n: int(o.status.available_replicas), type="integer"),
        AGE,
        *WORKLOAD_WIDE,
    ],
    "ReplicaSet": [
        NAME,
        Column("Desired", lambda o, n: _replicas(o.spec), type="integer"),
        Column("Current", lambda o, n: int(o.status.replicas), type="integer"),
        Column("Ready", lambda o, n: int(o.status.ready_replicas), type="integer"),
        AGE,
        *WORKLOAD_WIDE,
    ],
    "Service": [
        NAME,
        Column("Type", lambda o, n: o.spec.type or "ClusterIP"),
        Column("Cluster-IP", lambda o, n: o.spec.cluster_ip or NONE),
        Column("External-IP", service_external),
        Column("Port(s)", service_ports),
        AGE,
        Column("Selector", lambda o, n: _labels(o.spec.selector), priority=1),
    ],
    "Endpoints": [NAME, Column("Endpoints", endpoints), AGE],
    "Node": [
        NAME,
        Column("Status", node_status),
        Column("Roles", node_roles),
        AGE,
        Column("Version", lambda o, n: o.status.node_info.kubelet_version or NONE),
        _address("InternalIP"),
        _address("ExternalIP"),
        Column("OS-Image", lambda o, n: o.status.node_info.os_image or "<unknown>", priority=1),
        Column(
            "Kernel-Version",
            lambda o, n: o.status.node_info.kernel_version or "<unknown>",
            priority=1,
        ),
        Column(
            "Container-Runtime",
            lambda o, n: o.status.node_info.container_runtime_version or "<unknown>",
            priority=1,
        ),
    ],
    "Event": [
        Column("Last Seen", event_last_seen),
        Column("Type", lambda o, n: o.type),
        Column("Reason", lambda o, n: o.reason),
        Column("Object", lambda o, n: f"{o.involved_object.kind.lower()}/{o.involved_object.name}"),
        Column("Subobject", lambda o, n: o.involved_object.field_path, priority=1),
        Column("Source", lambda o, n: o.source.component or o.reporting_component, priority=1),
        Column("Message", lambda o, n: o.message),
        Column("First Seen", lambda o, n: since(o, "first_timestamp", n), priority=1),
        Column("Count", lambda o, n: int(o.count), type="integer", priority=1),
        Column("Name", lambda o, n: o.metadata.name, priority=1),
    ],
    "Namespace": [NAME, Column("Status", lambda o, n: o.status.phase or "Active"), AGE],
    "ConfigMap": [
        NAME,
        Column("Data", lambda o, n: len(o.data) + len(o.binary_data), type="integer"),
        AGE,
    ],
    "Secret": [
        NAME,
        Column("Type", lambda o, n: o.type or "Opaque"),
        Column("Data", lambda o, n: len(o.data), type="integer"),
        AGE,
    ],
    "Lease": [NAME, Column("Holder", lambda o, n: o.spec.holder_identity), AGE],
    "CertificateSigningRequest": [
        NAME,
        AGE,
        Column("SignerName", lambda o, n: o.spec.signer_name or NONE),
        Column("Requestor", lambda o, n: o.spec.username or NONE),
        Column("Condition", csr_condition),
    ],
    "Role": [NAME, Column("Created At", created_at, type="date")],
    "ClusterRole": [NAME, Column("Created At", created_at, type="date")],
    "RoleBinding": BINDING,
    "ClusterRoleBinding": BINDING,
}


def _definition(column: Column) -> dict[str, Any]:
    return {
        "name": column.name,
        "type": column.type,
        "format": column.format,
        "description": column.description,
        "priority": column.priority,
    }


def _row_object(obj: Message, include: str) -> dict[str, Any] | None:
    if include == "None":
        return None
    if include == "Object":
        return object_dict(obj)
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": codec.to_dict(obj.metadata),  # type: ignore[attr-defined]
    }


def table(
    info: KindInfo,
    objects: Sequence[Message],
    list_meta: dict[str, Any],
    include: str = "Metadata",
    *,
    headers: bool = True,
) -> dict[str, Any]:
    """The Table of `objects` (columns per table_columns.COLUMNS; module docstring)."""
    columns = COLUMNS.get(info.kind, DEFAULT)
    now = time.time()
    rows = []
    for obj in objects:
        row: dict[str, Any] = {"cells": [c.cell(obj, now) for c in columns]}
        embedded = _row_object(obj, include)
        if embedded is not None:
            row["object"] = embedded
        rows.append(row)
    out: dict[str, Any] = {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta}
    if headers:
        out["columnDefinitions"] = [_definition(c) for c in columns]
    out["rows"] = rows
    return out
