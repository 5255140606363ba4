"""Pure pieces of the Deployment controller: fenceposts, hashing, revisions, the rolling steps."""

from __future__ import annotations

from typing import Any

import pytest

from controllers.deployment import history, progress, rolling, util
from controllers.deployment import status as st
from controllers.deployment.util import (
    max_surge,
    max_unavailable,
    resolve_fenceposts,
    scaled_value,
    set_replicas_annotations,
)
from protos import apps_pb2, meta_pb2
from tests.unit.controllers.workloads import deployment


def _ios(v: int | str) -> meta_pb2.IntOrString:
    return (
        meta_pb2.IntOrString(int_val=v) if isinstance(v, int) else meta_pb2.IntOrString(str_val=v)
    )


@pytest.mark.parametrize(
    ("surge", "unavailable", "replicas", "want"),
    [
        ("25%", "25%", 10, (3, 2)),  # surge rounds up, unavailable rounds down
        (3, 2, 10, (3, 2)),
        ("0%", "10%", 5, (0, 1)),  # both 0 after rounding -> unavailable 1
        ("50%", "50%", 1, (1, 0)),
        (0, "100%", 4, (0, 4)),
    ],
)
def test_resolve_fenceposts(
    surge: int | str, unavailable: int | str, replicas: int, want: tuple[int, int]
) -> None:
    assert resolve_fenceposts(_ios(surge), _ios(unavailable), replicas) == want


def test_max_unavailable_is_capped_and_zero_for_recreate() -> None:
    d = deployment("web", 3, max_surge=1, max_unavailable=5)
    assert (max_surge(d), max_unavailable(d)) == (1, 3)
    assert max_unavailable(deployment("web", 3, strategy="Recreate")) == 0
    assert scaled_value(_ios("33%"), 10, round_up=True) == 4
    with pytest.raises(ValueError):
        scaled_value(_ios("abc"), 10, round_up=True)


def test_pod_template_hash_is_stable_and_template_sensitive() -> None:
    a = deployment("web", 1, "nginx:1").spec.template
    b = deployment("web", 1, "nginx:1").spec.template
    c = deployment("web", 1, "nginx:2").spec.template
    assert history.compute_hash(a) == history.compute_hash(b)
    assert history.compute_hash(a) != history.compute_hash(c)
    assert history.compute_hash(a) != history.compute_hash(a, collision_count=1)
    assert set(history.compute_hash(a)) <= set(history.SAFE_ALPHABET)
    labelled = type(a)()
    labelled.CopyFrom(a)
    labelled.metadata.labels["pod-template-hash"] = "xyz"
    assert history.equal_ignore_hash(labelled, a)
    assert not history.equal_ignore_hash(labelled, c)


def _rs(name: str, revision: int, replicas: int = 0) -> apps_pb2.ReplicaSet:
    rs = apps_pb2.ReplicaSet(api_version="apps/v1", kind="ReplicaSet")
    rs.metadata.name = name
    rs.metadata.uid = f"uid-{name}"
    rs.metadata.generation = 1
    if revision:
        rs.metadata.annotations["deployment.kubernetes.io/revision"] = str(revision)
    rs.spec.replicas = replicas
    return rs


def test_rollback_target_and_revision_renumbering() -> None:
    rss = [_rs("a", 1), _rs("b", 2), _rs("c", 3)]
    assert history.rollback_target(rss, 0).metadata.name == "b"
    assert history.rollback_target(rss, 1).metadata.name == "a"
    with pytest.raises(history.RevisionNotFound, match="revision 7"):
        history.rollback_target(rss, 7)
    with pytest.raises(history.RevisionNotFound):
        history.rollback_target(rss[:1], 0)
    d = deployment("web", 1)
    d.metadata.annotations["kubernetes.io/change-cause"] = "undo"
    b = rss[1]
    assert history.set_new_rs_annotations(d, b, 4, exists=True)
    assert history.revision(b) == 4
    assert b.metadata.annotations["deployment.kubernetes.io/revision-history"] == "2"
    assert history.change_cause(b) == "undo"
    assert not history.set_new_rs_annotations(d, b, 4, exists=True)


def test_progress_and_timeout() -> None:
    d = deployment("web", 2, progress_deadline_seconds=10)
    d.status.updated_replicas = 1
    new = apps_pb2.DeploymentStatus()
    new.CopyFrom(d.status)
    assert not progress.deployment_progressing(d, new)
    new.available_replicas = 1
    assert progress.deployment_progressing(d, new)
    cond = st.new_condition("Progressing", "True", st.RS_UPDATED, "x")
    cond.last_update_time.seconds = 100
    new.conditions.append(cond)
    assert not progress.deployment_timed_out(d, new, now=105)
    assert progress.deployment_timed_out(d, new, now=111)


def test_available_condition() -> None:
    d = deployment("web", 10, max_surge=3, max_unavailable=2)
    a, b = _rs("a", 1, 5), _rs("b", 2, 8)
    a.status.replicas, a.status.available_replicas = 5, 5
    b.status.replicas, b.status.available_replicas = 8, 3
    s = st.calculate_status([a, b], b, d)
    assert (s.replicas, s.updated_replicas, s.available_replicas, s.unavailable_replicas) == (
        13,
        8,
        8,
        5,
    )
    available = st.get_condition(s, "Available")
    assert available is not None
    assert (available.status, available.reason) == ("True", "MinimumReplicasAvailable")
    b.status.available_replicas = 2
    s = st.calculate_status([a, b], b, d)
    available = st.get_condition(s, "Available")
    assert available is not None and available.reason == "MinimumReplicasUnavailable"


# ------------------------------------------------------------------ the worked example


class _Client:
    async def update(self, obj: Any) -> Any:
        copy = type(obj)()
        copy.CopyFrom(obj)
        copy.metadata.generation += 1
        return copy


class _Recorder:
    def event(self, *args: Any) -> None:
        pass


class _DC:
    """Just what rolling.py touches: a client, a recorder, pod counts (= spec here)."""

    client = _Client()
    recorder = _Recorder()

    def active_pod_count(self, rs: Any) -> int:
        return int(rs.spec.replicas)


async def test_rolling_update_worked_example_step_by_step() -> None:
    """The table in rolling.py's docstring, one decision at a time."""
    dc: Any = _DC()
    d = deployment("web-app", 10, max_surge=3, max_unavailable=2)
    a = _rs("a", 1, 10)
    a.status.available_replicas = 10
    # step 1: the new set is created with the surge room
    assert util.new_rs_new_replicas(dc, d, [a], None) == 3
    b = _rs("b", 2, 3)
    for rs in (a, b):  # as the controller leaves them: sized for 10 replicas, 13 at most
        set_replicas_annotations(rs, 10, 13)

    async def step_new() -> Any:
        return await rolling.reconcile_new_replica_set(dc, [a, b], b, d)

    async def step_old() -> int:
        return await rolling.scale_down_old_replica_sets(dc, [a, b], [a], d)

    def resize(rs: Any, spec: int, avail: int) -> Any:
        rs.spec.replicas = spec
        rs.status.available_replicas = avail
        rs.status.observed_generation = rs.metadata.generation
        return rs

    # step 2: B cannot grow; A goes 10 -> 8
    assert not await step_new()
    assert await rolling.reconcile_old_replica_sets(dc, [a, b], [a], b, d)
    assert await step_old() == 2
    resize(a, 8, 8)
    # step 3: B 3 -> 5
    assert util.new_rs_new_replicas(dc, d, [a, b], b) == 5
    resize(b, 5, 3)
    # step 4: 3 of B available -> A 8 -> 5
    assert await step_old() == 3
    resize(a, 5, 5)
    # step 5: B 5 -> 8
    assert util.new_rs_new_replicas(dc, d, [a, b], b) == 8
    resize(b, 8, 5)
    # step 6: A 5 -> 3
    assert await step_old() == 2
    resize(a, 3, 3)
    # step 7: B 8 -> 10
    assert util.new_rs_new_replicas(dc, d, [a, b], b) == 10
    resize(b, 10, 10)
    # step 8: A 3 -> 0
    assert await step_old() == 3


async def test_surplus_pods_still_terminating_hold_the_surge_room() -> None:
    class Terminating(_DC):
        def active_pod_count(self, rs: Any) -> int:
            return 10 if rs.metadata.name == "a" else int(rs.spec.replicas)

    dc: Any = Terminating()
    d = deployment("web-app", 10, max_surge=3, max_unavailable=2)
    a, b = _rs("a", 1, 8), _rs("b", 2, 3)
    # A was scaled to 8 but its 10 pods are not yet deleted: B may not grow yet
    assert util.new_rs_new_replicas(dc, d, [a, b], b) == 3
