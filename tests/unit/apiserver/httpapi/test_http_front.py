"""One TLS port, two protocols: the front routes by ALPN, and HTTP callers are who gRPC says.

Through a real API server on TLS: an http/1.1 (or ALPN-less) client reaches
the HTTP API, a gRPC client still reaches gRPC on the same port, and the
identities -- client certificate, bearer token, nothing -- are the same on
both, refused with Kubernetes' Status objects.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ssl

from apimachinery import kubeconfig
from apimachinery.client import Client
from protos import core_pb2
from tests.unit.apiserver.httpapi.client import HTTPS, TOKEN, Cluster, configmap


def _negotiated(cluster: Cluster, offer: list[str] | None) -> str | None:
    https = cluster.client(alpn=offer)
    conn = https.connect()
    try:
        conn.connect()
        sock = conn.sock
        assert isinstance(sock, ssl.SSLSocket)
        return sock.selected_alpn_protocol()
    finally:
        conn.close()


async def test_alpn_chooses_the_protocol(cluster: Cluster) -> None:
    # Go (kubectl) offers h2 and http/1.1: it gets http/1.1; grpcio offers only h2 (and
    # grpc-exp): it gets h2; a client without ALPN gets none, and HTTP.
    assert await asyncio.to_thread(_negotiated, cluster, ["h2", "http/1.1"]) == "http/1.1"
    assert await asyncio.to_thread(_negotiated, cluster, ["grpc-exp", "h2"]) == "h2"
    assert await asyncio.to_thread(_negotiated, cluster, None) is None
    for offer in (["h2", "http/1.1"], None):
        answer = await cluster.client(alpn=offer).call("GET", "/version")
        assert answer.status == 200
        assert answer.data["gitVersion"].startswith("v1.32.0+tinykube-")


async def test_grpc_and_http_share_the_port_and_the_store(cluster: Cluster) -> None:
    admin = cluster.client()
    created = await admin.call(
        "POST", "/api/v1/namespaces/default/configmaps", configmap("c1", a="1")
    )
    assert created.status == 201
    config = kubeconfig.load(cluster.pki / "admin.conf")
    target = f"127.0.0.1:{cluster.port}"
    async with Client.from_config(dataclasses.replace(config, target=target), timeout=10) as grpc:
        got = await grpc.get(core_pb2.ConfigMap, "c1", "default")
    assert dict(got.data) == {"a": "1"}
    assert got.metadata.resource_version == created.data["metadata"]["resourceVersion"]


async def test_no_credentials_is_401_as_a_status(cluster: Cluster) -> None:
    answer = await cluster.client(conf=None).call("GET", "/api/v1/namespaces/default/pods")
    assert answer.status == 401
    assert answer.data == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Unauthorized",
        "reason": "Unauthorized",
        "code": 401,
    }
    wrong = await cluster.client(conf=None, token="nope").call("GET", "/api")
    assert wrong.status == 401


async def test_health_needs_no_credentials(cluster: Cluster) -> None:
    for path in ("/healthz", "/livez", "/readyz", "/readyz?verbose"):
        answer = await cluster.client(conf=None).call("GET", path)
        assert (answer.status, answer.body) == (200, b"ok")


async def test_a_token_user_is_authorized_by_rbac(cluster: Cluster) -> None:
    bob = cluster.client(conf=None, token=TOKEN)
    answer = await bob.call("GET", "/api/v1/namespaces/default/secrets")
    assert answer.status == 403
    assert answer.data["reason"] == "Forbidden"
    assert answer.data["message"] == (
        'secrets is forbidden: User "bob" cannot list resource "secrets" in API group ""'
        ' in the namespace "default"'
    )
    assert answer.data["details"] == {"kind": "secrets"}
    # Discovery is every authenticated user's (system:discovery).
    assert (await bob.call("GET", "/apis")).status == 200


async def test_a_node_is_confined_by_the_node_authorizer(cluster: Cluster) -> None:
    node = cluster.client("kubelet-node1.conf")
    mine = await node.call("GET", "/api/v1/nodes/node1")
    assert mine.status == 404  # allowed to look, and it does not exist yet
    other = await node.call("GET", "/api/v1/namespaces/default/secrets/db")
    assert other.status == 403
    assert 'User "system:node:node1" cannot get resource "secrets"' in other.data["message"]


async def test_access_reviews_answer_for_the_caller(cluster: Cluster) -> None:
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {"verb": "list", "resource": "secrets", "namespace": "x"}},
    }
    path = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
    bob = cluster.client(conf=None, token=TOKEN)
    answer = await bob.call("POST", path, review)
    assert answer.status == 201
    assert answer.data["status"]["allowed"] is False
    admin = await cluster.client().call("POST", path, review)
    assert admin.data["status"] == {"allowed": True}
    who = await bob.call("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", {})
    assert who.data["status"]["userInfo"] == {
        "username": "bob",
        "groups": ["developers", "system:authenticated"],
        "uid": "42",
    }


async def test_discovery_documents(admin: HTTPS) -> None:
    api = (await admin.call("GET", "/api")).data
    assert api["versions"] == ["v1"]
    groups = {g["name"] for g in (await admin.call("GET", "/apis")).data["groups"]}
    assert {"apps", "rbac.authorization.k8s.io", "authorization.k8s.io"} <= groups
    apps = (await admin.call("GET", "/apis/apps/v1")).data
    by_name = {r["name"]: r for r in apps["resources"]}
    assert by_name["deployments"]["shortNames"] == ["deploy"]
    assert by_name["deployments"]["namespaced"] is True
    assert "deletecollection" in by_name["deployments"]["verbs"]
    assert by_name["deployments/scale"]["kind"] == "Scale"
    assert by_name["deployments/scale"]["group"] == "autoscaling"
    core = {r["name"]: r for r in (await admin.call("GET", "/api/v1")).data["resources"]}
    assert core["pods/log"]["verbs"] == ["get"]
    assert core["nodes"]["namespaced"] is False
    missing = await admin.call("GET", "/apis/batch/v1")
    assert (missing.status, missing.data["reason"]) == (404, "NotFound")


async def test_openapi_v3_describes_kinds_for_explain_and_validation(admin: HTTPS) -> None:
    index = (await admin.call("GET", "/openapi/v3")).data["paths"]
    url = index["apis/apps/v1"]["serverRelativeURL"]
    doc = (await admin.call("GET", url)).data
    schema = doc["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"]
    assert schema["x-kubernetes-group-version-kind"] == [
        {"group": "apps", "kind": "Deployment", "version": "v1"}
    ]
    spec = doc["components"]["schemas"]["io.k8s.api.apps.v1.DeploymentSpec"]
    assert spec["properties"]["replicas"]["type"] == "integer"
    assert "How many pods" in spec["properties"]["replicas"]["description"]
    patch = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert {"name": "fieldValidation", "in": "query"}.items() <= patch["parameters"][-2].items()
    assert patch["x-kubernetes-group-version-kind"]["kind"] == "Deployment"
    pod_spec = doc["components"]["schemas"]["io.k8s.api.core.v1.PodSpec"]
    assert pod_spec["properties"]["containers"]["x-kubernetes-patch-merge-key"] == "name"
    assert (await admin.call("GET", "/openapi/v3/apis/apps/v2")).status == 404
