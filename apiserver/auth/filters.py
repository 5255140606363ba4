"""The two checks in front of every RPC: authenticate, then authorize (Kubernetes' filters).

Kubernetes wraps its HTTP handler in a chain of filters, WithAuthentication
then WithAuthorization, so no handler runs for a caller who is unknown or
not allowed. tinykube's servicer asks this guard first, in every RPC:

    user = await guard.check(context, "get", info, namespace, name)

and the guard answers with the caller's identity, or raises `Unauthorized`
(no identity), `TooManyRequests` (between the two checks, as Kubernetes'
max-in-flight filter: the server is busy, apiserver/inflight.py) or
`Forbidden` (Kubernetes' sentence, with the authorizers' reasons). The
authorizers are asked in Kubernetes' order (`--authorization-mode=Node,RBAC`,
behind the always-on privileged group):

    system:masters   -> allowed, whatever the request
    Node             -> kubelets, confined to their node (node.py)
    RBAC             -> Roles and ClusterRoles through their bindings (rbac.py)
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from apimachinery import errors
from apimachinery.scheme import KindInfo
from apiserver.auth.authenticator import Authenticator
from apiserver.auth.authorizer import (
    SYSTEM_MASTERS,
    Attributes,
    Authorizer,
    Decision,
    UnionAuthorizer,
    UserInfo,
    forbidden_message,
)
from apiserver.inflight import InflightLimiter


def attributes(
    user: UserInfo,
    verb: str,
    info: KindInfo | None,
    namespace: str = "",
    name: str = "",
    subresource: str = "",
    *,
    path: str = "",
) -> Attributes:
    """A request as the authorizers see it (a cluster-scoped kind has no namespace)."""
    return Attributes(
        user=user,
        verb=verb,
        resource=info.resource if info else "",
        subresource=subresource,
        namespace=namespace if info is not None and info.namespaced else "",
        name=name,
        api_group=info.group if info else "",
        path=path,
    )


class PrivilegedGroups:
    """Kubernetes' first authorizer: members of system:masters may do anything."""

    async def authorize(self, attrs: Attributes) -> tuple[Decision, str]:
        if SYSTEM_MASTERS in attrs.user.groups:
            return Decision.ALLOW, ""
        return Decision.NO_OPINION, ""


class RequestGuard:
    """Authenticate the caller, authorize the request: the servicer's first step in every RPC."""

    def __init__(
        self,
        authenticator: Authenticator,
        authorizers: Sequence[Authorizer],
        inflight: InflightLimiter | None = None,
    ) -> None:
        self.authenticator = authenticator
        self.authorizer = UnionAuthorizer([PrivilegedGroups(), *authorizers])
        self.inflight = inflight  # None: no in-flight limit (a server's own guard has one)

    async def check(
        self,
        context: grpc.aio.ServicerContext,
        verb: str,
        info: KindInfo | None,
        namespace: str = "",
        name: str = "",
        subresource: str = "",
        *,
        path: str = "",
    ) -> UserInfo:
        user = await self.authenticator.authenticate(context)
        await self.authorize(user, verb, info, namespace, name, subresource, path=path)
        return user

    async def authorize(
        self,
        user: UserInfo,
        verb: str,
        info: KindInfo | None,
        namespace: str = "",
        name: str = "",
        subresource: str = "",
        *,
        path: str = "",
    ) -> None:
        if self.inflight is not None:  # the request's first check takes its slot, or is 429
            self.inflight.admit(user, verb, subresource)
        attrs = attributes(user, verb, info, namespace, name, subresource, path=path)
        decision, reason = await self.authorizer.authorize(attrs)
        if decision is not Decision.ALLOW:
            raise errors.Forbidden(forbidden_message(attrs, reason))

    async def allowed(self, attrs: Attributes) -> tuple[bool, str]:
        """For access reviews (`tinykube auth can-i`): would `attrs` be allowed, and why not."""
        decision, reason = await self.authorizer.authorize(attrs)
        return decision is Decision.ALLOW, reason
