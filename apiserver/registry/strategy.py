"""Per-kind strategy: the rules that differ between kinds.

The generic store calls these hooks at fixed points (as Kubernetes' generic
registry calls a RESTCreateStrategy / RESTUpdateStrategy):

    create:        prepare_for_create -> defaults -> validate_object
    update:        prepare_for_update -> defaults -> bump_generation -> validate_update
    update status: prepare_for_status_update -> validate_update

The spec/status split. Users own spec, controllers and kubelets own status,
and they write through different verbs so neither can clobber the other:
Update keeps the stored status whatever the request carries; UpdateStatus
keeps the stored metadata and spec and takes only the request's status.
`metadata.generation` counts spec changes (a status write never bumps it),
which is how a controller's `status.observedGeneration` can say "I have acted
on the spec you last wrote".
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from google.protobuf import timestamp_pb2

from apimachinery.scheme import KindInfo

# Kinds whose status the server resets on create (Kubernetes' strategies do the
# same: a client may not create an object that claims to be already running).
# Nodes keep theirs: the kubelet registers its Node with capacity and addresses.
_RESET_STATUS_ON_CREATE = {"Pod", "Deployment", "ReplicaSet", "Service", "Namespace"}


def now() -> timestamp_pb2.Timestamp:
    """Kubernetes' metav1.Time has whole seconds."""
    return timestamp_pb2.Timestamp(seconds=int(time.time()))


def has_spec(obj: Any) -> bool:
    return "spec" in obj.DESCRIPTOR.fields_by_name


def has_status(obj: Any) -> bool:
    return "status" in obj.DESCRIPTOR.fields_by_name


def spec_bytes(obj: Any) -> bytes:
    return bytes(obj.spec.SerializeToString(deterministic=True))


def prepare_for_create(info: KindInfo, obj: Any) -> None:
    meta = obj.metadata
    obj.api_version = info.api_version
    obj.kind = info.kind
    meta.uid = str(uuid.uuid4())
    meta.creation_timestamp.CopyFrom(now())
    meta.generation = 1
    meta.resource_version = ""
    meta.ClearField("deletion_timestamp")
    meta.ClearField("deletion_grace_period_seconds")
    if info.kind in _RESET_STATUS_ON_CREATE:
        obj.ClearField("status")


def _carry_system_metadata(new: Any, old: Any) -> None:
    """Fields of metadata a client can never set through an update."""
    for name in ("uid", "creation_timestamp", "generation", "namespace", "name"):
        field = new.metadata.DESCRIPTOR.fields_by_name[name]
        if field.message_type is not None:
            getattr(new.metadata, name).CopyFrom(getattr(old.metadata, name))
        else:
            setattr(new.metadata, name, getattr(old.metadata, name))
    if old.metadata.HasField("deletion_timestamp"):
        new.metadata.deletion_timestamp.CopyFrom(old.metadata.deletion_timestamp)
        new.metadata.deletion_grace_period_seconds = old.metadata.deletion_grace_period_seconds
    else:
        new.metadata.ClearField("deletion_timestamp")
        new.metadata.ClearField("deletion_grace_period_seconds")


def prepare_for_update(info: KindInfo, new: Any, old: Any) -> None:
    """Update: keep the stored status and the system's metadata."""
    new.api_version = info.api_version
    new.kind = info.kind
    _carry_system_metadata(new, old)
    if info.has_status:
        if old.HasField("status"):
            new.status.CopyFrom(old.status)
        else:
            new.ClearField("status")


def bump_generation(new: Any, old: Any) -> None:
    """After defaulting: a changed spec is a new generation (kinds without a spec keep theirs,
    as in Kubernetes: an Endpoints object rewritten by its controller is not a new "generation")."""
    if has_spec(new) and spec_bytes(new) != spec_bytes(old):
        new.metadata.generation = old.metadata.generation + 1


def prepare_for_status_update(info: KindInfo, new: Any, old: Any) -> Any:
    """UpdateStatus: the stored object with the request's status, nothing else."""
    result = type(old)()
    result.CopyFrom(old)
    if new.HasField("status"):
        result.status.CopyFrom(new.status)
    else:
        result.ClearField("status")
    return result
