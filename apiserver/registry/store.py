"""The generic store: create, get, list, update, update status, delete.

One implementation serves every kind (Kubernetes' generic registry.Store).
What differs per kind it asks of the kind's strategy (strategy.py: the hooks
and the default; pods.py, services.py, namespaces.py: the kinds with rules
of their own; kinds.py: which kind gets which), and every create passes the
admission plugins. This module names no kind: a rule that starts with "if
the object is a ..." belongs in a strategy.

Optimistic concurrency. Every object carries the revision it was read at
(`metadata.resourceVersion`). An update that names one is a compare-and-swap
against storage: if anything wrote the key since, storage refuses and the
client gets 409 Conflict with Kubernetes' message, so of N writers racing from
the same version exactly one wins. An update that names none is applied to
whatever is current ("unconditional update", which Kubernetes allows for most
kinds): the store reads, applies, and retries the swap until it lands.

Deletion. An object goes at once unless something holds it back; then it is
marked (deletionTimestamp, deletionGracePeriodSeconds) and stays:
- the strategy gives it a grace period (a Pod on a node: its kubelet stops
  the containers first and then deletes with grace 0);
- it has finalizers (metadata.finalizers, or whatever else the strategy's
  `finalized` counts: a Namespace's spec.finalizers). The update that
  removes the last one removes the object.
Foreground and Orphan propagation add the garbage collector's finalizers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable
from secrets import choice
from typing import Any

from google.protobuf import any_pb2

from apimachinery import errors, fields, labels, scheme, validation
from apimachinery.scheme import KindInfo
from apiserver import defaults, encoding
from apiserver.registry import kinds, paging, tracecontext
from apiserver.registry.strategy import (
    Admission,
    FinishFunc,
    Strategies,
    bump_generation,
    kind_group,
    now,
)
from apiserver.storage.interface import (
    KeyExists,
    KeyNotFound,
    KeyValue,
    RevisionMismatch,
    Storage,
)

log = logging.getLogger(__name__)

_UNCONDITIONAL_RETRIES = 20


class _KeyQueues:
    """Unconditional updates of one key, one at a time on this server.

    An update without a resourceVersion reads, computes and writes with a
    compare-and-swap, and retries when another write got in between. Ten such
    updates of one key at once make a retry storm: every round all ten read
    and try, one wins, nine fail and read again, so the store does about
    10 + 9 + ... + 1 = 55 reads and write attempts for 10 updates, and under
    load the failed rounds starve everything else. Queued per key, the same
    ten cost ten reads and ten writes, each first time right. The compare-and-
    swap stays (another server, or a conditional update, may still get in
    between), so this changes cost, never the outcome."""

    def __init__(self) -> None:
        self._queues: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._queues.get(key) or (asyncio.Lock(), 0)
        self._queues[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._queues[key]
            if users == 1:
                del self._queues[key]
            else:
                self._queues[key] = (lock, users - 1)


_PROPAGATION_FINALIZERS = {"Foreground": "foregroundDeletion", "Orphan": "orphan"}


def parse_resource_version(text: str, path: str = "metadata.resourceVersion") -> int:
    try:
        value = int(text)
    except ValueError:
        raise errors.BadRequest(f'{path}: Invalid value: "{text}": must be an integer') from None
    if value < 0:
        raise errors.BadRequest(f'{path}: Invalid value: "{text}": must be non-negative')
    return value


async def _finishing(finish: FinishFunc, write: Awaitable[Any], dry_run: bool) -> Any:
    """Run a write a begin_* hook prepared, and tell the hook whether it landed."""
    landed = False
    try:
        result = await write
        landed = not dry_run
        return result
    finally:
        finish(landed)


class Store:
    """The generic verbs over a Storage, for every kind in the scheme."""

    def __init__(
        self,
        storage: Storage,
        *,
        default_toleration_seconds: int = 300,
        strategies: Strategies | None = None,
        admission: list[Admission] | None = None,
    ) -> None:
        self.storage = storage
        if strategies is None:
            strategies = kinds.core_strategies(
                storage, default_toleration_seconds=default_toleration_seconds
            )
        self.strategies = strategies
        self.admission = admission if admission is not None else kinds.admission_plugins(storage)
        self._unconditional = _KeyQueues()

    async def start(self) -> None:
        """Let each strategy seed objects and rebuild its memory from the store."""
        for strategy in self.strategies:
            await strategy.start(self)

    async def close(self) -> None:
        for strategy in self.strategies:
            await strategy.close()

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

    async def list_page(
        self, info: KindInfo, namespace: str = "", options: paging.ListOptions | None = None
    ) -> paging.Page:
        """One page of a list: limit/continue at one revision, resourceVersion (paging.py)."""
        options = options or paging.ListOptions()
        lsel = labels.parse(options.label_selector)
        fsel = fields.parse(options.field_selector)
        fields.check_supported(fsel, info.kind)

        def matches(kv: KeyValue) -> bool:
            obj = encoding.decode(info, kv.value, kv.mod_revision)
            return bool(
                lsel.matches(obj.metadata.labels) and fsel.matches(fields.object_fields(obj))
            )

        return await paging.list_page(
            self.storage,
            scheme.prefix_key(info, namespace),
            options,
            None if lsel.empty() and fsel.empty() else matches,
            lambda kv: encoding.packed(info, kv.value, kv.mod_revision),
        )

    async def list_objects(self, info: KindInfo, namespace: str = "") -> tuple[list[Any], int]:
        kvs, revision = await self.storage.list(scheme.prefix_key(info, namespace))
        return [encoding.decode(info, kv.value, kv.mod_revision) for kv in kvs], revision

    # ------------------------------------------------------------------ create
    async def create(self, obj: Any, *, dry_run: bool = False) -> Any:
        info = scheme.for_message(obj)
        strategy = self.strategies.for_kind(info)
        meta = obj.metadata
        if info.namespaced:
            meta.namespace = meta.namespace or "default"
        else:
            meta.namespace = ""
        if not meta.name and meta.generate_name:
            meta.name = meta.generate_name + _random_suffix()
        strategy.prepare_for_create(info, obj)
        tracecontext.stamp_new(obj)  # the call's trace context, or none (tracecontext.py)
        defaults.apply_defaults(obj)
        causes = validation.validate_object(obj)
        if causes:
            raise errors.Invalid.for_object(kind_group(info), meta.name, causes)
        for plugin in self.admission:
            await plugin.admit_create(info, obj)
        await strategy.admit_create(obj)
        key = self._key(info, meta.namespace, meta.name)
        finish = await strategy.begin_create(obj)
        return await _finishing(finish, self._create(info, key, obj, dry_run), dry_run)

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
        if expected is not None:
            return await self._update(info, obj, namespace, name, expected, status, dry_run)
        async with self._unconditional.hold(self._key(info, namespace, name)):
            return await self._update(info, obj, namespace, name, expected, status, dry_run)

    async def _update(
        self,
        info: KindInfo,
        obj: Any,
        namespace: str,
        name: str,
        expected: int | None,
        status: bool,
        dry_run: bool,
    ) -> Any:
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
        strategy = self.strategies.for_kind(info)
        new = type(obj)()
        new.CopyFrom(obj)
        if status:
            new = strategy.prepare_for_status_update(info, new, old)
        else:
            strategy.prepare_for_update(info, new, old)
            defaults.apply_defaults(new)
            bump_generation(new, old)
        new.metadata.resource_version = ""
        causes = validation.validate_update(new, old)
        if causes:
            raise errors.Invalid.for_object(kind_group(info), new.metadata.name, causes)
        if not status:
            for plugin in self.admission:
                await plugin.admit_update(info, new, old)
        # The last finalizer of an object being deleted is gone: finish the deletion.
        if old.metadata.HasField("deletion_timestamp") and strategy.finalized(new):
            if dry_run:
                return new
            return await self._remove(info, new, kv)
        tracecontext.keep_stored(new, old)  # a new trace context alone is no change
        value = encoding.encode_for_storage(new)
        if value == kv.value and not kv.stale:
            return old  # nothing changed: no write, no new resourceVersion
        tracecontext.stamp_changed(new)
        # (A stale value -- stored under an old encryption key -- is written again even
        # unchanged: that rewrite is how keys rotate, see storage/encryption.py.)
        key = self._key(info, new.metadata.namespace, new.metadata.name)
        if status:
            return await self._write(key, new, kv.mod_revision, dry_run)
        finish = await strategy.begin_update(new, old)
        return await _finishing(finish, self._write(key, new, kv.mod_revision, dry_run), dry_run)

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
        strategy = self.strategies.for_kind(info)
        for _ in range(_UNCONDITIONAL_RETRIES):
            obj, kv = await self._read(info, namespace, name)
            _check_preconditions(info, obj, kv, precondition_uid, precondition_resource_version)
            await strategy.before_delete(obj)
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
        strategy = self.strategies.for_kind(info)
        meta = obj.metadata
        finalizer = _PROPAGATION_FINALIZERS.get(propagation)
        finalizer_added = bool(finalizer) and finalizer not in meta.finalizers
        if finalizer_added:
            meta.finalizers.append(str(finalizer))
        period = strategy.grace_period(obj, grace)
        graceful = period > 0
        if not graceful and strategy.finalized(obj):
            return await self._remove(info, obj, kv)
        if meta.HasField("deletion_timestamp"):
            # Already terminating: only a shorter grace period or a new finalizer is news.
            shorter = graceful and period < meta.deletion_grace_period_seconds
            if not shorter and not finalizer_added:
                return obj
        deadline = now()
        deadline.seconds += period
        meta.deletion_timestamp.CopyFrom(deadline)
        meta.deletion_grace_period_seconds = period
        meta.resource_version = ""
        strategy.mark_deleting(obj)
        tracecontext.stamp_changed(obj)  # the kubelet stopping a pod continues the deletion's
        key = self._key(info, meta.namespace, meta.name)
        stored = await self.storage.update(key, encoding.encode_for_storage(obj), kv.mod_revision)
        meta.resource_version = str(stored.mod_revision)
        return obj

    async def _remove(self, info: KindInfo, obj: Any, kv: KeyValue) -> Any:
        """Take the object out of storage for good (it was last stored as `kv`)."""
        strategy = self.strategies.for_kind(info)
        await strategy.before_remove(obj)
        key = self._key(info, obj.metadata.namespace, obj.metadata.name)
        gone = await self.storage.delete(key, kv.mod_revision)
        await strategy.after_delete(obj)
        obj.metadata.resource_version = str(gone.mod_revision)
        return obj


def _check_preconditions(
    info: KindInfo, obj: Any, kv: KeyValue, uid: str, resource_version: str
) -> None:
    name = obj.metadata.name
    if uid and uid != obj.metadata.uid:
        raise errors.Conflict.for_object(
            info.full_resource,
            name,
            f"Precondition failed: UID in precondition: {uid},"
            f" UID in object meta: {obj.metadata.uid}",
        )
    if resource_version and resource_version != str(kv.mod_revision):
        raise errors.Conflict.for_object(
            info.full_resource,
            name,
            f"Precondition failed: ResourceVersion in precondition: {resource_version},"
            f" ResourceVersion in object meta: {kv.mod_revision}",
        )


_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def _random_suffix(n: int = 5) -> str:
    """generateName's suffix, from Kubernetes' alphabet (no vowels: no accidental words)."""
    return "".join(choice(_SUFFIX_ALPHABET) for _ in range(n))
