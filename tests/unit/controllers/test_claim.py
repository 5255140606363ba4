"""ControllerRefManager (controllers/claim.py): the worked example of its docstring, and the
cases around it (owner deleting, owner re-created, an object gone meanwhile)."""

from __future__ import annotations

from typing import Any

from google.protobuf.message import Message

from apimachinery import errors, labels
from controllers.claim import ControllerRefManager
from controllers.controller_utils import controller_ref, owner_reference
from protos import apps_pb2, core_pb2


class FakeClient:
    """Just get (of the owner) and update, recording what was written."""

    def __init__(self, owner: Message) -> None:
        self.owner = owner
        self.gets = 0
        self.updates: list[Any] = []
        self.gone: set[str] = set()

    async def get(self, kind: type[Message], name: str, namespace: str = "") -> Message:
        self.gets += 1
        return self.owner

    async def update(self, obj: Any) -> Any:
        if obj.metadata.name in self.gone:
            raise errors.NotFound(f'pods "{obj.metadata.name}" not found')
        self.updates.append(obj)
        return obj


def replica_set(name: str = "web-abc", uid: str = "U") -> apps_pb2.ReplicaSet:
    rs = apps_pb2.ReplicaSet(api_version="apps/v1", kind="ReplicaSet")
    rs.metadata.name, rs.metadata.namespace, rs.metadata.uid = name, "default", uid
    rs.spec.selector.match_labels["app"] = "web"
    return rs


def pod(name: str, app: str, owner: apps_pb2.ReplicaSet | None = None) -> core_pb2.Pod:
    p = core_pb2.Pod(api_version="v1", kind="Pod")
    p.metadata.name, p.metadata.namespace = name, "default"
    p.metadata.labels["app"] = app
    if owner is not None:
        p.metadata.owner_references.append(owner_reference(owner))
    return p


def manager(rs: apps_pb2.ReplicaSet, client: FakeClient) -> ControllerRefManager[core_pb2.Pod]:
    fake: Any = client
    return ControllerRefManager(fake, rs, labels.from_label_selector(rs.spec.selector))


def the_worked_example() -> tuple[apps_pb2.ReplicaSet, list[core_pb2.Pod]]:
    rs, other = replica_set(), replica_set("other", uid="V")
    return rs, [
        pod("p1", "web", rs),
        pod("p2", "db", rs),
        pod("p3", "web"),
        pod("p4", "web", other),
    ]


async def test_claim_adopts_releases_and_ignores() -> None:
    rs, pods = the_worked_example()
    client = FakeClient(rs)
    claimed = await manager(rs, client).claim(pods)
    assert [p.metadata.name for p in claimed] == ["p1", "p3"]
    adopted = claimed[1]
    ref = controller_ref(adopted)
    assert ref is not None and ref.uid == "U" and ref.kind == "ReplicaSet"
    assert ref.controller and ref.block_owner_deletion
    released = next(p for p in client.updates if p.metadata.name == "p2")
    assert controller_ref(released) is None
    assert sorted(p.metadata.name for p in client.updates) == ["p2", "p3"]
    assert controller_ref(pods[2]) is None  # the cached object itself is never changed


async def test_an_owner_being_deleted_adopts_and_releases_nothing() -> None:
    rs, pods = the_worked_example()
    rs.metadata.deletion_timestamp.GetCurrentTime()
    client = FakeClient(rs)
    claimed = await manager(rs, client).claim(pods)
    assert [p.metadata.name for p in claimed] == ["p1"]
    assert client.updates == [] and client.gets == 0


async def test_the_fresh_owner_is_read_once_and_a_recreated_owner_adopts_nothing() -> None:
    rs = replica_set()
    client = FakeClient(replica_set(uid="U2"))  # deleted and re-created under the same name
    owned = pod("p1", "web", rs)
    claimed = await manager(rs, client).claim([pod("o1", "web"), owned, pod("o2", "web")])
    assert claimed == [owned]  # what it already controls is still claimed
    assert client.updates == [] and client.gets == 1


async def test_terminating_orphans_and_vanished_objects_are_skipped() -> None:
    rs = replica_set()
    client = FakeClient(rs)
    terminating = pod("t", "web")
    terminating.metadata.deletion_timestamp.GetCurrentTime()
    client.gone = {"gone", "gone-owned"}
    candidates = [terminating, pod("gone", "web"), pod("gone-owned", "db", rs), pod("ok", "web")]
    claimed = await manager(rs, client).claim(candidates)
    assert [p.metadata.name for p in claimed] == ["ok"]
    assert [p.metadata.name for p in client.updates] == ["ok"]
