"""Validation of the core/v1 kinds (pkg/apis/core/validation), per kind.

Each `validate_<kind>` returns every problem of one object, with the paths
and words Kubernetes uses. Names: most kinds use DNS-1123 subdomains (253
characters, dots allowed); a Namespace's name is a DNS-1123 label (it becomes
part of other names), and a Service's a DNS-1035 label (it becomes a DNS
name and an environment-variable prefix, so it must start with a letter).

Service rules worth a worked example. For

    spec: {type: ClusterIP, ports: [{port: 80, nodePort: 30080}, {port: 443}]}

the answers are

    spec.ports[0].name: Required value                 (names needed when > 1 port)
    spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'
    spec.ports[1].name: Required value

NodePorts are allocated by the server (the allocator picks a free port in
NODE_PORT_MIN..NODE_PORT_MAX); validation only checks that a requested one
lies in that range.
"""

from __future__ import annotations

from apimachinery import errors
from apimachinery.errors import FieldError
from apimachinery.validation_meta import (
    NONNEGATIVE,
    check_name,
    nonnegative,
    validate_labels,
    validate_object_meta,
)
from apimachinery.validation_names import (
    is_config_map_key,
    is_dns1035_label,
    is_dns1123_label,
    is_dns1123_subdomain,
    is_qualified_name,
    is_valid_cidr,
    is_valid_ip,
    is_valid_label_value,
    is_valid_port_num,
)
from apimachinery.validation_pod import (
    PROTOCOLS,
    TAINT_EFFECTS,
    validate_pod_spec,
    validate_port_num_or_name,
)
from apimachinery.validation_pod_parts import one_of, validate_quantity
from protos import coordination_pb2, core_pb2

NODE_PORT_MIN = 30000
NODE_PORT_MAX = 32767
SERVICE_TYPES = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]
MAX_SECRET_SIZE = 1024 * 1024  # ConfigMaps and Secrets alike: 1 MiB of data
CLUSTER_IP_MESSAGE = "must be empty, 'None', or a valid IP address"
MAX_CLIENT_IP_TIMEOUT = 86400  # seconds: sessionAffinityConfig.clientIP.timeoutSeconds, a day


def validate_pod(pod: core_pb2.Pod) -> list[FieldError]:
    out = validate_object_meta(pod.metadata, True, is_dns1123_subdomain)
    return out + validate_pod_spec(pod.spec, "spec")


def validate_binding(binding: core_pb2.Binding) -> list[FieldError]:
    out: list[FieldError] = []
    if binding.target.kind and binding.target.kind != "Node":
        out.append(errors.unsupported("target.kind", binding.target.kind, ["Node", "<empty>"]))
    if not binding.target.name:
        out.append(errors.required("target.name"))
    return out


def _validate_service_ports(svc: core_pb2.Service, kind: str) -> list[FieldError]:
    out: list[FieldError] = []
    ports = svc.spec.ports
    names: set[str] = set()
    seen_ports: set[tuple[int, str]] = set()
    node_ports: set[tuple[int, str]] = set()
    for i, sp in enumerate(ports):
        here = f"spec.ports[{i}]"
        if len(ports) > 1 and not sp.name:
            out.append(errors.required(f"{here}.name"))
        elif sp.name:
            out.extend(check_name(sp.name, f"{here}.name", is_dns1123_label))
            if sp.name in names:
                out.append(errors.duplicate(f"{here}.name", sp.name))
            names.add(sp.name)
        out.extend(errors.invalid(f"{here}.port", sp.port, m) for m in is_valid_port_num(sp.port))
        out.extend(one_of(sp.protocol, PROTOCOLS, f"{here}.protocol"))
        protocol = sp.protocol or "TCP"
        if (sp.port, protocol) in seen_ports:
            out.append(errors.duplicate(here, f"{sp.port}/{protocol}"))
        seen_ports.add((sp.port, protocol))
        if sp.HasField("target_port"):
            out.extend(validate_port_num_or_name(sp.target_port, f"{here}.targetPort"))
        if sp.node_port:
            if kind in ("ClusterIP", "ExternalName"):
                out.append(
                    errors.forbidden(f"{here}.nodePort", f"may not be used when `type` is '{kind}'")
                )
            elif not NODE_PORT_MIN <= sp.node_port <= NODE_PORT_MAX:
                out.append(
                    errors.invalid(
                        f"{here}.nodePort",
                        sp.node_port,
                        "provided port is not in the valid range. The range of valid ports is "
                        f"{NODE_PORT_MIN}-{NODE_PORT_MAX}",
                    )
                )
            elif (sp.node_port, protocol) in node_ports:
                out.append(errors.duplicate(f"{here}.nodePort", sp.node_port))
            node_ports.add((sp.node_port, protocol))
    return out


def validate_service(svc: core_pb2.Service) -> list[FieldError]:
    out = validate_object_meta(svc.metadata, True, is_dns1035_label)
    spec = svc.spec
    kind = spec.type or "ClusterIP"
    out.extend(one_of(spec.type, SERVICE_TYPES, "spec.type"))
    headless = spec.cluster_ip == "None"
    if not spec.ports and not headless and kind != "ExternalName":
        out.append(errors.required("spec.ports"))
    if kind == "ExternalName":
        if spec.cluster_ip or spec.cluster_ips:
            out.append(
                errors.forbidden("spec.clusterIP", "may not be set for ExternalName services")
            )
        if not spec.external_name:
            out.append(errors.required("spec.externalName"))
        else:
            name = spec.external_name.removesuffix(".")
            out.extend(
                errors.invalid("spec.externalName", name, m) for m in is_dns1123_subdomain(name)
            )
    out.extend(_validate_service_ports(svc, kind))
    for path, ip in [("spec.clusterIP", spec.cluster_ip)] + [
        (f"spec.clusterIPs[{i}]", ip) for i, ip in enumerate(spec.cluster_ips)
    ]:
        if ip not in ("", "None") and is_valid_ip(ip):
            out.append(errors.invalid(path, ip, CLUSTER_IP_MESSAGE))
    if headless and kind in ("NodePort", "LoadBalancer"):
        out.append(
            errors.invalid(
                "spec.clusterIP", "None", f"may not be set to 'None' for {kind} services"
            )
        )
    out.extend(validate_labels(spec.selector, "spec.selector"))
    for i, ip in enumerate(spec.external_ips):
        out.extend(errors.invalid(f"spec.externalIPs[{i}]", ip, m) for m in is_valid_ip(ip))
    out.extend(one_of(spec.session_affinity, ["ClientIP", "None"], "spec.sessionAffinity"))
    out.extend(_session_affinity_config(spec))
    out.extend(
        one_of(spec.external_traffic_policy, ["Cluster", "Local"], "spec.externalTrafficPolicy")
    )
    if spec.external_traffic_policy and kind not in ("NodePort", "LoadBalancer"):
        out.append(
            errors.invalid(
                "spec.externalTrafficPolicy",
                spec.external_traffic_policy,
                "may only be set when `type` is 'NodePort' or 'LoadBalancer'",
            )
        )
    out.extend(
        one_of(spec.internal_traffic_policy, ["Cluster", "Local"], "spec.internalTrafficPolicy")
    )
    return out


def _session_affinity_config(spec: core_pb2.ServiceSpec) -> list[FieldError]:
    """ClientIP: a timeout in (0, 86400] s (defaulted to 10800); None: no config at all."""
    path = "spec.sessionAffinityConfig"
    if spec.session_affinity != "ClientIP":
        if spec.HasField("session_affinity_config") and spec.session_affinity == "None":
            client_ip = spec.session_affinity_config.client_ip
            shown = {"clientIP": {"timeoutSeconds": client_ip.timeout_seconds}}
            return [errors.invalid(path, shown, "must not be set when session affinity is None")]
        return []
    client_ip = spec.session_affinity_config.client_ip
    if not client_ip.HasField("timeout_seconds"):
        return [errors.required(f"{path}.clientIP.timeoutSeconds")]
    seconds = client_ip.timeout_seconds
    if not 0 < seconds <= MAX_CLIENT_IP_TIMEOUT:
        message = f"must be greater than 0 and less than {MAX_CLIENT_IP_TIMEOUT}"
        return [errors.invalid(f"{path}.clientIP.timeoutSeconds", seconds, message)]
    return []


def validate_node(node: core_pb2.Node) -> list[FieldError]:
    out = validate_object_meta(node.metadata, False, is_dns1123_subdomain)
    spec = node.spec
    if spec.pod_cidr:
        out.extend(
            errors.invalid("spec.podCIDR", spec.pod_cidr, m) for m in is_valid_cidr(spec.pod_cidr)
        )
    for i, cidr in enumerate(spec.pod_cidrs):
        out.extend(errors.invalid(f"spec.podCIDRs[{i}]", cidr, m) for m in is_valid_cidr(cidr))
    seen: set[tuple[str, str]] = set()
    for i, taint in enumerate(spec.taints):
        here = f"spec.taints[{i}]"
        if not taint.key:
            out.append(errors.required(f"{here}.key"))
        else:
            out.extend(
                errors.invalid(f"{here}.key", taint.key, m) for m in is_qualified_name(taint.key)
            )
        out.extend(
            errors.invalid(f"{here}.value", taint.value, m)
            for m in is_valid_label_value(taint.value)
        )
        if not taint.effect:
            out.append(errors.required(f"{here}.effect"))
        else:
            out.extend(one_of(taint.effect, TAINT_EFFECTS, f"{here}.effect"))
        if (taint.key, taint.effect) in seen:
            out.append(errors.duplicate(here, "taints must be unique by key and effect pair"))
        seen.add((taint.key, taint.effect))
    for section, values in (
        ("capacity", node.status.capacity),
        ("allocatable", node.status.allocatable),
    ):
        for name in sorted(values):
            out.extend(validate_quantity(values[name], f"status.{section}[{name}]"))
    return out


def validate_namespace(ns: core_pb2.Namespace) -> list[FieldError]:
    out = validate_object_meta(ns.metadata, False, is_dns1123_label)
    for i, name in enumerate(ns.spec.finalizers):
        out.extend(
            errors.invalid(f"spec.finalizers[{i}]", name, m) for m in is_qualified_name(name)
        )
    out.extend(one_of(ns.status.phase, ["Active", "Terminating"], "status.phase"))
    return out


def _validate_keys(keys: list[str], path: str) -> list[FieldError]:
    out: list[FieldError] = []
    for key in sorted(keys):
        out.extend(errors.invalid(f"{path}[{key}]", key, m) for m in is_config_map_key(key))
    return out


def validate_config_map(cm: core_pb2.ConfigMap) -> list[FieldError]:
    out = validate_object_meta(cm.metadata, True, is_dns1123_subdomain)
    out.extend(_validate_keys(list(cm.data), "data"))
    out.extend(_validate_keys(list(cm.binary_data), "binaryData"))
    for key in sorted(set(cm.data) & set(cm.binary_data)):
        out.append(errors.invalid(f"data[{key}]", key, "duplicate of key present in binaryData"))
    size = sum(len(v.encode()) for v in cm.data.values()) + sum(
        len(v) for v in cm.binary_data.values()
    )
    if size > MAX_SECRET_SIZE:
        out.append(errors.too_long("data", "", MAX_SECRET_SIZE))
    return out


_SECRET_REQUIRED_KEYS: dict[str, tuple[str, ...]] = {
    "kubernetes.io/tls": ("tls.crt", "tls.key"),
    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
    "kubernetes.io/dockercfg": (".dockercfg",),
    "kubernetes.io/ssh-auth": ("ssh-privatekey",),
}


def validate_secret(secret: core_pb2.Secret) -> list[FieldError]:
    out = validate_object_meta(secret.metadata, True, is_dns1123_subdomain)
    out.extend(_validate_keys(list(secret.data), "data"))
    out.extend(_validate_keys(list(secret.string_data), "stringData"))
    keys = set(secret.data) | set(secret.string_data)
    for key in _SECRET_REQUIRED_KEYS.get(secret.type, ()):
        if key not in keys:
            out.append(errors.required(f"data[{key}]"))
    if secret.type == "kubernetes.io/basic-auth" and not keys & {"username", "password"}:
        out.append(errors.required("data[username]"))
    size = sum(len(v) for v in secret.data.values()) + sum(
        len(v.encode()) for v in secret.string_data.values()
    )
    if size > MAX_SECRET_SIZE:
        out.append(errors.too_long("data", "", MAX_SECRET_SIZE))
    return out


def validate_event(event: core_pb2.Event) -> list[FieldError]:
    out = validate_object_meta(event.metadata, True, is_dns1123_subdomain)
    involved_ns = event.involved_object.namespace
    if involved_ns and event.metadata.namespace and involved_ns != event.metadata.namespace:
        out.append(
            errors.invalid(
                "involvedObject.namespace", involved_ns, "does not match event.namespace"
            )
        )
    out.extend(one_of(event.type, ["Normal", "Warning"], "type"))
    out.extend(nonnegative(event.count, "count"))
    return out


def validate_lease(lease: coordination_pb2.Lease) -> list[FieldError]:
    out = validate_object_meta(lease.metadata, True, is_dns1123_subdomain)
    spec = lease.spec
    if spec.HasField("lease_duration_seconds") and spec.lease_duration_seconds <= 0:
        out.append(
            errors.invalid(
                "spec.leaseDurationSeconds", spec.lease_duration_seconds, "must be greater than 0"
            )
        )
    if spec.lease_transitions < 0:
        out.append(errors.invalid("spec.leaseTransitions", spec.lease_transitions, NONNEGATIVE))
    return out


def validate_endpoints(ep: core_pb2.Endpoints) -> list[FieldError]:
    out = validate_object_meta(ep.metadata, True, is_dns1123_subdomain)
    for i, subset in enumerate(ep.subsets):
        here = f"subsets[{i}]"
        for field, addresses in (
            ("addresses", subset.addresses),
            ("notReadyAddresses", subset.not_ready_addresses),
        ):
            for j, addr in enumerate(addresses):
                at = f"{here}.{field}[{j}]"
                out.extend(errors.invalid(f"{at}.ip", addr.ip, m) for m in is_valid_ip(addr.ip))
                if addr.hostname:
                    out.extend(check_name(addr.hostname, f"{at}.hostname", is_dns1123_label))
                if addr.HasField("node_name") and addr.node_name:
                    out.extend(check_name(addr.node_name, f"{at}.nodeName", is_dns1123_subdomain))
        for j, port in enumerate(subset.ports):
            at = f"{here}.ports[{j}]"
            if len(subset.ports) > 1 and not port.name:
                out.append(errors.required(f"{at}.name"))
            elif port.name:
                out.extend(check_name(port.name, f"{at}.name", is_dns1123_label))
            out.extend(
                errors.invalid(f"{at}.port", port.port, m) for m in is_valid_port_num(port.port)
            )
            out.extend(one_of(port.protocol, PROTOCOLS, f"{at}.protocol"))
    return out
