"""NamespaceLifecycle: no new objects in a namespace that is missing or being deleted.

Kubernetes' admission plugin of the same name, for creates of every
namespaced kind. An object can only be created in a namespace that exists
and is not terminating: while the namespace controller empties a deleted
namespace, nothing new may slip in behind it. Events are let through, since
what happens during the deletion is still worth recording.

    create configmap x in "scratch" (being deleted)
      -> configmaps "x" is forbidden: unable to create new content in namespace
         scratch because it is being terminated

The namespace is read from storage, not from a cache: admission must see
the deletion the moment it is stored.
"""

from __future__ import annotations

from typing import Any

from apimachinery import errors, scheme
from apimachinery.scheme import KindInfo
from apiserver import encoding
from apiserver.storage.interface import Storage
from protos import core_pb2

NAMESPACES = scheme.for_resource("namespaces")


async def read_namespace(storage: Storage, name: str) -> core_pb2.Namespace | None:
    """The stored namespace `name`, or None."""
    kv = await storage.get(scheme.object_key(NAMESPACES, "", name))
    if kv is None:
        return None
    ns: core_pb2.Namespace = encoding.decode(NAMESPACES, kv.value, kv.mod_revision)
    return ns


class NamespaceLifecycle:
    """Admission: create only into an existing namespace that is not terminating."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    async def admit_create(self, info: KindInfo, obj: Any) -> None:
        if not info.namespaced:
            return
        name = obj.metadata.namespace
        ns = await read_namespace(self.storage, name)
        if ns is None:
            raise errors.NotFound.for_object("namespaces", name)
        if ns.metadata.HasField("deletion_timestamp") and info.kind != "Event":
            raise errors.Forbidden(
                f'{info.full_resource} "{obj.metadata.name}" is forbidden: unable to create new'
                f" content in namespace {name} because it is being terminated"
            )

    async def admit_update(self, info: KindInfo, new: Any, old: Any) -> None:
        """Updates are not this plugin's business (a terminating namespace's objects may
        still change: their finalizers are removed, their pods report status)."""
