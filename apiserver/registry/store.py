"""The generic store: create, get, list, update, update status, delete.

One implementation serves every kind (Kubernetes' generic registry.Store); what
differs per kind lives in strategy.py, defaults.py, validation and the two
hooks below (Service allocations, namespace lifecycle).

Optimistic concurrency. Every object carries the revision it was read at
(`metadata.resourceVersion`). An update that names one is a compare-and-swap
against storage: if anything wrote the key since, storage refuses and the
client gets 409 Conflict with Kubernetes' message, so of N writers racing from
the same version exactly one wins. An update that names none is applied to
whatever is current ("unconditional update", which Kubernetes allows for most
kinds): the store reads, applies, and retries the swap until it lands.

Deletion. Most objects go at once. Two things make deletion graceful instead:
- a Pod bound to a node is marked (deletionTimestamp = now + grace period) and
  left for its kubelet, which stops the containers and then deletes with
  grace 0: the object disappears only once nothing runs;
- an object with finalizers is marked and left until the last finalizer is
  removed by an update, which then deletes it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from google.protobuf import any_pb2

from apimachinery import errors, fields, labels, scheme, validation
from apimachinery.scheme import KindInfo
from apiserver import defaults, encoding
from apiserver.registry import strategy
from apiserver.registry.namespaces import NamespaceLifecycle
from apiserver.registry.services import ServiceAllocations
from apiserver.storage.interface import (
    KeyExists,
    KeyNotFound,
    KeyValue,
    RevisionMismatch,
    Storage,
)

log = logging.getLogger(__name__)

_UNCONDITIONAL_RETRIES = 20


def kind_group(info: KindInfo) -> str:
    """`Deployment.apps`, `Pod`: how Kubernetes names a kind in an Invalid message."""
    return f"{info.kind}.{info.group}" if info.group else info.kind


def parse_resource_version(text: str, path: str = "metadata.resourceVersion") -> int:
    try:
        value = int(text)
    except ValueError:
        raise errors.BadRequest(f'{path}: Invalid value: "{text}": must be an integer') from None
    if value < 0:
        raise errors.BadRequest(f'{path}: Invalid value: "{text}": must be non-negative')
    return value


class Store:
    """The generic verbs over a Storage, for every kind in the scheme."""

    def __init__(self, storage: Storage, *, default_toleration_seconds: int = 300) -> None:
        self.storage = storage
        self.default_toleration_seconds = default_toleration_seconds
        self.services = ServiceAllocations()
        self.namespaces = NamespaceLifecycle(self)
        self._service_lock = asyncio.Lock()

    async def start(self) -> None:
        """Create the built-in namespaces and rebuild allocator state from the store."""
        await self.namespaces.ensure_builtin()
        services, _ = await self.list_objects(scheme.for_resource("services"))
        self.services.rebuild(services)

    # ------------------------------------------------------------------ reads
    def _key(self, info: KindInfo, namespace: str, name: str) -> str:
        return scheme.object_key(info, namespace if info.namespaced else "", name)

    async def _read(self, info: KindInfo, namespace: str, name: str) -> tuple[Any, KeyValue]:
        kv = await self.storage.get(self._key(info, namespace, name))
        if kv is None:
            raise errors.NotFound.for_object(info.full_resource, name)
        return encoding.decode(info, kv.value, kv.mod_revision), kv

    async def get(self, info: KindInfo, namespace: str, name: str) -> Any:
        obj, _ = await self._read(info, namespace, name)
        return obj

    async def get_packed(self, info: KindInfo, namespace: str, name: str) -> any_pb2.Any:
        kv = await self.storage.get(self._key(info, namespace, name))
        if kv is None:
            raise errors.NotFound.for_object(info.full_resource, name)
        return encoding.packed(info, kv.value, kv.mod_revision)

    async def list_packed(
        self,
        info: KindInfo,
        namespace: str = "",
        label_selector: str = "",
        field_selector: str = "",
    ) -> tuple[list[any_pb2.Any], int]:
        """Every matching object, packed for the wire, and the revision of the read."""
        lsel = labels.parse(label_selector)
        fsel = fields.parse(field_selector)
        fields.check_supported(fsel, info.kind)
        kvs, revision = await self.storage.list(scheme.prefix_key(info, namespace))
        items: list[any_pb2.Any] = []
        for kv in kvs:
            if not (lsel.empty() and fsel.empty()):
                obj = encoding.decode(info, kv.value, kv.mod_revision)
                if not lsel.matches(obj.metadata.labels):
                    continue
                if not fsel.matches(fields.object_fields(obj)):
                    continue
            items.append(encoding.packed(info, kv.value, kv.mod_revision))
        return items, revision

    async def list_objects(self, info: KindInfo, namespace: str = "") -> tuple[list[Any], int]:
        kvs, revision = await self.storage.list(scheme.prefix_key(info, namespace))
        return [encoding.decode(info, kv.value, kv.mod_revision) for kv in kvs], revision

    # ------------------------------------------------------------------ create
    async def create(self, obj: Any, *, dry_run: bool = False) -> Any:
        info = scheme.for_message(obj)
        meta = obj.metadata
        if info.namespaced:
            meta.namespace = meta.namespace or "default"
        else:
            meta.namespace = ""
        if not meta.name and meta.generate_name:
            meta.name = meta.generate_name + _random_suffix()
        strategy.prepare_for_create(info, obj)
        defaults.apply_defaults(obj)
        causes = validation.validate_object(obj)
        if causes:
            raise errors.Invalid.for_object(kind_group(info), meta.name, causes)
        await self.namespaces.admit_create(info, obj)
        if info.kind == "Pod":
            add_default_tolerations(obj, self.default_toleration_seconds)
        key = self._key(info, meta.namespace, meta.name)
        if info.kind != "Service":
            return await self._create(info, key, obj, dry_run)
        async with self._service_lock:
            release = self.services.allocate(obj, None, kind_group(info))
            try:
                created = await self._create(info, key, obj, dry_run)
            except BaseException:
                release()
                raise
            if dry_run:
                release()
            return created

    async def _create(self, info: KindInfo, key: str, obj: Any, dry_run: bool) -> Any:
        if dry_run:
            if await self.storage.get(key) is not None:
                raise errors.AlreadyExists.for_object(info.full_resource, obj.metadata.name)
            return obj
        try:
            kv = await self.storage.create(key, encoding.encode_for_storage(obj))
        except KeyExists:
            raise errors.AlreadyExists.for_object(info.full_resource, obj.metadata.name) from None
        obj.metadata.resource_version = str(kv.mod_revision)
        log.debug("created", extra={"key": key, "revision": kv.mod_revision})
        return obj

    # ------------------------------------------------------------------ update
    async def update(self, obj: Any, *, dry_run: bool = False, status: bool = False) -> Any:
        """Update (spec + metadata) or, with status=True, UpdateStatus."""
        info = scheme.for_message(obj)
        namespace = (obj.metadata.namespace or "default") if info.namespaced else ""
        name = obj.metadata.name
        if not name:
            raise errors.Invalid.for_object(
                kind_group(info), name, [errors.required("metadata.name", "name is required")]
            )
        if status and not info.has_status:
            raise errors.BadRequest(f"{info.full_resource} have no status subresource")
        wanted = obj.metadata.resource_version
        expected = parse_resource_version(wanted) if wanted else None
        for _ in range(_UNCONDITIONAL_RETRIES):
            old, kv = await self._read(info, namespace, name)
            if expected is not None and expected != kv.mod_revision:
                raise errors.Conflict.for_object(info.full_resource, name)
            try:
                return await self._update_once(info, obj, old, kv, status=status, dry_run=dry_run)
            except RevisionMismatch:
                if expected is not None:
                    raise errors.Conflict.for_object(info.full_resource, name) from None
            except KeyNotFound:
                raise errors.NotFound.for_object(info.full_resource, name) from None
        raise errors.Conflict.for_object(info.full_resource, name, "too many concurrent writers")

    async def _update_once(
        self, info: KindInfo, obj: Any, old: Any, kv: KeyValue, *, status: bool, dry_run: bool
    ) -> Any:
        new = type(obj)()
        new.CopyFrom(obj)
        if status:
            new = strategy.prepare_for_status_update(info, new, old)
        else:
            strategy.prepare_for_update(info, new, old)
            if info.kind == "Service":
                self.services.carry_allocated(new, old)
            defaults.apply_defaults(new)
            strategy.bump_generation(new, old)
        new.metadata.resource_version = ""
        causes = validation.validate_update(new, old)
        if causes:
            raise errors.Invalid.for_object(kind_group(info), new.metadata.name, causes)
        # The last finalizer of an object being deleted is gone: finish the deletion.
        if old.metadata.HasField("deletion_timestamp") and not new.metadata.finalizers:
            if dry_run:
                return new
            return await self._delete_now(info, new, kv)
        value = encoding.encode_for_storage(new)
        if value == kv.value:
            return old  # nothing changed: no write, no new resourceVersion
        key = self._key(info, new.metadata.namespace, new.metadata.name)
        if info.kind != "Service" or status:
            return await self._write(key, new, kv.mod_revision, dry_run)
        async with self._service_lock:
            release = self.services.allocate(new, old, kind_group(info))
            try:
                written = await self._write(key, new, kv.mod_revision, dry_run)
            except BaseException:
                release()
                raise
            if dry_run:
                release()
            else:
                self.services.release_replaced(new, old)
            return written

    async def _write(self, key: str, new: Any, expected: int, dry_run: bool) -> Any:
        if dry_run:
            return new
        stored = await self.storage.update(key, encoding.encode_for_storage(new), expected)
        new.metadata.resource_version = str(stored.mod_revision)
        return new

    # ------------------------------------------------------------------ delete
    async def delete(
        self,
        info: KindInfo,
        namespace: str,
        name: str,
        *,
        grace_period_seconds: int | None = None,
        propagation_policy: str = "",
        precondition_uid: str = "",
        precondition_resource_version: str = "",
    ) -> Any:
        if info.namespaced:
            namespace = namespace or "default"
        if propagation_policy not in ("", "Background", "Foreground", "Orphan"):
            raise errors.BadRequest(
                f'propagationPolicy: Unsupported value: "{propagation_policy}": supported values:'
                ' "Background", "Foreground", "Orphan"'
            )
        for _ in range(_UNCONDITIONAL_RETRIES):
            obj, kv = await self._read(info, namespace, name)
            if precondition_uid and precondition_uid != obj.metadata.uid:
                raise errors.Conflict.for_object(
                    info.full_resource,
                    name,
                    f"Precondition failed: UID in precondition: {precondition_uid},"
                    f" UID in object meta: {obj.metadata.uid}",
                )
            if precondition_resource_version and precondition_resource_version != str(
                kv.mod_revision
            ):
                raise errors.Conflict.for_object(
                    info.full_resource,
                    name,
                    "Precondition failed: ResourceVersion in precondition:"
                    f" {precondition_resource_version}, ResourceVersion in object meta:"
                    f" {kv.mod_revision}",
                )
            if info.kind == "Namespace":
                return await self.namespaces.delete(obj, kv)
            try:
                return await self._delete_once(
                    info, obj, kv, grace_period_seconds, propagation_policy
                )
            except RevisionMismatch:
                continue
            except KeyNotFound:
                raise errors.NotFound.for_object(info.full_resource, name) from None
        raise errors.Conflict.for_object(info.full_resource, name, "too many concurrent writers")

    async def _delete_once(
        self, info: KindInfo, obj: Any, kv: KeyValue, grace: int | None, propagation: str
    ) -> Any:
        meta = obj.metadata
        finalizer = {"Foreground": "foregroundDeletion", "Orphan": "orphan"}.get(propagation)
        finalizer_added = bool(finalizer) and finalizer not in meta.finalizers
        if finalizer_added:
            meta.finalizers.append(str(finalizer))
        graceful = info.kind == "Pod" and _pod_grace(obj, grace) > 0
        if not graceful and not meta.finalizers:
            return await self._delete_now(info, obj, kv)
        period = _pod_grace(obj, grace) if graceful else 0
        if meta.HasField("deletion_timestamp"):
            # Already terminating: only a shorter grace period or a new finalizer is news.
            shorter = graceful and period < meta.deletion_grace_period_seconds
            if not shorter and not finalizer_added:
                return obj
        deadline = strategy.now()
        deadline.seconds += period
        meta.deletion_timestamp.CopyFrom(deadline)
        meta.deletion_grace_period_seconds = period
        meta.resource_version = ""
        key = self._key(info, meta.namespace, meta.name)
        stored = await self.storage.update(key, encoding.encode_for_storage(obj), kv.mod_revision)
        meta.resource_version = str(stored.mod_revision)
        return obj

    async def _delete_now(self, info: KindInfo, obj: Any, kv: KeyValue) -> Any:
        key = self._key(info, obj.metadata.namespace, obj.metadata.name)
        gone = await self.storage.delete(key, kv.mod_revision)
        if info.kind == "Service":
            async with self._service_lock:
                self.services.release_all(obj)
        obj.metadata.resource_version = str(gone.mod_revision)
        return obj


NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"


def add_default_tolerations(pod: Any, seconds: int) -> None:
    """Kubernetes' DefaultTolerationSeconds admission: how long a pod stays on a lost node.

    Every pod tolerates the node lifecycle controller's NoExecute taints for a
    while (300 s by default), unless it says otherwise; after that the pod is
    evicted and its controller replaces it elsewhere.
    """
    if any(
        not t.key and t.operator == "Exists" and t.effect in ("", "NoExecute")
        for t in pod.spec.tolerations
    ):
        return  # tolerates everything already
    have = {(t.key, t.effect) for t in pod.spec.tolerations}
    for key in (NOT_READY_TAINT, UNREACHABLE_TAINT):
        if (key, "NoExecute") not in have and (key, "") not in have:
            pod.spec.tolerations.add(
                key=key, operator="Exists", effect="NoExecute", toleration_seconds=seconds
            )


def _pod_grace(pod: Any, requested: int | None) -> int:
    """The grace period a Pod deletion gets: none for a pod that never ran."""
    if not pod.spec.node_name or pod.status.phase in ("Succeeded", "Failed"):
        return 0
    if requested is not None:
        return max(0, requested)
    return int(pod.spec.termination_grace_period_seconds)


_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def _random_suffix(n: int = 5) -> str:
    """generateName's suffix, from Kubernetes' alphabet (no vowels: no accidental words)."""
    import secrets

    return "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(n))
