"""Small pure functions of Deployments and their ReplicaSets (Kubernetes' deploymentutil).

maxSurge / maxUnavailable resolution (ResolveFenceposts). Both are
IntOrString: a count, or a percentage of spec.replicas. Percentages round
*up* for surge and *down* for unavailable, so rounding never makes a
rollout less safe than asked: with 10 replicas and 25% / 25%,

    maxSurge       = ceil(10 * 0.25)  = 3   (at most 13 pods)
    maxUnavailable = floor(10 * 0.25) = 2   (at least 8 available)

If both resolve to 0 (e.g. 1 replica with 25% / 25%: surge rounds up to 1
there, but 0% / 10% on 5 replicas gives 0 / 0), maxUnavailable becomes 1,
as in Kubernetes: otherwise no pod could ever be replaced. (Validation
rejects an explicit 0 / 0; this rule covers percentages that round to 0.)

NewRSNewReplicas -- how far the new set may grow now -- lives here too, as in
Kubernetes' deploymentutil, so that sync.py (which creates the new set) and
rolling.py (which grows it) share it without importing each other. It is
the one function here that reads the cache: through `dc.active_pod_count`
(context.py), for the surge guard rolling.py's docstring explains.

The annotations a Deployment writes on its ReplicaSets are named here too:
revision (which rollout a ReplicaSet belongs to), desired-replicas and
max-replicas (what the Deployment wanted when it last scaled the set; used
for proportional scaling).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from controllers.controller_utils import HasMetadata
from controllers.deployment.context import SyncContext
from protos import apps_pb2, meta_pb2

RS = apps_pb2.ReplicaSet

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
REVISION_HISTORY_ANNOTATION = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS_ANNOTATION = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS_ANNOTATION = "deployment.kubernetes.io/max-replicas"
CHANGE_CAUSE_ANNOTATION = "kubernetes.io/change-cause"
LAST_APPLIED_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"
DEFAULT_LABEL_KEY = "pod-template-hash"

ROLLING_UPDATE = "RollingUpdate"
RECREATE = "Recreate"


def scaled_value(value: meta_pb2.IntOrString, total: int, round_up: bool) -> int:
    """GetScaledValueFromIntOrPercent: an int as is, "N%" of `total` rounded as asked."""
    which = value.WhichOneof("value")
    if which is None:
        return 0
    if which == "int_val":
        return int(value.int_val)
    text = value.str_val
    if not text.endswith("%"):
        raise ValueError(
            f"invalid value for IntOrString: invalid type: string is not a percentage: {text!r}"
        )
    percent = int(text[:-1])
    exact = percent * total / 100
    return math.ceil(exact) if round_up else math.floor(exact)


def resolve_fenceposts(
    max_surge: meta_pb2.IntOrString, max_unavailable: meta_pb2.IntOrString, desired: int
) -> tuple[int, int]:
    """(surge, unavailable) in pods; unavailable is 1 when both would be 0."""
    surge = scaled_value(max_surge, desired, round_up=True)
    unavailable = scaled_value(max_unavailable, desired, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def replicas(obj: apps_pb2.ReplicaSet | apps_pb2.Deployment) -> int:
    """spec.replicas (the server defaults it, so absent means 0 here only for fakes)."""
    return int(obj.spec.replicas) if obj.spec.HasField("replicas") else 0


def is_rolling_update(d: apps_pb2.Deployment) -> bool:
    return (d.spec.strategy.type or ROLLING_UPDATE) == ROLLING_UPDATE


def max_surge(d: apps_pb2.Deployment) -> int:
    if not is_rolling_update(d):
        return 0
    ru = d.spec.strategy.rolling_update
    return resolve_fenceposts(ru.max_surge, ru.max_unavailable, replicas(d))[0]


def max_unavailable(d: apps_pb2.Deployment) -> int:
    """MaxUnavailable: never more than spec.replicas; 0 for Recreate or 0 replicas."""
    if not is_rolling_update(d) or replicas(d) == 0:
        return 0
    ru = d.spec.strategy.rolling_update
    unavailable = resolve_fenceposts(ru.max_surge, ru.max_unavailable, replicas(d))[1]
    return min(unavailable, replicas(d))


def filter_active(rss: Iterable[RS | None]) -> list[RS]:
    """FilterActiveReplicaSets: the sets that still want pods."""
    return [rs for rs in rss if rs is not None and replicas(rs) > 0]


def sum_replicas(rss: Iterable[RS | None]) -> int:
    """GetReplicaCountForReplicaSets: what the sets want."""
    return sum(replicas(rs) for rs in rss if rs is not None)


def sum_actual(rss: Iterable[RS | None]) -> int:
    """GetActualReplicaCountForReplicaSets: what the sets report having."""
    return sum(int(rs.status.replicas) for rs in rss if rs is not None)


def sum_ready(rss: Iterable[RS | None]) -> int:
    return sum(int(rs.status.ready_replicas) for rs in rss if rs is not None)


def available(rs: RS) -> int:
    """Available pods of one set, never counting more than it still wants.

    A set just scaled down may still report its old pods until its
    controller has deleted the surplus (or has observed its own deletions);
    the controller deletes not-ready pods first, so what remains available
    afterwards is at most spec.replicas. Counting the stale figure would let
    a rolling update remove more old pods than maxUnavailable allows.
    (Kubernetes reads status.availableReplicas as is; this is the safer bound.)
    """
    return min(int(rs.status.available_replicas), replicas(rs))


def sum_available(rss: Iterable[RS | None]) -> int:
    return sum(available(rs) for rs in rss if rs is not None)


def creation_key(obj: HasMetadata) -> tuple[int, int, str]:
    """Sort key: ReplicaSetsByCreationTimestamp (oldest first, then by name)."""
    ts = obj.metadata.creation_timestamp
    return (int(ts.seconds), int(ts.nanos), str(obj.metadata.name))


def deployment_complete(d: apps_pb2.Deployment, status: apps_pb2.DeploymentStatus) -> bool:
    """DeploymentComplete: every replica updated and available, and the spec observed."""
    want = replicas(d)
    return bool(
        status.updated_replicas == want
        and status.replicas == want
        and status.available_replicas == want
        and status.observed_generation >= d.metadata.generation
    )


def get_int_annotation(obj: HasMetadata, name: str) -> int | None:
    value = obj.metadata.annotations.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def set_replicas_annotations(rs: RS, desired: int, max_total: int) -> bool:
    """SetReplicasAnnotations: record desired / max replicas; True if anything changed."""
    changed = False
    ann = rs.metadata.annotations
    for name, value in (
        (DESIRED_REPLICAS_ANNOTATION, str(desired)),
        (MAX_REPLICAS_ANNOTATION, str(max_total)),
    ):
        if ann.get(name) != value:
            ann[name] = value
            changed = True
    return changed


# ------------------------------------------------------------------ the new set's size


def pods_counted(dc: SyncContext, rs: RS) -> int:
    """The pods a set may have: its spec, or more while surplus pods still terminate."""
    return max(replicas(rs), dc.active_pod_count(rs))


def new_rs_new_replicas(
    dc: SyncContext, d: apps_pb2.Deployment, all_rss: Iterable[RS | None], new_rs: RS | None
) -> int:
    """NewRSNewReplicas: the size the new set may have now."""
    current_new = replicas(new_rs) if new_rs is not None else 0
    if d.spec.strategy.type == "Recreate":
        return replicas(d)
    surge = max_surge(d)
    current = sum(pods_counted(dc, rs) for rs in all_rss if rs is not None)
    max_total = replicas(d) + surge
    if current >= max_total:
        return current_new
    scale_up = min(max_total - current, replicas(d) - current_new)
    return current_new + max(scale_up, 0)
