"""The official Python client (`kubernetes`, the dev extra) against a real API server over TLS.

The client is generated from Kubernetes' OpenAPI: it builds the URLs, sends
JSON, and decodes answers into its typed models, so a field named wrong or
a Status shaped wrong fails here. It is synchronous: each call runs in a
thread while the server serves on the test's loop. Skipped where the
package is not installed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.unit.apiserver.httpapi.client import Cluster, configmap, deployment

kubernetes = pytest.importorskip("kubernetes")
T = TypeVar("T")


def api_client(cluster: Cluster) -> Any:
    """A client with the admin's kubeconfig, pointed at this server's port."""
    config = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(
        config_file=str(cluster.pki / "admin.conf"), client_configuration=config
    )
    config.host = f"https://127.0.0.1:{cluster.port}"
    return kubernetes.client.ApiClient(config)


async def run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await asyncio.to_thread(fn, *args, **kwargs)


async def test_typed_calls(cluster: Cluster, tmp_path: Path) -> None:
    client = api_client(cluster)
    core = kubernetes.client.CoreV1Api(client)
    apps = kubernetes.client.AppsV1Api(client)
    namespaces = await run(core.list_namespace)
    assert "default" in [n.metadata.name for n in namespaces.items]
    created = await run(apps.create_namespaced_deployment, "default", deployment("web", 2))
    assert created.spec.replicas == 2
    assert created.metadata.uid
    await run(apps.patch_namespaced_deployment_scale, "web", "default", {"spec": {"replicas": 4}})
    got = await run(apps.read_namespaced_deployment, "web", "default")
    assert got.spec.replicas == 4
    assert got.spec.template.spec.containers[0].image == "nginx:latest"
    listed = await run(apps.list_namespaced_deployment, "default", label_selector="app=web")
    assert [d.metadata.name for d in listed.items] == ["web"]
    status = await run(apps.delete_namespaced_deployment, "web", "default")
    # Newer generated clients hand a delete's answer back as a dict, older ones as V1Status.
    assert (status["status"] if isinstance(status, dict) else status.status) == "Success"
    with pytest.raises(kubernetes.client.ApiException) as missing:
        await run(apps.read_namespaced_deployment, "web", "default")
    assert missing.value.status == 404
    assert '"reason":"NotFound"' in missing.value.body
    bad = deployment("Bad_Name")
    with pytest.raises(kubernetes.client.ApiException) as invalid:
        await run(apps.create_namespaced_deployment, "default", bad)
    assert invalid.value.status == 422
    client.close()


async def test_watch_and_access_review(cluster: Cluster) -> None:
    client = api_client(cluster)
    core = kubernetes.client.CoreV1Api(client)
    await run(core.create_namespaced_config_map, "default", configmap("seen", a="1"))

    def first_event() -> tuple[str, str]:
        watch = kubernetes.watch.Watch()
        for event in watch.stream(core.list_namespaced_config_map, "default", timeout_seconds=5):
            watch.stop()
            return event["type"], event["object"].metadata.name
        raise AssertionError("the watch ended without an event")

    assert await run(first_event) == ("ADDED", "seen")
    review = kubernetes.client.V1SelfSubjectAccessReview(
        spec=kubernetes.client.V1SelfSubjectAccessReviewSpec(
            resource_attributes=kubernetes.client.V1ResourceAttributes(
                verb="delete", resource="pods", namespace="default"
            )
        )
    )
    authz = kubernetes.client.AuthorizationV1Api(client)
    answer = await run(authz.create_self_subject_access_review, review)
    assert answer.status.allowed is True
    client.close()
