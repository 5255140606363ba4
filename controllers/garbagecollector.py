"""The garbage collector: dependents go when their owners go (ownerReferences).

Kubernetes' garbagecollector.go + graph_builder.go, simplified but with the
same rules. Deleting a Deployment deletes its ReplicaSets, and they their
Pods, not because the deployment controller cleans up after itself but
because each ReplicaSet names the Deployment in `metadata.ownerReferences`
and each Pod names its ReplicaSet; this controller notices dependents whose
owners are gone and deletes them.

The ownership graph is keyed by uid, never by name. An owner reference
carries the owner's uid, and a Deployment deleted and re-created under the
same name is a *different* owner: its predecessor's ReplicaSets must still
go. The graph, built from informer events on every kind in the scheme
(except Events, which nothing owns):

    nodes:       uid -> (kind, namespace, name)        every object we have seen
    dependents:  owner uid -> {dependent uid, ...}      from each object's ownerReferences

    Deployment web (uid D)          nodes[D] = Deployment default/web
      ReplicaSet web-7d4 (uid R)    nodes[R], dependents[D] = {R}
        Pod web-7d4-abcde (uid P1)  nodes[P1], dependents[R] = {P1, P2}
        Pod web-7d4-fghij (uid P2)

An owner uid may appear in `dependents` without being in `nodes` (the
owner is gone, or its kind is not watched): Kubernetes calls that a
virtual node. The queue holds uids; `sync(uid)` is the attemptToDeleteItem
/ processDeletingDependents / orphanDependents of Kubernetes in one place:

1. The object is being deleted with the `orphan` finalizer (propagation
   Orphan): remove the owner reference to it from each dependent, then
   remove the finalizer (the API server then finishes the deletion).
2. It is being deleted with `foregroundDeletion` (propagation Foreground):
   its dependents are queued (they will see a waiting owner and delete
   themselves); once none that has `blockOwnerDeletion` remains, remove the
   finalizer. Dependents that are themselves owners are deleted in
   Foreground too, so a chain goes from the leaves up.
3. Otherwise, if it is being deleted anyway, leave it. Else classify each of
   its owners, as Kubernetes does:
      solid    - exists and is not waiting for its dependents;
      dangling - absent (or present under that name with another uid);
      waiting  - exists, being deleted with foregroundDeletion.
   any solid owner:       remove the references to dangling / waiting owners
                          (if any) and keep the object;
   waiting, no solid:     delete it (Foreground if it has dependents itself);
   only dangling owners:  delete it (Background, or whatever propagation its
                          own finalizers already ask for).

Worked example, `tinykube delete deployment web` (Background, the default):
the Deployment is gone at once; its DELETE event queues dependents[D] =
{R}; R's only owner D is dangling, so R is deleted; R's DELETE queues P1
and P2, whose owner R is dangling, so they are deleted (gracefully: a pod
on a node stays Terminating until its kubelet has stopped it). With
`--cascade=foreground` D stays (deletionTimestamp + finalizer) until R, P1
and P2 are gone; with `--cascade=orphan` R loses its owner reference to D
and lives on, and so do its pods.

Stale caches. Informers of different kinds are not ordered with each
other: the GC may see a ReplicaSet before its Deployment, or see an
owner's DELETE before the dependent's update that dropped the reference
(the orphan case). So absence is never decided from the cache alone: an
owner missing from the cache is looked up with a live GET (uid compared),
and before deleting or patching anything the object itself is re-read live
and classified again from its latest ownerReferences. Deletes carry a uid
precondition, so a same-named successor is never hit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from google.protobuf.message import Message

from apimachinery import errors, scheme
from apimachinery.client import retry_on_conflict
from controllers import register
from controllers.base import Controller, ControllerContext
from protos import meta_pb2

log = logging.getLogger(__name__)

ORPHAN = "orphan"
FOREGROUND = "foregroundDeletion"
# Events are written constantly and owned by nothing; watching them would only cost.
IGNORED_KINDS = frozenset({"Event"})


class Object(Protocol):
    """What the collector reads of an object of any kind: its ObjectMeta."""

    @property
    def metadata(self) -> meta_pb2.ObjectMeta: ...


@dataclass(frozen=True)
class Identity:
    """Where an object lives: enough to get, update or delete it."""

    info: scheme.KindInfo
    namespace: str
    name: str
    uid: str

    def __str__(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.info.kind} {where} ({self.uid})"


def _is_deleting(obj: Object) -> bool:
    return obj.metadata.HasField("deletion_timestamp")


def _waiting_for_dependents(obj: Object) -> bool:
    return _is_deleting(obj) and FOREGROUND in obj.metadata.finalizers


def _owner_info(ref: meta_pb2.OwnerReference) -> scheme.KindInfo | None:
    try:
        return scheme.for_kind(ref.api_version, ref.kind)
    except errors.BadRequest:
        return None


@register("garbagecollector")
class GarbageCollector(Controller):
    """Deletes objects whose owners are gone; runs Foreground and Orphan deletions."""

    name = "garbage-collector-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.nodes: dict[str, Identity] = {}
        self.dependents: dict[str, set[str]] = {}
        self._owners_of: dict[str, set[str]] = {}  # uid -> owner uids (to unfile on change)
        self.informers = {
            info.kind: ctx.factory.informer(info)
            for info in scheme.KINDS
            if info.kind not in IGNORED_KINDS
        }
        for inf in self.informers.values():
            on_add, on_update = self._observers(inf.info)
            inf.add_handlers(on_add, on_update, self._forget)

    # ---- the graph builder (handlers: bookkeeping + enqueue only) -----------------------------

    def _observers(
        self, info: scheme.KindInfo
    ) -> tuple[Callable[[Object], None], Callable[[Object, Object], None]]:
        """on_add and on_update for the informer of one kind: both file the object."""

        def on_add(obj: Object) -> None:
            self._observe(info, obj)

        def on_update(old: Object, new: Object) -> None:
            self._observe(info, new, old)

        return on_add, on_update

    def _observe(self, info: scheme.KindInfo, obj: Object, old: Object | None = None) -> None:
        meta = obj.metadata
        uid = meta.uid
        if old is not None and old.metadata.uid != uid:
            self._forget(old)
        self.nodes[uid] = Identity(info, meta.namespace, meta.name, uid)
        owners = {ref.uid for ref in meta.owner_references}
        before = self._owners_of.get(uid, set())
        for gone in before - owners:
            self._unfile(gone, uid)
            self.enqueue(gone)  # a foreground owner may be waiting for this one
        for owner in owners - before:
            self.dependents.setdefault(owner, set()).add(uid)
        if owners:
            self._owners_of[uid] = owners
        else:
            self._owners_of.pop(uid, None)
        if owners or (_is_deleting(obj) and {ORPHAN, FOREGROUND} & set(meta.finalizers)):
            self.enqueue(uid)
        if old is None or _waiting_for_dependents(obj) != _waiting_for_dependents(old):
            for dep in self.dependents.get(uid, ()):  # owner (re)appeared or started waiting
                self.enqueue(dep)

    def _forget(self, obj: Object) -> None:
        uid = obj.metadata.uid
        self.nodes.pop(uid, None)
        for owner in self._owners_of.pop(uid, set()):
            self._unfile(owner, uid)
            self.enqueue(owner)  # a foreground owner waiting for us may be done now
        for dep in self.dependents.get(uid, ()):
            self.enqueue(dep)  # their owner is gone: maybe garbage now

    def _unfile(self, owner: str, dependent: str) -> None:
        deps = self.dependents.get(owner)
        if deps is not None:
            deps.discard(dependent)
            if not deps:
                del self.dependents[owner]

    def cached(self, ident: Identity) -> Object | None:
        inf = self.informers.get(ident.info.kind)
        if inf is None:
            return None
        key = f"{ident.namespace}/{ident.name}" if ident.namespace else ident.name
        obj: Object | None = inf.store.get(key)
        if obj is None or obj.metadata.uid != ident.uid:
            return None
        return obj

    async def live(self, ident: Identity) -> Object | None:
        """The object as the API server has it now; None if gone or replaced."""
        try:
            obj: Object = await self.client.get(ident.info, ident.name, ident.namespace)
        except errors.NotFound:
            return None
        return obj if obj.metadata.uid == ident.uid else None

    async def _update(self, obj: Object) -> None:
        """Write back an object read with `live` (every kind in the scheme is a Message)."""
        assert isinstance(obj, Message), type(obj)
        await self.client.update(obj)

    # ---- sync ----------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        ident = self.nodes.get(key)
        if ident is None:
            return  # gone (or a virtual owner): its dependents were queued when it went
        obj = self.cached(ident)
        if obj is None:
            return
        if _is_deleting(obj) and ORPHAN in obj.metadata.finalizers:
            await self._orphan_dependents(ident)
            return
        if _waiting_for_dependents(obj):
            await self._process_deleting_dependents(ident)
            return
        if _is_deleting(obj) or not obj.metadata.owner_references:
            return
        verdict = await self._classify(obj)
        if verdict.keep_unchanged:
            return
        latest = await self.live(ident)  # never act on a stale cache
        if latest is None or _is_deleting(latest):
            return
        verdict = await self._classify(latest)
        await self._act(ident, latest, verdict)

    # ---- attemptToDeleteItem -------------------------------------------------------------------

    async def _owner_state(self, dependent: Object, ref: meta_pb2.OwnerReference) -> str:
        """solid, dangling or waiting: what the owner named by `ref` is now."""
        ident = self.nodes.get(ref.uid)
        owner = self.cached(ident) if ident is not None else None
        if owner is None:
            info = _owner_info(ref)
            if info is None:
                log.info(
                    "owner kind unknown; treated as present",
                    extra={"kind": ref.kind, "api_version": ref.api_version},
                )
                return "solid"
            namespace = dependent.metadata.namespace if info.namespaced else ""
            owner = await self.live(Identity(info, namespace, ref.name, ref.uid))
        if owner is None:
            return "dangling"
        return "waiting" if _waiting_for_dependents(owner) else "solid"

    async def _classify(self, obj: Object) -> _Verdict:
        states = {
            ref.uid: await self._owner_state(obj, ref) for ref in obj.metadata.owner_references
        }
        return _Verdict(states)

    async def _act(self, ident: Identity, obj: Object, verdict: _Verdict) -> None:
        if verdict.keep_unchanged:
            return
        if verdict.has("solid"):
            drop = verdict.uids("dangling") | verdict.uids("waiting")
            await self._remove_owner_refs(ident, drop)
            return
        if verdict.has("waiting"):
            policy = "Foreground" if self.dependents.get(ident.uid) else "Background"
        elif ORPHAN in obj.metadata.finalizers:
            policy = "Orphan"
        elif FOREGROUND in obj.metadata.finalizers:
            policy = "Foreground"
        else:
            policy = "Background"
        log.info(
            "deleting object whose owners are gone", extra={"object": str(ident), "policy": policy}
        )
        try:
            await self.client.delete(
                ident.info,
                ident.name,
                ident.namespace,
                propagation_policy=policy,
                precondition_uid=ident.uid,
            )
        except errors.NotFound:
            return
        except errors.Conflict:
            return  # the uid precondition failed: a successor took the name

    async def _remove_owner_refs(self, ident: Identity, owners: set[str]) -> None:
        async def once() -> None:
            obj = await self.live(ident)
            if obj is None:
                return
            keep = [r for r in obj.metadata.owner_references if r.uid not in owners]
            if len(keep) == len(obj.metadata.owner_references):
                return
            del obj.metadata.owner_references[:]
            obj.metadata.owner_references.extend(keep)
            await self._update(obj)
            log.info(
                "owner references removed",
                extra={"object": str(ident), "owners": ",".join(sorted(owners))},
            )

        await retry_on_conflict(once)

    # ---- processDeletingDependentsItem / orphanDependents --------------------------------------

    def _dependents(self, owner_uid: str) -> list[tuple[Identity, Object]]:
        out = []
        for uid in sorted(self.dependents.get(owner_uid, ())):
            ident = self.nodes.get(uid)
            obj = self.cached(ident) if ident is not None else None
            if ident is not None and obj is not None:
                out.append((ident, obj))
        return out

    async def _process_deleting_dependents(self, ident: Identity) -> None:
        blocking = 0
        for dep_ident, dep in self._dependents(ident.uid):
            self.enqueue(dep_ident.uid)
            if any(
                r.uid == ident.uid and r.block_owner_deletion for r in dep.metadata.owner_references
            ):
                blocking += 1
        if blocking:
            log.debug(
                "waiting for blocking dependents",
                extra={"object": str(ident), "blocking": blocking},
            )
            return
        await self._remove_finalizer(ident, FOREGROUND)

    async def _orphan_dependents(self, ident: Identity) -> None:
        for dep_ident, _ in self._dependents(ident.uid):
            await self._remove_owner_refs(dep_ident, {ident.uid})
        await self._remove_finalizer(ident, ORPHAN)

    async def _remove_finalizer(self, ident: Identity, finalizer: str) -> None:
        async def once() -> None:
            obj = await self.live(ident)
            if obj is None or finalizer not in obj.metadata.finalizers:
                return
            keep = [f for f in obj.metadata.finalizers if f != finalizer]
            del obj.metadata.finalizers[:]
            obj.metadata.finalizers.extend(keep)
            await self._update(obj)
            log.info("finalizer removed", extra={"object": str(ident), "finalizer": finalizer})

        try:
            await retry_on_conflict(once)
        except errors.NotFound:
            return


@dataclass(frozen=True)
class _Verdict:
    """Owner uid -> solid | dangling | waiting."""

    states: dict[str, str]

    def has(self, state: str) -> bool:
        return state in self.states.values()

    def uids(self, state: str) -> set[str]:
        return {uid for uid, s in self.states.items() if s == state}

    @property
    def keep_unchanged(self) -> bool:
        """Every owner is solid: nothing to do."""
        return all(s == "solid" for s in self.states.values())
