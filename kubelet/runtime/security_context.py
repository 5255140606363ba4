"""securityContext -> what the runtime enforces (Kubernetes' pkg/securitycontext/util.go and
kuberuntime's security_context.go, security_context_others.go, helpers.go getSeccompProfile).

A pod says who its processes are and what they may do in two places: the
pod's `securityContext` (defaults for every container, plus the pod-wide
groups) and each container's `securityContext`. The kubelet merges them --
the container's field wins wherever it sets one -- and hands the runtime
plain values (interface.LinuxContainerSecurity), which containerd turns into
the OCI spec and the Docker runtime into HostConfig fields:

    effective field              from                       the runtime applies
    ---------------------------  -------------------------  ------------------------------
    runAsUser, runAsGroup        container, else pod        the process's uid / gid
    runAsNonRoot                 container, else pod        (checked here, see below)
    supplementalGroups           pod: [fsGroup, *groups]    extra gids (`id -G`)
    privileged                   container                  all capabilities, host devices
    readOnlyRootFilesystem       container                  a read-only rootfs
    allowPrivilegeEscalation     container                  false -> no_new_privs
    capabilities add / drop      container                  the bounding/effective sets
    seccompProfile               container, else pod        RuntimeDefault / Unconfined /
                                                            Localhost <root>/seccomp/<file>

Worked example: a pod with `securityContext: {runAsUser: 1000, runAsGroup:
3000, fsGroup: 2000, supplementalGroups: [4000]}` and a container that sets
`runAsUser: 1001, allowPrivilegeEscalation: false, capabilities: {drop:
[ALL]}` runs as uid 1001 (`id -u`), gid 3000 (the pod's; `id -g`), with 2000
and 4000 among its groups (`id -G`), no_new_privs and no capabilities.

Defaults, as in Kubernetes: no seccompProfile anywhere is Unconfined (the
kubelet's seccompDefault is off), allowPrivilegeEscalation unset leaves
no_new_privs off, and an unset runAsUser leaves the image's USER in force.

runAsNonRoot (verifyRunAsNonRoot). With runAsNonRoot true the kubelet must
know the uid before it creates the container: an explicit runAsUser 0 is
refused, any other explicit uid passes; otherwise the image's user decides
(the runtime's ImageStatus): uid 0 -- or no user at all, which means root --
is refused, a non-numeric user ("nginx") too, since only /etc/passwd inside
the image could tell its uid. A refusal is a ContainerConfigError, reason
CreateContainerConfigError, with Kubernetes' message:

    container has runAsNonRoot and image will run as root (pod: "web_default(<uid>)",
    container: app)

One liberty: Kubernetes always copies the image's uid into runAsUser; here
the image's user is asked for only when it matters (runAsNonRoot, or a
runAsGroup without a runAsUser, which the runtimes cannot apply alone), so
a plain container costs no extra ImageStatus call. The process runs as the
same user either way.
"""

from __future__ import annotations

import posixpath
from typing import Literal

from kubelet.errors import ContainerConfigError
from kubelet.runtime.interface import (
    ImageUser,
    LinuxContainerSecurity,
    LinuxSandboxSecurity,
    SeccompProfile,
)
from protos import core_pb2

DEFAULT_SECCOMP_ROOT = "/var/lib/kubelet/seccomp"  # <root-dir>/seccomp
MAX_USER_ID = 2**31 - 1

# The fields a pod-level securityContext passes down to its containers
# (securityContextFromPodSecurityContext), and those a container may set itself.
PodField = Literal["run_as_user", "run_as_group", "run_as_non_root"]
ContainerField = Literal[
    "privileged",
    "run_as_user",
    "run_as_group",
    "run_as_non_root",
    "read_only_root_filesystem",
    "allow_privilege_escalation",
]
_FROM_POD: tuple[PodField, ...] = ("run_as_user", "run_as_group", "run_as_non_root")
_FROM_CONTAINER: tuple[ContainerField, ...] = (
    "privileged",
    "run_as_user",
    "run_as_group",
    "run_as_non_root",
    "read_only_root_filesystem",
    "allow_privilege_escalation",
)


def effective_security_context(
    pod: core_pb2.Pod, spec: core_pb2.Container
) -> core_pb2.SecurityContext:
    """DetermineEffectiveSecurityContext: the pod's defaults, overridden field by field."""
    out = core_pb2.SecurityContext()
    pod_sc = pod.spec.security_context
    for name in _FROM_POD:
        if pod_sc.HasField(name):
            setattr(out, name, getattr(pod_sc, name))
    if pod_sc.HasField("seccomp_profile"):
        out.seccomp_profile.CopyFrom(pod_sc.seccomp_profile)
    own = spec.security_context
    for field in _FROM_CONTAINER:
        if own.HasField(field):
            setattr(out, field, getattr(own, field))
    if own.HasField("capabilities"):
        out.capabilities.CopyFrom(own.capabilities)
    if own.HasField("seccomp_profile"):
        out.seccomp_profile.CopyFrom(own.seccomp_profile)
    return out


def seccomp_profile(
    profile: core_pb2.SeccompProfile | None, root: str = DEFAULT_SECCOMP_ROOT
) -> SeccompProfile:
    """getSeccompProfile: a pod spec's seccompProfile -> what the runtime loads."""
    if profile is None or profile.type in ("", "Unconfined"):
        return SeccompProfile("Unconfined")
    if profile.type == "RuntimeDefault":
        return SeccompProfile("RuntimeDefault")
    if profile.type == "Localhost":
        return SeccompProfile("Localhost", posixpath.join(root, profile.localhost_profile))
    raise ContainerConfigError(f"unknown seccomp profile type {profile.type!r}")


def pod_groups(pod: core_pb2.Pod) -> tuple[int, ...]:
    """The supplemental groups of every container: fsGroup first, then supplementalGroups."""
    pod_sc = pod.spec.security_context
    groups = [pod_sc.fs_group] if pod_sc.HasField("fs_group") else []
    groups.extend(pod_sc.supplemental_groups)
    return tuple(groups)


def needs_image_user(pod: core_pb2.Pod, spec: core_pb2.Container) -> bool:
    """Whether the image's user must be known before creating: see the module docstring."""
    sc = effective_security_context(pod, spec)
    if sc.HasField("run_as_user"):
        return False
    return sc.run_as_non_root or sc.HasField("run_as_group")


def container_security(
    pod: core_pb2.Pod,
    spec: core_pb2.Container,
    image_user: ImageUser | None = None,
    seccomp_root: str = DEFAULT_SECCOMP_ROOT,
) -> LinuxContainerSecurity:
    """determineEffectiveSecurityContext: the merged context as the runtime's values.

    `image_user` (when the caller fetched it) fills in an unset runAsUser, as
    Kubernetes does, so a runAsGroup alone can be applied: no user in the image
    means uid 0.
    """
    sc = effective_security_context(pod, spec)
    run_as_user = sc.run_as_user if sc.HasField("run_as_user") else None
    username = ""
    if run_as_user is None and image_user is not None:
        if image_user.uid is not None:
            run_as_user = image_user.uid
        elif image_user.username:
            username = image_user.username
        else:
            run_as_user = 0
    return LinuxContainerSecurity(
        run_as_user=run_as_user,
        run_as_username=username,
        run_as_group=sc.run_as_group if sc.HasField("run_as_group") else None,
        supplemental_groups=pod_groups(pod),
        readonly_rootfs=sc.read_only_root_filesystem,
        privileged=sc.privileged,
        no_new_privs=sc.HasField("allow_privilege_escalation")
        and not sc.allow_privilege_escalation,
        capabilities_add=tuple(sc.capabilities.add),
        capabilities_drop=tuple(sc.capabilities.drop),
        seccomp=seccomp_profile(
            sc.seccomp_profile if sc.HasField("seccomp_profile") else None, seccomp_root
        ),
    )


def has_privileged_container(pod: core_pb2.Pod) -> bool:
    """kubecontainer.HasPrivilegedContainer: the sandbox must then be privileged too."""
    every = [*pod.spec.init_containers, *pod.spec.containers]
    return any(c.security_context.privileged for c in every)


def sandbox_security(
    pod: core_pb2.Pod, seccomp_root: str = DEFAULT_SECCOMP_ROOT
) -> LinuxSandboxSecurity:
    """generatePodSandboxLinuxConfig's security half: the pod-level context for the sandbox."""
    pod_sc = pod.spec.security_context
    profile = pod_sc.seccomp_profile if pod_sc.HasField("seccomp_profile") else None
    user = pod_sc.run_as_user if pod_sc.HasField("run_as_user") else None
    # A group alone is refused by the runtimes ("specified without user"); the pause
    # image names no user to fill in, so the sandbox keeps its own (root) group then.
    group = pod_sc.run_as_group if pod_sc.HasField("run_as_group") and user is not None else None
    return LinuxSandboxSecurity(
        run_as_user=user,
        run_as_group=group,
        supplemental_groups=pod_groups(pod),
        privileged=has_privileged_container(pod),
        seccomp=seccomp_profile(profile, seccomp_root),
    )


def verify_run_as_non_root(
    pod: core_pb2.Pod, spec: core_pb2.Container, image_user: ImageUser | None
) -> None:
    """verifyRunAsNonRoot: refuse (ContainerConfigError) a container that may run as root.

    `image_user` None (not asked) counts as an image naming no user: root.
    """
    sc = effective_security_context(pod, spec)
    if not sc.run_as_non_root:
        return
    meta = pod.metadata
    where = f'(pod: "{meta.name}_{meta.namespace}({meta.uid})", container: {spec.name})'
    if sc.HasField("run_as_user"):
        if sc.run_as_user == 0:
            raise ContainerConfigError(f"container's runAsUser breaks non-root policy {where}")
        return
    user = image_user or ImageUser()
    if user.uid is None and user.username:
        raise ContainerConfigError(
            f"container has runAsNonRoot and image has non-numeric user ({user.username}), "
            f"cannot verify user is non-root {where}"
        )
    uid = user.uid or 0
    if uid == 0:
        raise ContainerConfigError(f"container has runAsNonRoot and image will run as root {where}")
    if not 0 <= uid <= MAX_USER_ID:
        raise ContainerConfigError(
            f"container has runAsNonRoot and image has an invalid user id ({uid}). "
            f"(Must be 1-({MAX_USER_ID})): must be between 0 and {MAX_USER_ID}, inclusive "
            f"{where}"
        )
