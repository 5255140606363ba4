"""The pod's security context as Docker sees it: Config.User and HostConfig fields
(dockershim's security_context.go: modifyContainerConfig, modifyHostConfig,
applySandboxSecurityContext, getSeccompDockerOpts).

Pure functions, like docker_convert.py, which calls them while building the
create requests:

    interface field              Docker
    ---------------------------  ------------------------------------------------
    run_as_user/_username/_group Config.User "1000:3000" ("nobody", "1000")
    supplemental_groups          HostConfig.GroupAdd ["2000", "4000"]
    readonly_rootfs              HostConfig.ReadonlyRootfs
    privileged                   HostConfig.Privileged
    capabilities add / drop      HostConfig.CapAdd / CapDrop ("NET_RAW", "ALL")
    no_new_privs                 SecurityOpt "no-new-privileges"
    seccomp Unconfined           SecurityOpt "seccomp=unconfined"
    seccomp RuntimeDefault       nothing: Docker's default profile applies
    seccomp Localhost            SecurityOpt "seccomp=<the profile's JSON>" (the file is
                                 read here, as dockershim did: the daemon wants the text)

Note the default: without a seccompProfile Kubernetes runs a container
Unconfined, while Docker on its own would apply its default profile; the
explicit "seccomp=unconfined" keeps both runtimes alike.

The pause container gets the pod-level part: its user and group, the pod's
groups and the pod's seccomp profile -- but never Privileged. containerd
insists on a privileged sandbox for a privileged container; Docker does not,
and the pause container needs no privilege of its own.

A limit of Docker 20.10 to know of: a privileged container is given every
capability the kernel knows (cap_last_cap), not those dockerd itself holds.
On a machine whose bounding set lacks one -- a VM or container sandbox
without CAP_SYS_RESOURCE, say -- runc then refuses to start it ("unable to
apply caps: operation not permitted", RunContainerError), while containerd,
which grants the capabilities it holds, starts it (moby issue 42906; later
Docker releases grant only what the daemon holds).

Worked example: runAsUser 1000, runAsGroup 3000, fsGroup 2000,
allowPrivilegeEscalation false, capabilities drop [ALL], seccompProfile
RuntimeDefault gives `user="1000:3000"`, `group_add=["2000"]`,
`cap_drop=["ALL"]` and `security_opt=["no-new-privileges"]` (no seccomp
option: Docker's default profile is the runtime default).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubelet.errors import ContainerConfigError
from kubelet.runtime.interface import LinuxContainerSecurity, LinuxSandboxSecurity, SeccompProfile

ReadProfile = Callable[[str], str]


def read_profile(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as err:
        raise ContainerConfigError(f"cannot read seccomp profile {path}: {err.strerror}") from None


def seccomp_options(profile: SeccompProfile, read: ReadProfile = read_profile) -> list[str]:
    """The SecurityOpt entries for a seccomp profile (table in the module docstring)."""
    if profile.type == "RuntimeDefault":
        return []
    if profile.type == "Localhost":
        text = read(profile.localhost_ref)
        try:
            compact = json.dumps(json.loads(text), separators=(",", ":"))
        except ValueError:
            raise ContainerConfigError(
                f"seccomp profile {profile.localhost_ref} is not JSON"
            ) from None
        return [f"seccomp={compact}"]
    return ["seccomp=unconfined"]


def _apply_groups(
    host: dict[str, Any],
    security: LinuxContainerSecurity | LinuxSandboxSecurity,
    read: ReadProfile,
) -> list[str]:
    if security.supplemental_groups:
        host["group_add"] = [str(g) for g in security.supplemental_groups]
    return seccomp_options(security.seccomp, read)


def apply_container_security(
    request: dict[str, Any],
    security: LinuxContainerSecurity | None,
    read: ReadProfile = read_profile,
) -> None:
    """Fill the create request's Config.User and HostConfig from the security context."""
    if security is None:
        return
    host: dict[str, Any] = request["host_config"]
    user = security.user_spec()
    if user:
        request["user"] = user
    elif security.run_as_group is not None:
        raise ContainerConfigError("runAsGroup is specified without a runAsUser")
    options = _apply_groups(host, security, read)
    if security.privileged:
        host["privileged"] = True
    if security.readonly_rootfs:
        host["read_only"] = True
    if security.capabilities_add:
        host["cap_add"] = list(security.capabilities_add)
    if security.capabilities_drop:
        host["cap_drop"] = list(security.capabilities_drop)
    if security.no_new_privs:
        options.insert(0, "no-new-privileges")
    if options:
        host["security_opt"] = options


def apply_sandbox_security(
    request: dict[str, Any],
    security: LinuxSandboxSecurity | None,
    read: ReadProfile = read_profile,
) -> None:
    """The pod-level context on the pause container (dockershim's applySandboxSecurityContext)."""
    if security is None:
        return
    if security.run_as_user is not None:
        group = f":{security.run_as_group}" if security.run_as_group is not None else ""
        request["user"] = f"{security.run_as_user}{group}"
    options = _apply_groups(request["host_config"], security, read)
    if options:
        request["host_config"]["security_opt"] = options
