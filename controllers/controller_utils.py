"""Helpers the workload controllers share (Kubernetes' pkg/controller/controller_utils.go).

Three things live here, each the counterpart of a piece of controller_utils.go:

ControllerExpectations -- why a controller does not create the same pod twice.
    A controller reads the world from its informer cache, and the cache lags
    the API server by one watch event. Without care, this happens:

        sync #1  cache: 0 pods, want 3 -> create 3 pods          (server now has 3)
        event    some other pod event wakes the key again
        sync #2  cache: still 0 pods (the ADDED events are in flight) -> create 3 more

    So before creating N pods the controller records "expect N creations"
    for its key; each ADDED pod event it observes lowers the count; and
    `sync` only manages replicas again once the count is back to zero
    (deletions likewise, tracked by pod key so a pod seen terminating and
    then gone counts once). A create that fails lowers the count at once:
    no event will ever come for it. An expectation older than five minutes
    is ignored (a lost event must not wedge the controller forever).

    Restarts: expectations live only in memory. A restarted controller
    has none, so its first sync trusts the cache -- and that is safe,
    because the manager starts workers only after every informer has
    listed, and a list is a consistent snapshot that includes every create
    the server acknowledged before the restart. The old process's creates
    are *in* the list; the new process computes the diff from them and
    creates no extra replica. (The one window left is a create the old
    process sent but the server commits after the new process listed;
    Kubernetes has the same window, and the surplus is deleted by the next
    sync. A restart a moment after the kill, as any real one is, closes it.)

Pod predicates -- active, ready, available, as the controllers count pods:
    active    = not terminating (no deletionTimestamp) and not Succeeded/Failed
    ready     = condition Ready=True
    available = ready for at least minReadySeconds (by the condition's
                lastTransitionTime)

Ownership -- `owner_reference(obj)` builds the controller=true,
blockOwnerDeletion=true reference a ReplicaSet puts on its pods and a
Deployment on its ReplicaSets; `controller_ref(obj)` finds it again; the
index CONTROLLER_UID_INDEX files cached objects by their controller's uid so
"the pods of this ReplicaSet" is a dictionary lookup, not a scan. (Which
objects a controller owns at all is decided by claiming: claim.py.)

Ownership works on every kind alike, so its functions take small Protocols
rather than one message class: `HasMetadata` (every API object: it has
ObjectMeta), `HasKind` (apiVersion and kind too, to be named in a
reference) and `HasSelector` (a spec with a label selector: ReplicaSets,
Deployments). The generated messages satisfy them as they are.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from apimachinery.cache import Indexer, IndexFunc, meta_namespace_key
from protos import core_pb2, meta_pb2

log = logging.getLogger(__name__)

CONTROLLER_UID_INDEX = "workloads.controller-uid"
NAMESPACE_INDEX = "workloads.namespace"
EXPECTATIONS_TTL_SECONDS = 300.0


class HasMetadata(Protocol):
    """Any API object: each kind has ObjectMeta (the base Message class does not say so)."""

    @property
    def metadata(self) -> meta_pb2.ObjectMeta: ...


class HasKind(HasMetadata, Protocol):
    """An object that can be named in an owner reference."""

    @property
    def api_version(self) -> str: ...

    @property
    def kind(self) -> str: ...


class _SpecWithSelector(Protocol):
    @property
    def selector(self) -> meta_pb2.LabelSelector: ...


class HasSelector(HasMetadata, Protocol):
    """An object whose spec selects others by label (a ReplicaSet, a Deployment)."""

    @property
    def spec(self) -> _SpecWithSelector: ...


T = TypeVar("T")
ObjT = TypeVar("ObjT", bound=HasMetadata)
SelT = TypeVar("SelT", bound=HasSelector)


# ------------------------------------------------------------------ indices


def controller_uid_index(obj: HasMetadata) -> list[str]:
    ref = controller_ref(obj)
    return [ref.uid] if ref is not None else []


def namespace_index(obj: HasMetadata) -> str:
    return str(obj.metadata.namespace)


def ensure_index(store: Indexer[T], name: str, fn: IndexFunc) -> None:
    """Add an index unless a controller sharing this informer already did."""
    with contextlib.suppress(ValueError):
        store.add_index(name, fn)


# ------------------------------------------------------------------ ownership


def owner_reference(owner: HasKind) -> meta_pb2.OwnerReference:
    """The controller reference `owner` puts on what it creates (metav1.NewControllerRef)."""
    return meta_pb2.OwnerReference(
        api_version=owner.api_version,
        kind=owner.kind,
        name=owner.metadata.name,
        uid=owner.metadata.uid,
        controller=True,
        block_owner_deletion=True,
    )


def controller_ref(obj: HasMetadata) -> meta_pb2.OwnerReference | None:
    """metav1.GetControllerOf: the owner reference with controller=true, if any."""
    for ref in obj.metadata.owner_references:
        if ref.HasField("controller") and ref.controller:
            return ref
    return None


# ------------------------------------------------------------------ pods


def resolve_controller_ref(owners: Indexer[ObjT], obj: HasMetadata, kind: str) -> ObjT | None:
    """The cached owner of kind `kind` that controls `obj`, or None (Kubernetes'
    resolveControllerRef): the name must resolve and the uid must match, so a new
    owner that took a deleted owner's name is not mistaken for it."""
    ref = controller_ref(obj)
    if ref is None or ref.kind != kind:
        return None
    owner = owners.get(f"{obj.metadata.namespace}/{ref.name}")
    if owner is None or owner.metadata.uid != ref.uid:
        return None
    return owner


def selecting(owners: Indexer[SelT], obj: HasMetadata) -> list[SelT]:
    """The cached owners in `obj`'s namespace whose selector matches its labels."""
    from apimachinery import labels

    return [
        owner
        for owner in owners.by_index(NAMESPACE_INDEX, obj.metadata.namespace)
        if labels.from_label_selector(owner.spec.selector).matches(obj.metadata.labels)
    ]


def is_pod_active(pod: core_pb2.Pod) -> bool:
    return not pod.metadata.HasField("deletion_timestamp") and pod.status.phase not in (
        "Succeeded",
        "Failed",
    )


def _ready_condition(pod: core_pb2.Pod) -> core_pb2.PodCondition | None:
    for cond in pod.status.conditions:
        if cond.type == "Ready":
            return cond
    return None


def is_pod_ready(pod: core_pb2.Pod) -> bool:
    cond = _ready_condition(pod)
    return cond is not None and cond.status == "True"


def ready_since(pod: core_pb2.Pod) -> float:
    """When the pod last became Ready (seconds since the epoch); 0 when not ready."""
    cond = _ready_condition(pod)
    if cond is None or cond.status != "True":
        return 0.0
    ts = cond.last_transition_time
    return float(ts.seconds) + float(ts.nanos) / 1e9


def is_pod_available(pod: core_pb2.Pod, min_ready_seconds: int, now: float) -> bool:
    """podutil.IsPodAvailable: Ready, and for at least minReadySeconds."""
    if not is_pod_ready(pod):
        return False
    if min_ready_seconds <= 0:
        return True
    since = ready_since(pod)
    return since > 0 and since + min_ready_seconds <= now


def restart_count(pod: core_pb2.Pod) -> int:
    return sum(int(s.restart_count) for s in pod.status.container_statuses)


_PHASE_RANK = {"Pending": 0, "Unknown": 1, "Running": 2}


def deletion_order_key(
    pod: core_pb2.Pod, colocated: int
) -> tuple[int, int, int, int, float, int, float]:
    """Sort key for ActivePodsWithRanks: the pod to delete first sorts first.

    1. not yet scheduled before scheduled;  2. Pending < Unknown < Running;
    3. not ready before ready;  4. on a node crowded with related pods first
    (`colocated`, the rank); 5. ready for a shorter time first; 6. more
    restarts first; 7. newer before older.
    """
    created = pod.metadata.creation_timestamp
    return (
        1 if pod.spec.node_name else 0,
        _PHASE_RANK.get(pod.status.phase, 1),
        1 if is_pod_ready(pod) else 0,
        -colocated,
        -ready_since(pod),
        -restart_count(pod),
        -(created.seconds + created.nanos / 1e9),
    )


def pods_to_delete(
    pods: list[core_pb2.Pod], related: Iterable[core_pb2.Pod], count: int
) -> list[core_pb2.Pod]:
    """getPodsToDelete: the `count` pods a scale-down removes (cheapest to lose first).

    The rank of a pod is how many related active pods (of this ReplicaSet and
    its siblings under the same Deployment) share its node: deleting from
    the most crowded node first keeps the replicas spread.
    """
    per_node: dict[str, int] = {}
    for pod in related:
        if pod.spec.node_name and is_pod_active(pod):
            per_node[pod.spec.node_name] = per_node.get(pod.spec.node_name, 0) + 1
    ranked = sorted(
        pods,
        key=lambda p: deletion_order_key(
            p, per_node.get(p.spec.node_name, 0) if p.spec.node_name else 0
        ),
    )
    return ranked[:count]


# ------------------------------------------------------------------ expectations


@dataclass
class _Expectation:
    add: int = 0
    delete: int = 0
    deleting: set[str] = field(default_factory=set)
    stamp: float = field(default_factory=time.monotonic)

    def fulfilled(self) -> bool:
        return self.add <= 0 and self.delete <= 0


class ControllerExpectations:
    """Kubernetes' UIDTrackingControllerExpectations, keyed by controller key (see above)."""

    def __init__(self, ttl: float = EXPECTATIONS_TTL_SECONDS) -> None:
        self.ttl = ttl
        self._items: dict[str, _Expectation] = {}

    def satisfied(self, key: str) -> bool:
        """True when the cache has caught up with this controller's last creates/deletes."""
        exp = self._items.get(key)
        if exp is None or exp.fulfilled():
            return True
        if time.monotonic() - exp.stamp > self.ttl:
            log.info(
                "expectations expired",
                extra={"key": key, "add": exp.add, "delete": exp.delete},
            )
            return True
        return False

    def expect_creations(self, key: str, count: int) -> None:
        self._items[key] = _Expectation(add=count)

    def expect_deletions(self, key: str, pod_keys: Iterable[str]) -> None:
        keys = set(pod_keys)
        self._items[key] = _Expectation(delete=len(keys), deleting=keys)

    def creation_observed(self, key: str) -> None:
        exp = self._items.get(key)
        if exp is not None and exp.add > 0:
            exp.add -= 1

    def deletion_observed(self, key: str, pod_key: str) -> None:
        exp = self._items.get(key)
        if exp is not None and pod_key in exp.deleting:
            exp.deleting.discard(pod_key)
            exp.delete -= 1

    def pending(self, key: str) -> tuple[int, int]:
        """(creations, deletions) still expected: for tests and logs."""
        exp = self._items.get(key)
        return (exp.add, exp.delete) if exp is not None else (0, 0)

    def forget(self, key: str) -> None:
        self._items.pop(key, None)


def pod_key(pod: core_pb2.Pod) -> str:
    return meta_namespace_key(pod)
