"""RBAC validation: Kubernetes' rules and words for roles, bindings, subjects, roleRef updates."""

from __future__ import annotations

from apimachinery import codec, validation
from protos import rbac_pb2


def _messages(obj: object) -> list[str]:
    return [str(e) for e in validation.validate_object(obj)]  # type: ignore[arg-type]


def role(rules: list[dict[str, object]], kind: str = "Role") -> rbac_pb2.Role:
    meta: dict[str, object] = {"name": "pod-reader"}
    if kind == "Role":
        meta["namespace"] = "team-a"
    obj = codec.from_dict(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": kind,
            "metadata": meta,
            "rules": rules,
        }
    )
    assert isinstance(obj, (rbac_pb2.Role, rbac_pb2.ClusterRole))
    return obj  # type: ignore[return-value]


def binding(
    role_ref: dict[str, str] | None,
    subjects: list[dict[str, str]],
    kind: str = "RoleBinding",
) -> rbac_pb2.RoleBinding:
    data: dict[str, object] = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": {
            "name": "read-pods",
            **({"namespace": "team-a"} if kind == "RoleBinding" else {}),
        },
        "subjects": subjects,
    }
    if role_ref is not None:
        data["roleRef"] = role_ref
    return codec.from_dict(data)  # type: ignore[return-value]


POD_READER = {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"}
BOB = {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "bob"}


def test_a_good_role_and_binding_validate() -> None:
    good = role([{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}])
    assert _messages(good) == []
    assert _messages(binding(POD_READER, [BOB])) == []


def test_a_manifest_decodes_with_kubernetes_json_names() -> None:
    obj = role(
        [{"verbs": ["get"], "nonResourceURLs": ["/version"]}],
        kind="ClusterRole",
    )
    assert list(obj.rules[0].non_resource_urls) == ["/version"]
    assert codec.to_dict(obj)["rules"] == [{"verbs": ["get"], "nonResourceURLs": ["/version"]}]


def test_a_rule_needs_verbs_groups_and_resources() -> None:
    assert _messages(role([{}])) == [
        "rules[0].verbs: Required value: verbs must contain at least one value",
        "rules[0].apiGroups: Required value: resource rules must supply at least one api group",
        "rules[0].resources: Required value: resource rules must supply at least one resource",
    ]


def test_non_resource_urls_only_in_cluster_roles_and_never_with_resources() -> None:
    in_role = role([{"verbs": ["get"], "nonResourceURLs": ["/version"]}])
    assert _messages(in_role) == [
        'rules[0].nonResourceURLs: Invalid value: []string{"/version"}: '
        "namespaced rules cannot apply to non-resource URLs"
    ]
    both = role(
        [{"verbs": ["get"], "resources": ["pods"], "nonResourceURLs": ["/api"]}],
        kind="ClusterRole",
    )
    assert _messages(both) == [
        'rules[0].nonResourceURLs: Invalid value: []string{"/api"}: '
        "rules cannot apply to both regular resources and non-resource URLs"
    ]


def test_role_names_are_path_segments() -> None:
    named = role([], kind="ClusterRole")
    named.metadata.name = "system:kube-scheduler"
    assert _messages(named) == []
    named.metadata.name = "a/b"
    assert _messages(named) == ["metadata.name: Invalid value: \"a/b\": may not contain '/'"]


def test_role_ref_is_required_and_names_a_role() -> None:
    assert _messages(binding(None, [BOB])) == [
        'roleRef.kind: Unsupported value: "": supported values: "Role", "ClusterRole"',
        "roleRef.name: Required value",
    ]
    wrong = binding({"apiGroup": "apps", "kind": "Deployment", "name": "web"}, [BOB])
    assert _messages(wrong) == [
        'roleRef.apiGroup: Unsupported value: "apps": supported values: '
        '"rbac.authorization.k8s.io"',
        'roleRef.kind: Unsupported value: "Deployment": supported values: "Role", "ClusterRole"',
    ]


def test_a_cluster_role_binding_references_only_a_cluster_role() -> None:
    crb = binding(POD_READER, [BOB], kind="ClusterRoleBinding")
    assert _messages(crb) == [
        'roleRef.kind: Unsupported value: "Role": supported values: "ClusterRole"'
    ]
    view = {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"}
    assert _messages(binding(view, [BOB])) == []  # a RoleBinding may reference either


def test_subjects_are_users_groups_or_service_accounts() -> None:
    subjects = [
        {"kind": "Robot", "name": "r2"},
        {"kind": "User", "name": ""},
        {"kind": "Group", "apiGroup": "apps", "name": "devs"},
        {"kind": "ServiceAccount", "apiGroup": "rbac.authorization.k8s.io", "name": "Bad_Name"},
        {"kind": "User", "name": "alice"},  # an empty apiGroup is the default
    ]
    assert _messages(binding(POD_READER, subjects)) == [
        'subjects[0].kind: Unsupported value: "Robot": supported values: '
        '"ServiceAccount", "User", "Group"',
        "subjects[1].name: Required value",
        'subjects[2].apiGroup: Unsupported value: "apps": supported values: '
        '"rbac.authorization.k8s.io"',
        'subjects[3].name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain must '
        "consist of lower case alphanumeric characters, '-' or '.', and must start and end "
        "with an alphanumeric character (e.g. 'example.com', regex used for validation is "
        "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        'subjects[3].apiGroup: Unsupported value: "rbac.authorization.k8s.io": '
        'supported values: ""',
    ]


def test_a_cluster_bound_service_account_needs_its_namespace() -> None:
    view = {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"}
    crb = binding(view, [{"kind": "ServiceAccount", "name": "ci"}], kind="ClusterRoleBinding")
    assert _messages(crb) == ["subjects[0].namespace: Required value"]
    rb = binding(view, [{"kind": "ServiceAccount", "name": "ci"}])
    assert _messages(rb) == []  # in a RoleBinding, the binding's namespace


def test_role_ref_cannot_change() -> None:
    old = binding(POD_READER, [BOB])
    new = binding({**POD_READER, "name": "pod-writer"}, [BOB])
    assert [str(e) for e in validation.validate_update(new, old)] == [
        'roleRef: Invalid value: rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", '
        'Kind:"Role", Name:"pod-writer"}: cannot change roleRef'
    ]
    defaulted = binding({"kind": "Role", "name": "pod-reader"}, [BOB, {**BOB, "name": "eve"}])
    assert validation.validate_update(defaulted, old) == []  # subjects may change
