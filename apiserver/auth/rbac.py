"""RBAC: Roles and ClusterRoles, handed to users through bindings (Kubernetes' RBAC authorizer).

A rule says which verbs may be used on which resources; a role is a list of
rules; a binding gives one role to a list of subjects. The authorizer ALLOWs
a request when some binding that names the caller references a role with a
rule that covers the request, and otherwise has NO_OPINION: RBAC only ever
grants, it never denies (the union behind it refuses what no one allowed).

    ClusterRoleBinding  -> ClusterRole         grants in every namespace and
                                               on cluster-scoped things
    RoleBinding (ns)    -> Role (ns)           grants in ns only
    RoleBinding (ns)    -> ClusterRole         the ClusterRole's rules, in ns only
                                               (one "view" role, reused per team)

Subjects: a User matches by name, a Group by any of the caller's groups, a
ServiceAccount `ns/name` by the user name `system:serviceaccount:ns:name`
(in a RoleBinding the namespace defaults to the binding's).

Matching one rule (Kubernetes' RuleAllows), for `get pods/log "web"`:

    verbs          contains "get" or "*"
    apiGroups      contains "" (the core group) or "*"
    resources      contains "pods/log", "*", or "*/log"
                   (a rule for "pods" does not cover "pods/log": a subresource
                   is a resource of its own, so reading logs or exec'ing is
                   granted apart from reading the pod)
    resourceNames  empty, or contains "web". list, watch and create carry
                   no name, so a rule with resourceNames never grants them
                   (you cannot list "only web", and a create's name is the
                   creator's choice)

A request that is no resource (`get /version`) matches a rule's
nonResourceURLs: equal, "*", or a prefix ending in "*" ("/apis/*").

Speed. Every request of every client passes here, so nothing is read from
storage per request: an `RBACIndex` holds the four kinds in memory and
`RBACAuthorizer` keeps it current by listing each kind once at start and
then following storage's watch (a relist when the watch is compacted or
falls behind). A binding therefore takes effect a moment after it is
written, as in Kubernetes, where the authorizer reads informers' caches.
Deciding costs one pass over the ClusterRoleBindings and the request
namespace's RoleBindings, and over the rules of the roles those name.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from google.protobuf.message import Message

from apimachinery import scheme
from apiserver import encoding
from apiserver.auth.authorizer import Attributes, Authorizer, Decision, UserInfo
from apiserver.storage.interface import Compacted, EventType, Storage, StorageError, WatcherTooSlow
from protos import rbac_pb2

log = logging.getLogger(__name__)

ROLES = scheme.for_resource("roles")
CLUSTER_ROLES = scheme.for_resource("clusterroles")
ROLE_BINDINGS = scheme.for_resource("rolebindings")
CLUSTER_ROLE_BINDINGS = scheme.for_resource("clusterrolebindings")
KINDS = (ROLES, CLUSTER_ROLES, ROLE_BINDINGS, CLUSTER_ROLE_BINDINGS)

SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
RELIST_PAUSE_SECONDS = 1.0
Rules = Sequence[rbac_pb2.PolicyRule]
AnyBinding = rbac_pb2.RoleBinding | rbac_pb2.ClusterRoleBinding


# ------------------------------------------------------------------ matching


def _has(values: Sequence[str], wanted: str) -> bool:
    return wanted in values or "*" in values


def resource_matches(rule: rbac_pb2.PolicyRule, resource: str, subresource: str) -> bool:
    """`pods/log` matches "pods/log", "*" and "*/log"; "pods" matches "pods" and "*"."""
    combined = f"{resource}/{subresource}" if subresource else resource
    for allowed in rule.resources:
        if allowed in ("*", combined):
            return True
        if subresource and allowed == f"*/{subresource}":
            return True
    return False


def url_matches(rule: rbac_pb2.PolicyRule, path: str) -> bool:
    for allowed in rule.non_resource_urls:
        if allowed in ("*", path):
            return True
        if allowed.endswith("*") and path.startswith(allowed.rstrip("*")):
            return True
    return False


def requested_name(attrs: Attributes) -> str:
    """The name a resourceNames rule is checked against: none for list, watch and create."""
    if attrs.verb in ("list", "watch", "deletecollection"):
        return ""
    if attrs.verb == "create" and not attrs.subresource:
        return ""
    return attrs.name


def rule_allows(rule: rbac_pb2.PolicyRule, attrs: Attributes) -> bool:
    """Kubernetes' RuleAllows: does this one rule cover the request?"""
    if not _has(rule.verbs, attrs.verb):
        return False
    if not attrs.resource:
        return url_matches(rule, attrs.path)
    if not _has(rule.api_groups, attrs.api_group):
        return False
    if not resource_matches(rule, attrs.resource, attrs.subresource):
        return False
    return not rule.resource_names or requested_name(attrs) in rule.resource_names


def applies_to(subject: rbac_pb2.Subject, user: UserInfo, binding_namespace: str) -> bool:
    """Does the subject name this user (Kubernetes' appliesToUser)?"""
    if subject.kind == "User":
        return user.name == subject.name
    if subject.kind == "Group":
        return subject.name in user.groups
    if subject.kind == "ServiceAccount":
        namespace = subject.namespace or binding_namespace
        return bool(namespace) and (
            user.name == f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{subject.name}"
        )
    return False


def describe_subject(subject: rbac_pb2.Subject, binding_namespace: str) -> str:
    if subject.kind == "ServiceAccount":
        return f'{subject.kind} "{subject.name}/{subject.namespace or binding_namespace}"'
    return f'{subject.kind} "{subject.name}"'


# ------------------------------------------------------------------ the index


def _key(obj: Message) -> str:
    meta = obj.metadata  # type: ignore[attr-defined]
    return scheme.object_key(scheme.for_message(obj), meta.namespace, meta.name)


@dataclass
class RBACIndex:
    """The four RBAC kinds in memory: roles by key, role bindings by namespace."""

    roles: dict[str, Rules] = field(default_factory=dict)
    cluster_roles: dict[str, Rules] = field(default_factory=dict)
    role_bindings: dict[str, dict[str, rbac_pb2.RoleBinding]] = field(default_factory=dict)
    cluster_role_bindings: dict[str, rbac_pb2.ClusterRoleBinding] = field(default_factory=dict)

    def add(self, obj: Message) -> None:
        """Insert or replace one Role, ClusterRole, RoleBinding or ClusterRoleBinding."""
        key = _key(obj)
        if isinstance(obj, rbac_pb2.Role):
            self.roles[key] = tuple(obj.rules)
        elif isinstance(obj, rbac_pb2.ClusterRole):
            self.cluster_roles[key] = tuple(obj.rules)
        elif isinstance(obj, rbac_pb2.RoleBinding):
            self.role_bindings.setdefault(obj.metadata.namespace, {})[key] = obj
        elif isinstance(obj, rbac_pb2.ClusterRoleBinding):
            self.cluster_role_bindings[key] = obj

    def remove(self, obj: Message) -> None:
        key = _key(obj)
        if isinstance(obj, rbac_pb2.Role):
            self.roles.pop(key, None)
        elif isinstance(obj, rbac_pb2.ClusterRole):
            self.cluster_roles.pop(key, None)
        elif isinstance(obj, rbac_pb2.RoleBinding):
            in_namespace = self.role_bindings.get(obj.metadata.namespace, {})
            in_namespace.pop(key, None)
            if not in_namespace:
                self.role_bindings.pop(obj.metadata.namespace, None)
        elif isinstance(obj, rbac_pb2.ClusterRoleBinding):
            self.cluster_role_bindings.pop(key, None)

    def replace(self, info: scheme.KindInfo, objects: Sequence[Message]) -> None:
        """Forget every object of one kind, then add these (a relist)."""
        if info is ROLES:
            self.roles.clear()
        elif info is CLUSTER_ROLES:
            self.cluster_roles.clear()
        elif info is ROLE_BINDINGS:
            self.role_bindings.clear()
        elif info is CLUSTER_ROLE_BINDINGS:
            self.cluster_role_bindings.clear()
        for obj in objects:
            self.add(obj)

    def role_rules(self, ref: rbac_pb2.RoleRef, binding_namespace: str) -> Rules | None:
        """The rules a roleRef names (a Role in the binding's namespace), None when missing."""
        if ref.kind == "ClusterRole":
            return self.cluster_roles.get(scheme.object_key(CLUSTER_ROLES, "", ref.name))
        if ref.kind == "Role" and binding_namespace:
            return self.roles.get(scheme.object_key(ROLES, binding_namespace, ref.name))
        return None

    def rules_for(self, user: UserInfo, namespace: str) -> list[rbac_pb2.PolicyRule]:
        """Every rule the user holds in `namespace` (cluster-wide ones only for "")."""
        rules: list[rbac_pb2.PolicyRule] = []
        for binding in self.bindings_for(namespace):
            bound_in = binding.metadata.namespace
            if any(applies_to(s, user, bound_in) for s in binding.subjects):
                rules.extend(self.role_rules(binding.role_ref, bound_in) or ())
        return rules

    def bindings_for(self, namespace: str) -> Iterator[AnyBinding]:
        """ClusterRoleBindings first, then the RoleBindings of `namespace` (Kubernetes' order)."""
        yield from self.cluster_role_bindings.values()
        if namespace:
            yield from self.role_bindings.get(namespace, {}).values()


def _binding_text(binding: AnyBinding, subject: rbac_pb2.Subject) -> str:
    meta, ref = binding.metadata, binding.role_ref
    if isinstance(binding, rbac_pb2.RoleBinding):
        what = f'RoleBinding "{meta.name}/{meta.namespace}"'
    else:
        what = f'ClusterRoleBinding "{meta.name}"'
    return f'{what} of {ref.kind} "{ref.name}" to {describe_subject(subject, meta.namespace)}'


def _missing_role(binding: AnyBinding) -> str:
    ref, namespace = binding.role_ref, binding.metadata.namespace
    if ref.kind == "Role":
        return f'role.rbac.authorization.k8s.io "{ref.name}" not found in namespace "{namespace}"'
    return f'clusterrole.rbac.authorization.k8s.io "{ref.name}" not found'


def decide(index: RBACIndex, attrs: Attributes) -> tuple[Decision, str]:
    """ALLOW with the binding that grants it, or NO_OPINION (with any roles found missing)."""
    missing: list[str] = []
    for binding in index.bindings_for(attrs.namespace):
        namespace = binding.metadata.namespace
        subject = next(
            (s for s in binding.subjects if applies_to(s, attrs.user, namespace)),
            None,
        )
        if subject is None:
            continue
        rules = index.role_rules(binding.role_ref, namespace)
        if rules is None:
            missing.append(_missing_role(binding))
            continue
        if any(rule_allows(rule, attrs) for rule in rules):
            return Decision.ALLOW, f"RBAC: allowed by {_binding_text(binding, subject)}"
    return Decision.NO_OPINION, ("RBAC: " + ", ".join(missing)) if missing else ""


async def can_i(authorizer: Authorizer, attrs: Attributes) -> tuple[bool, str]:
    """An access review (`tinykube auth can-i`): would this request be allowed, and why (not)."""
    decision, reason = await authorizer.authorize(attrs)
    return decision is Decision.ALLOW, reason


# ------------------------------------------------------------------ the authorizer


class RBACAuthorizer:
    """Grants what the bindings give; keeps its index current from storage's watch."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.index = RBACIndex()
        self._tasks: list[asyncio.Task[None]] = []

    async def authorize(self, attrs: Attributes) -> tuple[Decision, str]:
        return decide(self.index, attrs)

    async def start(self) -> None:
        """List the four kinds (so every existing binding counts at once), then follow them."""
        revisions = {info.kind: await self._relist(info) for info in KINDS}
        self._tasks = [
            asyncio.create_task(self._follow(info, revisions[info.kind]), name=info.resource)
            for info in KINDS
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _relist(self, info: scheme.KindInfo) -> int:
        kvs, revision = await self.storage.list(scheme.prefix_key(info))
        objects = [encoding.decode(info, kv.value, kv.mod_revision) for kv in kvs]
        self.index.replace(info, objects)
        return revision

    async def _follow(self, info: scheme.KindInfo, revision: int) -> None:
        """Apply every change of one kind; relist when the watch cannot resume."""
        prefix = scheme.prefix_key(info)
        while True:
            try:
                async for event in self.storage.watch(prefix, revision):
                    obj = encoding.decode(info, event.value, event.revision)
                    if event.type is EventType.DELETED:
                        self.index.remove(obj)
                    else:
                        self.index.add(obj)
                    revision = event.revision
                return  # the store closed
            except (Compacted, WatcherTooSlow):
                log.info("rbac watch restarts", extra={"resource": info.resource})
            except Exception:  # a stale index would grant what was revoked: never give up
                log.exception("rbac watch failed", extra={"resource": info.resource})
                await asyncio.sleep(RELIST_PAUSE_SECONDS)
            revision = await self._relist_until_done(info)

    async def _relist_until_done(self, info: scheme.KindInfo) -> int:
        while True:
            try:
                return await self._relist(info)
            except StorageError:
                log.exception("rbac relist failed", extra={"resource": info.resource})
                await asyncio.sleep(RELIST_PAUSE_SECONDS)
