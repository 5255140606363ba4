"""Defaulting: the values the server fills in when a manifest leaves them out.

Kubernetes runs defaulting functions (pkg/apis/*/v1/defaults.go) on every
object it decodes, before validation; a user who applies the seed manifest
gets back a Deployment with `strategy: RollingUpdate 25%/25%`, `replicas`
and `revisionHistoryLimit` set, and a Service of type ClusterIP with protocol
TCP. tinykube does the same here, kind by kind, so that what `get -o yaml`
shows is what every controller acts on.

Defaulting is idempotent (running it twice changes nothing), which `apply`
relies on to decide "unchanged": it defaults the manifest and compares the
result with what is stored.

Worked example, the seed's container `{name: web-app, image: nginx:latest}`:

    imagePullPolicy: Always          (the tag is "latest"; "nginx:1.25" would get IfNotPresent)
    terminationMessagePath: /dev/termination-log
    terminationMessagePolicy: File
    ports[0].protocol: TCP

and a pod-wide `dnsPolicy: ClusterFirst`, a volume's `defaultMode: 420` (0644), a
downward API fieldRef's `apiVersion: v1`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from protos import apps_pb2, coordination_pb2, core_pb2, meta_pb2

DEFAULT_GRACE_PERIOD_SECONDS = 30
DEFAULT_CLIENT_IP_TIMEOUT = 10800  # seconds of ClientIP session affinity (3 h), as Kubernetes
DEFAULT_SCHEDULER = "default-scheduler"
DEFAULT_FILE_MODE = 0o644  # a configMap/secret/downwardAPI/projected volume's files: 420


def image_pull_policy_for(image: str) -> str:
    """Always for `:latest` or an untagged image, else IfNotPresent (by digest: IfNotPresent)."""
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    if ":" not in last or last.endswith(":latest"):
        return "Always"
    return "IfNotPresent"


def _probe(probe: core_pb2.Probe) -> None:
    probe.timeout_seconds = probe.timeout_seconds or 1
    probe.period_seconds = probe.period_seconds or 10
    probe.success_threshold = probe.success_threshold or 1
    probe.failure_threshold = probe.failure_threshold or 3
    if probe.HasField("http_get"):
        probe.http_get.path = probe.http_get.path or "/"
        probe.http_get.scheme = probe.http_get.scheme or "HTTP"


def _field_ref(ref: core_pb2.ObjectFieldSelector) -> None:
    ref.api_version = ref.api_version or "v1"


def _volume(vol: core_pb2.Volume) -> None:
    """defaultMode 0644 for the volumes that write files; the downward API's fieldRefs v1.

    A resourceFieldRef's `divisor` stays unset, as Kubernetes leaves it (its YAML shows
    `divisor: "0"`); the kubelet reads unset or zero as 1.
    """
    for source in ("config_map", "secret", "downward_api", "projected"):
        if vol.HasField(source):  # type: ignore[arg-type]
            sub = getattr(vol, source)
            if not sub.HasField("default_mode"):
                sub.default_mode = DEFAULT_FILE_MODE
    files = list(vol.downward_api.items) if vol.HasField("downward_api") else []
    for projection in vol.projected.sources:
        files.extend(projection.downward_api.items)
    for item in files:
        if item.HasField("field_ref"):
            _field_ref(item.field_ref)


def _container(c: core_pb2.Container) -> None:
    if not c.image_pull_policy:
        c.image_pull_policy = image_pull_policy_for(c.image)
    c.termination_message_path = c.termination_message_path or "/dev/termination-log"
    c.termination_message_policy = c.termination_message_policy or "File"
    for port in c.ports:
        port.protocol = port.protocol or "TCP"
    for var in c.env:
        if var.value_from.HasField("field_ref"):
            _field_ref(var.value_from.field_ref)
    for name in ("liveness_probe", "readiness_probe", "startup_probe"):
        if c.HasField(name):
            _probe(getattr(c, name))


def pod_spec(spec: core_pb2.PodSpec) -> None:
    spec.restart_policy = spec.restart_policy or "Always"
    if not spec.HasField("termination_grace_period_seconds"):
        spec.termination_grace_period_seconds = DEFAULT_GRACE_PERIOD_SECONDS
    spec.dns_policy = spec.dns_policy or "ClusterFirst"
    spec.scheduler_name = spec.scheduler_name or DEFAULT_SCHEDULER
    if not spec.HasField("enable_service_links"):
        spec.enable_service_links = True
    for c in (*spec.init_containers, *spec.containers):
        _container(c)
    for vol in spec.volumes:
        _volume(vol)
    for t in spec.tolerations:
        if not t.operator:
            t.operator = "Equal"


def _pod(pod: core_pb2.Pod) -> None:
    pod_spec(pod.spec)
    if not pod.status.phase:
        pod.status.phase = "Pending"


def _rolling(strategy: apps_pb2.DeploymentStrategy) -> None:
    strategy.type = strategy.type or "RollingUpdate"
    if strategy.type != "RollingUpdate":
        return
    ru = strategy.rolling_update
    if ru.max_unavailable.WhichOneof("value") is None:
        ru.max_unavailable.CopyFrom(meta_pb2.IntOrString(str_val="25%"))
    if ru.max_surge.WhichOneof("value") is None:
        ru.max_surge.CopyFrom(meta_pb2.IntOrString(str_val="25%"))


def _deployment(d: apps_pb2.Deployment) -> None:
    s = d.spec
    if not s.HasField("replicas"):
        s.replicas = 1
    _rolling(s.strategy)
    if not s.HasField("revision_history_limit"):
        s.revision_history_limit = 10
    if not s.HasField("progress_deadline_seconds"):
        s.progress_deadline_seconds = 600
    pod_spec(s.template.spec)


def _replicaset(rs: apps_pb2.ReplicaSet) -> None:
    if not rs.spec.HasField("replicas"):
        rs.spec.replicas = 1
    pod_spec(rs.spec.template.spec)


def _service(svc: core_pb2.Service) -> None:
    s = svc.spec
    s.type = s.type or "ClusterIP"
    if s.type == "ExternalName":
        return
    s.session_affinity = s.session_affinity or "None"
    if s.session_affinity == "ClientIP":
        client_ip = s.session_affinity_config.client_ip
        if not client_ip.HasField("timeout_seconds"):
            client_ip.timeout_seconds = DEFAULT_CLIENT_IP_TIMEOUT
    s.internal_traffic_policy = s.internal_traffic_policy or "Cluster"
    if s.type in ("NodePort", "LoadBalancer"):
        s.external_traffic_policy = s.external_traffic_policy or "Cluster"
    if not s.ip_families:
        s.ip_families.append("IPv4")
    s.ip_family_policy = s.ip_family_policy or "SingleStack"
    for port in s.ports:
        port.protocol = port.protocol or "TCP"
        if port.target_port.WhichOneof("value") is None:
            port.target_port.int_val = port.port


def _namespace(ns: core_pb2.Namespace) -> None:
    # The `kubernetes` finalizer is the Namespace strategy's (registry/namespaces.py), not a
    # default: defaulting runs on every update, and the finalizer must be allowed to go.
    ns.status.phase = ns.status.phase or "Active"


def _secret(secret: core_pb2.Secret) -> None:
    secret.type = secret.type or "Opaque"
    for key, text in secret.string_data.items():
        secret.data[key] = text.encode()
    secret.ClearField("string_data")


def _lease(lease: coordination_pb2.Lease) -> None:
    """Leases have no defaults; kept so every kind has an entry."""


def _event(ev: core_pb2.Event) -> None:
    ev.type = ev.type or "Normal"
    ev.count = ev.count or 1


def _none(obj: Any) -> None:
    """Kinds without defaults."""


DEFAULTERS: dict[str, Callable[[Any], None]] = {
    "Pod": _pod,
    "Deployment": _deployment,
    "ReplicaSet": _replicaset,
    "Service": _service,
    "Namespace": _namespace,
    "Secret": _secret,
    "Lease": _lease,
    "Event": _event,
}


def apply_defaults(obj: Any) -> None:
    """Fill in every default for the object's kind, in place."""
    DEFAULTERS.get(obj.kind, _none)(obj)
