"""The describe pages of Roles, ClusterRoles and their bindings (kubectl's RoleDescriber & co).

A role's page is its rules as a table, one row per resource (a rule naming
three resources is three rows), with kubectl's `resource.group` names and
Go's list rendering for the other columns:

    Name:         pod-reader
    Labels:       <none>
    Annotations:  <none>
    PolicyRule:
      Resources         Non-Resource URLs  Resource Names  Verbs
      ---------         -----------------  --------------  -----
      deployments.apps  []                 []              [get list]
      pods              []                 []              [get list]

A binding's page is the role it grants and to whom:

    Role:
      Kind:  ClusterRole
      Name:  view
    Subjects:
      Kind            Name  Namespace
      ----            ----  ---------
      User            bob
      ServiceAccount  ci    build
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cli.describe_sections import Describer, Related, Writer

RuleRow = tuple[str, str, str, str]


def go_list(values: Sequence[str]) -> str:
    """`[get list]`, as Go's %v prints a slice (`[]` when empty)."""
    return "[" + " ".join(values) + "]"


def resource_group(resource: str, group: str) -> str:
    """kubectl's CombineResourceGroup: `deployments.apps`, `pods/log`, `certificatesigning...`."""
    name, slash, sub = resource.partition("/")
    combined = f"{name}.{group}" if group else name
    return f"{combined}{slash}{sub}"


def rule_rows(rules: Sequence[Any]) -> list[RuleRow]:
    """One row per resource (and API group) of every rule; URL rules one row each; sorted."""
    rows: set[RuleRow] = set()
    for rule in rules:
        names, verbs = go_list(rule.resource_names), go_list(rule.verbs)
        if rule.non_resource_urls:
            rows.add(("", go_list(rule.non_resource_urls), names, verbs))
        for group in rule.api_groups or [""]:
            for resource in rule.resources:
                rows.add((resource_group(resource, group), "[]", names, verbs))
    return sorted(rows)


def describe_role(role: Any, related: Related, now: float) -> str:
    w = Writer()
    w.line(0, "Name:", role.metadata.name)
    w.map_lines(0, "Labels", role.metadata.labels)
    w.map_lines(0, "Annotations", role.metadata.annotations, sep=": ")
    w.line(0, "PolicyRule:")
    w.line(1, "Resources", "Non-Resource URLs", "Resource Names", "Verbs")
    w.line(1, "---------", "-----------------", "--------------", "-----")
    for row in rule_rows(role.rules):
        w.line(1, *row)
    return w.text()


def describe_binding(binding: Any, related: Related, now: float) -> str:
    w = Writer()
    w.line(0, "Name:", binding.metadata.name)
    w.map_lines(0, "Labels", binding.metadata.labels)
    w.map_lines(0, "Annotations", binding.metadata.annotations, sep=": ")
    w.line(0, "Role:")
    w.line(1, "Kind:", binding.role_ref.kind)
    w.line(1, "Name:", binding.role_ref.name)
    w.line(0, "Subjects:")
    w.line(1, "Kind", "Name", "Namespace")
    w.line(1, "----", "----", "---------")
    for subject in binding.subjects:
        w.line(1, subject.kind, subject.name, subject.namespace)
    return w.text()


RBAC_DESCRIBERS: dict[str, Describer] = {
    "Role": describe_role,
    "ClusterRole": describe_role,
    "RoleBinding": describe_binding,
    "ClusterRoleBinding": describe_binding,
}
