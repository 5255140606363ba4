"""The scheme: which kinds exist, and how each is named.

Kubernetes keeps a runtime.Scheme that maps a (group, version, kind) to a Go
type, and a RESTMapper that maps kinds to resources ("Deployment" ->
"deployments") and back. tinykube needs both, for a dozen kinds, so one table
does: each `KindInfo` row names the kind, its apiVersion, its plural resource,
its short names, whether it lives in a namespace, and the protobuf message
class that carries it. Everything that has to turn a word a user typed
("deploy", "svc", "po") or a manifest's `kind:` into a message class looks it
up here, so adding a kind is one row.

Objects travel between client and server as `google.protobuf.Any`, whose
type_url is the message's full name (`type.googleapis.com/tinykube.core.Pod`);
`pack` and `unpack` do that conversion and check the kind on the way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any as TypingAny

from google.protobuf import any_pb2
from google.protobuf.message import Message

from apimachinery import errors
from protos import apps_pb2, certificates_pb2, coordination_pb2, core_pb2, rbac_pb2


@dataclass(frozen=True)
class KindInfo:
    kind: str
    api_version: str
    resource: str
    short_names: tuple[str, ...]
    namespaced: bool
    message: type[Message]
    has_status: bool

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def full_resource(self) -> str:
        """`deployments.apps` for grouped kinds, `pods` for the core group."""
        return f"{self.resource}.{self.group}" if self.group else self.resource

    @property
    def singular(self) -> str:
        return self.kind.lower()


RBAC_V1 = "rbac.authorization.k8s.io/v1"

KINDS: tuple[KindInfo, ...] = (
    KindInfo("Namespace", "v1", "namespaces", ("ns",), False, core_pb2.Namespace, True),
    KindInfo("Node", "v1", "nodes", ("no",), False, core_pb2.Node, True),
    KindInfo("Pod", "v1", "pods", ("po",), True, core_pb2.Pod, True),
    KindInfo("Service", "v1", "services", ("svc",), True, core_pb2.Service, True),
    KindInfo("Endpoints", "v1", "endpoints", ("ep",), True, core_pb2.Endpoints, False),
    KindInfo("Event", "v1", "events", ("ev",), True, core_pb2.Event, False),
    KindInfo("ConfigMap", "v1", "configmaps", ("cm",), True, core_pb2.ConfigMap, False),
    KindInfo("Secret", "v1", "secrets", (), True, core_pb2.Secret, False),
    KindInfo("Deployment", "apps/v1", "deployments", ("deploy",), True, apps_pb2.Deployment, True),
    KindInfo("ReplicaSet", "apps/v1", "replicasets", ("rs",), True, apps_pb2.ReplicaSet, True),
    KindInfo("Lease", "coordination.k8s.io/v1", "leases", (), True, coordination_pb2.Lease, False),
    KindInfo(
        "CertificateSigningRequest",
        "certificates.k8s.io/v1",
        "certificatesigningrequests",
        ("csr",),
        False,
        certificates_pb2.CertificateSigningRequest,
        True,
    ),
    KindInfo("Role", RBAC_V1, "roles", (), True, rbac_pb2.Role, False),
    KindInfo("ClusterRole", RBAC_V1, "clusterroles", (), False, rbac_pb2.ClusterRole, False),
    KindInfo("RoleBinding", RBAC_V1, "rolebindings", (), True, rbac_pb2.RoleBinding, False),
    KindInfo(
        "ClusterRoleBinding",
        RBAC_V1,
        "clusterrolebindings",
        (),
        False,
        rbac_pb2.ClusterRoleBinding,
        False,
    ),
)

_BY_KIND: dict[str, KindInfo] = {k.kind: k for k in KINDS}
_BY_MESSAGE: dict[str, KindInfo] = {k.message.DESCRIPTOR.full_name: k for k in KINDS}
_BY_NAME: dict[str, KindInfo] = {}
for _k in KINDS:
    for _word in (_k.resource, _k.singular, _k.full_resource, *_k.short_names):
        _BY_NAME[_word] = _k
    _BY_NAME[f"{_k.singular}.{_k.group}" if _k.group else _k.singular] = _k

TYPE_URL_PREFIX = "type.googleapis.com/"


def for_kind(api_version: str, kind: str) -> KindInfo:
    """The kind a manifest names, or NotFound-style BadRequest naming what is wrong."""
    info = _BY_KIND.get(kind)
    if info is None:
        raise errors.BadRequest(
            f'no matches for kind "{kind}" in version "{api_version}"',
        )
    if api_version != info.api_version:
        raise errors.BadRequest(
            f'no matches for kind "{kind}" in version "{api_version}"'
            f' (tinykube serves {kind} as "{info.api_version}")',
        )
    return info


def for_resource(word: str) -> KindInfo:
    """The kind for anything a user may type: `pods`, `pod`, `po`, `deployments.apps`, `Pod`."""
    info = _BY_NAME.get(word.lower()) or _BY_KIND.get(word)
    if info is None:
        raise errors.BadRequest(f'the server doesn\'t have a resource type "{word}"')
    return info


def for_message(msg: Message | type[Message]) -> KindInfo:
    info = _BY_MESSAGE.get(msg.DESCRIPTOR.full_name)
    if info is None:
        raise errors.BadRequest(f"{msg.DESCRIPTOR.full_name} is not a kind this server stores")
    return info


def new_object(info: KindInfo) -> TypingAny:
    """An empty message of the kind with apiVersion and kind filled in."""
    obj = info.message()
    obj.api_version = info.api_version  # type: ignore[attr-defined]
    obj.kind = info.kind  # type: ignore[attr-defined]
    return obj


def pack(obj: Message) -> any_pb2.Any:
    wrapped = any_pb2.Any()
    wrapped.Pack(obj)
    return wrapped


def unpack(wrapped: any_pb2.Any) -> TypingAny:
    """The typed message inside an Any; BadRequest when it is no known kind."""
    full_name = wrapped.type_url.rpartition("/")[2]
    info = _BY_MESSAGE.get(full_name)
    if info is None:
        raise errors.BadRequest(f"unknown object type {wrapped.type_url!r}")
    obj = info.message()
    if not wrapped.Unpack(obj):
        raise errors.BadRequest(f"cannot decode object of type {wrapped.type_url!r}")
    return obj


def object_key(info: KindInfo, namespace: str, name: str) -> str:
    """The storage key, as Kubernetes lays out etcd: /registry/<resource>/<ns>/<name>."""
    if info.namespaced:
        return f"/registry/{info.full_resource}/{namespace}/{name}"
    return f"/registry/{info.full_resource}/{name}"


def prefix_key(info: KindInfo, namespace: str = "") -> str:
    """The key prefix that lists a kind, in one namespace or (empty) in all."""
    if info.namespaced and namespace:
        return f"/registry/{info.full_resource}/{namespace}/"
    return f"/registry/{info.full_resource}/"
