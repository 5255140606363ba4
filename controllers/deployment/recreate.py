"""The Recreate strategy (Kubernetes' deployment/recreate.go).

Recreate never runs old and new pods side by side: it scales every old set
to 0, waits until no old pod is left running -- terminating pods included,
since a pod in its grace period may still hold a port, a lock or a volume --
and only then creates (or scales up) the new set to spec.replicas. The cost
is downtime between the last old pod and the first new one; the gain is
that two versions never overlap, which some applications require (a schema
migration, a singleton).

Worked example: 3 replicas, set A (v1) running, template changed to v2.

    sync 1  A 3 -> 0                      A's pods get a deletionTimestamp
    sync 2  A's pods still terminating    wait (status only)
    sync 3  A's last pod gone             create B (v2) with 3 replicas
    sync 4  B's pods become available     Progressing: NewReplicaSetAvailable

Each step is one sync; the pod deletions of step 2 are what wake step 3
(the controller watches pods for exactly this).
"""

from __future__ import annotations

import controllers.deployment.history as history
import controllers.deployment.sync as sync
from controllers.deployment.context import SyncContext
from controllers.deployment.progress import sync_rollout_status
from controllers.deployment.util import (
    deployment_complete,
    filter_active,
    replicas,
)
from protos import apps_pb2


async def rollout_recreate(
    dc: SyncContext, d: apps_pb2.Deployment, rss: list[apps_pb2.ReplicaSet]
) -> None:
    new_rs, old_rss = await sync.get_all_replica_sets_and_sync_revision(dc, d, rss, create=False)
    all_rss = [rs for rs in [new_rs, *old_rss] if rs is not None]
    if await scale_down_old_replica_sets(dc, filter_active(old_rss), d):
        await sync_rollout_status(dc, all_rss, new_rs, d)
        return
    if old_pods_running(dc, new_rs, old_rss):
        await sync_rollout_status(dc, all_rss, new_rs, d)
        return
    if new_rs is None:
        new_rs, old_rss = await sync.get_all_replica_sets_and_sync_revision(dc, d, rss, create=True)
        all_rss = [rs for rs in [new_rs, *old_rss] if rs is not None]
    if new_rs is not None:
        _, new_rs = await sync.scale_replica_set_and_record_event(dc, new_rs, replicas(d), d)
        all_rss = [rs for rs in [new_rs, *old_rss] if rs is not None]
    if deployment_complete(d, d.status):
        await history.cleanup_deployment(dc, old_rss, d)
    await sync_rollout_status(dc, all_rss, new_rs, d)


async def scale_down_old_replica_sets(
    dc: SyncContext, old_rss: list[apps_pb2.ReplicaSet], d: apps_pb2.Deployment
) -> bool:
    scaled = False
    for rs in old_rss:
        if replicas(rs) == 0:
            continue
        changed, _ = await sync.scale_replica_set_and_record_event(dc, rs, 0, d)
        scaled = scaled or changed
    return scaled


def old_pods_running(
    dc: SyncContext, new_rs: apps_pb2.ReplicaSet | None, old_rss: list[apps_pb2.ReplicaSet]
) -> bool:
    """oldPodsRunning: any old set reports pods, or any old pod is not yet finished/gone."""
    if sum(int(rs.status.replicas) for rs in old_rss) > 0:
        return True
    for rs in old_rss:
        if new_rs is not None and rs.metadata.uid == new_rs.metadata.uid:
            continue
        for pod in dc.pods_of(rs):
            if pod.status.phase not in ("Succeeded", "Failed"):
                return True
    return False
