"""Validation of rbac.authorization.k8s.io/v1 (pkg/apis/rbac/validation).

A role is a list of rules; a binding hands one role to a list of subjects.
The checks keep what the authorizer (apiserver/auth/rbac.py) relies on:

* a rule names verbs, and either resources (with their API groups) or
  non-resource URLs, never both; a namespaced Role's rule cannot name URLs
  (paths such as "/version" belong to no namespace);
* a binding's roleRef names a role of the rbac group: a RoleBinding a Role
  (in its own namespace) or a ClusterRole, a ClusterRoleBinding only a
  ClusterRole; and once written it never changes. Kubernetes refuses the
  change because a binding's name is how people audit who holds what: to
  give someone another role, delete the binding and create another;
* a subject is a User, a Group (both of the rbac group) or a ServiceAccount
  (of the core group, with a namespace when bound cluster-wide).

Role and binding names are path segments only (`system:kube-scheduler` is a
valid name), as Kubernetes' ValidateRBACName allows.

An empty roleRef.apiGroup, or a User's or Group's empty apiGroup, is
"the default" (rbac.authorization.k8s.io, as Kubernetes' defaulting fills
it), so a manifest validates the same before and after defaulting. Worked
example, a RoleBinding whose roleRef says `kind: Deployment`:

    roleRef.kind: Unsupported value: "Deployment": supported values: "Role", "ClusterRole"
"""

from __future__ import annotations

from collections.abc import Sequence

from apimachinery import errors
from apimachinery.errors import FieldError
from apimachinery.validation_meta import Shown, check_name, validate_object_meta
from apimachinery.validation_names import is_dns1123_subdomain
from protos import rbac_pb2

GROUP = "rbac.authorization.k8s.io"
USER, GROUP_KIND, SERVICE_ACCOUNT = "User", "Group", "ServiceAccount"
SUBJECT_KINDS = [SERVICE_ACCOUNT, USER, GROUP_KIND]

AnyRole = rbac_pb2.Role | rbac_pb2.ClusterRole
AnyBinding = rbac_pb2.RoleBinding | rbac_pb2.ClusterRoleBinding


def is_valid_path_segment_name(name: str) -> list[str]:
    """path.IsValidPathSegmentName: anything but `.`, `..`, or a `/` or `%` inside."""
    if name in (".", ".."):
        return [f"may not be '{name}'"]
    return [f"may not contain '{bad}'" for bad in ("/", "%") if bad in name]


def go_strings(values: Sequence[str]) -> Shown:
    """A list rendered as Go's %#v: []string{"/version", "/api"}."""
    return Shown("[]string{" + ", ".join(f'"{v}"' for v in values) + "}")


def go_role_ref(ref: rbac_pb2.RoleRef) -> Shown:
    """The roleRef as Go's %#v prints it, as Kubernetes' message shows it."""
    fields = f'APIGroup:"{ref.api_group}", Kind:"{ref.kind}", Name:"{ref.name}"'
    return Shown("rbac.RoleRef{" + fields + "}")


def validate_policy_rule(
    rule: rbac_pb2.PolicyRule, namespaced: bool, path: str
) -> list[FieldError]:
    out: list[FieldError] = []
    if not rule.verbs:
        out.append(errors.required(f"{path}.verbs", "verbs must contain at least one value"))
    if rule.non_resource_urls:
        urls = go_strings(rule.non_resource_urls)
        if namespaced:
            out.append(
                errors.invalid(
                    f"{path}.nonResourceURLs",
                    urls,
                    "namespaced rules cannot apply to non-resource URLs",
                )
            )
        if rule.api_groups or rule.resources or rule.resource_names:
            out.append(
                errors.invalid(
                    f"{path}.nonResourceURLs",
                    urls,
                    "rules cannot apply to both regular resources and non-resource URLs",
                )
            )
        return out
    if not rule.api_groups:
        out.append(
            errors.required(
                f"{path}.apiGroups", "resource rules must supply at least one api group"
            )
        )
    if not rule.resources:
        out.append(
            errors.required(f"{path}.resources", "resource rules must supply at least one resource")
        )
    return out


def _validate_role(role: AnyRole, namespaced: bool) -> list[FieldError]:
    out = validate_object_meta(role.metadata, namespaced, is_valid_path_segment_name)
    for i, rule in enumerate(role.rules):
        out.extend(validate_policy_rule(rule, namespaced, f"rules[{i}]"))
    return out


def validate_role(role: rbac_pb2.Role) -> list[FieldError]:
    return _validate_role(role, True)


def validate_cluster_role(role: rbac_pb2.ClusterRole) -> list[FieldError]:
    return _validate_role(role, False)


def validate_subject(subject: rbac_pb2.Subject, namespaced: bool, path: str) -> list[FieldError]:
    """ValidateRoleBindingSubject: a name, and a kind with its API group."""
    out: list[FieldError] = []
    if not subject.name:
        out.append(errors.required(f"{path}.name"))
    if subject.kind == SERVICE_ACCOUNT:
        if subject.name:
            out.extend(check_name(subject.name, f"{path}.name", is_dns1123_subdomain))
        if subject.api_group:
            out.append(errors.unsupported(f"{path}.apiGroup", subject.api_group, [""]))
        if not namespaced and not subject.namespace:
            out.append(errors.required(f"{path}.namespace"))
    elif subject.kind in (USER, GROUP_KIND):
        if subject.api_group not in ("", GROUP):
            out.append(errors.unsupported(f"{path}.apiGroup", subject.api_group, [GROUP]))
    else:
        out.append(errors.unsupported(f"{path}.kind", subject.kind, SUBJECT_KINDS))
    return out


def _validate_binding(binding: AnyBinding, namespaced: bool) -> list[FieldError]:
    out = validate_object_meta(binding.metadata, namespaced, is_valid_path_segment_name)
    ref = binding.role_ref
    if ref.api_group not in ("", GROUP):
        out.append(errors.unsupported("roleRef.apiGroup", ref.api_group, [GROUP]))
    kinds = ["Role", "ClusterRole"] if namespaced else ["ClusterRole"]
    if ref.kind not in kinds:
        out.append(errors.unsupported("roleRef.kind", ref.kind, kinds))
    if not ref.name:
        out.append(errors.required("roleRef.name"))
    else:
        out.extend(check_name(ref.name, "roleRef.name", is_valid_path_segment_name))
    for i, subject in enumerate(binding.subjects):
        out.extend(validate_subject(subject, namespaced, f"subjects[{i}]"))
    return out


def validate_role_binding(binding: rbac_pb2.RoleBinding) -> list[FieldError]:
    return _validate_binding(binding, True)


def validate_cluster_role_binding(binding: rbac_pb2.ClusterRoleBinding) -> list[FieldError]:
    return _validate_binding(binding, False)


def _effective(ref: rbac_pb2.RoleRef) -> tuple[str, str, str]:
    return (ref.api_group or GROUP, ref.kind, ref.name)


def validate_binding_update(new: AnyBinding, old: AnyBinding) -> list[FieldError]:
    """ValidateRoleBindingUpdate (and the cluster one): the roleRef never changes."""
    if _effective(new.role_ref) != _effective(old.role_ref):
        return [errors.invalid("roleRef", go_role_ref(new.role_ref), "cannot change roleRef")]
    return []
