"""Per-kind table columns, as kubectl prints them (pkg/printers/internalversion).

Each kind is one entry in `COLUMNS`: a list of `Column(header, cell, wide)`,
in the order `-o wide` shows them; the plain table drops the `wide` ones.
A kind with no entry gets `DEFAULT` (NAME, AGE).

The one algorithm worth reading slowly is the pod READY/STATUS/RESTARTS
summary, which is not `status.phase` but kubectl's reading of the container
statuses (native sidecars included): it has a module of its own,
cli/pod_columns.py.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from cli.cells import (
    NONE,
    Column,
    PrintContext,
    age_of,
    format_label_selector,
    format_labels,
    timestamp_seconds,
)
from cli.cells import human_duration as _human
from cli.pod_columns import pod_ready as pod_ready  # printers and tests import them here
from cli.pod_columns import pod_restarts as pod_restarts
from cli.pod_columns import pod_status as pod_status  # describers and tests import it here
from netplugin.constants import ANNOTATION_VTEP_MAC  # published by `tinykube netplugin`

# ------------------------------------------------------------------ shared cells


def name(obj: Any, ctx: PrintContext) -> str:
    return ctx.name_prefix + str(obj.metadata.name)


def age(obj: Any, ctx: PrintContext) -> str:
    return age_of(obj.metadata, "creation_timestamp", ctx.now)


NAME = Column("NAME", name)
AGE = Column("AGE", age)
DEFAULT: list[Column] = [NAME, AGE]


def _containers(spec: Any) -> str:
    return ",".join(c.name for c in spec.containers)


def _images(spec: Any) -> str:
    return ",".join(c.image for c in spec.containers)


def _replicas(spec: Any) -> int:
    return int(spec.replicas) if spec.HasField("replicas") else 1


# ------------------------------------------------------------------ pods


POD_COLUMNS = [
    NAME,
    Column("READY", pod_ready),
    Column("STATUS", lambda o, c: pod_status(o)),
    Column("RESTARTS", pod_restarts),
    AGE,
    Column("IP", lambda o, c: o.status.pod_ip or NONE, wide=True),
    Column("NODE", lambda o, c: o.spec.node_name or NONE, wide=True),
    Column("NOMINATED NODE", lambda o, c: o.status.nominated_node_name or NONE, wide=True),
    Column("READINESS GATES", lambda o, c: NONE, wide=True),
]

# ------------------------------------------------------------------ workloads


def deployment_ready(d: Any, ctx: PrintContext) -> str:
    return f"{d.status.ready_replicas}/{_replicas(d.spec)}"


WORKLOAD_WIDE = [
    Column("CONTAINERS", lambda o, c: _containers(o.spec.template.spec), wide=True),
    Column("IMAGES", lambda o, c: _images(o.spec.template.spec), wide=True),
    Column("SELECTOR", lambda o, c: format_label_selector(o.spec.selector), wide=True),
]

DEPLOYMENT_COLUMNS = [
    NAME,
    Column("READY", deployment_ready),
    Column("UP-TO-DATE", lambda o, c: str(o.status.updated_replicas)),
    Column("AVAILABLE", lambda o, c: str(o.status.available_replicas)),
    AGE,
    *WORKLOAD_WIDE,
]

REPLICASET_COLUMNS = [
    NAME,
    Column("DESIRED", lambda o, c: str(_replicas(o.spec))),
    Column("CURRENT", lambda o, c: str(o.status.replicas)),
    Column("READY", lambda o, c: str(o.status.ready_replicas)),
    AGE,
    *WORKLOAD_WIDE,
]

# ------------------------------------------------------------------ services


def service_ports(svc: Any) -> str:
    """`80/TCP`, `80:30080/TCP` (with a node port), comma-separated."""
    parts = []
    for p in svc.spec.ports:
        proto = p.protocol or "TCP"
        parts.append(f"{p.port}:{p.node_port}/{proto}" if p.node_port else f"{p.port}/{proto}")
    return ",".join(parts) or NONE


def service_external_ip(svc: Any, ctx: PrintContext) -> str:
    spec = svc.spec
    kind = spec.type or "ClusterIP"
    external = list(spec.external_ips)
    if kind == "ExternalName":
        return str(spec.external_name) or NONE
    if kind == "LoadBalancer":
        ingress = [i.ip or i.hostname for i in svc.status.load_balancer.ingress]
        return ",".join(ingress + external) or "<pending>"
    return ",".join(external) or NONE


SERVICE_COLUMNS = [
    NAME,
    Column("TYPE", lambda o, c: o.spec.type or "ClusterIP"),
    Column("CLUSTER-IP", lambda o, c: o.spec.cluster_ip or NONE),
    Column("EXTERNAL-IP", service_external_ip),
    Column("PORT(S)", lambda o, c: service_ports(o)),
    AGE,
    Column("SELECTOR", lambda o, c: format_labels(o.spec.selector), wide=True),
]


def format_endpoints(ep: Any, limit: int = 3) -> str:
    """`10.244.1.2:80,10.244.2.3:80 + 1 more...`: at most `limit` ready addresses shown."""
    shown: list[str] = []
    count = 0
    for subset in ep.subsets:
        targets = [f"{a.ip}:{p.port}" for p in subset.ports for a in subset.addresses]
        if not subset.ports:
            targets = [a.ip for a in subset.addresses]
        for t in targets:
            if count < limit:
                shown.append(t)
            count += 1
    text = ",".join(shown)
    if count > limit:
        text += f" + {count - limit} more..."
    return text or NONE


ENDPOINTS_COLUMNS = [NAME, Column("ENDPOINTS", lambda o, c: format_endpoints(o)), AGE]

# ------------------------------------------------------------------ nodes


def node_status(node: Any) -> str:
    """`Ready`, `NotReady`, `Unknown` (no Ready condition), plus `,SchedulingDisabled`."""
    parts = []
    for cond in node.status.conditions:
        if cond.type == "Ready":
            parts = ["Ready" if cond.status == "True" else "NotReady"]
    parts = parts or ["Unknown"]
    if node.spec.unschedulable:
        parts.append("SchedulingDisabled")
    return ",".join(parts)


def node_roles(node: Any) -> str:
    roles = set()
    for key, value in node.metadata.labels.items():
        if key.startswith("node-role.kubernetes.io/"):
            roles.add(key.partition("/")[2])
        elif key == "kubernetes.io/role" and value:
            roles.add(value)
    return ",".join(sorted(r for r in roles if r)) or NONE


def node_address(node: Any, kind: str) -> str:
    for addr in node.status.addresses:
        if addr.type == kind:
            return str(addr.address)
    return NONE


NODE_COLUMNS = [
    NAME,
    Column("STATUS", lambda o, c: node_status(o)),
    Column("ROLES", lambda o, c: node_roles(o)),
    AGE,
    Column("VERSION", lambda o, c: o.status.node_info.kubelet_version or NONE),
    Column("INTERNAL-IP", lambda o, c: node_address(o, "InternalIP"), wide=True),
    Column("EXTERNAL-IP", lambda o, c: node_address(o, "ExternalIP"), wide=True),
    Column("POD-CIDR", lambda o, c: o.spec.pod_cidr or NONE, wide=True),
    Column("VTEP", lambda o, c: o.metadata.annotations.get(ANNOTATION_VTEP_MAC) or NONE, wide=True),
    Column("OS-IMAGE", lambda o, c: o.status.node_info.os_image or "<unknown>", wide=True),
    Column(
        "KERNEL-VERSION", lambda o, c: o.status.node_info.kernel_version or "<unknown>", wide=True
    ),
    Column(
        "CONTAINER-RUNTIME",
        lambda o, c: o.status.node_info.container_runtime_version or "<unknown>",
        wide=True,
    ),
]

# ------------------------------------------------------------------ events and the rest


def event_last_seen(ev: Any, ctx: PrintContext) -> str:
    for field_name in ("last_timestamp", "event_time", "first_timestamp"):
        if ev.HasField(field_name):
            return age_of(ev, field_name, ctx.now)
    return age(ev, ctx)


def event_object(ev: Any, ctx: PrintContext) -> str:
    ref = ev.involved_object
    return f"{ref.kind.lower()}/{ref.name}"


def event_source(ev: Any) -> str:
    component = ev.source.component or ev.reporting_component
    host = ev.source.host
    return f"{component}, {host}" if component and host else component or host


EVENT_COLUMNS = [
    Column("LAST SEEN", event_last_seen),
    Column("TYPE", lambda o, c: o.type),
    Column("REASON", lambda o, c: o.reason),
    Column("OBJECT", event_object),
    Column("SUBOBJECT", lambda o, c: o.involved_object.field_path, wide=True),
    Column("SOURCE", lambda o, c: event_source(o), wide=True),
    Column("MESSAGE", lambda o, c: o.message),
    Column("FIRST SEEN", lambda o, c: age_of(o, "first_timestamp", c.now), wide=True),
    Column("COUNT", lambda o, c: str(o.count), wide=True),
    Column("NAME", name, wide=True),
]

# ------------------------------------------------------------------ rbac


def created_at(obj: Any, ctx: PrintContext) -> str:
    """`2024-05-01T10:00:00Z`: roles show when, not how long ago (kubectl's CREATED AT)."""
    at = timestamp_seconds(obj.metadata, "creation_timestamp")
    if at is None:
        return NONE
    return datetime.fromtimestamp(at, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def subjects_of(binding: Any, kind: str) -> str:
    """The subjects of one kind, comma-separated; ServiceAccounts as `namespace/name`."""
    names = [
        f"{s.namespace}/{s.name}" if kind == "ServiceAccount" and s.namespace else s.name
        for s in binding.subjects
        if s.kind == kind
    ]
    return ", ".join(names)


ROLE_COLUMNS = [NAME, Column("CREATED AT", created_at)]
BINDING_COLUMNS = [
    NAME,
    Column("ROLE", lambda o, c: f"{o.role_ref.kind}/{o.role_ref.name}"),
    AGE,
    Column("USERS", lambda o, c: subjects_of(o, "User"), wide=True),
    Column("GROUPS", lambda o, c: subjects_of(o, "Group"), wide=True),
    Column("SERVICEACCOUNTS", lambda o, c: subjects_of(o, "ServiceAccount"), wide=True),
]

# ------------------------------------------------------------------ certificate signing requests


def csr_condition(csr: Any) -> str:
    """kubectl's CONDITION: Pending, Approved or Denied (Denied wins), then ,Failed, ,Issued."""
    types = {c.type for c in csr.status.conditions}
    text = "Denied" if "Denied" in types else "Approved" if "Approved" in types else "Pending"
    if "Failed" in types:
        text += ",Failed"
    if csr.status.certificate:
        text += ",Issued"
    return text


def csr_requested_duration(csr: Any, ctx: PrintContext) -> str:
    if not csr.spec.HasField("expiration_seconds"):
        return NONE
    return _human(csr.spec.expiration_seconds)


CSR_COLUMNS = [
    NAME,
    AGE,
    Column("SIGNERNAME", lambda o, c: o.spec.signer_name or NONE),
    Column("REQUESTOR", lambda o, c: o.spec.username or NONE),
    Column("REQUESTEDDURATION", csr_requested_duration),
    Column("CONDITION", lambda o, c: csr_condition(o)),
]

COLUMNS: dict[str, list[Column]] = {
    "Pod": POD_COLUMNS,
    "Deployment": DEPLOYMENT_COLUMNS,
    "ReplicaSet": REPLICASET_COLUMNS,
    "Service": SERVICE_COLUMNS,
    "Endpoints": ENDPOINTS_COLUMNS,
    "Node": NODE_COLUMNS,
    "Event": EVENT_COLUMNS,
    "Namespace": [NAME, Column("STATUS", lambda o, c: o.status.phase or "Active"), AGE],
    "ConfigMap": [NAME, Column("DATA", lambda o, c: str(len(o.data) + len(o.binary_data))), AGE],
    "Secret": [
        NAME,
        Column("TYPE", lambda o, c: o.type or "Opaque"),
        Column("DATA", lambda o, c: str(len(o.data))),
        AGE,
    ],
    "Lease": [NAME, Column("HOLDER", lambda o, c: o.spec.holder_identity), AGE],
    "CertificateSigningRequest": CSR_COLUMNS,
    "Role": ROLE_COLUMNS,
    "ClusterRole": ROLE_COLUMNS,
    "RoleBinding": BINDING_COLUMNS,
    "ClusterRoleBinding": BINDING_COLUMNS,
}
