"""Object validation with Kubernetes' rules and words: the entry points.

The API server calls `validate_object` on every create (after defaulting)
and `validate_update` on every update; a non-empty answer becomes
`errors.Invalid.for_object(...)`, which prints as Kubernetes does:

    Deployment.apps "web" is invalid: spec.template.metadata.labels: Invalid value:
    map[string]string{"app":"x"}: `selector` does not match template `labels`

The rules live in one module per area, named after Kubernetes' files:

    validation_names    util/validation: DNS labels, qualified names, ports, IPs
    validation_meta     ObjectMeta, labels, annotations, label selectors
    validation_pod      PodSpec: containers, probes, tolerations, ports
    validation_pod_parts  volumes, resources (quantities), env
    validation_core     Pod, Service, Node, Namespace, ConfigMap, Secret,
                        Event, Lease, Endpoints, Binding
    validation_apps     Deployment, ReplicaSet
    validation_certificates  CertificateSigningRequest (create and update)
    validation_rbac     Role, ClusterRole, RoleBinding, ClusterRoleBinding
    validation_update   immutability rules of updates

Every function returns a list of errors.FieldError (never raises), so a user
sees all problems of an object at once. The dispatch below is by kind; a
message that is no known kind validates as having no problems, because
validation is not where unknown kinds are caught (the scheme is).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.protobuf.message import Message

from apimachinery import errors, scheme
from apimachinery.errors import FieldError
from apimachinery.validation_apps import validate_deployment, validate_replica_set
from apimachinery.validation_certificates import (
    validate_certificate_signing_request,
    validate_certificate_signing_request_update,
)
from apimachinery.validation_core import (
    validate_binding,
    validate_config_map,
    validate_endpoints,
    validate_event,
    validate_lease,
    validate_namespace,
    validate_node,
    validate_pod,
    validate_secret,
    validate_service,
)
from apimachinery.validation_rbac import (
    validate_binding_update,
    validate_cluster_role,
    validate_cluster_role_binding,
    validate_role,
    validate_role_binding,
)
from apimachinery.validation_update import (
    validate_config_update,
    validate_meta_update,
    validate_node_update,
    validate_pod_update,
    validate_selector_update,
    validate_service_update,
)
from protos import core_pb2

Check = Callable[[Any], list[FieldError]]
UpdateCheck = Callable[[Any, Any], list[FieldError]]

_VALIDATORS: dict[str, Check] = {
    "Pod": validate_pod,
    "Service": validate_service,
    "Node": validate_node,
    "Namespace": validate_namespace,
    "ConfigMap": validate_config_map,
    "Secret": validate_secret,
    "Event": validate_event,
    "Lease": validate_lease,
    "Endpoints": validate_endpoints,
    "Deployment": validate_deployment,
    "ReplicaSet": validate_replica_set,
    "Role": validate_role,
    "ClusterRole": validate_cluster_role,
    "RoleBinding": validate_role_binding,
    "ClusterRoleBinding": validate_cluster_role_binding,
    "CertificateSigningRequest": validate_certificate_signing_request,
}

_UPDATE_VALIDATORS: dict[str, UpdateCheck] = {
    "Pod": validate_pod_update,
    "Service": validate_service_update,
    "Node": validate_node_update,
    "ConfigMap": validate_config_update,
    "Secret": validate_config_update,
    "Deployment": validate_selector_update,
    "ReplicaSet": validate_selector_update,
    "RoleBinding": validate_binding_update,
    "ClusterRoleBinding": validate_binding_update,
    "CertificateSigningRequest": validate_certificate_signing_request_update,
}


def _kind(obj: Message) -> str:
    if isinstance(obj, core_pb2.Binding):
        return "Binding"
    try:
        return scheme.for_message(obj).kind
    except errors.BadRequest:
        return ""


def validate_object(obj: Message) -> list[FieldError]:
    """Every problem of one object (create, or the new side of an update)."""
    kind = _kind(obj)
    if kind == "Binding":
        return validate_binding(obj)  # type: ignore[arg-type]
    check = _VALIDATORS.get(kind)
    return check(obj) if check is not None else []


def validate_update(new: Message, old: Message) -> list[FieldError]:
    """validate_object(new) plus what the transition old -> new may not change."""
    out = validate_object(new)
    kind = _kind(new)
    if kind != _kind(old):
        out.append(errors.invalid("kind", kind, "field is immutable"))
        return out
    if hasattr(new, "metadata"):
        out.extend(validate_meta_update(new.metadata, old.metadata))  # type: ignore[attr-defined]
    check = _UPDATE_VALIDATORS.get(kind)
    if check is not None:
        out.extend(check(new, old))
    return out
