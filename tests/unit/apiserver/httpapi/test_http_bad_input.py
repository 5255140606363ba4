"""Bad input over HTTP: each refusal a Kubernetes Status with the right code, nothing stored.

After every refused request the store is read back: no object was created,
and the one that was there is unchanged (same resourceVersion), so a
client's mistake never leaves half of a write behind.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import Any

from tests.unit.apiserver.httpapi.client import (
    CONFIGMAPS,
    DEPLOYMENTS,
    HTTPS,
    Cluster,
    configmap,
    deployment,
)


async def _unchanged(admin: HTTPS, before: dict[str, Any]) -> None:
    """The deployment `web` is exactly as it was, and nothing else was created."""
    now = (await admin.call("GET", f"{DEPLOYMENTS}/web")).data
    assert now["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    names = [i["metadata"]["name"] for i in (await admin.call("GET", DEPLOYMENTS)).data["items"]]
    assert names == ["web"]


def _status(answer: Any, code: int, reason: str) -> dict[str, Any]:
    data: dict[str, Any] = answer.data
    assert (answer.status, data["kind"], data["status"]) == (code, "Status", "Failure"), data
    assert (data["reason"], data["code"]) == (reason, code)
    return data


async def test_malformed_bodies(admin: HTTPS) -> None:
    before = (await admin.call("POST", DEPLOYMENTS, deployment("web"))).data
    broken = await admin.call("POST", DEPLOYMENTS, raw=b'{"apiVersion": "apps/v1", "kind":')
    assert _status(broken, 400, "BadRequest")["message"].startswith(
        "couldn't get version/kind; json parse error:"
    )
    bad_yaml = await admin.call(
        "POST", DEPLOYMENTS, raw=b"kind: [unclosed", content_type="application/yaml"
    )
    assert "yaml parse error" in _status(bad_yaml, 400, "BadRequest")["message"]
    typo = deployment("typo")
    typo["spec"]["replicass"] = 2
    strict = await admin.call("POST", DEPLOYMENTS, typo)
    assert _status(strict, 400, "BadRequest")["message"] == (
        'strict decoding error: unknown field "spec.replicass"'
    )
    wrong_kind = await admin.call("POST", DEPLOYMENTS, configmap("c"))
    assert _status(wrong_kind, 400, "BadRequest")["message"] == (
        "the API version in the data (v1) does not match the expected API version (apps/v1)"
    )
    listed = await admin.call("POST", DEPLOYMENTS, [deployment("x")])
    _status(listed, 400, "BadRequest")
    elsewhere = deployment("x")
    elsewhere["metadata"]["namespace"] = "kube-system"
    moved = await admin.call("POST", DEPLOYMENTS, elsewhere)
    assert "does not match the namespace" in _status(moved, 400, "BadRequest")["message"]
    renamed = (await admin.call("GET", f"{DEPLOYMENTS}/web")).data
    renamed["metadata"]["name"] = "other"
    put = await admin.call("PUT", f"{DEPLOYMENTS}/web", renamed)
    assert "does not match the name on the URL" in _status(put, 400, "BadRequest")["message"]
    await _unchanged(admin, before)


async def test_invalid_objects_are_422_with_causes(admin: HTTPS) -> None:
    before = (await admin.call("POST", DEPLOYMENTS, deployment("web"))).data
    bad = deployment("Bad_Name")
    bad["spec"]["replicas"] = -1
    answer = await admin.call("POST", DEPLOYMENTS, bad)
    data = _status(answer, 422, "Invalid")
    assert data["message"].startswith('Deployment.apps "Bad_Name" is invalid: [')
    assert data["details"]["name"] == "Bad_Name"
    assert data["details"]["kind"] == "Deployment"
    assert data["details"]["group"] == "apps"
    causes = {c["field"]: c for c in data["details"]["causes"]}
    assert causes["metadata.name"]["reason"] == "FieldValueInvalid"
    assert causes["metadata.name"]["message"].startswith('Invalid value: "Bad_Name": ')
    assert causes["spec.replicas"]["reason"] == "FieldValueInvalid"
    await _unchanged(admin, before)


async def test_bad_patches(admin: HTTPS) -> None:
    before = (await admin.call("POST", DEPLOYMENTS, deployment("web"))).data
    url = f"{DEPLOYMENTS}/web"
    cases: list[tuple[bytes, str, int, str, str]] = [
        (b"{nope", "application/merge-patch+json", 400, "BadRequest", "unable to parse"),
        (
            b'[{"op": "remove", "path": "/spec/replicaz"}]',
            "application/json-patch+json",
            400,
            "BadRequest",
            'doc is missing path: "/spec/replicaz"',
        ),
        (
            b'{"spec": {"replicas": "two"}}',
            "application/merge-patch+json",
            400,
            "BadRequest",
            "spec.replicas",
        ),
        (
            b'{"spec": {"replicas": -5}}',
            "application/strategic-merge-patch+json",
            422,
            "Invalid",
            "spec.replicas",
        ),
        (
            b'{"metadata": {"name": "other"}}',
            "application/merge-patch+json",
            400,
            "BadRequest",
            "cannot be changed by a patch",
        ),
        (b'{"spec": {}}', "text/plain", 415, "UnsupportedMediaType", "accepted media types"),
        (
            b'[{"op": "test", "path": "/spec/replicas", "value": 9}]',
            "application/json-patch+json",
            400,
            "BadRequest",
            "test",
        ),
    ]
    for raw, media, code, reason, text in cases:
        answer = await admin.call("PATCH", url, raw=raw, content_type=media)
        assert text in _status(answer, code, reason)["message"], (raw, answer.data)
    await _unchanged(admin, before)


async def test_a_huge_body_is_413_and_nothing_is_read(admin: HTTPS) -> None:
    big = configmap("big", blob="x" * (4 * 1024 * 1024))
    answer = await admin.call("POST", CONFIGMAPS, big)
    assert _status(answer, 413, "RequestEntityTooLarge")["message"] == (
        "Request entity too large: limit is 3145728"
    )
    listed = (await admin.call("GET", CONFIGMAPS)).data["items"]
    assert [i["metadata"]["name"] for i in listed] == []


async def test_unknown_resources_methods_and_media(admin: HTTPS) -> None:
    for path in (
        "/apis/apps/v1/namespaces/default/widgets",
        "/apis/batch/v1/jobs",
        "/api/v1/pods/x",
        "/nonsense",
    ):
        answer = await admin.call("GET", path)
        assert _status(answer, 404, "NotFound")["message"] == (
            "the server could not find the requested resource"
        )
    post_named = await admin.call("POST", f"{CONFIGMAPS}/c", configmap("c"))
    _status(post_named, 405, "MethodNotAllowed")
    put_version = await admin.call("PUT", "/version", {})
    _status(put_version, 405, "MethodNotAllowed")
    protobuf_only = await admin.call(
        "GET", CONFIGMAPS, headers={"Accept": "application/vnd.kubernetes.protobuf"}
    )
    _status(protobuf_only, 406, "NotAcceptable")
    proto_deploy = await admin.call(
        "POST",
        DEPLOYMENTS,
        raw=b"k8s\x00garbage",
        content_type="application/vnd.kubernetes.protobuf",
    )
    _status(proto_deploy, 415, "UnsupportedMediaType")
    assert (await admin.call("GET", DEPLOYMENTS)).data["items"] == []


async def test_stale_resource_versions(admin: HTTPS) -> None:
    before = (await admin.call("POST", DEPLOYMENTS, deployment("web"))).data
    patched = await admin.call(
        "PATCH",
        f"{DEPLOYMENTS}/web",
        {"spec": {"replicas": 3}},
        content_type="application/merge-patch+json",
    )
    assert patched.status == 200
    stale = dict(before)
    answer = await admin.call("PUT", f"{DEPLOYMENTS}/web", stale)
    data = _status(answer, 409, "Conflict")
    assert data["details"] == {"name": "web", "group": "apps", "kind": "deployments"}
    assert (await admin.call("GET", f"{DEPLOYMENTS}/web")).data["spec"]["replicas"] == 3
    bad_rv = dict(patched.data)
    bad_rv["metadata"] = {**bad_rv["metadata"], "resourceVersion": "abc"}
    garbled = await admin.call("PUT", f"{DEPLOYMENTS}/web", bad_rv)
    _status(garbled, 400, "BadRequest")


def _raw_exchange(cluster: Cluster, payload: bytes) -> bytes:
    https = cluster.client()
    context: ssl.SSLContext = https.context()
    plain = socket.create_connection(("127.0.0.1", cluster.port), timeout=10)
    with context.wrap_socket(plain, server_hostname="127.0.0.1") as sock:
        sock.sendall(payload)
        chunks = []
        while data := sock.recv(65536):
            chunks.append(data)
    return b"".join(chunks)


async def test_malformed_http_is_a_plain_400(cluster: Cluster) -> None:
    answer = await asyncio.to_thread(_raw_exchange, cluster, b"NOT-HTTP\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    bad_length = b"POST /api HTTP/1.1\r\nContent-Length: many\r\n\r\n"
    assert (await asyncio.to_thread(_raw_exchange, cluster, bad_length)).startswith(b"HTTP/1.1 400")
