"""The RollingUpdate strategy (Kubernetes' deployment/rolling.go).

A rolling update replaces pods a few at a time within two bounds:

    at most   spec.replicas + maxSurge        pods exist
    at least  spec.replicas - maxUnavailable  pods are available

Each sync takes one step and returns; the ReplicaSet and pod events that
step causes bring the next sync:

    1. reconcile the new set: scale it up as far as the surge room allows;
    2. else reconcile the old sets: scale them down as far as availability allows
       (first the old pods that are not even available: removing them costs nothing);
    3. else, once complete, clean up old sets beyond revisionHistoryLimit;
    4. write the status (progress.sync_rollout_status).

Worked example: 10 replicas, maxSurge 3, maxUnavailable 2 (so at most 13
pods, at least 8 available), from set A (nginx:latest, 10 available) to the
new template nginx:1.25.

    step  action                                     A spec/avail  B spec/avail  pods  avail
    0     image changed                              10 / 10       -             10    10
    1     create B with the surge room 13-10 = 3     10 / 10        3 / 0        13    10
    2     B cannot grow (13 = 13); scale A down:
          maxScaledDown = 13 - 8 - (3 unavailable in B) = 2;
          available 10 - floor 8 = 2 -> A to 8         8 / 8         3 / 0        11     8
    3     surge room 13 - 11 = 2 -> B to 5             8 / 8         5 / 0        13     8
    4     three B pods become available; scale A:
          maxScaledDown = 13 - 8 - 2 = 3;
          available 8 + 3 - 8 = 3 -> A to 5            5 / 5         5 / 3        10     8
    5     surge room 3 -> B to 8                       5 / 5         8 / 3        13     8
    6     B has 5 available: maxScaledDown = 13-8-3 = 2,
          available 5 + 5 - 8 = 2 -> A to 3            3 / 3         8 / 5        11     8
    7     surge room 2 -> B to 10 (its target)         3 / 3        10 / 5        13     8
    8     B fully available: A to 0                    0 / 0        10 / 10       10    10

At no step are there more than 13 pods or fewer than 8 available ones,
whatever order the pods become ready in: every decision is computed from
the counts, and a stale count only makes a step smaller.

Two guards beyond Kubernetes' arithmetic, both because here the bounds are
checked on *pods*, not on spec.replicas:

* the pods a set has are counted as max(spec.replicas, active pods seen),
  so the new set is not grown into room that the old set's pods -- already
  scaled down in spec but not yet deleted -- still occupy (Kubernetes sums
  spec.replicas only, which briefly allows more pods than maxSurge;
  util.pods_counted, used by util.new_rs_new_replicas);
* an old set's available count is min(status.availableReplicas,
  spec.replicas) (util.available), so a status that predates the set's own
  scale-down is not taken for available pods.
"""

from __future__ import annotations

import controllers.deployment.history as history
import controllers.deployment.sync as sync
from controllers.deployment.context import SyncContext
from controllers.deployment.progress import sync_rollout_status
from controllers.deployment.util import (
    available,
    creation_key,
    deployment_complete,
    filter_active,
    max_unavailable,
    new_rs_new_replicas,
    pods_counted,
    replicas,
    sum_available,
    sum_replicas,
)
from protos import apps_pb2


async def rollout_rolling(
    dc: SyncContext, d: apps_pb2.Deployment, rss: list[apps_pb2.ReplicaSet]
) -> None:
    """rolloutRolling: one step of a rolling update, then the status."""
    new_rs, old_rss = await sync.get_all_replica_sets_and_sync_revision(dc, d, rss, create=True)
    all_rss = [rs for rs in [new_rs, *old_rss] if rs is not None]
    if await reconcile_new_replica_set(dc, all_rss, new_rs, d):
        await sync_rollout_status(dc, all_rss, new_rs, d)
        return
    if await reconcile_old_replica_sets(dc, all_rss, filter_active(old_rss), new_rs, d):
        await sync_rollout_status(dc, all_rss, new_rs, d)
        return
    if deployment_complete(d, d.status):
        await history.cleanup_deployment(dc, old_rss, d)
    await sync_rollout_status(dc, all_rss, new_rs, d)


async def reconcile_new_replica_set(
    dc: SyncContext,
    all_rss: list[apps_pb2.ReplicaSet],
    new_rs: apps_pb2.ReplicaSet | None,
    d: apps_pb2.Deployment,
) -> bool:
    if new_rs is None or replicas(new_rs) == replicas(d):
        return False
    if replicas(new_rs) > replicas(d):
        scaled, _ = await sync.scale_replica_set_and_record_event(dc, new_rs, replicas(d), d)
        return scaled
    others = [rs for rs in all_rss if rs.metadata.uid != new_rs.metadata.uid]
    target = new_rs_new_replicas(dc, d, [*others, new_rs], new_rs)
    scaled, _ = await sync.scale_replica_set_and_record_event(dc, new_rs, target, d)
    return scaled


async def reconcile_old_replica_sets(
    dc: SyncContext,
    all_rss: list[apps_pb2.ReplicaSet],
    old_rss: list[apps_pb2.ReplicaSet],
    new_rs: apps_pb2.ReplicaSet | None,
    d: apps_pb2.Deployment,
) -> bool:
    """reconcileOldReplicaSets: scale old sets down as far as availability allows."""
    if sum_replicas(old_rss) == 0:
        return False
    all_pods = sum(pods_counted(dc, rs) for rs in all_rss)
    min_available = replicas(d) - max_unavailable(d)
    new_unavailable = 0
    if new_rs is not None:
        new_unavailable = replicas(new_rs) - int(new_rs.status.available_replicas)
    max_scaled_down = all_pods - min_available - new_unavailable
    if max_scaled_down <= 0:
        return False
    old_rss, cleaned = await cleanup_unhealthy_replicas(dc, old_rss, d, max_scaled_down)
    remaining = [rs for rs in [*old_rss, new_rs] if rs is not None]
    scaled = await scale_down_old_replica_sets(dc, remaining, old_rss, d)
    return cleaned + scaled > 0


async def cleanup_unhealthy_replicas(
    dc: SyncContext, old_rss: list[apps_pb2.ReplicaSet], d: apps_pb2.Deployment, max_cleanup: int
) -> tuple[list[apps_pb2.ReplicaSet], int]:
    """Scale old sets down by their unavailable pods (up to max_cleanup): those cost nothing."""
    total = 0
    out: list[apps_pb2.ReplicaSet] = []
    for rs in sorted(old_rss, key=creation_key):
        if total >= max_cleanup or replicas(rs) == 0 or replicas(rs) <= available(rs):
            out.append(rs)
            continue
        count = min(max_cleanup - total, replicas(rs) - available(rs))
        _, updated = await sync.scale_replica_set_and_record_event(dc, rs, replicas(rs) - count, d)
        total += count
        out.append(updated)
    return out, total


async def scale_down_old_replica_sets(
    dc: SyncContext,
    all_rss: list[apps_pb2.ReplicaSet],
    old_rss: list[apps_pb2.ReplicaSet],
    d: apps_pb2.Deployment,
) -> int:
    """scaleDownOldReplicaSetsForRollingUpdate: remove available old pods above the floor."""
    min_available = replicas(d) - max_unavailable(d)
    available_now = sum_available(all_rss)
    if available_now <= min_available:
        return 0
    total_scale_down = available_now - min_available
    total = 0
    for rs in sorted(old_rss, key=creation_key):
        if total >= total_scale_down:
            break
        if replicas(rs) == 0:
            continue
        count = min(replicas(rs), total_scale_down - total)
        await sync.scale_replica_set_and_record_event(dc, rs, replicas(rs) - count, d)
        total += count
    return total
