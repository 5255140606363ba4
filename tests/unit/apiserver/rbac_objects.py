"""Builders of RBAC objects for the authorizer's and the default policy's tests."""

from __future__ import annotations

from collections.abc import Sequence

from apimachinery import scheme
from protos import meta_pb2, rbac_pb2

GROUP = "rbac.authorization.k8s.io"


def rule(
    verbs: Sequence[str],
    resources: Sequence[str] = (),
    groups: Sequence[str] = ("",),
    names: Sequence[str] = (),
    urls: Sequence[str] = (),
) -> rbac_pb2.PolicyRule:
    if urls:
        return rbac_pb2.PolicyRule(verbs=verbs, non_resource_urls=urls)
    return rbac_pb2.PolicyRule(
        verbs=verbs, api_groups=groups, resources=resources, resource_names=names
    )


def role(name: str, namespace: str, *rules: rbac_pb2.PolicyRule) -> rbac_pb2.Role:
    return rbac_pb2.Role(
        api_version=scheme.RBAC_V1,
        kind="Role",
        metadata=meta_pb2.ObjectMeta(name=name, namespace=namespace),
        rules=rules,
    )


def cluster_role(name: str, *rules: rbac_pb2.PolicyRule) -> rbac_pb2.ClusterRole:
    return rbac_pb2.ClusterRole(
        api_version=scheme.RBAC_V1,
        kind="ClusterRole",
        metadata=meta_pb2.ObjectMeta(name=name),
        rules=rules,
    )


def subject(kind: str, name: str, namespace: str = "") -> rbac_pb2.Subject:
    group = "" if kind == "ServiceAccount" else GROUP
    return rbac_pb2.Subject(kind=kind, api_group=group, name=name, namespace=namespace)


def role_binding(
    name: str, namespace: str, role_kind: str, role_name: str, *subjects: rbac_pb2.Subject
) -> rbac_pb2.RoleBinding:
    return rbac_pb2.RoleBinding(
        api_version=scheme.RBAC_V1,
        kind="RoleBinding",
        metadata=meta_pb2.ObjectMeta(name=name, namespace=namespace),
        role_ref=rbac_pb2.RoleRef(api_group=GROUP, kind=role_kind, name=role_name),
        subjects=subjects,
    )


def cluster_role_binding(
    name: str, role_name: str, *subjects: rbac_pb2.Subject
) -> rbac_pb2.ClusterRoleBinding:
    return rbac_pb2.ClusterRoleBinding(
        api_version=scheme.RBAC_V1,
        kind="ClusterRoleBinding",
        metadata=meta_pb2.ObjectMeta(name=name),
        role_ref=rbac_pb2.RoleRef(api_group=GROUP, kind="ClusterRole", name=role_name),
        subjects=subjects,
    )
