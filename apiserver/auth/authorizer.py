"""Who is asking, what for, and the answer: the types every authenticator and authorizer share.

Kubernetes splits every request's security in two steps, and so does tinykube:

1. authentication (authenticator.py) turns the connection into a `UserInfo`:
   a client certificate signed by the cluster CA gives user = CN and
   groups = O (`CN=system:node:node2, O=system:nodes`); a bearer token gives
   whatever the token is bound to; the local cluster's unix socket gives the
   admin (`system:masters`). No identity -> `Unauthorized`.
2. authorization turns `(user, verb, resource, namespace, name)` into a
   `Decision`. Several authorizers are asked in turn (Kubernetes'
   `--authorization-mode=Node,RBAC`): the first ALLOW or DENY wins; if all
   have NO_OPINION the request is denied.

A refusal names the user and what they may not do, in Kubernetes' sentence:

    pods "web" is forbidden: User "bob" cannot get resource "pods" in API group ""
    in the namespace "default"
    nodes "node1" is forbidden: User "system:node:node2" cannot update resource
    "nodes" in API group "" at the cluster scope: node 'node2' cannot modify node 'node1'

Verbs are Kubernetes' request verbs: get, list, watch, create, update,
patch, delete; subresources (`status`, `binding`, `log`, `exec`) travel with
the resource as `pods/exec`.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

# Well-known names (Kubernetes' user and group constants).
SYSTEM_MASTERS = "system:masters"
SYSTEM_NODES = "system:nodes"
NODE_USER_PREFIX = "system:node:"
SYSTEM_BOOTSTRAPPERS = "system:bootstrappers"
AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"
ANONYMOUS = "system:anonymous"
SCHEDULER = "system:kube-scheduler"
CONTROLLER_MANAGER = "system:kube-controller-manager"
APISERVER_KUBELET_CLIENT = "kube-apiserver-kubelet-client"


@dataclass(frozen=True)
class UserInfo:
    """An authenticated identity (Kubernetes' user.Info)."""

    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def in_group(self, group: str) -> bool:
        return group in self.groups

    def node_name(self) -> str:
        """`node2` for `system:node:node2` in group system:nodes; "" for anyone else."""
        if self.name.startswith(NODE_USER_PREFIX) and SYSTEM_NODES in self.groups:
            return self.name[len(NODE_USER_PREFIX) :]
        return ""


@dataclass(frozen=True)
class Attributes:
    """One request, as an authorizer sees it (Kubernetes' authorizer.Attributes)."""

    user: UserInfo
    verb: str
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    api_group: str = ""
    path: str = ""  # a non-resource request ("/version"); resource is "" then

    @property
    def resource_with_subresource(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


class Decision(enum.Enum):
    ALLOW = "allow"
    DENY = "deny"
    NO_OPINION = "no opinion"


class Authorizer(Protocol):
    """Answers one request: ALLOW, DENY or NO_OPINION, with a reason for the user."""

    async def authorize(self, attrs: Attributes) -> tuple[Decision, str]: ...


class UnionAuthorizer:
    """Ask each authorizer in turn; the first ALLOW or DENY wins, else deny."""

    def __init__(self, authorizers: Sequence[Authorizer]) -> None:
        self.authorizers = tuple(authorizers)

    async def authorize(self, attrs: Attributes) -> tuple[Decision, str]:
        reasons = []
        for authorizer in self.authorizers:
            decision, reason = await authorizer.authorize(attrs)
            if decision is not Decision.NO_OPINION:
                return decision, reason
            if reason:
                reasons.append(reason)
        return Decision.NO_OPINION, ", ".join(reasons)


def forbidden_message(attrs: Attributes, reason: str = "") -> str:
    """Kubernetes' Forbidden sentence for a denied request."""
    if not attrs.resource:
        text = f'forbidden: User "{attrs.user.name}" cannot {attrs.verb} path "{attrs.path}"'
        return f"{text}: {reason}" if reason else text
    resource = f"{attrs.resource}.{attrs.api_group}" if attrs.api_group else attrs.resource
    target = f'{resource} "{attrs.name}"' if attrs.name else resource
    scope = f'in the namespace "{attrs.namespace}"' if attrs.namespace else "at the cluster scope"
    text = (
        f'{target} is forbidden: User "{attrs.user.name}" cannot {attrs.verb} resource'
        f' "{attrs.resource_with_subresource}" in API group "{attrs.api_group}" {scope}'
    )
    return f"{text}: {reason}" if reason else text
