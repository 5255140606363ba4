"""pods/eviction over HTTP against a real API server: kubectl drain's request, and its refusals."""

from __future__ import annotations

from typing import Any

from tests.unit.apiserver.httpapi import kubepb
from tests.unit.apiserver.httpapi.client import HTTPS, PODS, TOKEN, Cluster
from tests.unit.apiserver.httpapi.kubepb import envelope, integer, message, object_meta, string


def _pod(name: str, node: str = "") -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "nginx"}]}
    if node:
        spec["nodeName"] = node  # bound: its deletion is graceful, left for the kubelet
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def _eviction(name: str, **delete_options: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": name, "namespace": "default"},
    }
    if delete_options:
        data["deleteOptions"] = delete_options
    return data


def _status(answer: Any, code: int, reason: str) -> str:
    assert (answer.status, answer.data["code"], answer.data["reason"]) == (code, code, reason), (
        answer.data
    )
    message: str = answer.data["message"]
    return message


async def test_discovery_names_the_eviction_subresource(admin: HTTPS) -> None:
    resources = (await admin.call("GET", "/api/v1")).data["resources"]
    entry = next(r for r in resources if r["name"] == "pods/eviction")
    assert entry == {
        "name": "pods/eviction",
        "singularName": "",
        "group": "policy",
        "version": "v1",
        "namespaced": True,
        "kind": "Eviction",
        "verbs": ["create"],
    }


async def test_evicting_marks_the_pod_and_deletes_it_gracefully(admin: HTTPS) -> None:
    assert (await admin.call("POST", PODS, _pod("bound", node="node1"))).status == 201
    answer = await admin.call("POST", f"{PODS}/bound/eviction", _eviction("bound"))
    assert (answer.status, answer.data) == (
        201,
        {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201},
    )
    pod = (await admin.call("GET", f"{PODS}/bound")).data
    assert pod["metadata"]["deletionTimestamp"]  # its kubelet stops it, then it goes
    assert pod["metadata"]["deletionGracePeriodSeconds"] == 30
    [condition] = [c for c in pod["status"]["conditions"] if c["type"] == "DisruptionTarget"]
    assert condition["status"] == "True"
    assert condition["reason"] == "EvictionByEvictionAPI"
    assert condition["message"] == "Eviction API: evicting"
    assert condition["lastTransitionTime"]
    # evicted again while terminating (drain retries): allowed, nothing new to mark
    again = await admin.call("POST", f"{PODS}/bound/eviction", _eviction("bound"))
    assert again.status == 201


async def test_a_protobuf_eviction_with_delete_options(admin: HTTPS) -> None:
    """kubectl drain --grace-period=0's body, as its typed client encodes it."""
    assert (await admin.call("POST", PODS, _pod("p", node="node1"))).status == 201
    options = message(2, integer(1, 0), message(2), string(4, "Background"))
    raw = object_meta(1, "p", "default") + options
    body = envelope("policy/v1", "Eviction", raw)
    path = f"{PODS}/p/eviction"
    answer = await admin.call("POST", path, raw=body, content_type=kubepb.PROTOBUF)
    assert answer.status == 201, answer.data
    assert (await admin.call("GET", f"{PODS}/p")).status == 404  # grace 0: gone at once


async def test_dry_run_and_preconditions(admin: HTTPS) -> None:
    created = (await admin.call("POST", PODS, _pod("p"))).data
    dry = await admin.call("POST", f"{PODS}/p/eviction?dryRun=All", _eviction("p"))
    assert dry.status == 201
    after = (await admin.call("GET", f"{PODS}/p")).data
    assert after["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    wrong_uid = _eviction("p", preconditions={"uid": "not-it"})
    message = _status(await admin.call("POST", f"{PODS}/p/eviction", wrong_uid), 409, "Conflict")
    assert f"does not match the UID in record ({created['metadata']['uid']})" in message
    stale = _eviction("p", preconditions={"resourceVersion": "1"})
    message = _status(await admin.call("POST", f"{PODS}/p/eviction", stale), 409, "Conflict")
    assert "the ResourceVersion in the precondition (1) does not match" in message
    current = _eviction(
        "p", preconditions={"resourceVersion": after["metadata"]["resourceVersion"]}
    )
    assert (await admin.call("POST", f"{PODS}/p/eviction", current)).status == 201
    assert (await admin.call("GET", f"{PODS}/p")).status == 404  # unbound: no grace period


async def test_bad_evictions_change_nothing(admin: HTTPS) -> None:
    before = (await admin.call("POST", PODS, _pod("p", node="node1"))).data
    path = f"{PODS}/p/eviction"
    renamed = await admin.call("POST", path, _eviction("other"))
    assert _status(renamed, 400, "BadRequest") == (
        "name in URL does not match name in Eviction object"
    )
    typo = {**_eviction("p"), "deleteOption": {}}
    assert _status(await admin.call("POST", path, typo), 400, "BadRequest") == (
        'strict decoding error: unknown field "deleteOption"'
    )
    nested = _eviction("p", gracePeriod=5)
    assert _status(await admin.call("POST", path, nested), 400, "BadRequest") == (
        'strict decoding error: unknown field "deleteOptions.gracePeriod"'
    )
    wrong_kind = {**_eviction("p"), "kind": "Pod"}
    _status(await admin.call("POST", path, wrong_kind), 400, "BadRequest")
    bad_grace = _eviction("p", gracePeriodSeconds="soon")
    _status(await admin.call("POST", path, bad_grace), 400, "BadRequest")
    missing = await admin.call("POST", f"{PODS}/ghost/eviction", _eviction("ghost"))
    assert _status(missing, 404, "NotFound") == 'pods "ghost" not found'
    _status(await admin.call("GET", path), 405, "MethodNotAllowed")
    after = (await admin.call("GET", f"{PODS}/p")).data
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


async def test_rbac_create_on_pods_eviction(cluster: Cluster, admin: HTTPS) -> None:
    """A role that may evict but not delete pods can drain; one without may not evict."""
    assert (await admin.call("POST", PODS, _pod("p"))).status == 201
    bob = cluster.client(conf=None, token=TOKEN)
    denied = await bob.call("POST", f"{PODS}/p/eviction", _eviction("p"))
    assert _status(denied, 403, "Forbidden") == (
        'pods "p" is forbidden: User "bob" cannot create resource "pods/eviction" in API group'
        ' "" in the namespace "default"'
    )
    rbac = "/apis/rbac.authorization.k8s.io/v1/namespaces/default"
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "evictor"},
        "rules": [{"apiGroups": [""], "resources": ["pods/eviction"], "verbs": ["create"]}],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "bob-evicts"},
        "subjects": [{"kind": "User", "name": "bob", "apiGroup": "rbac.authorization.k8s.io"}],
        "roleRef": {"kind": "Role", "name": "evictor", "apiGroup": "rbac.authorization.k8s.io"},
    }
    assert (await admin.call("POST", f"{rbac}/roles", role)).status == 201
    assert (await admin.call("POST", f"{rbac}/rolebindings", binding)).status == 201
    assert (await bob.call("DELETE", f"{PODS}/p")).status == 403  # still no delete on pods
    assert (await bob.call("POST", f"{PODS}/p/eviction", _eviction("p"))).status == 201
    assert (await admin.call("GET", f"{PODS}/p")).status == 404
