"""The Node authorizer: a kubelet may touch its own node's things and nothing else.

Every kubelet holds credentials (`system:node:NAME` in `system:nodes`), so a
node that is broken into must not become the whole cluster. Kubernetes'
Node authorizer (with the NodeRestriction admission plugin) confines each
kubelet to what its work needs, and tinykube's does the same in one place:

    nodes             read any; create, update, update status: its own only
    leases            (kube-node-lease) its own only
    pods              read any; update status and delete: the pods bound to it
    secrets,          get: only those a pod bound to it uses (volumes, env)
    configmaps
    services,         read (the pods' environment variables, the network agent)
    endpoints
    events            create, update, patch (what happened on the node)
    certificate-      create and read (rotating its own certificate)
    signingrequests

Anything else is no opinion, and so refused unless RBAC grants it. The
reason travels with the refusal, as in Kubernetes:

    secrets "db" is forbidden: User "system:node:node2" cannot get resource "secrets"
    in API group "" in the namespace "default": no relationship found between node
    'node2' and this object

The relationship is read from storage at the time of the request (the pods
bound to the node and what they reference), so a Secret becomes readable the
moment a pod using it is bound to the node, and stops being so when it goes.
"""

from __future__ import annotations

from apimachinery import scheme
from apiserver import encoding
from apiserver.auth.authorizer import Attributes, Decision
from apiserver.storage.interface import Storage
from protos import core_pb2

READ = ("get", "list", "watch")
PODS = scheme.for_resource("pods")
LEASE_NAMESPACE = "kube-node-lease"


def _referenced(pod: core_pb2.Pod, resource: str) -> set[str]:
    """The Secrets or ConfigMaps (by name) a pod uses: volumes, env and envFrom."""
    names: set[str] = set()
    for vol in pod.spec.volumes:
        if resource == "secrets" and vol.HasField("secret"):
            names.add(vol.secret.secret_name)
        if resource == "configmaps" and vol.HasField("config_map"):
            names.add(vol.config_map.name)
        for proj in vol.projected.sources:  # a projected volume's secrets and configMaps
            if resource == "secrets" and proj.HasField("secret"):
                names.add(proj.secret.name)
            if resource == "configmaps" and proj.HasField("config_map"):
                names.add(proj.config_map.name)
    for ctr in [*pod.spec.init_containers, *pod.spec.containers]:
        for env in ctr.env:
            source = env.value_from
            if resource == "secrets" and source.HasField("secret_key_ref"):
                names.add(source.secret_key_ref.name)
            if resource == "configmaps" and source.HasField("config_map_key_ref"):
                names.add(source.config_map_key_ref.name)
        for env_from in ctr.env_from:  # every key of a Secret or ConfigMap
            if resource == "secrets" and env_from.HasField("secret_ref"):
                names.add(env_from.secret_ref.name)
            if resource == "configmaps" and env_from.HasField("config_map_ref"):
                names.add(env_from.config_map_ref.name)
    return names


class NodeAuthorizer:
    """Confines each `system:node:NAME` to its own node's objects."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    async def authorize(self, attrs: Attributes) -> tuple[Decision, str]:
        node = attrs.user.node_name()
        if not node or not attrs.resource:
            return Decision.NO_OPINION, ""
        rule = _RULES.get(attrs.resource)
        if rule is None:
            return Decision.NO_OPINION, ""
        return await rule(self, node, attrs)

    async def _nodes(self, node: str, attrs: Attributes) -> tuple[Decision, str]:
        if attrs.verb in READ:
            return Decision.ALLOW, ""
        if attrs.verb in ("create", "update", "patch") and attrs.name == node:
            return Decision.ALLOW, ""
        return Decision.NO_OPINION, f"node '{node}' cannot modify node '{attrs.name}'"

    async def _leases(self, node: str, attrs: Attributes) -> tuple[Decision, str]:
        mine = attrs.namespace == LEASE_NAMESPACE and attrs.name == node
        if mine and attrs.verb in ("get", "create", "update", "patch"):
            return Decision.ALLOW, ""
        return Decision.NO_OPINION, f"node '{node}' can only access its own lease"

    async def _pods(self, node: str, attrs: Attributes) -> tuple[Decision, str]:
        if attrs.verb in READ and attrs.subresource == "":
            return Decision.ALLOW, ""
        changes_status = attrs.subresource == "status" and attrs.verb in ("update", "patch")
        if changes_status or (attrs.verb == "delete" and not attrs.subresource):
            pod = await self._pod(attrs.namespace, attrs.name)
            if pod is not None and pod.spec.node_name == node:
                return Decision.ALLOW, ""
            return Decision.NO_OPINION, f"node '{node}' can only modify pods bound to it"
        return Decision.NO_OPINION, ""

    async def _referenced_object(self, node: str, attrs: Attributes) -> tuple[Decision, str]:
        if attrs.verb == "get" and attrs.name:
            kvs, _ = await self.storage.list(scheme.prefix_key(PODS, attrs.namespace))
            for kv in kvs:
                pod: core_pb2.Pod = encoding.decode(PODS, kv.value, kv.mod_revision)
                if pod.spec.node_name == node and attrs.name in _referenced(pod, attrs.resource):
                    return Decision.ALLOW, ""
        return (
            Decision.NO_OPINION,
            f"no relationship found between node '{node}' and this object",
        )

    async def _read_only(self, node: str, attrs: Attributes) -> tuple[Decision, str]:
        return (Decision.ALLOW, "") if attrs.verb in READ else (Decision.NO_OPINION, "")

    async def _events(self, node: str, attrs: Attributes) -> tuple[Decision, str]:
        if attrs.verb in ("create", "update", "patch"):
            return Decision.ALLOW, ""
        return Decision.NO_OPINION, ""

    async def _csrs(self, node: str, attrs: Attributes) -> tuple[Decision, str]:
        if attrs.verb in (*READ, "create") and not attrs.subresource:
            return Decision.ALLOW, ""
        return Decision.NO_OPINION, ""

    async def _pod(self, namespace: str, name: str) -> core_pb2.Pod | None:
        kv = await self.storage.get(scheme.object_key(PODS, namespace, name))
        if kv is None:
            return None
        pod: core_pb2.Pod = encoding.decode(PODS, kv.value, kv.mod_revision)
        return pod


_RULES = {
    "nodes": NodeAuthorizer._nodes,
    "leases": NodeAuthorizer._leases,
    "pods": NodeAuthorizer._pods,
    "secrets": NodeAuthorizer._referenced_object,
    "configmaps": NodeAuthorizer._referenced_object,
    "services": NodeAuthorizer._read_only,
    "endpoints": NodeAuthorizer._read_only,
    "events": NodeAuthorizer._events,
    "certificatesigningrequests": NodeAuthorizer._csrs,
}
