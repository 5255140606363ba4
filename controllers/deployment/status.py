"""A Deployment's status, computed from its ReplicaSets (calculateStatus in sync.go).

The Deployment controller never counts pods for its status; it adds up what
its ReplicaSets report (each ReplicaSet controller counts its own pods):

    replicas            sum of status.replicas of every set (pods that exist, not terminating)
    updatedReplicas     status.replicas of the new set (pods with the current template)
    readyReplicas       sum of status.readyReplicas
    availableReplicas   sum of status.availableReplicas
    unavailableReplicas sum of spec.replicas of every set - availableReplicas (>= 0)
    observedGeneration  metadata.generation of the Deployment this status describes

Worked example, mid-rollout of 10 replicas with maxSurge 3 / maxUnavailable 2:
old set spec 5 (5 pods, 5 available), new set spec 8 (8 pods, 3 available):
replicas 13, updatedReplicas 8, availableReplicas 8, unavailableReplicas 5.
`tinykube rollout status` prints "8 out of 10 new replicas have been updated".

The Available condition says whether the Deployment has at least
spec.replicas - maxUnavailable available pods (MinimumReplicasAvailable /
MinimumReplicasUnavailable). Conditions keep their lastTransitionTime while
their status does not change, so a condition's age means something.
"""

from __future__ import annotations

from google.protobuf import timestamp_pb2

from controllers.deployment.util import (
    max_unavailable,
    replicas,
    sum_actual,
    sum_ready,
    sum_replicas,
)
from protos import apps_pb2

AVAILABLE = "Available"
PROGRESSING = "Progressing"

# Reasons (Kubernetes' deploymentutil constants)
MINIMUM_REPLICAS_AVAILABLE = "MinimumReplicasAvailable"
MINIMUM_REPLICAS_UNAVAILABLE = "MinimumReplicasUnavailable"
NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
RS_UPDATED = "ReplicaSetUpdated"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"
FAILED_RS_CREATE = "ReplicaSetCreateError"


def now_timestamp() -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.GetCurrentTime()
    ts.nanos = 0
    return ts


def get_condition(
    status: apps_pb2.DeploymentStatus, type_: str
) -> apps_pb2.DeploymentCondition | None:
    for cond in status.conditions:
        if cond.type == type_:
            return cond
    return None


def new_condition(
    type_: str, status: str, reason: str, message: str
) -> apps_pb2.DeploymentCondition:
    now = now_timestamp()
    return apps_pb2.DeploymentCondition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        last_update_time=now,
        last_transition_time=now,
    )


def set_condition(status: apps_pb2.DeploymentStatus, cond: apps_pb2.DeploymentCondition) -> None:
    """SetDeploymentCondition: replace the condition of this type, keeping its transition time.

    Setting a condition identical in status and reason is a no-op, so a
    steady state writes nothing.
    """
    current = get_condition(status, cond.type)
    if current is not None and current.status == cond.status and current.reason == cond.reason:
        return
    if current is not None and current.status == cond.status:
        cond.last_transition_time.CopyFrom(current.last_transition_time)
    remove_condition(status, cond.type)
    status.conditions.append(cond)


def remove_condition(status: apps_pb2.DeploymentStatus, type_: str) -> None:
    keep = [c for c in status.conditions if c.type != type_]
    del status.conditions[:]
    status.conditions.extend(keep)


def calculate_status(
    all_rss: list[apps_pb2.ReplicaSet],
    new_rs: apps_pb2.ReplicaSet | None,
    d: apps_pb2.Deployment,
) -> apps_pb2.DeploymentStatus:
    """calculateStatus: the status the Deployment should report now."""
    available = sum(int(rs.status.available_replicas) for rs in all_rss)
    status = apps_pb2.DeploymentStatus()
    status.CopyFrom(d.status)
    status.observed_generation = d.metadata.generation
    status.replicas = sum_actual(all_rss)
    status.updated_replicas = int(new_rs.status.replicas) if new_rs is not None else 0
    status.ready_replicas = sum_ready(all_rss)
    status.available_replicas = available
    status.unavailable_replicas = max(sum_replicas(all_rss) - available, 0)
    if available >= replicas(d) - max_unavailable(d):
        cond = new_condition(
            AVAILABLE, "True", MINIMUM_REPLICAS_AVAILABLE, "Deployment has minimum availability."
        )
    else:
        cond = new_condition(
            AVAILABLE,
            "False",
            MINIMUM_REPLICAS_UNAVAILABLE,
            "Deployment does not have minimum availability.",
        )
    set_condition(status, cond)
    return status
