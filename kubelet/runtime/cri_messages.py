"""Our runtime dataclasses <-> CRI protobuf messages, for the containerd runtime (cri.py).

Kept apart from the gRPC client so the mapping can be read (and tested) on
its own; protobuf stays inside these two modules (DESIGN §7.4). The choices
made here, as Kubernetes' kuberuntime makes them:

* a sandbox's log_directory is `<log_root>/<namespace>_<name>_<uid>` and a
  container's log_path `<container name>/<attempt>.log` inside it -- the
  /var/log/pods layout, so a restarted container's previous log stays
  beside the current one (`logs --previous`);
* the pod uid label is always set on the sandbox, since the kubelet finds
  its sandboxes by it after a restart;
* namespaces (NamespacesForPod): network NODE for hostNetwork pods, else
  POD (the sandbox's); PID per CONTAINER, POD with shareProcessNamespace,
  NODE with hostPID; IPC shared in the POD, NODE with hostIPC;
* hostname is empty for hostNetwork pods (they see the node's);
* a ContainerConfig's mounts and cgroup limits (filled in by
  cri_convert.py) become CRI Mounts and LinuxContainerResources, its
  stdin / stdinOnce / tty the fields of the same names;
* its security (security_context.py) becomes LinuxContainerSecurityContext,
  the pod-level part LinuxSandboxSecurityContext. Seccomp goes both ways
  containerd reads it: the `seccomp` SecurityProfile and the older
  `seccomp_profile_path` string ("runtime/default", "unconfined",
  "localhost/<path>"), which containerd 1.6 still prefers when set;
* ImageStatus' uid / username become an ImageUser, for runAsNonRoot;
* CRI times are Unix nanoseconds, ours float seconds (0 stays 0: "not yet").
"""

from __future__ import annotations

from pathlib import Path

from kubelet.runtime.interface import (
    CONTAINER_NAME_LABEL,
    POD_UID_LABEL,
    Container,
    ContainerConfig,
    ContainerState,
    ImageUser,
    LinuxContainerSecurity,
    LinuxSandboxSecurity,
    PodSandbox,
    PodSandboxConfig,
    SandboxState,
    SeccompProfile,
)
from protos import cri_pb2 as cri

_PROTOCOLS = {"TCP": cri.TCP, "UDP": cri.UDP, "SCTP": cri.SCTP}
_PROFILE_TYPES = {
    "RuntimeDefault": cri.SecurityProfile.RuntimeDefault,
    "Unconfined": cri.SecurityProfile.Unconfined,
    "Localhost": cri.SecurityProfile.Localhost,
}


def namespace_options(config: PodSandboxConfig) -> cri.NamespaceOption:
    """NamespacesForPod: which of the pod's namespaces are the node's, the pod's, its own."""
    pid = cri.CONTAINER
    if config.host_pid:
        pid = cri.NODE
    elif config.share_process_namespace:
        pid = cri.POD
    return cri.NamespaceOption(
        network=cri.NODE if config.host_network else cri.POD,
        pid=pid,
        ipc=cri.NODE if config.host_ipc else cri.POD,
    )


def seccomp_to_cri(profile: SeccompProfile) -> tuple[cri.SecurityProfile, str]:
    """Our profile as CRI's SecurityProfile and as the older seccomp_profile_path string."""
    message = cri.SecurityProfile(
        profile_type=_PROFILE_TYPES.get(profile.type, cri.SecurityProfile.Unconfined),
        localhost_ref=profile.localhost_ref,
    )
    if profile.type == "RuntimeDefault":
        return message, "runtime/default"
    if profile.type == "Localhost":
        return message, f"localhost/{profile.localhost_ref}"
    return message, "unconfined"


def sandbox_security_to_cri(
    security: LinuxSandboxSecurity | None, namespaces: cri.NamespaceOption
) -> cri.LinuxSandboxSecurityContext:
    out = cri.LinuxSandboxSecurityContext(namespace_options=namespaces)
    if security is None:
        return out
    profile, path = seccomp_to_cri(security.seccomp)
    out.seccomp.CopyFrom(profile)
    out.seccomp_profile_path = path
    out.privileged = security.privileged
    out.supplemental_groups.extend(security.supplemental_groups)
    if security.run_as_user is not None:
        out.run_as_user.value = security.run_as_user
    if security.run_as_group is not None:
        out.run_as_group.value = security.run_as_group
    return out


def container_security_to_cri(
    security: LinuxContainerSecurity | None, namespaces: cri.NamespaceOption
) -> cri.LinuxContainerSecurityContext:
    out = cri.LinuxContainerSecurityContext(namespace_options=namespaces)
    if security is None:
        return out
    profile, path = seccomp_to_cri(security.seccomp)
    out.seccomp.CopyFrom(profile)
    out.seccomp_profile_path = path
    out.capabilities.add_capabilities.extend(security.capabilities_add)
    out.capabilities.drop_capabilities.extend(security.capabilities_drop)
    out.privileged = security.privileged
    out.readonly_rootfs = security.readonly_rootfs
    out.no_new_privs = security.no_new_privs
    out.supplemental_groups.extend(security.supplemental_groups)
    out.run_as_username = security.run_as_username
    if security.run_as_user is not None:
        out.run_as_user.value = security.run_as_user
    if security.run_as_group is not None:
        out.run_as_group.value = security.run_as_group
    return out


def image_user_from_cri(image: cri.Image) -> ImageUser:
    """ImageStatus' Image -> who it runs as (uid when numeric, else the username)."""
    if image.HasField("uid"):
        return ImageUser(uid=image.uid.value)
    return ImageUser(username=image.username)


def _seconds(ns: int) -> float:
    return ns / 1e9 if ns > 0 else 0.0


def sandbox_log_directory(log_root: str, config: PodSandboxConfig) -> str:
    return str(Path(log_root) / f"{config.namespace}_{config.name}_{config.uid}")


def container_log_path(name: str, attempt: int) -> str:
    return f"{name}/{attempt}.log"


def to_cri_sandbox_config(config: PodSandboxConfig, log_root: str) -> cri.PodSandboxConfig:
    """Our PodSandboxConfig as CRI's (generatePodSandboxConfig's second half)."""
    out = cri.PodSandboxConfig(
        metadata=cri.PodSandboxMetadata(
            name=config.name, uid=config.uid, namespace=config.namespace, attempt=config.attempt
        ),
        hostname="" if config.host_network else (config.hostname or config.name),
        log_directory=sandbox_log_directory(log_root, config),
        port_mappings=[
            cri.PortMapping(
                protocol=_PROTOCOLS.get(p.protocol.upper(), cri.TCP),
                container_port=p.container_port,
                host_port=p.host_port,
                host_ip=p.host_ip,
            )
            for p in config.port_mappings
        ],
        labels={**config.labels, POD_UID_LABEL: config.uid},
        annotations=config.annotations,
        linux=cri.LinuxPodSandboxConfig(
            security_context=sandbox_security_to_cri(config.security, namespace_options(config))
        ),
    )
    if config.dns is not None:
        out.dns_config.CopyFrom(
            cri.DNSConfig(
                servers=config.dns.servers,
                searches=config.dns.searches,
                options=config.dns.options,
            )
        )
    return out


def to_cri_container_config(
    config: ContainerConfig, sandbox: PodSandboxConfig
) -> cri.ContainerConfig:
    linux = cri.LinuxContainerConfig(
        security_context=container_security_to_cri(config.security, namespace_options(sandbox))
    )
    if config.resources is not None:
        r = config.resources
        linux.resources.CopyFrom(
            cri.LinuxContainerResources(
                cpu_period=r.cpu_period,
                cpu_quota=r.cpu_quota,
                cpu_shares=r.cpu_shares,
                memory_limit_in_bytes=r.memory_limit_in_bytes,
            )
        )
    mounts = [
        cri.Mount(container_path=m.container_path, host_path=m.host_path, readonly=m.read_only)
        for m in config.mounts
    ]
    return cri.ContainerConfig(
        metadata=cri.ContainerMetadata(name=config.name, attempt=config.attempt),
        image=cri.ImageSpec(image=config.image),
        command=list(config.command),
        args=list(config.args),
        working_dir=config.working_dir,
        envs=[cri.KeyValue(key=k, value=v) for k, v in config.env],
        mounts=mounts,
        labels={**config.labels, CONTAINER_NAME_LABEL: config.name},
        annotations=config.annotations,
        log_path=container_log_path(config.name, config.attempt),
        stdin=config.stdin,
        stdin_once=config.stdin_once,
        tty=config.tty,
        linux=linux,
    )


def sandbox_from_cri(item: cri.PodSandbox | cri.PodSandboxStatus, ip: str = "") -> PodSandbox:
    """CRI PodSandbox or PodSandboxStatus -> ours."""
    return PodSandbox(
        id=item.id,
        name=item.metadata.name,
        namespace=item.metadata.namespace,
        pod_uid=item.metadata.uid,
        attempt=item.metadata.attempt,
        state=SandboxState(cri.PodSandboxState.Name(item.state)),
        created_at=_seconds(item.created_at),
        ip=ip,
        labels=dict(item.labels),
        annotations=dict(item.annotations),
    )


def container_from_cri(status: cri.ContainerStatus) -> Container:
    """CRI ContainerStatus -> ours."""
    return Container(
        id=status.id,
        sandbox_id=status.labels.get("io.kubernetes.sandbox.id", ""),
        name=status.metadata.name,
        attempt=status.metadata.attempt,
        image=status.image.image,
        image_ref=status.image_ref,
        state=ContainerState(cri.ContainerState.Name(status.state)),
        created_at=_seconds(status.created_at),
        started_at=_seconds(status.started_at),
        finished_at=_seconds(status.finished_at),
        exit_code=status.exit_code,
        reason=status.reason,
        message=status.message,
        labels=dict(status.labels),
        annotations=dict(status.annotations),
    )
