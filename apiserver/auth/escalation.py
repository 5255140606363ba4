"""Escalation prevention: nobody grants, through RBAC, more than they hold themselves.

Without this check RBAC would be a ladder: whoever may create a RoleBinding
(a namespace's `admin`) could bind `cluster-admin` in their namespace, and
whoever may edit a Role could add `*` to it. Kubernetes' RBAC storage
(pkg/registry/rbac) refuses such writes, and tinykube does the same:

* a Role or ClusterRole may be created or updated only by a user who already
  holds every permission it contains (in the Role's namespace; cluster-wide
  for a ClusterRole), or who may `escalate` that role;
* a RoleBinding or ClusterRoleBinding only by a user who holds every
  permission of the role it references (there), or who may `bind` that role.

`system:masters` may always. The refusal names what is missing, as Kubernetes:

    clusterroles.rbac.authorization.k8s.io "all" is forbidden: user "bob"
    (groups=["system:authenticated"]) is attempting to grant RBAC permissions
    not currently held:
    {APIGroups:[""], Resources:["secrets"], Verbs:["get" "list"]}

Coverage (Kubernetes' Covers) is checked atom by atom: a rule is broken into
one rule per (group, resource, verb[, name]) or (URL, verb), and each atom
must be covered by one rule the user holds. Worked example: bob holds
`get,list pods` in team-a and writes a Role there with `get pods, get
secrets`: the atoms are `get pods` (covered) and `get secrets` (not), so the
write is refused naming `{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}`.
A `*` in the role is covered only by a `*` the user holds: holding every verb
one by one is not holding verbs that do not exist yet.
"""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf.message import Message

from apimachinery import errors, scheme
from apiserver.auth.authorizer import SYSTEM_MASTERS, Attributes, Authorizer, Decision, UserInfo
from apiserver.auth.rbac import RBACIndex, Rules
from protos import rbac_pb2

RBAC_GROUP = "rbac.authorization.k8s.io"


def breakdown(rule: rbac_pb2.PolicyRule) -> list[rbac_pb2.PolicyRule]:
    """One rule per (group, resource, verb[, name]) or per (URL, verb)."""
    atoms: list[rbac_pb2.PolicyRule] = []
    for group in rule.api_groups:
        for resource in rule.resources:
            for verb in rule.verbs:
                for name in rule.resource_names or [""]:
                    atoms.append(
                        rbac_pb2.PolicyRule(
                            verbs=[verb],
                            api_groups=[group],
                            resources=[resource],
                            resource_names=[name] if name else [],
                        )
                    )
    for url in rule.non_resource_urls:
        for verb in rule.verbs:
            atoms.append(rbac_pb2.PolicyRule(verbs=[verb], non_resource_urls=[url]))
    return atoms


def _resource_covered(owned: Sequence[str], wanted: str) -> bool:
    if "*" in owned or wanted in owned:
        return True
    _, slash, sub = wanted.partition("/")
    return bool(slash) and f"*/{sub}" in owned


def _url_covered(owned: Sequence[str], wanted: str) -> bool:
    if "*" in owned or wanted in owned:
        return True
    return any(o.endswith("*") and wanted.startswith(o.rstrip("*")) for o in owned)


def rule_covers(owner: rbac_pb2.PolicyRule, atom: rbac_pb2.PolicyRule) -> bool:
    """Does one held rule cover one atom (Kubernetes' ruleCovers)?"""
    if "*" not in owner.verbs and not set(atom.verbs) <= set(owner.verbs):
        return False
    if "*" not in owner.api_groups and not set(atom.api_groups) <= set(owner.api_groups):
        return False
    if not all(_resource_covered(owner.resources, r) for r in atom.resources):
        return False
    if not all(_url_covered(owner.non_resource_urls, u) for u in atom.non_resource_urls):
        return False
    if not atom.resource_names:
        return not owner.resource_names
    return not owner.resource_names or set(atom.resource_names) <= set(owner.resource_names)


def missing_rules(owner: Rules, wanted: Rules) -> list[rbac_pb2.PolicyRule]:
    """The atoms of `wanted` that no rule of `owner` covers (empty: owner covers all)."""
    return [
        atom
        for rule in wanted
        for atom in breakdown(rule)
        if not any(rule_covers(held, atom) for held in owner)
    ]


def _quoted(values: Sequence[str]) -> str:
    return "[" + " ".join(f'"{v}"' for v in values) + "]"


def compact_strings(rules: Sequence[rbac_pb2.PolicyRule]) -> list[str]:
    """Kubernetes' CompactString, after merging atoms that differ only in their verb."""
    merged: dict[tuple[str, str, str, str], list[str]] = {}
    for atom in rules:
        key = (
            "".join(atom.api_groups[:1]),
            "".join(atom.resources[:1]),
            "".join(atom.non_resource_urls[:1]),
            "".join(atom.resource_names[:1]),
        )
        verbs = merged.setdefault(key, [])
        verbs.extend(v for v in atom.verbs if v not in verbs)
    out = []
    for (group, resource, url, name), verbs in merged.items():
        parts = []
        if resource:
            parts += [f"APIGroups:{_quoted([group])}", f"Resources:{_quoted([resource])}"]
        if url:
            parts.append(f"NonResourceURLs:{_quoted([url])}")
        if name:
            parts.append(f"ResourceNames:{_quoted([name])}")
        parts.append(f"Verbs:{_quoted(verbs)}")
        out.append("{" + ", ".join(parts) + "}")
    return out


async def _may(
    authorizer: Authorizer, user: UserInfo, verb: str, ref: rbac_pb2.RoleRef, namespace: str
) -> bool:
    """May the user `escalate` or `bind` this role (Kubernetes' RoleEscalationAuthorized)?"""
    resource = "roles" if ref.kind == "Role" else "clusterroles"
    attrs = Attributes(
        user=user,
        verb=verb,
        resource=resource,
        namespace=namespace if ref.kind == "Role" else "",
        name=ref.name,
        api_group=RBAC_GROUP,
    )
    decision, _ = await authorizer.authorize(attrs)
    return decision is Decision.ALLOW


async def confirm_no_escalation(
    authorizer: Authorizer, index: RBACIndex, user: UserInfo, obj: Message
) -> None:
    """Raise Forbidden when writing `obj` (a role or binding) would grant what `user` lacks.

    `authorizer` is the whole chain (for the `escalate` and `bind` verbs);
    `index` the RBAC authorizer's (for the rules the user holds). Any other
    kind passes. A binding to a role that does not exist is NotFound unless
    the user may `bind` it.
    """
    if SYSTEM_MASTERS in user.groups:
        return
    meta = obj.metadata  # type: ignore[attr-defined]
    namespace = meta.namespace
    if isinstance(obj, (rbac_pb2.Role, rbac_pb2.ClusterRole)):
        kind = "Role" if isinstance(obj, rbac_pb2.Role) else "ClusterRole"
        ref = rbac_pb2.RoleRef(api_group=RBAC_GROUP, kind=kind, name=meta.name)
        if await _may(authorizer, user, "escalate", ref, namespace):
            return
        wanted: Rules = tuple(obj.rules)
    elif isinstance(obj, (rbac_pb2.RoleBinding, rbac_pb2.ClusterRoleBinding)):
        ref = obj.role_ref
        if await _may(authorizer, user, "bind", ref, namespace):
            return
        found = index.role_rules(ref, namespace)
        if found is None:
            resource = "roles" if ref.kind == "Role" else "clusterroles"
            raise errors.NotFound.for_object(f"{resource}.{RBAC_GROUP}", ref.name)
        wanted = found
    else:
        return
    missing = missing_rules(index.rules_for(user, namespace), wanted)
    if missing:
        info = scheme.for_message(obj)
        raise errors.Forbidden(
            f'{info.full_resource} "{meta.name}" is forbidden: user "{user.name}" '
            f"(groups={_quoted(user.groups)}) is attempting to grant RBAC permissions "
            "not currently held:\n" + "\n".join(compact_strings(missing))
        )
