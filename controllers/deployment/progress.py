"""Rollout progress: the Progressing condition and the progress deadline (progress.go).

A rollout can stall: the new image does not exist, the pods crash, the
cluster is full. Nothing fails loudly then -- the new ReplicaSet just never
becomes available. spec.progressDeadlineSeconds (default 600) turns that
silence into a condition a user and `rollout status` can see:

    Progressing=True   NewReplicaSetCreated   Created new replica set "web-7b5d9"
    Progressing=True   FoundNewReplicaSet     Found new replica set "web-7b5d9"
    Progressing=True   ReplicaSetUpdated      ReplicaSet "web-7b5d9" is progressing.
    Progressing=True   NewReplicaSetAvailable ReplicaSet "web-7b5d9" has successfully progressed.
    Progressing=False  ProgressDeadlineExceeded ReplicaSet "web-7b5d9" has timed out progressing.
    Progressing=Unknown DeploymentPaused / DeploymentResumed

"Progress" is any step forward since the last status: more updated,
ready or available replicas, or fewer old ones. Each step refreshes the
condition's lastUpdateTime; the deadline is measured from it. So a rollout
of 1000 slow pods never times out while it advances, and one stuck pod
times out `progressDeadlineSeconds` after the last step.

Worked example with progressDeadlineSeconds 10: the image is changed at
t=0 (ReplicaSetUpdated, lastUpdateTime 0); one new pod becomes available at
t=4 (progress: lastUpdateTime 4); nothing else happens; at t=14 the key is
requeued (requeue_stuck_deployment scheduled it) and the sync sets
Progressing=False ProgressDeadlineExceeded. A later step of progress flips
it back to True (ReplicaSetUpdated).

A paused Deployment makes no progress on purpose, so no deadline applies:
pausing sets Progressing=Unknown DeploymentPaused, resuming sets
DeploymentResumed, which restarts the clock.
"""

from __future__ import annotations

import logging
import time

import controllers.deployment.status as st
from controllers.deployment.context import SyncContext
from controllers.deployment.util import deployment_complete
from protos import apps_pb2

log = logging.getLogger(__name__)

MAX_INT32 = 2**31 - 1


def has_progress_deadline(d: apps_pb2.Deployment) -> bool:
    return bool(
        d.spec.HasField("progress_deadline_seconds")
        and d.spec.progress_deadline_seconds != MAX_INT32
    )


def deployment_progressing(d: apps_pb2.Deployment, new_status: apps_pb2.DeploymentStatus) -> bool:
    """DeploymentProgressing: did this status move the rollout forward?"""
    old = d.status
    new_old_replicas = new_status.replicas - new_status.updated_replicas
    old_old_replicas = old.replicas - old.updated_replicas
    return bool(
        new_status.updated_replicas > old.updated_replicas
        or new_old_replicas < old_old_replicas
        or new_status.ready_replicas > old.ready_replicas
        or new_status.available_replicas > old.available_replicas
    )


def deployment_timed_out(
    d: apps_pb2.Deployment, new_status: apps_pb2.DeploymentStatus, now: float
) -> bool:
    """DeploymentTimedOut: no progress for progressDeadlineSeconds since the last update."""
    if not has_progress_deadline(d):
        return False
    cond = st.get_condition(new_status, st.PROGRESSING)
    if cond is None or cond.reason == st.NEW_RS_AVAILABLE:
        return False
    if cond.reason == st.TIMED_OUT:
        return True
    return bool(cond.last_update_time.seconds + d.spec.progress_deadline_seconds < now)


async def sync_rollout_status(
    dc: SyncContext,
    all_rss: list[apps_pb2.ReplicaSet],
    new_rs: apps_pb2.ReplicaSet | None,
    d: apps_pb2.Deployment,
) -> None:
    """syncRolloutStatus: compute status + Progressing, write if changed, else maybe requeue."""
    new_status = st.calculate_status(all_rss, new_rs, d)
    now = time.time()
    if has_progress_deadline(d) and not d.spec.paused:
        current = st.get_condition(d.status, st.PROGRESSING)
        name = new_rs.metadata.name if new_rs is not None else ""
        if deployment_complete(d, new_status):
            if current is None or current.reason != st.NEW_RS_AVAILABLE:
                msg = f'ReplicaSet "{name}" has successfully progressed.'
                if not name:
                    msg = f'Deployment "{d.metadata.name}" has successfully progressed.'
                st.set_condition(
                    new_status, st.new_condition(st.PROGRESSING, "True", st.NEW_RS_AVAILABLE, msg)
                )
        elif deployment_progressing(d, new_status):
            msg = (
                f'ReplicaSet "{name}" is progressing.'
                if name
                else (f'Deployment "{d.metadata.name}" is progressing.')
            )
            cond = st.new_condition(st.PROGRESSING, "True", st.RS_UPDATED, msg)
            if current is not None and current.status == "True":
                cond.last_transition_time.CopyFrom(current.last_transition_time)
            st.remove_condition(new_status, st.PROGRESSING)  # refresh lastUpdateTime
            new_status.conditions.append(cond)
        elif deployment_timed_out(d, new_status, now):
            msg = (
                f'ReplicaSet "{name}" has timed out progressing.'
                if name
                else (f'Deployment "{d.metadata.name}" has timed out progressing.')
            )
            st.set_condition(
                new_status, st.new_condition(st.PROGRESSING, "False", st.TIMED_OUT, msg)
            )
            if current is None or current.reason != st.TIMED_OUT:
                dc.recorder.event(d, "Warning", st.TIMED_OUT, msg)
    if new_status == d.status:
        requeue_stuck_deployment(dc, d, new_status, now)
        return
    await write_status(dc, d, new_status)


def requeue_stuck_deployment(
    dc: SyncContext, d: apps_pb2.Deployment, status: apps_pb2.DeploymentStatus, now: float
) -> None:
    """Check the deadline again when it would pass, since no event will say so."""
    cond = st.get_condition(status, st.PROGRESSING)
    if (
        not has_progress_deadline(d)
        or d.spec.paused
        or cond is None
        or cond.reason in (st.NEW_RS_AVAILABLE, st.TIMED_OUT)
        or deployment_complete(d, status)
    ):
        return
    after = cond.last_update_time.seconds + d.spec.progress_deadline_seconds - now
    dc.enqueue_after(d, max(after, 0.0) + 1.0)


async def write_status(
    dc: SyncContext, d: apps_pb2.Deployment, status: apps_pb2.DeploymentStatus
) -> None:
    new = apps_pb2.Deployment()
    new.CopyFrom(d)
    new.status.CopyFrom(status)
    updated = await dc.client.update_status(new)
    d.CopyFrom(updated)


async def check_paused_conditions(dc: SyncContext, d: apps_pb2.Deployment) -> None:
    """checkPausedConditions: Progressing=Unknown DeploymentPaused / DeploymentResumed."""
    if not has_progress_deadline(d):
        return
    cond = st.get_condition(d.status, st.PROGRESSING)
    if cond is not None and cond.reason == st.TIMED_OUT:
        return  # a timed-out rollout stays timed out until it progresses
    paused_now = cond is not None and cond.reason == st.PAUSED
    status = apps_pb2.DeploymentStatus()
    status.CopyFrom(d.status)
    if d.spec.paused and not paused_now:
        st.set_condition(
            status,
            st.new_condition(st.PROGRESSING, "Unknown", st.PAUSED, "Deployment is paused"),
        )
    elif not d.spec.paused and paused_now:
        st.set_condition(
            status,
            st.new_condition(st.PROGRESSING, "Unknown", st.RESUMED, "Deployment is resumed"),
        )
    else:
        return
    await write_status(dc, d, status)
