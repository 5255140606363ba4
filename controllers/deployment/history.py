"""Revisions: which ReplicaSet is which rollout, cleanup of old ones, and rollback.

Every distinct pod template a Deployment has had is one ReplicaSet, named
`<deployment>-<pod-template-hash>`. The hash is computed from the template
itself, so the same template always maps to the same ReplicaSet name:

    hash = FNV-1a 32-bit over the template's deterministic protobuf encoding
           (+ status.collisionCount, when a name collision forced a new hash)
    name = "web-app-" + safe_encode(str(hash))      e.g. web-app-7b5d9c4f68

(Kubernetes hashes a deep dump of the Go struct; the deterministic protobuf
encoding is our equivalent stable serialisation. safe_encode maps each
character of the decimal hash onto an alphabet without vowels, as
Kubernetes' rand.SafeEncodeString does, so a name never spells a word.)

Finding the *new* ReplicaSet does not trust the hash: it compares templates
with the `pod-template-hash` label removed (EqualIgnoreHash), oldest match
first. So a hash function change between versions cannot orphan a rollout.

Revisions. `deployment.kubernetes.io/revision` on each ReplicaSet numbers
the rollouts: the new set gets max(old revisions) + 1, and the Deployment
carries the number of its current set. Rolling back to revision 2 of
[1, 2, 3] makes the revision-2 set the new one again; it is renumbered 4,
and `deployment.kubernetes.io/revision-history` on it remembers "2":

    before undo   rs-a: 1   rs-b: 2   rs-c: 3 (current)
    after undo    rs-a: 1   rs-b: 4 (current, history "2")   rs-c: 3

Cleanup (cleanupDeployment): old sets scaled to 0 beyond
spec.revisionHistoryLimit are deleted, lowest revision first. A set that
still has pods, or whose controller has not yet observed its last scale
(observedGeneration < generation), is kept for now.

Rollback is a client-side operation, as in modern kubectl (`rollout undo`):
copy the target revision's template (minus the hash label) into the
Deployment's spec. The controller then sees a template equal to an old set's
and rolls to it like any other change. `rollback_template` is that step.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from apimachinery import errors, tracecontext
from controllers.controller_utils import HasMetadata
from controllers.deployment.context import SyncContext
from controllers.deployment.util import (
    CHANGE_CAUSE_ANNOTATION,
    DEFAULT_LABEL_KEY,
    DESIRED_REPLICAS_ANNOTATION,
    LAST_APPLIED_ANNOTATION,
    MAX_REPLICAS_ANNOTATION,
    REVISION_ANNOTATION,
    REVISION_HISTORY_ANNOTATION,
    creation_key,
    replicas,
)
from protos import apps_pb2, core_pb2

log = logging.getLogger(__name__)

SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193

# Deployment annotations that are not copied onto its ReplicaSets (annotationsToSkip).
ANNOTATIONS_TO_SKIP = frozenset(
    {
        LAST_APPLIED_ANNOTATION,
        REVISION_ANNOTATION,
        REVISION_HISTORY_ANNOTATION,
        DESIRED_REPLICAS_ANNOTATION,
        MAX_REPLICAS_ANNOTATION,
        "deprecated.deployment.rollback.to",
        tracecontext.ANNOTATION,  # the API server's record of the last traced write
    }
)


# ------------------------------------------------------------------ hashing


def fnv32a(data: bytes) -> int:
    h = _FNV_OFFSET
    for byte in data:
        h ^= byte
        h = (h * _FNV_PRIME) & 0xFFFFFFFF
    return h


def safe_encode(text: str) -> str:
    return "".join(SAFE_ALPHABET[ord(c) % len(SAFE_ALPHABET)] for c in text)


def compute_hash(template: core_pb2.PodTemplateSpec, collision_count: int | None = None) -> str:
    """ComputeHash: the pod-template-hash of a template (stable across processes)."""
    data = template.SerializeToString(deterministic=True)
    if collision_count is not None:
        data += str(collision_count).encode()
    return safe_encode(str(fnv32a(data)))


def without_hash(template: core_pb2.PodTemplateSpec) -> core_pb2.PodTemplateSpec:
    copy = core_pb2.PodTemplateSpec()
    copy.CopyFrom(template)
    copy.metadata.labels.pop(DEFAULT_LABEL_KEY, None)
    return copy


def equal_ignore_hash(a: core_pb2.PodTemplateSpec, b: core_pb2.PodTemplateSpec) -> bool:
    return without_hash(a) == without_hash(b)


# ------------------------------------------------------------------ revisions


def revision(obj: HasMetadata) -> int:
    try:
        return int(obj.metadata.annotations.get(REVISION_ANNOTATION, "0"))
    except ValueError:
        return 0


def max_revision(rss: Iterable[apps_pb2.ReplicaSet]) -> int:
    return max((revision(rs) for rs in rss), default=0)


def find_new_replica_set(
    d: apps_pb2.Deployment, rss: Iterable[apps_pb2.ReplicaSet]
) -> apps_pb2.ReplicaSet | None:
    """FindNewReplicaSet: the oldest set whose template equals the Deployment's."""
    for rs in sorted(rss, key=creation_key):
        if equal_ignore_hash(rs.spec.template, d.spec.template):
            return rs
    return None


def find_old_replica_sets(
    d: apps_pb2.Deployment,
    rss: Iterable[apps_pb2.ReplicaSet],
    new_rs: apps_pb2.ReplicaSet | None,
) -> list[apps_pb2.ReplicaSet]:
    uid = new_rs.metadata.uid if new_rs is not None else None
    return [rs for rs in rss if rs.metadata.uid != uid]


def copy_annotations_to_rs(d: apps_pb2.Deployment, rs: apps_pb2.ReplicaSet) -> bool:
    """Copy the Deployment's own annotations (e.g. change-cause) onto the set; True if changed."""
    changed = False
    for key, value in d.metadata.annotations.items():
        if key in ANNOTATIONS_TO_SKIP:
            continue
        if rs.metadata.annotations.get(key) != value:
            rs.metadata.annotations[key] = value
            changed = True
    return changed


def set_new_rs_annotations(
    d: apps_pb2.Deployment, rs: apps_pb2.ReplicaSet, new_revision: int, exists: bool
) -> bool:
    """SetNewReplicaSetAnnotations: annotations copied, revision raised; True if changed."""
    changed = copy_annotations_to_rs(d, rs)
    old = revision(rs)
    if old < new_revision:
        rs.metadata.annotations[REVISION_ANNOTATION] = str(new_revision)
        changed = True
        if old > 0 and exists:
            history = rs.metadata.annotations.get(REVISION_HISTORY_ANNOTATION, "")
            parts = [p for p in history.split(",") if p]
            parts.append(str(old))
            rs.metadata.annotations[REVISION_HISTORY_ANNOTATION] = ",".join(parts)
    return changed


def set_deployment_revision(d: apps_pb2.Deployment, value: int) -> bool:
    if d.metadata.annotations.get(REVISION_ANNOTATION) == str(value):
        return False
    d.metadata.annotations[REVISION_ANNOTATION] = str(value)
    return True


# ------------------------------------------------------------------ cleanup


async def cleanup_deployment(
    dc: SyncContext, old_rss: list[apps_pb2.ReplicaSet], d: apps_pb2.Deployment
) -> None:
    """Delete old empty ReplicaSets beyond spec.revisionHistoryLimit, lowest revision first."""
    if not d.spec.HasField("revision_history_limit"):
        return
    limit = int(d.spec.revision_history_limit)
    cleanable = [rs for rs in old_rss if not rs.metadata.HasField("deletion_timestamp")]
    diff = len(cleanable) - limit
    if diff <= 0:
        return
    cleanable.sort(key=lambda rs: (revision(rs), creation_key(rs)))
    for rs in cleanable[:diff]:
        if (
            rs.status.replicas != 0
            or replicas(rs) != 0
            or rs.metadata.generation > rs.status.observed_generation
        ):
            continue
        log.info(
            "deleting old replicaset",
            extra={"deployment": d.metadata.name, "replicaset": rs.metadata.name},
        )
        try:
            await dc.client.delete(
                apps_pb2.ReplicaSet,
                rs.metadata.name,
                rs.metadata.namespace,
                precondition_uid=rs.metadata.uid,
            )
        except errors.NotFound:
            continue


# ------------------------------------------------------------------ rollback (client side)


class RevisionNotFound(LookupError):
    """The revision asked for (or any earlier one) is not in the Deployment's history."""


def rollback_target(rss: Iterable[apps_pb2.ReplicaSet], to_revision: int) -> apps_pb2.ReplicaSet:
    """The set a rollback goes to: revision `to_revision`, or (0) the one before the current."""
    by_revision = {revision(rs): rs for rs in rss if revision(rs) > 0}
    if to_revision > 0:
        if to_revision not in by_revision:
            raise RevisionNotFound(f"unable to find specified revision {to_revision} in history")
        return by_revision[to_revision]
    ordered = sorted(by_revision)
    if len(ordered) < 2:
        raise RevisionNotFound("no rollout history found for deployment")
    return by_revision[ordered[-2]]


def rollback_template(rs: apps_pb2.ReplicaSet) -> core_pb2.PodTemplateSpec:
    """The template to write into the Deployment for a rollback to `rs`."""
    return without_hash(rs.spec.template)


def change_cause(rs: apps_pb2.ReplicaSet) -> str:
    return str(rs.metadata.annotations.get(CHANGE_CAUSE_ANNOTATION, ""))
