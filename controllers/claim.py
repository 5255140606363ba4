"""Claiming: which objects a controller owns (Kubernetes' ControllerRefManager.ClaimObject).

A ReplicaSet manages pods and a Deployment manages ReplicaSets, but neither
remembers a list of them. What a controller owns is read from the objects
themselves, at every sync, from two facts: the controller reference in the
object's ownerReferences (who owns it now) and the controller's label
selector (who *should* own it). `claim` reconciles the two:

    controller ref    selector matches   owner not deleting      owner being deleted
    this controller   yes                claimed                 claimed
    this controller   no                 released (ref removed)  left alone
    none (orphan)     yes                adopted (ref added)     left alone
    none (orphan)     no                 -                       -
    another one       either             ignored                 ignored

Worked example: ReplicaSet web-abc (uid U, selector app=web) syncs over
four pods in its namespace:

    pod p1  labels app=web    ref: ReplicaSet web-abc uid U  -> claimed as is
    pod p2  labels app=db     ref: ReplicaSet web-abc uid U  -> released: someone relabelled
                                                                it; it leaves the set's count
    pod p3  labels app=web    no ref (made by hand)          -> adopted: update with the ref
                                                                added, the updated pod claimed
    pod p4  labels app=web    ref: ReplicaSet other uid V    -> ignored: one controller each

    claim -> [p1, p3]; the ReplicaSet then counts two pods.

Had web-abc been deleting (a deletionTimestamp, e.g. foreground deletion
waiting for its pods), only p1 would be claimed: nothing is adopted by an
owner on its way out (the garbage collector would only have to undo it), and
nothing is released either, since the labels no longer matter to a dying set.

The cache may be behind: the owner might already be deleted, or deleted and
re-created under the same name with a new uid. So before the first adoption
of a claim the owner is read fresh from the API server
(RecheckDeletionTimestamp), once per claim; if the fresh copy has another
uid or a deletionTimestamp, nothing is adopted in this claim (objects the
owner already controls are still claimed). Orphans that are themselves
terminating are never adopted. An adopt or release of an object that is gone
meanwhile (NotFound) is skipped; any other error (a Conflict: the object
changed under us) fails the sync, which retries with a fresh cache.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Generic, TypeVar

from apimachinery import errors, labels
from apimachinery.client import Client
from controllers.controller_utils import controller_ref, owner_reference
from protos import apps_pb2, core_pb2

log = logging.getLogger(__name__)

# What a controller claims, and who claims it: pods by ReplicaSets, ReplicaSets by Deployments.
Owned = TypeVar("Owned", core_pb2.Pod, apps_pb2.ReplicaSet)
Owner = apps_pb2.ReplicaSet | apps_pb2.Deployment


class ControllerRefManager(Generic[Owned]):
    """Claims objects for one controller: adopts matching orphans, releases its non-matching."""

    def __init__(self, client: Client, controller: Owner, selector: labels.Selector) -> None:
        self.client = client
        self.controller = controller
        self.selector = selector
        self._can_adopt: bool | None = None  # the fresh check, made at most once

    @property
    def _deleting(self) -> bool:
        return self.controller.metadata.HasField("deletion_timestamp")

    async def claim(self, candidates: Iterable[Owned]) -> list[Owned]:
        """The candidates this controller owns after the claim (adopted ones as updated)."""
        claimed: list[Owned] = []
        for obj in candidates:
            got = await self.claim_object(obj)
            if got is not None:
                claimed.append(got)
        return claimed

    async def claim_object(self, obj: Owned) -> Owned | None:
        """ClaimObject: `obj` (or its adopted copy) if the controller owns it now, else None."""
        ref = controller_ref(obj)
        matches = self.selector.matches(obj.metadata.labels)
        if ref is not None:
            if ref.uid != self.controller.metadata.uid:
                return None  # another controller's
            if matches:
                return obj
            if not self._deleting:
                await self._release(obj)
            return None
        if not matches or self._deleting or obj.metadata.HasField("deletion_timestamp"):
            return None
        if not await self.can_adopt():
            return None
        return await self._adopt(obj)

    async def can_adopt(self) -> bool:
        """RecheckDeletionTimestamp: the owner, read fresh, is the same object and not deleting."""
        if self._can_adopt is None:
            meta = self.controller.metadata
            fresh = await self.client.get(type(self.controller), meta.name, meta.namespace)
            self._can_adopt = fresh.metadata.uid == meta.uid and not fresh.metadata.HasField(
                "deletion_timestamp"
            )
        return self._can_adopt

    async def _adopt(self, obj: Owned) -> Owned | None:
        new = type(obj)()
        new.CopyFrom(obj)
        new.metadata.owner_references.append(owner_reference(self.controller))
        try:
            updated = await self.client.update(new)
        except errors.NotFound:
            return None
        log.info("adopted", extra=self._fields(obj))
        return updated

    async def _release(self, obj: Owned) -> None:
        new = type(obj)()
        new.CopyFrom(obj)
        uid = self.controller.metadata.uid
        keep = [r for r in new.metadata.owner_references if r.uid != uid]
        del new.metadata.owner_references[:]
        new.metadata.owner_references.extend(keep)
        try:
            await self.client.update(new)
        except errors.NotFound:
            return
        log.info("released", extra=self._fields(obj))

    def _fields(self, obj: Owned) -> dict[str, str]:
        owner = self.controller
        return {
            "controller": f"{type(owner).__name__}/{owner.metadata.name}",
            "namespace": owner.metadata.namespace,
            "kind": type(obj).__name__,
            "object": obj.metadata.name,
        }
