"""PodSpec validation (pkg/apis/core/validation: ValidatePodSpec and its helpers).

A PodSpec appears in three places - a Pod's `spec`, and the `spec.template.spec`
of a ReplicaSet and a Deployment - so every rule lives here once and takes
the path prefix. The rules, in the order a reader meets them in a manifest:

    volumes          unique DNS-label names, exactly one source each
    containers       at least one; names unique DNS labels (init containers
                     included); image required; ports 1-65535, protocol
                     TCP|UDP|SCTP; env names; volumeMounts name a volume;
                     resources valid quantities with requests <= limits;
                     probes exactly one handler, non-negative timings
    restartPolicy    Always|OnFailure|Never      dnsPolicy  ClusterFirst|...
    nodeSelector     labels rules                tolerations operator/effect
    initContainers[i].restartPolicy   only Always (a native sidecar), which alone lets
                     an init container have probes and lifecycle hooks
    env, envFrom     validation_pod_env          dnsConfig, hostAliases  validation_pod_dns

Worked example (what a user sees for a container without an image and with
port 0 in a Deployment):

    spec.template.spec.containers[0].image: Required value
    spec.template.spec.containers[0].ports[0].containerPort: Required value

Empty enum-like strings (protocol, policies) are accepted: they mean the
default, which the server's defaulting fills (see validation_meta).
"""

from __future__ import annotations

from apimachinery import errors
from apimachinery.errors import FieldError
from apimachinery.validation_meta import (
    check_name,
    has,
    int_or_string,
    nonnegative,
    not_found,
    validate_labels,
)
from apimachinery.validation_names import (
    is_dns1123_label,
    is_dns1123_subdomain,
    is_qualified_name,
    is_valid_label_value,
    is_valid_port_name,
    is_valid_port_num,
)
from apimachinery.validation_pod_dns import validate_dns_config, validate_host_aliases
from apimachinery.validation_pod_env import validate_env, validate_env_from
from apimachinery.validation_pod_parts import (
    local_descending_path,
    one_of,
    validate_resources,
    validate_volumes,
)
from apimachinery.validation_security import (
    validate_pod_security_context,
    validate_security_context,
)
from protos import core_pb2, meta_pb2

PROTOCOLS = ["SCTP", "TCP", "UDP"]
RESTART_POLICIES = ["Always", "Never", "OnFailure"]
PULL_POLICIES = ["Always", "IfNotPresent", "Never"]
DNS_POLICIES = ["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"]
TAINT_EFFECTS = ["NoExecute", "NoSchedule", "PreferNoSchedule"]
TOLERATION_OPERATORS = ["Equal", "Exists"]
MAX_INT32 = 2**31 - 1


def validate_port_num_or_name(port: meta_pb2.IntOrString, path: str) -> list[FieldError]:
    value = int_or_string(port)
    if isinstance(value, str):
        return [errors.invalid(path, value, m) for m in is_valid_port_name(value)]
    number = value or 0
    return [errors.invalid(path, number, m) for m in is_valid_port_num(number)]


def validate_handler(
    handler: core_pb2.Probe | core_pb2.LifecycleHandler, path: str
) -> list[FieldError]:
    """Exactly one of exec / httpGet / tcpSocket (/ sleep for lifecycle hooks)."""
    out: list[FieldError] = []
    kinds = [("exec", "exec"), ("httpGet", "http_get"), ("tcpSocket", "tcp_socket")]
    if isinstance(handler, core_pb2.LifecycleHandler):
        kinds.append(("sleep", "sleep"))
    present = [(j, a) for j, a in kinds if has(handler, a)]
    if not present:
        out.append(errors.required(path, "must specify a handler type"))
    for json_name, _ in present[1:]:
        out.append(
            errors.forbidden(f"{path}.{json_name}", "may not specify more than 1 handler type")
        )
    if handler.HasField("exec") and not handler.exec.command:
        out.append(errors.required(f"{path}.exec.command"))
    if handler.HasField("http_get"):
        get = handler.http_get
        out.extend(validate_port_num_or_name(get.port, f"{path}.httpGet.port"))
        out.extend(one_of(get.scheme, ["HTTP", "HTTPS"], f"{path}.httpGet.scheme"))
    if handler.HasField("tcp_socket"):
        out.extend(validate_port_num_or_name(handler.tcp_socket.port, f"{path}.tcpSocket.port"))
    if isinstance(handler, core_pb2.LifecycleHandler) and handler.HasField("sleep"):
        out.extend(nonnegative(handler.sleep.seconds, f"{path}.sleep.seconds"))
    return out


def validate_probe(
    probe: core_pb2.Probe, path: str, *, success_must_be_one: bool
) -> list[FieldError]:
    out = validate_handler(probe, path)
    for attr, json_name in (
        ("initial_delay_seconds", "initialDelaySeconds"),
        ("timeout_seconds", "timeoutSeconds"),
        ("period_seconds", "periodSeconds"),
        ("success_threshold", "successThreshold"),
        ("failure_threshold", "failureThreshold"),
    ):
        out.extend(nonnegative(getattr(probe, attr), f"{path}.{json_name}"))
    if success_must_be_one and probe.success_threshold not in (0, 1):
        out.append(errors.invalid(f"{path}.successThreshold", probe.success_threshold, "must be 1"))
    if (
        probe.HasField("termination_grace_period_seconds")
        and probe.termination_grace_period_seconds <= 0
    ):
        out.append(
            errors.invalid(
                f"{path}.terminationGracePeriodSeconds",
                probe.termination_grace_period_seconds,
                "must be greater than 0",
            )
        )
    return out


def validate_ports(ports: list[core_pb2.ContainerPort], path: str) -> list[FieldError]:
    out: list[FieldError] = []
    names: set[str] = set()
    for i, port in enumerate(ports):
        here = f"{path}[{i}]"
        if port.name:
            msgs = is_valid_port_name(port.name)
            out.extend(errors.invalid(f"{here}.name", port.name, m) for m in msgs)
            if not msgs and port.name in names:
                out.append(errors.duplicate(f"{here}.name", port.name))
            names.add(port.name)
        if port.container_port == 0:
            out.append(errors.required(f"{here}.containerPort"))
        else:
            out.extend(
                errors.invalid(f"{here}.containerPort", port.container_port, m)
                for m in is_valid_port_num(port.container_port)
            )
        if port.host_port:
            out.extend(
                errors.invalid(f"{here}.hostPort", port.host_port, m)
                for m in is_valid_port_num(port.host_port)
            )
        out.extend(one_of(port.protocol, PROTOCOLS, f"{here}.protocol"))
    return out


def validate_container(
    ctr: core_pb2.Container, path: str, volumes: set[str], *, init: bool
) -> list[FieldError]:
    out: list[FieldError] = []
    if not ctr.image:
        out.append(errors.required(f"{path}.image"))
    out.extend(one_of(ctr.image_pull_policy, PULL_POLICIES, f"{path}.imagePullPolicy"))
    out.extend(
        one_of(
            ctr.termination_message_policy,
            ["FallbackToLogsOnError", "File"],
            f"{path}.terminationMessagePolicy",
        )
    )
    out.extend(validate_ports(list(ctr.ports), f"{path}.ports"))
    out.extend(validate_env_from(list(ctr.env_from), f"{path}.envFrom"))
    out.extend(validate_env(list(ctr.env), f"{path}.env"))
    out.extend(validate_resources(ctr.resources, f"{path}.resources"))
    if ctr.HasField("security_context"):
        out.extend(validate_security_context(ctr.security_context, f"{path}.securityContext"))
    mount_paths: set[str] = set()
    for i, mnt in enumerate(ctr.volume_mounts):
        here = f"{path}.volumeMounts[{i}]"
        if not mnt.name:
            out.append(errors.required(f"{here}.name"))
        elif mnt.name not in volumes:
            out.append(not_found(f"{here}.name", mnt.name))
        if not mnt.mount_path:
            out.append(errors.required(f"{here}.mountPath"))
        elif mnt.mount_path in mount_paths:
            out.append(errors.invalid(f"{here}.mountPath", mnt.mount_path, "must be unique"))
        mount_paths.add(mnt.mount_path)
        if mnt.sub_path:
            out.extend(local_descending_path(mnt.sub_path, f"{here}.subPath"))
    out.extend(_restart_policy_and_hooks(ctr, path, init=init))
    return out


def _restart_policy_and_hooks(
    ctr: core_pb2.Container, path: str, *, init: bool
) -> list[FieldError]:
    """A container's restartPolicy, probes and lifecycle hooks.

    `restartPolicy: Always` is for init containers only and makes one a native sidecar:
    started in order like an init container, then kept running beside the app. Only
    such a sidecar, not a plain init container (which runs once, to completion), may
    have probes and hooks, as an app container may.
    """
    out: list[FieldError] = []
    if ctr.HasField("restart_policy"):
        here = f"{path}.restartPolicy"
        if not init:
            out.append(errors.forbidden(here, "may not be set for non-init containers"))
        elif ctr.restart_policy != "Always":
            out.append(errors.unsupported(here, ctr.restart_policy, ["Always"]))
    plain_init = init and ctr.restart_policy != "Always"
    for attr, json_name, must_be_one in (
        ("lifecycle", "lifecycle", False),
        ("liveness_probe", "livenessProbe", True),
        ("readiness_probe", "readinessProbe", False),
        ("startup_probe", "startupProbe", True),
    ):
        if not has(ctr, attr):
            continue
        if plain_init:
            out.append(
                errors.forbidden(
                    f"{path}.{json_name}",
                    "may not be set for init containers without restartPolicy=Always",
                )
            )
        elif attr != "lifecycle":
            out.extend(
                validate_probe(
                    getattr(ctr, attr), f"{path}.{json_name}", success_must_be_one=must_be_one
                )
            )
    if ctr.HasField("lifecycle") and not plain_init:
        for attr, json_name in (("post_start", "postStart"), ("pre_stop", "preStop")):
            if has(ctr.lifecycle, attr):
                out.extend(
                    validate_handler(getattr(ctr.lifecycle, attr), f"{path}.lifecycle.{json_name}")
                )
    return out


def validate_tolerations(tolerations: list[core_pb2.Toleration], path: str) -> list[FieldError]:
    out: list[FieldError] = []
    for i, tol in enumerate(tolerations):
        here = f"{path}[{i}]"
        if tol.key:
            out.extend(
                errors.invalid(f"{here}.key", tol.key, m) for m in is_qualified_name(tol.key)
            )
        elif tol.operator != "Exists":
            out.append(
                errors.invalid(
                    f"{here}.operator",
                    tol.operator,
                    'operator must be Exists when `key` is empty, which means "match all values '
                    'and all keys"',
                )
            )
        if tol.HasField("toleration_seconds") and tol.effect != "NoExecute":
            out.append(
                errors.invalid(
                    f"{here}.effect",
                    tol.effect,
                    "effect must be 'NoExecute' when `tolerationSeconds` is set",
                )
            )
        if tol.operator in ("", "Equal"):
            out.extend(
                errors.invalid(f"{here}.value", tol.value, m)
                for m in is_valid_label_value(tol.value)
            )
        elif tol.operator == "Exists":
            if tol.value:
                out.append(
                    errors.invalid(
                        f"{here}.value",
                        tol.value,
                        "value must be empty when `operator` is 'Exists'",
                    )
                )
        else:
            out.append(errors.unsupported(f"{here}.operator", tol.operator, TOLERATION_OPERATORS))
        out.extend(one_of(tol.effect, TAINT_EFFECTS, f"{here}.effect"))
    return out


def validate_pod_spec(spec: core_pb2.PodSpec, path: str = "spec") -> list[FieldError]:
    volumes, out = validate_volumes(list(spec.volumes), f"{path}.volumes")
    if not spec.containers:
        out.append(errors.required(f"{path}.containers"))
    names: set[str] = set()
    for init, field, containers in (
        (True, "initContainers", spec.init_containers),
        (False, "containers", spec.containers),
    ):
        for i, ctr in enumerate(containers):
            here = f"{path}.{field}[{i}]"
            if not ctr.name:
                out.append(errors.required(f"{here}.name"))
            else:
                out.extend(check_name(ctr.name, f"{here}.name", is_dns1123_label))
                if ctr.name in names:
                    out.append(errors.duplicate(f"{here}.name", ctr.name))
                names.add(ctr.name)
            out.extend(validate_container(ctr, here, volumes, init=init))
    out.extend(one_of(spec.restart_policy, RESTART_POLICIES, f"{path}.restartPolicy"))
    out.extend(one_of(spec.dns_policy, DNS_POLICIES, f"{path}.dnsPolicy"))
    out.extend(validate_dns_config(spec, path))
    out.extend(validate_host_aliases(list(spec.host_aliases), f"{path}.hostAliases"))
    out.extend(validate_labels(spec.node_selector, f"{path}.nodeSelector"))
    out.extend(validate_tolerations(list(spec.tolerations), f"{path}.tolerations"))
    if spec.HasField("security_context"):
        out.extend(validate_pod_security_context(spec.security_context, f"{path}.securityContext"))
    if (
        spec.HasField("active_deadline_seconds")
        and not 1 <= spec.active_deadline_seconds <= MAX_INT32
    ):
        out.append(
            errors.invalid(
                f"{path}.activeDeadlineSeconds",
                spec.active_deadline_seconds,
                f"must be between 1 and {MAX_INT32}, inclusive",
            )
        )
    if spec.HasField("termination_grace_period_seconds"):
        out.extend(
            nonnegative(
                spec.termination_grace_period_seconds, f"{path}.terminationGracePeriodSeconds"
            )
        )
    for attr, json_name, check in (
        ("node_name", "nodeName", is_dns1123_subdomain),
        ("hostname", "hostname", is_dns1123_label),
        ("subdomain", "subdomain", is_dns1123_label),
        ("scheduler_name", "schedulerName", is_dns1123_subdomain),
        ("service_account_name", "serviceAccountName", is_dns1123_subdomain),
    ):
        value = getattr(spec, attr)
        if value:
            out.extend(check_name(value, f"{path}.{json_name}", check))
    for i, tsc in enumerate(spec.topology_spread_constraints):
        here = f"{path}.topologySpreadConstraints[{i}]"
        if tsc.max_skew <= 0:
            out.append(errors.invalid(f"{here}.maxSkew", tsc.max_skew, "must be greater than zero"))
        if not tsc.topology_key:
            out.append(errors.required(f"{here}.topologyKey", "can not be empty"))
        if tsc.when_unsatisfiable not in ("DoNotSchedule", "ScheduleAnyway"):
            out.append(
                errors.unsupported(
                    f"{here}.whenUnsatisfiable",
                    tsc.when_unsatisfiable,
                    ["DoNotSchedule", "ScheduleAnyway"],
                )
            )
    return out
