"""The namespace controller: a deleted namespace is emptied (pods gracefully), then removed.

The API server alone only marks a deleted namespace Terminating; these tests
run the controller beside it (and without it, to show the split), play the
kubelet by deleting marked pods with grace 0, and restart the controller
and the server halfway to show that the deletion resumes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from apimachinery import errors
from apimachinery.client import Client
from controllers.base import ControllerOptions
from protos import core_pb2
from tests.unit.controllers.infra import api_server, controllers, eventually, get_or_none, pod

NS = ["namespace"]
FAST = ControllerOptions(extra={"namespace_recheck_seconds": 0.2})


def namespace(name: str) -> core_pb2.Namespace:
    ns = core_pb2.Namespace(api_version="v1", kind="Namespace")
    ns.metadata.name = name
    return ns


def configmap(name: str, ns: str) -> core_pb2.ConfigMap:
    cm = core_pb2.ConfigMap(api_version="v1", kind="ConfigMap")
    cm.metadata.name = name
    cm.metadata.namespace = ns
    cm.data["k"] = "v"
    return cm


def service(name: str, ns: str) -> core_pb2.Service:
    svc = core_pb2.Service(api_version="v1", kind="Service")
    svc.metadata.name = name
    svc.metadata.namespace = ns
    svc.spec.type = "NodePort"
    svc.spec.ports.add(port=80).target_port.int_val = 80
    return svc


def bound_pod(name: str, ns: str) -> core_pb2.Pod:
    p = pod(name, node_name="node1")
    p.metadata.namespace = ns
    return p


async def _scratch(client: Client) -> None:
    """Namespace scratch holding a configmap, a NodePort service and a pod bound to node1."""
    await client.create(namespace("scratch"))
    await client.create(configmap("cm", "scratch"))
    await client.create(service("svc", "scratch"))
    await client.create(bound_pod("web", "scratch"))


async def _marked_pod(client: Client) -> Any:
    p = await get_or_none(client, "pods", "web", "scratch")
    return p if p is not None and p.metadata.HasField("deletion_timestamp") else None


async def _gone(client: Client, resource: str, name: str, ns: str = "") -> bool:
    return await get_or_none(client, resource, name, ns) is None


async def test_namespace_finalizer_is_put_on_create_and_kept(tmp_path: Path) -> None:
    async with api_server(tmp_path) as client:
        ns = namespace("mine")
        ns.spec.finalizers.append("example.com/audit")
        created = await client.create(ns)
        assert list(created.spec.finalizers) == ["example.com/audit", "kubernetes"]
        del created.spec.finalizers[:]
        updated = await client.update(created)  # an active namespace keeps its finalizers
        assert list(updated.spec.finalizers) == ["example.com/audit", "kubernetes"]
        await client.apply(namespace("mine"))  # records the manifest (last-applied)
        applied, verb = await client.apply(namespace("mine"))  # a manifest has no finalizers
        assert verb == "unchanged"
        assert list(applied.spec.finalizers) == ["example.com/audit", "kubernetes"]


async def test_contents_deleted_pods_gracefully_then_namespace_gone(tmp_path: Path) -> None:
    async with api_server(tmp_path) as client, controllers(client, NS, FAST):
        await _scratch(client)
        terminating = await client.delete("namespaces", "scratch")
        assert terminating.status.phase == "Terminating"
        marked = await eventually(lambda: _marked_pod(client))
        assert marked.metadata.deletion_grace_period_seconds == 30  # its own grace period
        await eventually(lambda: _gone(client, "configmaps", "cm", "scratch"))
        await eventually(lambda: _gone(client, "services", "svc", "scratch"))
        ns = await client.get("namespaces", "scratch")  # the pod still runs: the namespace waits
        assert ns.status.phase == "Terminating" and list(ns.spec.finalizers) == ["kubernetes"]
        await client.delete("pods", "web", "scratch", grace_period_seconds=0)  # the kubelet
        await eventually(lambda: _gone(client, "namespaces", "scratch"))
        for resource in ("pods", "configmaps", "services", "endpoints", "events"):
            assert (await client.list(resource, "scratch"))[0] == []


async def test_without_the_controller_a_namespace_stays_terminating(tmp_path: Path) -> None:
    async with api_server(tmp_path) as client:
        await _scratch(client)
        await client.delete("namespaces", "scratch")
        ns = await client.get("namespaces", "scratch")
        assert ns.status.phase == "Terminating"
        assert (await client.get("configmaps", "cm", "scratch")).data["k"] == "v"
        # Finalizing by hand while content remains is refused: the server removes only
        # an empty namespace.
        del ns.spec.finalizers[:]
        with pytest.raises(errors.Conflict, match="still holds 3 objects"):
            await client.update(ns)
        assert list((await client.get("namespaces", "scratch")).spec.finalizers) == ["kubernetes"]


async def test_deletion_resumes_after_restarts(tmp_path: Path) -> None:
    async with api_server(tmp_path) as client:
        await _scratch(client)
        async with controllers(client, NS, FAST):
            await client.delete("namespaces", "scratch")
            await eventually(lambda: _marked_pod(client))
        # The controller is gone; the kubelet finishes the pod meanwhile.
        await client.delete("pods", "web", "scratch", grace_period_seconds=0)
        await client.get("namespaces", "scratch")
    # The server restarts too: nothing of the deletion lived in either process.
    async with api_server(tmp_path) as client:
        ns = await client.get("namespaces", "scratch")
        assert ns.status.phase == "Terminating"
        async with controllers(client, NS, FAST):
            await eventually(lambda: _gone(client, "namespaces", "scratch"))
        assert (await client.list("configmaps", "scratch"))[0] == []


async def test_a_namespace_of_the_same_name_starts_empty(tmp_path: Path) -> None:
    async with api_server(tmp_path) as client, controllers(client, NS, FAST):
        await client.create(namespace("again"))
        await client.create(configmap("old", "again"))
        await client.delete("namespaces", "again")
        await eventually(lambda: _gone(client, "namespaces", "again"))
        fresh = await client.create(namespace("again"))
        assert fresh.status.phase == "Active"
        assert (await client.list("configmaps", "again"))[0] == []
