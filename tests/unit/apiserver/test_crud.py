"""The verbs against a real server: create, get, list, update, status, delete."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from apimachinery import errors
from apimachinery.client import Client
from protos import core_pb2
from tests.unit.controllers.infra import controllers

from .objects import configmap, deployment, pod, service


@pytest.fixture
async def namespace_controller(client: Client) -> AsyncIterator[None]:
    """Emptying a deleted namespace is the namespace controller's job, beside the server."""
    async with controllers(client, ["namespace"]):
        yield


async def test_default_namespaces_exist(client: Client) -> None:
    names = {ns.metadata.name for ns in (await client.list("namespaces"))[0]}
    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= names


async def test_create_sets_system_metadata_and_defaults(client: Client) -> None:
    created = await client.create(deployment("web"))
    meta = created.metadata
    assert meta.uid and meta.namespace == "default" and meta.generation == 1
    assert int(meta.resource_version) > 0 and meta.creation_timestamp.seconds > 0
    spec = created.spec
    assert spec.strategy.type == "RollingUpdate"
    assert spec.strategy.rolling_update.max_surge.str_val == "25%"
    assert spec.strategy.rolling_update.max_unavailable.str_val == "25%"
    assert spec.revision_history_limit == 10
    container = spec.template.spec.containers[0]
    assert container.image_pull_policy == "Always"
    assert container.ports[0].protocol == "TCP"
    assert spec.template.spec.restart_policy == "Always"
    fetched = await client.get("deploy", "web")
    assert fetched == created


async def test_image_pull_policy_for_pinned_tag(client: Client) -> None:
    created = await client.create(deployment("pinned", image="nginx:1.25"))
    assert created.spec.template.spec.containers[0].image_pull_policy == "IfNotPresent"


async def test_create_twice_is_already_exists(client: Client) -> None:
    await client.create(configmap("cm"))
    with pytest.raises(errors.AlreadyExists, match='configmaps "cm" already exists'):
        await client.create(configmap("cm"))


async def test_get_missing_is_not_found(client: Client) -> None:
    with pytest.raises(errors.NotFound, match=r'deployments\.apps "nope" not found'):
        await client.get("deployments", "nope")


async def test_create_in_missing_namespace(client: Client) -> None:
    with pytest.raises(errors.NotFound, match='namespaces "ghost" not found'):
        await client.create(configmap("cm", namespace="ghost"))


async def test_list_with_label_and_field_selectors(client: Client) -> None:
    await client.create(pod("a", node="node1", labels={"app": "x"}))
    await client.create(pod("b", node="node2", labels={"app": "x"}))
    await client.create(pod("c", node="node1", labels={"app": "y"}))
    items, rv = await client.list("pods", label_selector="app=x")
    assert sorted(p.metadata.name for p in items) == ["a", "b"] and int(rv) > 0
    items, _ = await client.list("pods", field_selector="spec.nodeName=node1")
    assert sorted(p.metadata.name for p in items) == ["a", "c"]
    items, _ = await client.list(
        "pods", "default", label_selector="app=x", field_selector="spec.nodeName=node1"
    )
    assert [p.metadata.name for p in items] == ["a"]


async def test_update_bumps_generation_only_on_spec_change(client: Client) -> None:
    d = await client.create(deployment("gen"))
    d.spec.replicas = 5
    d2 = await client.update(d)
    assert d2.metadata.generation == 2
    d2.metadata.labels["tier"] = "web"
    d3 = await client.update(d2)
    assert d3.metadata.generation == 2 and d3.metadata.labels["tier"] == "web"


async def test_update_ignores_status_and_update_status_ignores_spec(client: Client) -> None:
    d = await client.create(deployment("split"))
    d.status.replicas = 7
    d.spec.replicas = 3
    after_update = await client.update(d)
    assert after_update.status.replicas == 0 and after_update.spec.replicas == 3
    after_update.status.replicas = 3
    after_update.spec.replicas = 9
    after_status = await client.update_status(after_update)
    assert after_status.status.replicas == 3 and after_status.spec.replicas == 3
    assert after_status.metadata.generation == after_update.metadata.generation


async def test_noop_update_keeps_resource_version(client: Client) -> None:
    cm = await client.create(configmap("same", a="1"))
    again = await client.update(cm)
    assert again.metadata.resource_version == cm.metadata.resource_version


async def test_stale_update_is_conflict_and_changes_nothing(client: Client) -> None:
    cm = await client.create(configmap("cas", a="1"))
    stale = core_pb2.ConfigMap()
    stale.CopyFrom(cm)
    cm.data["a"] = "2"
    await client.update(cm)
    stale.data["a"] = "3"
    with pytest.raises(errors.Conflict, match="the object has been modified"):
        await client.update(stale)
    assert (await client.get("cm", "cas")).data["a"] == "2"


async def test_delete_plain_object(client: Client) -> None:
    await client.create(configmap("gone"))
    deleted = await client.delete("configmaps", "gone")
    assert deleted.metadata.name == "gone"
    with pytest.raises(errors.NotFound):
        await client.get("configmaps", "gone")
    with pytest.raises(errors.NotFound):
        await client.delete("configmaps", "gone")


async def test_bound_pod_deletion_is_graceful(client: Client) -> None:
    await client.create(pod("bound", node="node1"))
    marked = await client.delete("pods", "bound")
    assert marked.metadata.HasField("deletion_timestamp")
    assert marked.metadata.deletion_grace_period_seconds == 30
    still = await client.get("pods", "bound")
    assert still.metadata.HasField("deletion_timestamp")
    await client.delete("pods", "bound", grace_period_seconds=0)
    with pytest.raises(errors.NotFound):
        await client.get("pods", "bound")


async def test_unbound_pod_is_deleted_at_once(client: Client) -> None:
    await client.create(pod("pending"))
    await client.delete("pods", "pending")
    with pytest.raises(errors.NotFound):
        await client.get("pods", "pending")


async def test_finalizers_hold_deletion_until_removed(client: Client) -> None:
    cm = configmap("held")
    cm.metadata.finalizers.append("example.com/hold")
    await client.create(cm)
    marked = await client.delete("configmaps", "held")
    assert marked.metadata.HasField("deletion_timestamp")
    current = await client.get("configmaps", "held")
    del current.metadata.finalizers[:]
    await client.update(current)
    with pytest.raises(errors.NotFound):
        await client.get("configmaps", "held")


async def test_delete_precondition_uid(client: Client) -> None:
    await client.create(configmap("pre"))
    with pytest.raises(errors.Conflict, match="Precondition failed"):
        await client.delete("configmaps", "pre", precondition_resource_version="1")


async def test_generate_name(client: Client) -> None:
    cm = configmap("")
    cm.metadata.generate_name = "web-"
    created = await client.create(cm)
    assert created.metadata.name.startswith("web-") and len(created.metadata.name) == 9


async def test_node_is_cluster_scoped(client: Client) -> None:
    node = core_pb2.Node(api_version="v1", kind="Node")
    node.metadata.name = "node1"
    created = await client.create(node)
    assert created.metadata.namespace == ""
    assert (await client.get("nodes", "node1")).metadata.uid == created.metadata.uid


async def test_protected_namespace_cannot_be_deleted(client: Client) -> None:
    with pytest.raises(errors.Forbidden, match="may not be deleted"):
        await client.delete("namespaces", "default")


async def test_namespace_deletion_removes_contents(
    client: Client, namespace_controller: None
) -> None:
    ns = core_pb2.Namespace(api_version="v1", kind="Namespace")
    ns.metadata.name = "scratch"
    await client.create(ns)
    await client.create(configmap("inside", namespace="scratch"))
    terminating = await client.delete("namespaces", "scratch")
    assert terminating.status.phase == "Terminating"
    with pytest.raises(errors.Forbidden, match="being terminated"):
        await client.create(configmap("late", namespace="scratch"))
    import asyncio

    for _ in range(50):
        try:
            await client.get("namespaces", "scratch")
        except errors.NotFound:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("namespace was not removed")
    assert (await client.list("configmaps", "scratch"))[0] == []


async def test_server_resources_and_version(client: Client) -> None:
    names = {r.name for r in await client.server_resources()}
    assert {"pods", "deployments", "services", "nodes", "endpoints", "leases"} <= names
    assert (await client.version()).storage_backend == "sqlite"


async def test_service_gets_cluster_ip(client: Client) -> None:
    svc = await client.create(service("web"))
    assert svc.spec.cluster_ip.startswith("10.")
    assert list(svc.spec.cluster_ips) == [svc.spec.cluster_ip]
    assert svc.spec.type == "ClusterIP" and svc.spec.ports[0].protocol == "TCP"
