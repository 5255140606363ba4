"""The kind-specific describe pages: Pod, Deployment, ReplicaSet, Service, Node, Endpoints.

Each describer is a pure function (object, Related, now) -> text, listed in
`DESCRIBERS` by kind; everything else gets describe.describe_generic. The
pages keep kubectl's section names and order so that what a reader knows
from `kubectl describe` reads the same here, e.g. for a Deployment:

    Name / Namespace / CreationTimestamp / Labels / Annotations / Selector
    Replicas:  2 desired | 2 updated | 2 total | 2 available | 0 unavailable
    StrategyType / MinReadySeconds / RollingUpdateStrategy
    Pod Template: (labels, containers, volumes)
    Conditions: / OldReplicaSets: / NewReplicaSet: / Events:

The RBAC kinds' pages (roles as rule tables, bindings as role + subjects)
are in cli.describers_rbac and join `DESCRIBERS` here.

Fields tinykube does not model (QoS details, resource percentages of node
capacity, volume sources beyond the four it has) are left out rather than
shown empty.
"""

from __future__ import annotations

from typing import Any

from cli import cells
from cli.columns import format_endpoints, node_roles, pod_status
from cli.describe_sections import (
    Describer,
    Related,
    Writer,
    conditions_table,
    controlled_by,
    events_section,
    object_meta,
)
from cli.describers_rbac import RBAC_DESCRIBERS
from scheduler import record

NONE = cells.NONE


def _int_or_string(v: Any) -> str:
    kind = v.WhichOneof("value")
    return str(v.int_val) if kind == "int_val" else str(v.str_val) if kind else ""


def _ports(c: Any) -> tuple[str, str]:
    ports = ", ".join(f"{p.container_port}/{p.protocol or 'TCP'}" for p in c.ports)
    hosts = ", ".join(f"{p.host_port}/{p.protocol or 'TCP'}" for p in c.ports)
    return ports or NONE, hosts or NONE


def _probe(p: Any) -> str:
    if p.HasField("http_get"):
        g = p.http_get
        how = f"http-get {(g.scheme or 'HTTP').lower()}://{g.host}:{_int_or_string(g.port)}{g.path}"
    elif p.HasField("tcp_socket"):
        how = f"tcp-socket {p.tcp_socket.host}:{_int_or_string(p.tcp_socket.port)}"
    elif p.HasField("exec"):
        how = "exec [" + " ".join(p.exec.command) + "]"
    else:
        how = "unknown"
    return (
        f"{how} delay={p.initial_delay_seconds}s timeout={p.timeout_seconds or 1}s "
        f"period={p.period_seconds or 10}s #success={p.success_threshold or 1} "
        f"#failure={p.failure_threshold or 3}"
    )


def _state(w: Writer, level: int, title: str, state: Any) -> None:
    if state.HasField("running"):
        w.line(level, f"{title}:", "Running")
        w.line(level + 1, "Started:", cells.format_time(state.running, "started_at"))
    elif state.HasField("waiting"):
        w.line(level, f"{title}:", "Waiting")
        w.line(level + 1, "Reason:", state.waiting.reason)
    elif state.HasField("terminated"):
        t = state.terminated
        w.line(level, f"{title}:", "Terminated")
        w.line(level + 1, "Reason:", t.reason)
        if t.message:
            w.line(level + 1, "Message:", t.message)
        w.line(level + 1, "Exit Code:", t.exit_code)
        w.line(level + 1, "Started:", cells.format_time(t, "started_at"))
        w.line(level + 1, "Finished:", cells.format_time(t, "finished_at"))
    elif title == "State":
        w.line(level, f"{title}:", "Waiting")


def containers(w: Writer, level: int, title: str, specs: Any, statuses: Any = None) -> None:
    """A `Containers:` block; with statuses (a Pod) it adds state, readiness, restarts."""
    w.line(level, f"{title}:")
    by_name = {s.name: s for s in statuses or []}
    for c in specs:
        st = by_name.get(c.name)
        w.line(level + 1, f"{c.name}:")
        lv = level + 2
        if st is not None:
            w.line(lv, "Container ID:", st.container_id)
        w.line(lv, "Image:", c.image)
        if st is not None:
            w.line(lv, "Image ID:", st.image_id)
        ports, hosts = _ports(c)
        label = "Ports:" if len(c.ports) > 1 else "Port:"
        w.line(lv, label, ports)
        w.line(lv, "Host " + label, hosts)
        for name, items in (("Command", c.command), ("Args", c.args)):
            if items:
                w.line(lv, f"{name}:")
                for item in items:
                    w.line(lv + 1, item)
        if st is not None:
            _state(w, lv, "State", st.state)
            _state(w, lv, "Last State", st.last_state)
            w.line(lv, "Ready:", "True" if st.ready else "False")
            w.line(lv, "Restart Count:", st.restart_count)
        for name, quantities in (
            ("Limits", c.resources.limits),
            ("Requests", c.resources.requests),
        ):
            if quantities:
                w.line(lv, f"{name}:")
                for key in sorted(quantities):
                    w.line(lv + 1, f"{key}:", quantities[key])
        for name, probe_field in (
            ("Liveness", "liveness_probe"),
            ("Readiness", "readiness_probe"),
            ("Startup", "startup_probe"),
        ):
            if c.HasField(probe_field):
                w.line(lv, f"{name}:", _probe(getattr(c, probe_field)))
        if c.env:
            w.line(lv, "Environment:")
            for e in c.env:
                value = e.value if not e.HasField("value_from") else "(from a reference)"
                w.line(lv + 1, f"{e.name}:", value)
        else:
            w.line(lv, "Environment:", NONE)
        if c.volume_mounts:
            w.line(lv, "Mounts:")
            for m in c.volume_mounts:
                mode = "ro" if m.read_only else "rw"
                w.line(lv + 1, f"{m.mount_path} from {m.name} ({mode})")
        else:
            w.line(lv, "Mounts:", NONE)


def volumes(w: Writer, level: int, vols: Any) -> None:
    if not vols:
        w.line(level, "Volumes:", NONE)
        return
    w.line(level, "Volumes:")
    for v in vols:
        w.line(level + 1, f"{v.name}:")
        if v.HasField("empty_dir"):
            w.line(
                level + 2, "Type:", "EmptyDir (a temporary directory that shares a pod's lifetime)"
            )
            w.line(level + 2, "Medium:", v.empty_dir.medium)
        elif v.HasField("host_path"):
            w.line(level + 2, "Type:", "HostPath (bare host directory volume)")
            w.line(level + 2, "Path:", v.host_path.path)
        elif v.HasField("config_map"):
            w.line(level + 2, "Type:", "ConfigMap (a volume populated by a ConfigMap)")
            w.line(level + 2, "Name:", v.config_map.name)
        elif v.HasField("secret"):
            w.line(level + 2, "Type:", "Secret (a volume populated by a Secret)")
            w.line(level + 2, "SecretName:", v.secret.secret_name)


def pod_template(w: Writer, template: Any) -> None:
    w.line(0, "Pod Template:")
    w.map_lines(1, "Labels", template.metadata.labels)
    if template.spec.init_containers:
        containers(w, 1, "Init Containers", template.spec.init_containers)
    containers(w, 1, "Containers", template.spec.containers)
    volumes(w, 1, template.spec.volumes)


# ------------------------------------------------------------------ pages


def describe_pod(pod: Any, related: Related, now: float) -> str:
    w = Writer()
    spec, status, meta = pod.spec, pod.status, pod.metadata
    w.line(0, "Name:", meta.name)
    w.line(0, "Namespace:", meta.namespace)
    w.line(0, "Priority:", spec.priority if spec.HasField("priority") else 0)
    w.line(0, "Service Account:", spec.service_account_name or "default")
    node = f"{spec.node_name}/{status.host_ip}" if status.host_ip else spec.node_name
    w.line(0, "Node:", node or NONE)
    w.line(0, "Start Time:", cells.format_time(status, "start_time"))
    w.map_lines(0, "Labels", meta.labels)
    shown_annotations = {k: v for k, v in meta.annotations.items() if k != record.ANNOTATION}
    w.map_lines(0, "Annotations", shown_annotations, sep=": ")  # the record: under Scheduling
    shown = pod_status(pod)
    if meta.HasField("deletion_timestamp"):
        w.line(0, "Status:", f"Terminating (lasts {cells.age_of(meta, 'deletion_timestamp', now)})")
    else:
        w.line(0, "Status:", status.phase or shown)
    if status.reason:
        w.line(0, "Reason:", status.reason)
    if status.message:
        w.line(0, "Message:", status.message)
    w.line(0, "IP:", status.pod_ip)
    ips = [p.ip for p in status.pod_ips] or ([status.pod_ip] if status.pod_ip else [])
    if ips:
        w.line(0, "IPs:")
        for ip in ips:
            w.line(1, "IP:", ip)
    else:
        w.line(0, "IPs:", NONE)
    controlled_by(w, pod)
    if spec.init_containers:
        containers(w, 0, "Init Containers", spec.init_containers, status.init_container_statuses)
    containers(w, 0, "Containers", spec.containers, status.container_statuses)
    if status.conditions:
        w.line(0, "Conditions:")
        w.line(1, "Type", "Status")
        for c in status.conditions:
            w.line(1, c.type, c.status)
    volumes(w, 0, spec.volumes)
    w.line(0, "QoS Class:", status.qos_class or "BestEffort")
    w.line(0, "Node-Selectors:", cells.format_labels(spec.node_selector).replace(",", " "))
    tolerations = [
        f"{t.key}{'=' + t.value if t.value else ''}:{t.effect}"
        if t.effect
        else t.key or "op=Exists"
        for t in spec.tolerations
    ]
    w.line(0, "Tolerations:", ", ".join(tolerations) or NONE)
    placement = record.describe_lines(pod)
    if placement:
        w.line(0, "Scheduling:")
        for text in placement:
            w.line(1, text)
    events_section(w, related.events, now)
    return w.text()


def _replica_set_line(rss: list[Any]) -> str:
    return (
        ", ".join(
            f"{rs.metadata.name} ({rs.status.replicas}/{rs.spec.replicas} replicas created)"
            for rs in rss
        )
        or NONE
    )


def describe_deployment(d: Any, related: Related, now: float) -> str:
    w = Writer()
    object_meta(w, d)
    # kubectl prints CreationTimestamp before Labels on this page
    w.lines.insert(2, w.lines.pop())
    spec, status = d.spec, d.status
    w.line(0, "Selector:", cells.format_label_selector(spec.selector))
    desired = spec.replicas if spec.HasField("replicas") else 1
    w.line(
        0,
        "Replicas:",
        f"{desired} desired | {status.updated_replicas} updated | {status.replicas} total | "
        f"{status.available_replicas} available | {status.unavailable_replicas} unavailable",
    )
    strategy = spec.strategy.type or "RollingUpdate"
    w.line(0, "StrategyType:", strategy)
    w.line(0, "MinReadySeconds:", spec.min_ready_seconds)
    if strategy == "RollingUpdate":
        ru = spec.strategy.rolling_update
        unavailable = _int_or_string(ru.max_unavailable) or "25%"
        surge = _int_or_string(ru.max_surge) or "25%"
        w.line(0, "RollingUpdateStrategy:", f"{unavailable} max unavailable, {surge} max surge")
    pod_template(w, spec.template)
    conditions_table(w, status.conditions)
    newest = sorted(
        related.replica_sets,
        key=lambda rs: int(
            rs.metadata.annotations.get("deployment.kubernetes.io/revision", "0") or 0
        ),
    )
    new = newest[-1:] if newest else []
    old = [rs for rs in newest[:-1] if rs.spec.replicas or rs.status.replicas]
    w.line(0, "OldReplicaSets:", _replica_set_line(old))
    w.line(0, "NewReplicaSet:", _replica_set_line(new))
    events_section(w, related.events, now)
    return w.text()


def describe_replica_set(rs: Any, related: Related, now: float) -> str:
    w = Writer()
    object_meta(w, rs, created=False)
    w.lines.insert(2, "Selector:\t" + cells.format_label_selector(rs.spec.selector))
    controlled_by(w, rs)
    desired = rs.spec.replicas if rs.spec.HasField("replicas") else 1
    w.line(0, "Replicas:", f"{rs.status.replicas} current / {desired} desired")
    phases = [p.status.phase for p in related.pods]
    counts = {ph: phases.count(ph) for ph in ("Running", "Pending", "Succeeded", "Failed")}
    w.line(
        0,
        "Pods Status:",
        f"{counts['Running']} Running / {counts['Pending']} Waiting / "
        f"{counts['Succeeded']} Succeeded / {counts['Failed']} Failed",
    )
    pod_template(w, rs.spec.template)
    conditions_table(w, rs.status.conditions)
    events_section(w, related.events, now)
    return w.text()


def describe_service(svc: Any, related: Related, now: float) -> str:
    w = Writer()
    object_meta(w, svc, created=False)
    spec = svc.spec
    w.line(0, "Selector:", cells.format_labels(spec.selector))
    w.line(0, "Type:", spec.type or "ClusterIP")
    if spec.ip_family_policy:
        w.line(0, "IP Family Policy:", spec.ip_family_policy)
    if spec.ip_families:
        w.line(0, "IP Families:", ",".join(spec.ip_families))
    w.line(0, "IP:", spec.cluster_ip or NONE)
    w.line(0, "IPs:", ",".join(spec.cluster_ips) or spec.cluster_ip or NONE)
    if spec.external_ips:
        w.line(0, "External IPs:", ",".join(spec.external_ips))
    for p in spec.ports:
        proto = p.protocol or "TCP"
        w.line(0, "Port:", p.name or "<unset>", f"{p.port}/{proto}")
        target = _int_or_string(p.target_port) or str(p.port)
        w.line(0, "TargetPort:", f"{target}/{proto}")
        if p.node_port:
            w.line(0, "NodePort:", p.name or "<unset>", f"{p.node_port}/{proto}")
        eps = NONE
        if related.endpoints is not None:
            eps = _endpoints_for_port(related.endpoints, p.name)
        w.line(0, "Endpoints:", eps)
    w.line(0, "Session Affinity:", spec.session_affinity or "None")
    if spec.external_traffic_policy:
        w.line(0, "External Traffic Policy:", spec.external_traffic_policy)
    events_section(w, related.events, now)
    return w.text()


def _endpoints_for_port(ep: Any, port_name: str) -> str:
    filtered = type(ep)()
    filtered.CopyFrom(ep)
    for subset in filtered.subsets:
        keep = [p for p in subset.ports if p.name == port_name]
        del subset.ports[:]
        subset.ports.extend(keep)
    return format_endpoints(filtered, limit=1 << 30)


def describe_endpoints(ep: Any, related: Related, now: float) -> str:
    w = Writer()
    object_meta(w, ep, created=False)
    w.line(0, "Subsets:")
    for subset in ep.subsets:
        w.line(1, "Addresses:", ",".join(a.ip for a in subset.addresses) or NONE)
        w.line(1, "NotReadyAddresses:", ",".join(a.ip for a in subset.not_ready_addresses) or NONE)
        w.line(1, "Ports:")
        w.line(2, "Name", "Port", "Protocol")
        w.line(2, "----", "----", "--------")
        for p in subset.ports:
            w.line(2, p.name or "<unset>", p.port, p.protocol or "TCP")
        w.blank()
    events_section(w, related.events, now)
    return w.text()


def describe_node(node: Any, related: Related, now: float) -> str:
    w = Writer()
    spec, status = node.spec, node.status
    w.line(0, "Name:", node.metadata.name)
    w.line(0, "Roles:", node_roles(node))
    w.map_lines(0, "Labels", node.metadata.labels)
    w.map_lines(0, "Annotations", node.metadata.annotations, sep=": ")
    w.line(0, "CreationTimestamp:", cells.format_time(node.metadata, "creation_timestamp"))
    taints = [f"{t.key}{'=' + t.value if t.value else ''}:{t.effect}" for t in spec.taints]
    for i, taint in enumerate(taints or [NONE]):
        w.line(0, "Taints:" if i == 0 else "", taint)
    w.line(0, "Unschedulable:", "true" if spec.unschedulable else "false")
    w.line(0, "Conditions:")
    w.line(1, "Type", "Status", "LastHeartbeatTime", "LastTransitionTime", "Reason", "Message")
    w.line(1, "----", "------", "-----------------", "------------------", "------", "-------")
    for c in status.conditions:
        w.line(
            1,
            c.type,
            c.status,
            cells.format_time(c, "last_heartbeat_time"),
            cells.format_time(c, "last_transition_time"),
            c.reason,
            c.message,
        )
    w.line(0, "Addresses:")
    for a in status.addresses:
        w.line(1, f"{a.type}:", a.address)
    for title, quantities in (("Capacity", status.capacity), ("Allocatable", status.allocatable)):
        w.line(0, f"{title}:")
        for key in sorted(quantities):
            w.line(1, f"{key}:", quantities[key])
    info = status.node_info
    w.line(0, "System Info:")
    for label, value in (
        ("Machine ID:", info.machine_id),
        ("System UUID:", info.system_uuid),
        ("Boot ID:", info.boot_id),
        ("Kernel Version:", info.kernel_version),
        ("OS Image:", info.os_image),
        ("Operating System:", info.operating_system),
        ("Architecture:", info.architecture),
        ("Container Runtime Version:", info.container_runtime_version),
        ("Kubelet Version:", info.kubelet_version),
        ("Kube-Proxy Version:", info.kube_proxy_version),
    ):
        w.line(1, label, value)
    w.line(0, "PodCIDR:", spec.pod_cidr or NONE)
    w.line(0, "PodCIDRs:", ",".join(spec.pod_cidrs) or NONE)
    running = [p for p in related.pods if p.status.phase not in ("Succeeded", "Failed")]
    w.line(0, "Non-terminated Pods:", f"({len(running)} in total)")
    w.line(1, "Namespace", "Name", "Age")
    w.line(1, "---------", "----", "---")
    for p in running:
        w.line(
            1,
            p.metadata.namespace,
            p.metadata.name,
            cells.age_of(p.metadata, "creation_timestamp", now),
        )
    events_section(w, related.events, now)
    return w.text()


DESCRIBERS: dict[str, Describer] = {
    "Pod": describe_pod,
    "Deployment": describe_deployment,
    "ReplicaSet": describe_replica_set,
    "Service": describe_service,
    "Endpoints": describe_endpoints,
    "Node": describe_node,
    **RBAC_DESCRIBERS,
}
