"""What an update may not change (the ValidateXxxUpdate functions of Kubernetes).

`validate_update(new, old)` first validates `new` as any object, then checks
the transition. The rules and why they exist:

    every kind       metadata.name, metadata.namespace, metadata.uid are the
                     object's identity; changing them would be a different object
    Deployment, RS   spec.selector: the controller finds its pods by it;
                     changing it would orphan them
    Service          spec.clusterIP once set: every node's proxy rules and
                     every client's cached address depend on it
                     (clearing it is allowed only when switching to ExternalName)
    Pod              the spec, except containers[*].image, initContainers[*].image,
                     activeDeadlineSeconds (only shortened) and tolerations
                     (only added): a running pod cannot grow a port or a volume
    ConfigMap, Secret with `immutable: true`: data, binaryData and immutable itself
    Node             spec.podCIDR once set (pods already have addresses from it)

Deviation from Kubernetes, stated: a Pod update may set `spec.nodeName` when
it was empty. Kubernetes only allows that through the pods/binding
subresource; tinykube's server may bind through an update, so this
validation lets that one transition through. Likewise a `metadata.uid` left
empty in the update is not a change (the server carries the stored uid over).

Worked example of the pod rule: old has image nginx:1.25 and one port;
new has image nginx:1.27 (allowed) and a second port (not):

    spec: Forbidden: pod updates may not change fields other than
        `spec.containers[*].image`,... (changed: spec.containers[0].ports)
"""

from __future__ import annotations

from typing import Any

from apimachinery import codec, errors
from apimachinery.errors import FieldError
from apimachinery.validation_meta import immutable, selector_text
from protos import apps_pb2, core_pb2, meta_pb2

POD_UPDATE_MESSAGE = (
    "pod updates may not change fields other than `spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"
    "`spec.tolerations` (only additions to existing tolerations)"
)
IMMUTABLE_WHEN_SET = "field is immutable when `immutable` is set"


def validate_meta_update(new: meta_pb2.ObjectMeta, old: meta_pb2.ObjectMeta) -> list[FieldError]:
    out = immutable(new.name, old.name, "metadata.name")
    out += immutable(new.namespace, old.namespace, "metadata.namespace")
    if new.uid:
        out += immutable(new.uid, old.uid, "metadata.uid")
    return out


def _changed_paths(new: Any, old: Any, path: str) -> list[str]:
    """The JSON paths where two encoded values differ, one level into lists of objects."""
    if isinstance(new, dict) and isinstance(old, dict):
        out: list[str] = []
        for key in list(dict.fromkeys([*old, *new])):
            if new.get(key) != old.get(key):
                out.extend(_changed_paths(new.get(key), old.get(key), f"{path}.{key}"))
        return out
    if isinstance(new, list) and isinstance(old, list) and len(new) == len(old):
        out = []
        for i, (a, b) in enumerate(zip(new, old, strict=True)):
            if a != b:
                out.extend(_changed_paths(a, b, f"{path}[{i}]"))
        return out
    return [path]


def validate_pod_update(new: core_pb2.Pod, old: core_pb2.Pod) -> list[FieldError]:
    out: list[FieldError] = []
    allowed = core_pb2.PodSpec()
    allowed.CopyFrom(old.spec)
    for field in ("containers", "init_containers"):
        new_list, mutated = getattr(new.spec, field), getattr(allowed, field)
        if len(new_list) == len(mutated):
            for ctr, updated in zip(mutated, new_list, strict=True):
                ctr.image = updated.image
    if new.spec.HasField("active_deadline_seconds"):
        allowed.active_deadline_seconds = new.spec.active_deadline_seconds
    else:
        allowed.ClearField("active_deadline_seconds")
    del allowed.tolerations[:]
    allowed.tolerations.extend(new.spec.tolerations)
    if not old.spec.node_name:
        allowed.node_name = new.spec.node_name
    if allowed != new.spec:
        changed = _changed_paths(codec.to_dict(new.spec), codec.to_dict(allowed), "spec")
        out.append(
            errors.forbidden("spec", f"{POD_UPDATE_MESSAGE} (changed: {', '.join(changed)})")
        )
    if old.spec.HasField("active_deadline_seconds"):
        old_ads = old.spec.active_deadline_seconds
        if not new.spec.HasField("active_deadline_seconds"):
            out.append(
                errors.invalid(
                    "spec.activeDeadlineSeconds",
                    None,
                    "must not update from a positive integer to nil value",
                )
            )
        elif new.spec.active_deadline_seconds > old_ads:
            out.append(
                errors.invalid(
                    "spec.activeDeadlineSeconds",
                    new.spec.active_deadline_seconds,
                    "must be less than or equal to previous value",
                )
            )
    for i, tol in enumerate(old.spec.tolerations):
        if not any(_same_toleration(tol, t) for t in new.spec.tolerations):
            out.append(
                errors.forbidden(
                    f"spec.tolerations[{i}]",
                    "existing toleration can not be modified except its tolerationSeconds",
                )
            )
    return out


def _same_toleration(a: core_pb2.Toleration, b: core_pb2.Toleration) -> bool:
    return (a.key, a.operator, a.value, a.effect) == (b.key, b.operator, b.value, b.effect)


def validate_selector_update(
    new: apps_pb2.Deployment | apps_pb2.ReplicaSet, old: apps_pb2.Deployment | apps_pb2.ReplicaSet
) -> list[FieldError]:
    if new.spec.selector == old.spec.selector:
        return []
    return immutable(
        new.spec.selector, old.spec.selector, "spec.selector", selector_text(new.spec.selector)
    )


def validate_service_update(new: core_pb2.Service, old: core_pb2.Service) -> list[FieldError]:
    if not old.spec.cluster_ip or new.spec.type == "ExternalName":
        return []
    return immutable(new.spec.cluster_ip, old.spec.cluster_ip, "spec.clusterIP")


def validate_config_update(
    new: core_pb2.ConfigMap | core_pb2.Secret, old: core_pb2.ConfigMap | core_pb2.Secret
) -> list[FieldError]:
    out: list[FieldError] = []
    if isinstance(new, core_pb2.Secret) and isinstance(old, core_pb2.Secret):
        out += immutable(new.type, old.type, "type")
    if not (old.HasField("immutable") and old.immutable):
        return out
    if not (new.HasField("immutable") and new.immutable):
        out.append(errors.forbidden("immutable", IMMUTABLE_WHEN_SET))
    if dict(new.data) != dict(old.data):
        out.append(errors.forbidden("data", IMMUTABLE_WHEN_SET))
    if isinstance(new, core_pb2.ConfigMap) and isinstance(old, core_pb2.ConfigMap):
        if dict(new.binary_data) != dict(old.binary_data):
            out.append(errors.forbidden("binaryData", IMMUTABLE_WHEN_SET))
    elif isinstance(new, core_pb2.Secret) and new.string_data:
        out.append(errors.forbidden("stringData", IMMUTABLE_WHEN_SET))
    return out


def validate_node_update(new: core_pb2.Node, old: core_pb2.Node) -> list[FieldError]:
    message = 'node updates may not change podCIDR except from "" to valid'
    out: list[FieldError] = []
    if old.spec.pod_cidr and new.spec.pod_cidr != old.spec.pod_cidr:
        out.append(errors.forbidden("spec.podCIDR", message))
    if old.spec.pod_cidrs and list(new.spec.pod_cidrs) != list(old.spec.pod_cidrs):
        out.append(errors.forbidden("spec.podCIDRs", message))
    return out
