"""Pod Security admission: the Pod Security Standards, chosen per namespace by its labels.

Kubernetes replaced PodSecurityPolicy with three fixed levels, each a list of
checks on the pod spec, and a namespace picks a level per mode with labels:

    pod-security.kubernetes.io/enforce: baseline    # a violating pod is refused
    pod-security.kubernetes.io/warn: restricted     # the client is warned
    pod-security.kubernetes.io/audit: restricted    # the server logs it

* privileged: no checks.
* baseline: stops the known privilege escalations — host namespaces,
  privileged containers, added capabilities beyond the runtime's default set,
  hostPath volumes, host ports, an Unconfined seccomp profile.
* restricted: baseline, plus today's hardening best practice — only
  ephemeral volume types, no privilege escalation, runAsNonRoot, no
  runAsUser 0, a RuntimeDefault or Localhost seccomp profile, all
  capabilities dropped (NET_BIND_SERVICE may be added back).

A refusal reads as Kubernetes' does, every failed check with its details:

    pods "debug" is forbidden: violates PodSecurity "baseline:latest":
    hostPath volumes (volume "root"), privileged (container "shell" must not set
    securityContext.privileged=true)

`tinykube up` and the VMs label `default` as baseline, so a hostPath or a
privileged pod there is refused; `kube-system` is privileged, as on kubeadm
clusters. A namespace without labels is privileged (Kubernetes' default).
Enforcement applies to Pods; warnings also cover the pod templates of
Deployments and ReplicaSets, so a Deployment whose pods would be refused is
flagged when it is applied, not when its ReplicaSet fails to create them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from protos import core_pb2

LEVELS = ("privileged", "baseline", "restricted")
LABEL_PREFIX = "pod-security.kubernetes.io/"
MODES = ("enforce", "warn", "audit")

# The capabilities a container runtime grants by default: adding only these is baseline.
DEFAULT_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
        "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
    }
)  # fmt: skip
RESTRICTED_VOLUMES = ("configMap", "downwardAPI", "emptyDir", "projected", "secret")

Check = Callable[[core_pb2.PodSpec], list[str]]


def _containers(spec: core_pb2.PodSpec) -> list[core_pb2.Container]:
    return [*spec.init_containers, *spec.containers]


def _names(kind: str, names: Sequence[str]) -> str:
    quoted = ", ".join(f'"{n}"' for n in names)
    return f"{kind}{'s' if len(names) > 1 else ''} {quoted}"


def _per_container(
    spec: core_pb2.PodSpec, bad: Callable[[core_pb2.Container], bool], title: str, rule: str
) -> list[str]:
    names = [c.name for c in _containers(spec) if bad(c)]
    return [f"{title} ({_names('container', names)} {rule})"] if names else []


def host_namespaces(spec: core_pb2.PodSpec) -> list[str]:
    used = [
        f"{name}=true"
        for name, on in (
            ("hostNetwork", spec.host_network),
            ("hostPID", spec.host_pid),
            ("hostIPC", spec.host_ipc),
        )
        if on
    ]
    return [f"host namespaces ({', '.join(used)})"] if used else []


def privileged(spec: core_pb2.PodSpec) -> list[str]:
    return _per_container(
        spec,
        lambda c: c.security_context.privileged,
        "privileged",
        "must not set securityContext.privileged=true",
    )


def added_capabilities(spec: core_pb2.PodSpec) -> list[str]:
    out = []
    for c in _containers(spec):
        extra = [
            cap for cap in c.security_context.capabilities.add if cap not in DEFAULT_CAPABILITIES
        ]
        if extra:
            caps = ", ".join(f'"{cap}"' for cap in extra)
            out.append(
                f'non-default capabilities (container "{c.name}" must not include {caps}'
                " in securityContext.capabilities.add)"
            )
    return out


def host_path_volumes(spec: core_pb2.PodSpec) -> list[str]:
    names = [v.name for v in spec.volumes if v.HasField("host_path")]
    return [f"hostPath volumes ({_names('volume', names)})"] if names else []


def host_ports(spec: core_pb2.PodSpec) -> list[str]:
    out = []
    for c in _containers(spec):
        ports = [str(p.host_port) for p in c.ports if p.host_port]
        if ports:
            word = "hostPorts" if len(ports) > 1 else "hostPort"
            out.append(f'hostPort (container "{c.name}" uses {word} {", ".join(ports)})')
    return out


def _seccomp_type(spec: core_pb2.PodSpec, c: core_pb2.Container) -> str:
    if c.security_context.HasField("seccomp_profile"):
        return c.security_context.seccomp_profile.type
    return spec.security_context.seccomp_profile.type


def unconfined_seccomp(spec: core_pb2.PodSpec) -> list[str]:
    out = []
    if spec.security_context.seccomp_profile.type == "Unconfined":
        out.append(
            'seccompProfile (pod must not set securityContext.seccompProfile.type to "Unconfined")'
        )
    out += _per_container(
        spec,
        lambda c: c.security_context.seccomp_profile.type == "Unconfined",
        "seccompProfile",
        'must not set securityContext.seccompProfile.type to "Unconfined"',
    )
    return out


def restricted_volumes(spec: core_pb2.PodSpec) -> list[str]:
    out = []
    for v in spec.volumes:
        kind = next((f.json_name for f, _ in v.ListFields() if f.name != "name"), "")
        if kind and kind not in RESTRICTED_VOLUMES:
            out.append(
                f'restricted volume types (volume "{v.name}" uses restricted volume type "{kind}")'
            )
    return out


def privilege_escalation(spec: core_pb2.PodSpec) -> list[str]:
    return _per_container(
        spec,
        lambda c: (
            not (
                c.security_context.HasField("allow_privilege_escalation")
                and not c.security_context.allow_privilege_escalation
            )
        ),
        "allowPrivilegeEscalation != false",
        "must set securityContext.allowPrivilegeEscalation=false",
    )


def run_as_non_root(spec: core_pb2.PodSpec) -> list[str]:
    pod_says = spec.security_context.HasField("run_as_non_root")
    pod_value = spec.security_context.run_as_non_root

    def bad(c: core_pb2.Container) -> bool:
        if c.security_context.HasField("run_as_non_root"):
            return not c.security_context.run_as_non_root
        return not (pod_says and pod_value)

    if pod_says and not pod_value:
        return ["runAsNonRoot != true (pod must not set securityContext.runAsNonRoot=false)"]
    names = [c.name for c in _containers(spec) if bad(c)]
    if not names:
        return []
    return [
        f"runAsNonRoot != true (pod or {_names('container', names)} must set"
        " securityContext.runAsNonRoot=true)"
    ]


def run_as_user_zero(spec: core_pb2.PodSpec) -> list[str]:
    out = []
    if spec.security_context.HasField("run_as_user") and spec.security_context.run_as_user == 0:
        out.append("runAsUser=0 (pod must not set runAsUser=0)")
    out += _per_container(
        spec,
        lambda c: (
            c.security_context.HasField("run_as_user") and c.security_context.run_as_user == 0
        ),
        "runAsUser=0",
        "must not set runAsUser=0",
    )
    return out


def seccomp_required(spec: core_pb2.PodSpec) -> list[str]:
    names = [
        c.name
        for c in _containers(spec)
        if _seccomp_type(spec, c) not in ("RuntimeDefault", "Localhost")
    ]
    if not names:
        return []
    return [
        f"seccompProfile (pod or {_names('container', names)} must set"
        ' securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")'
    ]


def unrestricted_capabilities(spec: core_pb2.PodSpec) -> list[str]:
    out = _per_container(
        spec,
        lambda c: "ALL" not in c.security_context.capabilities.drop,
        "unrestricted capabilities",
        'must set securityContext.capabilities.drop=["ALL"]',
    )
    for c in _containers(spec):
        extra = [cap for cap in c.security_context.capabilities.add if cap != "NET_BIND_SERVICE"]
        if extra:
            caps = ", ".join(f'"{cap}"' for cap in extra)
            out.append(
                f'unrestricted capabilities (container "{c.name}" must not include {caps}'
                " in securityContext.capabilities.add)"
            )
    return out


BASELINE: tuple[Check, ...] = (
    host_namespaces,
    privileged,
    added_capabilities,
    host_path_volumes,
    host_ports,
    unconfined_seccomp,
)
RESTRICTED: tuple[Check, ...] = (
    *BASELINE,
    restricted_volumes,
    privilege_escalation,
    run_as_non_root,
    run_as_user_zero,
    seccomp_required,
    unrestricted_capabilities,
)
CHECKS: dict[str, tuple[Check, ...]] = {
    "privileged": (),
    "baseline": BASELINE,
    "restricted": RESTRICTED,
}


def violations(level: str, spec: core_pb2.PodSpec) -> list[str]:
    """Every failed check of `level` for a pod spec, in Kubernetes' words."""
    return [line for check in CHECKS[level] for line in check(spec)]


def namespace_levels(labels: Mapping[str, str]) -> dict[str, str]:
    """mode -> level from a namespace's labels (an unknown level counts as restricted)."""
    out = {}
    for mode in MODES:
        value = labels.get(LABEL_PREFIX + mode, "privileged")
        out[mode] = value if value in LEVELS else "restricted"
    return out


def label_errors(labels: Mapping[str, str]) -> list[tuple[str, str]]:
    """(label, value) pairs naming an unknown level, so a namespace cannot carry a typo."""
    bad = []
    for mode in MODES:
        key = LABEL_PREFIX + mode
        if key in labels and labels[key] not in LEVELS:
            bad.append((key, labels[key]))
    return bad


def summary(level: str, lines: Iterable[str], *, would: bool = False) -> str:
    """`violates PodSecurity "baseline:latest": ...` (refusals, audit) or, for warnings,
    `would violate PodSecurity ...`."""
    verb = "would violate" if would else "violates"
    return f'{verb} PodSecurity "{level}:latest": ' + ", ".join(lines)
