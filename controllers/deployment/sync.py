"""Steps every strategy shares (Kubernetes' deployment/sync.go).

* `get_all_replica_sets_and_sync_revision` splits the Deployment's sets into
  the new one (template equal to the Deployment's) and the old ones, and
  creates the new one when asked. Its revision is max(old) + 1 and the
  Deployment's revision annotation follows it.
* `scale` handles a scaling event -- spec.replicas changed while a rollout
  was under way -- proportionally, as Kubernetes does: each active set gets
  its share of the change, so a rollout that was 70% through stays 70%
  through after `scale --replicas`.
* `sync_paused` is the whole sync of a paused Deployment (or of a scaling
  event): scale, clean up, write the status -- never roll.

Creating the new ReplicaSet, worked example: Deployment web-app (uid U,
template T, 3 replicas, maxSurge 1) has old set web-app-a (revision 1).
hash(T) = 5d8c7b9f4 ->

    ReplicaSet web-app-5d8c7b9f4
      labels/selector/template labels: app=web, pod-template-hash=5d8c7b9f4
      ownerReferences: Deployment web-app uid U (controller, blockOwnerDeletion)
      annotations: revision 2, desired-replicas 3, max-replicas 4
      replicas: what the strategy allows now (rolling: up to the surge room)

If a set of that name already exists with a *different* template (a hash
collision), status.collisionCount is incremented and the next sync hashes
again with it. If it exists with the same template, the informer was merely
behind: that set is used.
"""

from __future__ import annotations

import logging

import controllers.deployment.history as history
import controllers.deployment.progress as progress
import controllers.deployment.status as st
from apimachinery import errors, tracing
from controllers.controller_utils import owner_reference
from controllers.deployment.context import SyncContext
from controllers.deployment.util import (
    DEFAULT_LABEL_KEY,
    DESIRED_REPLICAS_ANNOTATION,
    MAX_REPLICAS_ANNOTATION,
    creation_key,
    filter_active,
    get_int_annotation,
    is_rolling_update,
    max_surge,
    new_rs_new_replicas,
    replicas,
    set_replicas_annotations,
    sum_replicas,
)
from protos import apps_pb2

log = logging.getLogger(__name__)

COMPONENT = "deployment-controller"  # its spans' component (apimachinery/tracing.py)


async def get_all_replica_sets_and_sync_revision(
    dc: SyncContext, d: apps_pb2.Deployment, rss: list[apps_pb2.ReplicaSet], create: bool
) -> tuple[apps_pb2.ReplicaSet | None, list[apps_pb2.ReplicaSet]]:
    """(new set or None, old sets); creates the new set when `create` is true."""
    new_rs = history.find_new_replica_set(d, rss)
    old_rss = history.find_old_replica_sets(d, rss, new_rs)
    new_rs = await get_new_replica_set(dc, d, new_rs, old_rss, create)
    return new_rs, old_rss


async def _update_deployment_meta(dc: SyncContext, d: apps_pb2.Deployment) -> None:
    """Write the Deployment's annotations (the status subresource would drop them)."""
    updated = await dc.client.update(d)
    status = apps_pb2.DeploymentStatus()
    status.CopyFrom(d.status)
    d.CopyFrom(updated)
    d.status.CopyFrom(status)  # keep the status this sync is building on


async def get_new_replica_set(
    dc: SyncContext,
    d: apps_pb2.Deployment,
    existing: apps_pb2.ReplicaSet | None,
    old_rss: list[apps_pb2.ReplicaSet],
    create: bool,
) -> apps_pb2.ReplicaSet | None:
    """getNewReplicaSet: the new set brought up to date, or created (when `create`), or None."""
    new_revision = history.max_revision(old_rss) + 1
    if existing is not None:
        return await _sync_existing_new_replica_set(dc, d, existing, new_revision)
    if not create:
        return None
    return await _create_new_replica_set(dc, d, old_rss, new_revision)


async def _sync_existing_new_replica_set(
    dc: SyncContext, d: apps_pb2.Deployment, existing: apps_pb2.ReplicaSet, new_revision: int
) -> apps_pb2.ReplicaSet:
    """Raise the set's revision, copy annotations and minReadySeconds; the Deployment follows."""
    rs = apps_pb2.ReplicaSet()
    rs.CopyFrom(existing)
    changed = history.set_new_rs_annotations(d, rs, new_revision, exists=True)
    changed |= rs.spec.min_ready_seconds != d.spec.min_ready_seconds
    rs.spec.min_ready_seconds = d.spec.min_ready_seconds
    if changed:
        rs = await dc.client.update(rs)
    if history.set_deployment_revision(d, history.revision(rs)):
        await _update_deployment_meta(dc, d)
    if progress.has_progress_deadline(d) and st.get_condition(d.status, st.PROGRESSING) is None:
        message = f'Found new replica set "{rs.metadata.name}"'
        await _set_progressing(dc, d, st.FOUND_NEW_RS, message)
    return rs


def new_replica_set_object(
    dc: SyncContext, d: apps_pb2.Deployment, old_rss: list[apps_pb2.ReplicaSet], new_revision: int
) -> apps_pb2.ReplicaSet:
    """The ReplicaSet for the Deployment's current template (the worked example above)."""
    collision = d.status.collision_count if d.status.HasField("collision_count") else None
    template_hash = history.compute_hash(d.spec.template, collision)
    rs = apps_pb2.ReplicaSet(api_version="apps/v1", kind="ReplicaSet")
    rs.metadata.name = f"{d.metadata.name}-{template_hash}"
    rs.metadata.namespace = d.metadata.namespace
    rs.metadata.owner_references.append(owner_reference(d))
    rs.spec.template.CopyFrom(d.spec.template)
    rs.spec.template.metadata.labels[DEFAULT_LABEL_KEY] = template_hash
    rs.metadata.labels.update(rs.spec.template.metadata.labels)
    rs.spec.selector.CopyFrom(d.spec.selector)
    rs.spec.selector.match_labels[DEFAULT_LABEL_KEY] = template_hash
    rs.spec.min_ready_seconds = d.spec.min_ready_seconds
    rs.spec.replicas = new_rs_new_replicas(dc, d, [*old_rss], None)
    history.set_new_rs_annotations(d, rs, new_revision, exists=False)
    set_replicas_annotations(rs, replicas(d), replicas(d) + max_surge(d))
    return rs


async def _create_new_replica_set(
    dc: SyncContext, d: apps_pb2.Deployment, old_rss: list[apps_pb2.ReplicaSet], new_revision: int
) -> apps_pb2.ReplicaSet:
    """Create the new set; on a name collision either use it (ours) or bump collisionCount."""
    rs = new_replica_set_object(dc, d, old_rss, new_revision)
    try:
        with tracing.step(
            "CreateReplicaSet",
            parent=d,
            component=COMPONENT,
            obj=f"replicasets/{rs.metadata.namespace}/{rs.metadata.name}",
            why=f"no ReplicaSet runs the pod template: revision {new_revision}, "
            f"{replicas(rs)} of {replicas(d)} replicas to start",
        ):
            created = await dc.client.create(rs)
    except errors.AlreadyExists:
        found = await dc.client.get(apps_pb2.ReplicaSet, rs.metadata.name, rs.metadata.namespace)
        ref = found.metadata.owner_references
        ours = any(r.uid == d.metadata.uid for r in ref)
        if ours and history.equal_ignore_hash(found.spec.template, d.spec.template):
            return found  # our informer was behind: the set is already there
        status = apps_pb2.DeploymentStatus()
        status.CopyFrom(d.status)
        status.collision_count = d.status.collision_count + 1  # absent reads as 0
        log.warning(
            "replicaset name collision",
            extra={"deployment": d.metadata.name, "replicaset": rs.metadata.name},
        )
        await progress.write_status(dc, d, status)
        raise
    if replicas(created) > 0:
        dc.recorder.event(
            d,
            "Normal",
            "ScalingReplicaSet",
            f"Scaled up replica set {created.metadata.name} to {replicas(created)}",
        )
    if history.set_deployment_revision(d, new_revision):
        await _update_deployment_meta(dc, d)
    if progress.has_progress_deadline(d):
        message = f'Created new replica set "{created.metadata.name}"'
        await _set_progressing(dc, d, st.NEW_RS_CREATED, message)
    return created


async def _set_progressing(
    dc: SyncContext, d: apps_pb2.Deployment, reason: str, message: str
) -> None:
    """Write the status with Progressing=True for `reason`."""
    status = apps_pb2.DeploymentStatus()
    status.CopyFrom(d.status)
    st.set_condition(status, st.new_condition(st.PROGRESSING, "True", reason, message))
    await progress.write_status(dc, d, status)


# ------------------------------------------------------------------ scaling


def is_scaling_event(d: apps_pb2.Deployment, rss: list[apps_pb2.ReplicaSet]) -> bool:
    """isScalingEvent: an active set was last sized for a different spec.replicas."""
    new_rs = history.find_new_replica_set(d, rss)
    old_rss = history.find_old_replica_sets(d, rss, new_rs)
    for rs in filter_active([new_rs, *old_rss]):
        desired = get_int_annotation(rs, DESIRED_REPLICAS_ANNOTATION)
        if desired is not None and desired != replicas(d):
            return True
    return False


def _saturated(d: apps_pb2.Deployment, rs: apps_pb2.ReplicaSet | None) -> bool:
    """IsSaturated: the new set alone already runs every replica the Deployment wants."""
    if rs is None:
        return False
    desired = get_int_annotation(rs, DESIRED_REPLICAS_ANNOTATION)
    return bool(
        replicas(rs) == replicas(d)
        and desired == replicas(d)
        and rs.status.available_replicas == replicas(d)
    )


def _fraction(rs: apps_pb2.ReplicaSet, d: apps_pb2.Deployment) -> int:
    """getReplicaSetFraction: this set's proportional share of the new size, as a change."""
    if replicas(rs) == 0:
        return 0
    deployment_replicas = replicas(d) + max_surge(d)
    annotated = get_int_annotation(rs, MAX_REPLICAS_ANNOTATION)
    if annotated is None or annotated == 0:
        annotated = int(d.status.replicas) or 1
    return round(replicas(rs) * deployment_replicas / annotated) - replicas(rs)


async def scale(
    dc: SyncContext,
    d: apps_pb2.Deployment,
    new_rs: apps_pb2.ReplicaSet | None,
    old_rss: list[apps_pb2.ReplicaSet],
) -> None:
    """scale: resize the sets after spec.replicas changed (proportionally mid-rollout)."""
    active = filter_active([new_rs, *old_rss])
    if len(active) <= 1:
        target = active[0] if active else None
        if target is None and new_rs is not None:
            target = new_rs
        if target is None:
            candidates = sorted(old_rss, key=creation_key)
            target = candidates[-1] if candidates else None
        if target is not None:
            await scale_replica_set_and_record_event(dc, target, replicas(d), d)
        return
    if _saturated(d, new_rs):
        for rs in filter_active(old_rss):
            await scale_replica_set_and_record_event(dc, rs, 0, d)
        return
    if not is_rolling_update(d):
        return
    allowed = replicas(d) + max_surge(d)
    to_add = allowed - sum_replicas(active)
    # Largest set first; among equals the newest first when growing, the oldest when shrinking
    # (ReplicaSetsBySizeNewer / ReplicaSetsBySizeOlder).
    ordered = sorted(active, key=creation_key, reverse=to_add > 0)
    ordered.sort(key=replicas, reverse=True)
    sizes: dict[str, int] = {}
    added = 0
    if to_add != 0:
        for rs in ordered:
            share = 0
            if added != to_add:
                fraction = _fraction(rs, d)
                remaining = to_add - added
                share = min(fraction, remaining) if to_add > 0 else max(fraction, remaining)
            sizes[rs.metadata.uid] = replicas(rs) + share
            added += share
    for i, rs in enumerate(ordered):
        size = sizes.get(rs.metadata.uid, replicas(rs))
        if i == 0 and added != to_add:
            size = max(size + to_add - added, 0)  # the leftover goes to the largest set
        await scale_replica_set_and_record_event(dc, rs, size, d)


async def scale_replica_set_and_record_event(
    dc: SyncContext, rs: apps_pb2.ReplicaSet, new_scale: int, d: apps_pb2.Deployment
) -> tuple[bool, apps_pb2.ReplicaSet]:
    """Scale `rs` to `new_scale` (no-op if already there); an event when the size changes."""
    if replicas(rs) == new_scale and not _annotations_stale(rs, d):
        return False, rs
    operation = "up" if replicas(rs) < new_scale else "down"
    return True, await scale_replica_set(dc, rs, new_scale, d, operation)


def _annotations_stale(rs: apps_pb2.ReplicaSet, d: apps_pb2.Deployment) -> bool:
    probe = apps_pb2.ReplicaSet()
    probe.metadata.annotations.update(rs.metadata.annotations)
    return set_replicas_annotations(probe, replicas(d), replicas(d) + max_surge(d))


async def scale_replica_set(
    dc: SyncContext, rs: apps_pb2.ReplicaSet, new_scale: int, d: apps_pb2.Deployment, operation: str
) -> apps_pb2.ReplicaSet:
    new = apps_pb2.ReplicaSet()
    new.CopyFrom(rs)
    size_changed = replicas(rs) != new_scale
    annotations_changed = set_replicas_annotations(new, replicas(d), replicas(d) + max_surge(d))
    if not (size_changed or annotations_changed):
        return rs
    new.spec.replicas = new_scale
    with tracing.step(
        "ScaleReplicaSet",
        parent=d if size_changed else None,  # a span for a size change, not an annotation's
        component=COMPONENT,
        obj=f"replicasets/{rs.metadata.namespace}/{rs.metadata.name}",
        why=_scale_why(rs, new_scale, d, operation),
        attributes={"tinykube.replicas.from": replicas(rs), "tinykube.replicas.to": new_scale},
    ):
        updated = await dc.client.update(new)  # resourceVersion from the cache: stale -> Conflict
    if size_changed:
        log.info(
            "scaled replicaset",
            extra={
                "deployment": d.metadata.name,
                "replicaset": rs.metadata.name,
                "from": replicas(rs),
                "to": new_scale,
            },
        )
        dc.recorder.event(
            d,
            "Normal",
            "ScalingReplicaSet",
            f"Scaled {operation} replica set {rs.metadata.name} to {new_scale}",
        )
    return updated


def _scale_why(
    rs: apps_pb2.ReplicaSet, new_scale: int, d: apps_pb2.Deployment, operation: str
) -> str:
    """The one line a trace shows for a scale: the step and what the Deployment stands at."""
    strategy = d.spec.strategy.type or "RollingUpdate"
    return (
        f"scaled {operation} {rs.metadata.name} from {replicas(rs)} to {new_scale}: "
        f"{d.metadata.name} wants {replicas(d)} ({strategy}, maxSurge {max_surge(d)}), "
        f"{d.status.available_replicas} available"
    )


# ------------------------------------------------------------------ paused / scaling sync


async def sync_paused(
    dc: SyncContext, d: apps_pb2.Deployment, rss: list[apps_pb2.ReplicaSet]
) -> None:
    """sync: reconcile sizes without rolling (paused Deployments, scaling events)."""
    new_rs, old_rss = await get_all_replica_sets_and_sync_revision(dc, d, rss, create=False)
    await scale(dc, d, new_rs, old_rss)
    if d.spec.paused:
        await history.cleanup_deployment(dc, old_rss, d)
    all_rss = [rs for rs in [new_rs, *old_rss] if rs is not None]
    await sync_deployment_status(dc, all_rss, new_rs, d)


async def sync_deployment_status(
    dc: SyncContext,
    all_rss: list[apps_pb2.ReplicaSet],
    new_rs: apps_pb2.ReplicaSet | None,
    d: apps_pb2.Deployment,
) -> None:
    """syncDeploymentStatus: write the computed status if it differs."""
    status = st.calculate_status(all_rss, new_rs, d)
    if status == d.status:
        return
    await progress.write_status(dc, d, status)
