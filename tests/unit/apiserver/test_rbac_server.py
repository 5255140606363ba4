"""RBAC against real storage and a real API server: the index follows the store, the default
policy is created once and never overwrites an edit, and the objects travel through the API."""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from apimachinery import errors, scheme
from apimachinery.client import Client
from apiserver.auth import bootstrappolicy
from apiserver.auth.authorizer import Attributes, Decision, UserInfo
from apiserver.auth.rbac import RBACAuthorizer
from apiserver.registry.store import Store
from apiserver.storage import open_storage
from apiserver.storage.interface import Compacted, Event, KeyValue, Storage
from protos import core_pb2
from tests.unit.apiserver.rbac_objects import (
    cluster_role,
    role,
    role_binding,
    rule,
    subject,
)

BOB = UserInfo("bob", ("system:authenticated",))
LIST_PODS_A = Attributes(BOB, "list", "pods", namespace="team-a")


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "not within the deadline"
        await asyncio.sleep(0.01)


def grants(authz: RBACAuthorizer, attrs: Attributes, want: bool) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        decision, _ = await authz.authorize(attrs)
        return (decision is Decision.ALLOW) is want

    return check


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    storage = await open_storage("sqlite", str(tmp_path))
    st = Store(storage)
    await st.start()
    team_a = core_pb2.Namespace(api_version="v1", kind="Namespace")
    team_a.metadata.name = "team-a"
    await st.create(team_a)
    try:
        yield st
    finally:
        await st.close()
        await storage.close()


async def test_the_index_follows_creates_updates_and_deletes(store: Store) -> None:
    authz = RBACAuthorizer(store.storage)
    await authz.start()
    try:
        assert (await authz.authorize(LIST_PODS_A))[0] is Decision.NO_OPINION
        await store.create(role("pod-reader", "team-a", rule(["get", "list"], ["pods"])))
        rb = role_binding("read-pods", "team-a", "Role", "pod-reader", subject("User", "bob"))
        await store.create(rb)
        await eventually(grants(authz, LIST_PODS_A, True))

        narrowed = await store.get(scheme.for_resource("roles"), "team-a", "pod-reader")
        del narrowed.rules[0].verbs[1:]  # get only
        await store.update(narrowed)
        await eventually(grants(authz, LIST_PODS_A, False))

        await store.delete(scheme.for_resource("roles"), "team-a", "pod-reader")
        await store.create(role("pod-reader", "team-a", rule(["list"], ["pods"])))
        await eventually(grants(authz, LIST_PODS_A, True))
        await store.delete(scheme.for_resource("rolebindings"), "team-a", "read-pods")
        await eventually(grants(authz, LIST_PODS_A, False))
    finally:
        await authz.close()


async def test_existing_bindings_count_as_soon_as_start_returns(store: Store) -> None:
    await store.create(role("pod-reader", "team-a", rule(["list"], ["pods"])))
    await store.create(
        role_binding("read-pods", "team-a", "Role", "pod-reader", subject("User", "bob"))
    )
    authz = RBACAuthorizer(store.storage)
    await authz.start()
    try:
        assert (await authz.authorize(LIST_PODS_A))[0] is Decision.ALLOW
    finally:
        await authz.close()


class CompactedOnce(Storage):
    """A storage whose first watch of each prefix is already compacted (the authorizer relists)."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.refused: set[str] = set()

    async def get(self, key: str) -> KeyValue | None:
        return await self.inner.get(key)

    async def list(self, prefix: str) -> tuple[builtins.list[KeyValue], int]:
        return await self.inner.list(prefix)

    async def create(self, key: str, value: bytes) -> KeyValue:
        return await self.inner.create(key, value)

    async def update(self, key: str, value: bytes, expected_revision: int | None) -> KeyValue:
        return await self.inner.update(key, value, expected_revision)

    async def delete(self, key: str, expected_revision: int | None = None) -> KeyValue:
        return await self.inner.delete(key, expected_revision)

    async def watch(self, prefix: str, after_revision: int) -> AsyncIterator[Event]:
        if prefix not in self.refused:
            self.refused.add(prefix)
            raise Compacted(after_revision, after_revision + 1)
        async for event in self.inner.watch(prefix, after_revision):
            yield event

    async def current_revision(self) -> int:
        return await self.inner.current_revision()

    async def compact(self, revision: int) -> None:
        await self.inner.compact(revision)

    async def close(self) -> None:
        await self.inner.close()


async def test_a_compacted_watch_relists_and_follows_again(store: Store) -> None:
    flaky = CompactedOnce(store.storage)
    authz = RBACAuthorizer(flaky)
    await authz.start()
    try:
        await store.create(role("pod-reader", "team-a", rule(["list"], ["pods"])))
        await store.create(
            role_binding("read-pods", "team-a", "Role", "pod-reader", subject("User", "bob"))
        )
        await eventually(grants(authz, LIST_PODS_A, True))
        assert len(flaky.refused) == 4
    finally:
        await authz.close()


# ------------------------------------------------------------------ the default policy


async def test_default_policy_is_created_once_and_keeps_edits(store: Store) -> None:
    created = await bootstrappolicy.ensure_default_policy(store.create)
    assert "clusterroles/cluster-admin" in created
    assert "clusterrolebindings/system:discovery" in created
    assert len(created) == len(bootstrappolicy.default_policy())
    assert await bootstrappolicy.ensure_default_policy(store.create) == []

    clusterroles = scheme.for_resource("clusterroles")
    view = await store.get(clusterroles, "", "view")
    del view.rules[1:]
    view.metadata.annotations[bootstrappolicy.AUTOUPDATE_ANNOTATION] = "false"
    await store.update(view)
    await store.delete(scheme.for_resource("clusterrolebindings"), "", "system:discovery")

    again = await bootstrappolicy.ensure_default_policy(store.create)
    assert again == ["clusterrolebindings/system:discovery"]  # the deleted one only
    kept = await store.get(clusterroles, "", "view")
    assert len(kept.rules) == 1  # the edit stands


async def test_default_policy_lets_the_components_work(store: Store) -> None:
    await bootstrappolicy.ensure_default_policy(store.create)
    authz = RBACAuthorizer(store.storage)
    await authz.start()

    async def may(user: UserInfo, verb: str, resource: str = "", **kw: str) -> bool:
        decision, _ = await authz.authorize(Attributes(user, verb, resource, **kw))
        return decision is Decision.ALLOW

    scheduler = UserInfo("system:kube-scheduler", ("system:authenticated",))
    kcm = UserInfo("system:kube-controller-manager", ("system:authenticated",))
    node = UserInfo("system:node:node1", ("system:nodes", "system:authenticated"))
    joining = UserInfo("system:bootstrap:abcdef", ("system:bootstrappers",))
    admin = UserInfo("kubernetes-admin", ("system:masters",))
    csrs = {"api_group": "certificates.k8s.io"}
    try:
        assert await may(
            scheduler, "create", "pods", namespace="d", name="p", subresource="binding"
        )
        assert await may(scheduler, "watch", "nodes")
        assert not await may(scheduler, "delete", "nodes", name="n")
        assert await may(kcm, "create", "pods", namespace="d", name="p")
        assert await may(kcm, "delete", "configmaps", namespace="d", name="c")  # namespace, GC
        assert await may(
            kcm, "update", "certificatesigningrequests", name="c", subresource="approval", **csrs
        )
        assert await may(node, "list", "endpoints")  # the network agent
        assert await may(joining, "create", "certificatesigningrequests", name="c", **csrs)
        assert await may(
            joining, "create", "certificatesigningrequests", subresource="nodeclient", **csrs
        )
        assert await may(
            node, "create", "certificatesigningrequests", subresource="selfnodeclient", **csrs
        )
        assert await may(BOB, "get", path="/version")
        assert await may(BOB, "get", path="/apis/apps")
        assert not await may(BOB, "list", "pods", namespace="default")
        assert await may(admin, "delete", "nodes", name="n")
    finally:
        await authz.close()


# ------------------------------------------------------------------ through the API


async def test_rbac_objects_through_the_api_server(client: Client) -> None:
    await client.create(role("pod-reader", "default", rule(["get", "list"], ["pods"])))
    await client.create(cluster_role("viewer", rule(["get"], ["nodes"])))
    rb = role_binding("read-pods", "default", "Role", "pod-reader", subject("User", "bob"))
    await client.create(rb)
    got = await client.get("rolebindings", "read-pods", "default")
    assert got.role_ref.name == "pod-reader"
    assert [s.name for s in got.subjects] == ["bob"]
    roles, _ = await client.list("roles", "default")
    assert [r.metadata.name for r in roles] == ["pod-reader"]
    assert (await client.get("clusterroles", "viewer")).rules[0].resources == ["nodes"]

    got.role_ref.name = "pod-writer"
    with pytest.raises(errors.Invalid) as err:
        await client.update(got)
    assert "roleRef: Invalid value" in err.value.message
    assert "cannot change roleRef" in err.value.message

    bad = role_binding("bad", "default", "Deployment", "web", subject("Robot", "r2"))
    with pytest.raises(errors.Invalid) as err:
        await client.create(bad)
    assert 'roleRef.kind: Unsupported value: "Deployment"' in err.value.message
    assert 'subjects[0].kind: Unsupported value: "Robot"' in err.value.message
