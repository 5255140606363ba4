"""Validation of securityContext: the pod's and each container's, with Kubernetes' wording.

What the kubelet will run as must be well formed before it is stored: a
negative uid, a seccomp type the runtime does not know, a Localhost type
without its profile, or a privileged container that also claims it cannot
escalate privileges are all refused here, naming the field:

    spec.securityContext.runAsUser: Invalid value: -1: must be between 0 and 2147483647, inclusive
    spec.containers[0].securityContext.seccompProfile.localhostProfile: Required value: must be
      set when seccomp type is Localhost
    spec.containers[0].securityContext: Invalid value: "...": cannot set
      `allowPrivilegeEscalation` to false and `privileged` to true

What a pod may ask for at all (privileged, host namespaces, root) is not
validation's business but Pod Security admission's, per namespace
(apiserver/admission/podsecurity.py).
"""

from __future__ import annotations

from apimachinery import errors
from apimachinery.errors import FieldError
from apimachinery.validation_pod_parts import local_descending_path
from protos import core_pb2

MAX_ID = 2**31 - 1
SECCOMP_TYPES = ["Localhost", "RuntimeDefault", "Unconfined"]


def _id(value: int, path: str) -> list[FieldError]:
    if 0 <= value <= MAX_ID:
        return []
    return [errors.invalid(path, value, f"must be between 0 and {MAX_ID}, inclusive")]


def validate_seccomp(profile: core_pb2.SeccompProfile, path: str) -> list[FieldError]:
    out: list[FieldError] = []
    if not profile.type:
        out.append(errors.required(f"{path}.type"))
    elif profile.type not in SECCOMP_TYPES:
        out.append(errors.unsupported(f"{path}.type", profile.type, SECCOMP_TYPES))
    local = f"{path}.localhostProfile"
    if profile.type == "Localhost" and not profile.localhost_profile:
        out.append(errors.required(local, "must be set when seccomp type is Localhost"))
    elif profile.type != "Localhost" and profile.HasField("localhost_profile"):
        out.append(errors.invalid(local, profile.localhost_profile, _LOCALHOST_ONLY))
    else:
        out.extend(local_descending_path(profile.localhost_profile, local))
    return out


_LOCALHOST_ONLY = "can only be set when seccomp type is Localhost"


def _common(
    ctx: core_pb2.PodSecurityContext | core_pb2.SecurityContext, path: str
) -> list[FieldError]:
    """What the pod's context and a container's share: the ids, the seccomp profile."""
    out: list[FieldError] = []
    for present, value, name in (
        (ctx.HasField("run_as_user"), ctx.run_as_user, "runAsUser"),
        (ctx.HasField("run_as_group"), ctx.run_as_group, "runAsGroup"),
    ):
        if present:
            out.extend(_id(value, f"{path}.{name}"))
    if ctx.HasField("seccomp_profile"):
        out.extend(validate_seccomp(ctx.seccomp_profile, f"{path}.seccompProfile"))
    return out


def validate_pod_security_context(ctx: core_pb2.PodSecurityContext, path: str) -> list[FieldError]:
    out = _common(ctx, path)
    if ctx.HasField("fs_group"):
        out.extend(_id(ctx.fs_group, f"{path}.fsGroup"))
    for i, gid in enumerate(ctx.supplemental_groups):
        out.extend(_id(gid, f"{path}.supplementalGroups[{i}]"))
    return out


def validate_security_context(ctx: core_pb2.SecurityContext, path: str) -> list[FieldError]:
    out = _common(ctx, path)
    no_escalation = ctx.HasField("allow_privilege_escalation") and not (
        ctx.allow_privilege_escalation
    )
    if no_escalation:
        if ctx.privileged:
            out.append(errors.invalid(path, _summary(ctx), _PRIVILEGED_ESCALATES))
        if "SYS_ADMIN" in ctx.capabilities.add or "CAP_SYS_ADMIN" in ctx.capabilities.add:
            out.append(errors.invalid(path, _summary(ctx), _SYS_ADMIN_ESCALATES))
    return out


_PRIVILEGED_ESCALATES = "cannot set `allowPrivilegeEscalation` to false and `privileged` to true"
_SYS_ADMIN_ESCALATES = (
    "cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN"
)


def _summary(ctx: core_pb2.SecurityContext) -> str:
    parts = []
    if ctx.HasField("privileged"):
        parts.append(f"privileged={str(ctx.privileged).lower()}")
    parts.append("allowPrivilegeEscalation=false")
    if ctx.capabilities.add:
        parts.append(f"capabilities.add={list(ctx.capabilities.add)}")
    return ", ".join(parts)
