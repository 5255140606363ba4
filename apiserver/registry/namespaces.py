"""Namespace lifecycle: existence on create, termination on delete.

Admission (Kubernetes' NamespaceLifecycle plugin): an object can only be
created in a namespace that exists and is not being deleted.

Deletion (Kubernetes' namespace controller, done here in the server so that a
fresh cluster needs nothing else running): deleting a namespace marks it
`Terminating`, which stops new objects from arriving; a background task then
deletes everything inside it — pods gracefully, so kubelets get to stop them —
and removes the namespace once it is empty. The built-in namespaces can not be
deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from apimachinery import errors, scheme
from apimachinery.scheme import KindInfo
from apiserver import encoding
from apiserver.registry import strategy
from apiserver.storage.interface import KeyValue, StorageError

if TYPE_CHECKING:
    from apiserver.registry.store import Store

log = logging.getLogger(__name__)

BUILTIN = ("default", "kube-system", "kube-public", "kube-node-lease")
PROTECTED = ("default", "kube-system", "kube-public")
_POLL_SECONDS = 0.5


class NamespaceLifecycle:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.info = scheme.for_resource("namespaces")
        self._finalizers: set[asyncio.Task[None]] = set()

    async def ensure_builtin(self) -> None:
        for name in BUILTIN:
            ns = scheme.new_object(self.info)
            ns.metadata.name = name
            with contextlib.suppress(errors.AlreadyExists):
                await self.store.create(ns)
        # Resume the deletion of namespaces that were terminating when the server stopped.
        for ns in (await self.store.list_objects(self.info))[0]:
            if ns.metadata.HasField("deletion_timestamp"):
                self._start_finalizer(ns.metadata.name)

    async def admit_create(self, info: KindInfo, obj: Any) -> None:
        if not info.namespaced:
            return
        name = obj.metadata.namespace
        kv = await self.store.storage.get(scheme.object_key(self.info, "", name))
        if kv is None:
            raise errors.NotFound.for_object("namespaces", name)
        ns = encoding.decode(self.info, kv.value, kv.mod_revision)
        if ns.metadata.HasField("deletion_timestamp") and info.kind != "Event":
            raise errors.Forbidden(
                f'{info.full_resource} "{obj.metadata.name}" is forbidden: unable to create new'
                f" content in namespace {name} because it is being terminated"
            )

    async def delete(self, ns: Any, kv: KeyValue) -> Any:
        name = ns.metadata.name
        if name in PROTECTED:
            raise errors.Forbidden(
                f'namespaces "{name}" is forbidden: this namespace may not be deleted'
            )
        if not ns.metadata.HasField("deletion_timestamp"):
            ns.metadata.deletion_timestamp.CopyFrom(strategy.now())
            ns.metadata.deletion_grace_period_seconds = 0
            ns.status.phase = "Terminating"
            key = scheme.object_key(self.info, "", name)
            stored = await self.store.storage.update(
                key, encoding.encode_for_storage(ns), kv.mod_revision
            )
            ns.metadata.resource_version = str(stored.mod_revision)
            self._start_finalizer(name)
        return ns

    def _start_finalizer(self, name: str) -> None:
        task = asyncio.get_running_loop().create_task(self._finalize(name))
        self._finalizers.add(task)
        task.add_done_callback(self._finalizers.discard)

    async def _finalize(self, name: str) -> None:
        """Delete the namespace's contents until none is left, then the namespace."""
        while True:
            try:
                remaining = await self._delete_contents(name)
                if remaining == 0:
                    key = scheme.object_key(self.info, "", name)
                    await self.store.storage.delete(key)
                    log.info("namespace deleted", extra={"namespace": name})
                    return
            except (errors.StatusError, StorageError) as err:
                log.warning("namespace cleanup retry", extra={"namespace": name, "error": str(err)})
            await asyncio.sleep(_POLL_SECONDS)

    async def _delete_contents(self, namespace: str) -> int:
        remaining = 0
        for info in scheme.KINDS:
            if not info.namespaced:
                continue
            objects, _ = await self.store.list_objects(info, namespace)
            remaining += len(objects)
            for obj in objects:
                if obj.metadata.HasField("deletion_timestamp"):
                    continue
                with contextlib.suppress(errors.NotFound):
                    await self.store.delete(info, namespace, obj.metadata.name)
        return remaining

    async def close(self) -> None:
        for task in list(self._finalizers):
            task.cancel()
        await asyncio.gather(*self._finalizers, return_exceptions=True)
