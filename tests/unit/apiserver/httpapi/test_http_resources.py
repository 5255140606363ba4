"""The object verbs over HTTP against a real API server: what kubectl and client-go rely on."""

from __future__ import annotations

import asyncio

import pytest

from apiserver import servicer
from tests.unit.apiserver.httpapi.client import (
    CONFIGMAPS,
    DEPLOYMENTS,
    HTTPS,
    PODS,
    Cluster,
    configmap,
    deployment,
    lines,
)

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


async def test_create_get_update_delete(admin: HTTPS) -> None:
    created = await admin.call("POST", DEPLOYMENTS, deployment("web"))
    assert created.status == 201
    obj = created.data
    assert (obj["apiVersion"], obj["kind"]) == ("apps/v1", "Deployment")
    assert obj["metadata"]["namespace"] == "default"
    assert obj["spec"]["strategy"]["type"] == "RollingUpdate"  # defaulted by the server
    got = (await admin.call("GET", f"{DEPLOYMENTS}/web")).data
    got["spec"]["replicas"] = 5
    updated = await admin.call("PUT", f"{DEPLOYMENTS}/web", got)
    assert (updated.status, updated.data["spec"]["replicas"]) == (200, 5)
    assert updated.data["metadata"]["generation"] == 2
    stale = await admin.call("PUT", f"{DEPLOYMENTS}/web", got)  # got's resourceVersion is old
    assert (stale.status, stale.data["reason"]) == (409, "Conflict")
    assert stale.data["message"].endswith(
        "the object has been modified; please apply your changes to the latest version and"
        " try again"
    )
    gone = await admin.call("DELETE", f"{DEPLOYMENTS}/web")
    assert gone.status == 200
    assert gone.data["status"] == "Success"
    assert gone.data["details"] == {
        "name": "web",
        "kind": "deployments",
        "group": "apps",
        "uid": obj["metadata"]["uid"],
    }
    missing = await admin.call("GET", f"{DEPLOYMENTS}/web")
    assert missing.status == 404
    assert missing.data["message"] == 'deployments.apps "web" not found'
    assert missing.data["details"] == {"name": "web", "group": "apps", "kind": "deployments"}


async def test_delete_options_and_pods(admin: HTTPS) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "finalizers": ["example.com/hold"]},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]},
    }
    assert (await admin.call("POST", PODS, pod)).status == 201
    wrong = await admin.call(
        "DELETE", f"{PODS}/p", {"kind": "DeleteOptions", "preconditions": {"uid": "nope"}}
    )
    assert (wrong.status, wrong.data["reason"]) == (409, "Conflict")
    assert "Precondition failed: UID in precondition: nope" in wrong.data["message"]
    held = await admin.call("DELETE", f"{PODS}/p?gracePeriodSeconds=0")
    # A finalizer holds it: the pod itself comes back, marked, with 202 Accepted.
    assert held.status == 202
    assert held.data["metadata"]["deletionTimestamp"]
    bad = await admin.call("DELETE", f"{PODS}/p", {"propagationPolicy": "Sideways"})
    assert bad.status == 400
    assert 'Unsupported value: "Sideways"' in bad.data["message"]


async def test_list_selectors_pages_and_versions(admin: HTTPS) -> None:
    for i in range(5):
        data = configmap(f"c{i}", k=str(i))
        data["metadata"]["labels"] = {"parity": "even" if i % 2 == 0 else "odd"}
        assert (await admin.call("POST", CONFIGMAPS, data)).status == 201
    even = (await admin.call("GET", f"{CONFIGMAPS}?labelSelector=parity%3Deven")).data
    assert even["kind"] == "ConfigMapList"
    assert [i["metadata"]["name"] for i in even["items"]] == ["c0", "c2", "c4"]
    named = (await admin.call("GET", f"{CONFIGMAPS}?fieldSelector=metadata.name%3Dc3")).data
    assert [i["metadata"]["name"] for i in named["items"]] == ["c3"]
    names: list[str] = []
    path = f"{CONFIGMAPS}?limit=2"
    first = (await admin.call("GET", path)).data
    assert first["metadata"]["remainingItemCount"] == 3
    page = first
    while True:
        names += [i["metadata"]["name"] for i in page["items"]]
        token = page["metadata"].get("continue")
        if not token:
            break
        page = (await admin.call("GET", f"{path}&continue={token}")).data
    assert names == ["c0", "c1", "c2", "c3", "c4"]
    bad = await admin.call("GET", f"{CONFIGMAPS}?limit=2&continue=%21%21")
    assert (bad.status, bad.data["reason"]) == (400, "BadRequest")
    rv = int(first["metadata"]["resourceVersion"])
    old = await admin.call(
        "GET", f"{CONFIGMAPS}?resourceVersion={rv - 2}&resourceVersionMatch=Exact"
    )
    # The store keeps history until it is compacted: Exact reads the state at rv - 2.
    assert old.status == 200
    assert [i["metadata"]["name"] for i in old.data["items"]] == ["c0", "c1", "c2"]
    unsupported = await admin.call("GET", f"{CONFIGMAPS}?fieldSelector=data.k%3D1")
    assert unsupported.data["message"] == "field label not supported: data.k"


async def test_tables_for_kubectl_get(admin: HTTPS) -> None:
    assert (await admin.call("POST", DEPLOYMENTS, deployment("web", 3))).status == 201
    table = (await admin.call("GET", DEPLOYMENTS, headers={"Accept": TABLE})).data
    assert table["kind"] == "Table"
    columns = [(c["name"], c["priority"]) for c in table["columnDefinitions"]]
    assert columns[:5] == [
        ("Name", 0),
        ("Ready", 0),
        ("Up-to-date", 0),
        ("Available", 0),
        ("Age", 0),
    ]
    assert ("Images", 1) in columns
    row = table["rows"][0]
    assert row["cells"][:4] == ["web", "0/3", 0, 0]
    assert row["object"]["kind"] == "PartialObjectMetadata"
    assert row["object"]["metadata"]["name"] == "web"
    one = (await admin.call("GET", f"{DEPLOYMENTS}/web", headers={"Accept": TABLE})).data
    assert one["rows"][0]["cells"][0] == "web"


async def test_watch_streams_events_and_bookmarks(admin: HTTPS) -> None:
    listed = (await admin.call("GET", CONFIGMAPS)).data
    rv = listed["metadata"]["resourceVersion"]
    stream = await admin.open_stream(f"{CONFIGMAPS}?watch=1&resourceVersion={rv}")
    try:
        assert stream.response.status == 200
        assert stream.response.getheader("Transfer-Encoding") == "chunked"
        await admin.call("POST", CONFIGMAPS, configmap("w", a="1"))
        added = await stream.event()
        assert added["type"] == "ADDED"
        assert added["object"]["metadata"]["name"] == "w"
        assert added["object"]["kind"] == "ConfigMap"
        await admin.call("DELETE", f"{CONFIGMAPS}/w")
        assert (await stream.event())["type"] == "DELETED"
    finally:
        stream.close()
    one = await admin.open_stream(f"{CONFIGMAPS}/x?watch=true&timeoutSeconds=1")
    try:
        await admin.call("POST", CONFIGMAPS, configmap("y"))
        await admin.call("POST", CONFIGMAPS, configmap("x"))
        event = await one.event()
        assert (event["type"], event["object"]["metadata"]["name"]) == ("ADDED", "x")
        assert await asyncio.wait_for(one.line(), 5) == b""  # timeoutSeconds ends it cleanly
    finally:
        one.close()


async def test_watch_from_a_compacted_revision_is_410(cluster: Cluster, admin: HTTPS) -> None:
    for i in range(3):
        await admin.call("POST", CONFIGMAPS, configmap(f"k{i}"))
    storage = cluster.server.storage
    await storage.compact(await storage.current_revision())
    answer = await admin.call("GET", f"{CONFIGMAPS}?watch=1&resourceVersion=2")
    assert (answer.status, answer.data["reason"], answer.data["code"]) == (410, "Expired", 410)
    assert answer.data["message"].startswith("too old resource version: 2 (")
    bad = await admin.call("GET", f"{CONFIGMAPS}?watch=1&resourceVersion=notanumber")
    assert (bad.status, bad.data["reason"]) == (400, "BadRequest")


async def test_bookmarks_after_a_quiet_spell(admin: HTTPS, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(servicer, "BOOKMARK_INTERVAL_SECONDS", 0.2)
    listed = (await admin.call("GET", CONFIGMAPS)).data
    query = "watch=1&allowWatchBookmarks=true&labelSelector=pick%3Dme"
    stream = await admin.open_stream(
        f"{CONFIGMAPS}?{query}&resourceVersion={listed['metadata']['resourceVersion']}"
    )
    try:
        # A change outside the selected set moves the watch on without an event: after a
        # quiet spell the watcher is told how far it got, to resume from there.
        created = (await admin.call("POST", CONFIGMAPS, configmap("unpicked"))).data
        bookmark = await stream.event()
    finally:
        stream.close()
    assert bookmark["type"] == "BOOKMARK"
    assert bookmark["object"]["kind"] == "ConfigMap"
    assert bookmark["object"]["metadata"] == {
        "resourceVersion": created["metadata"]["resourceVersion"]
    }


async def test_scale_subresource(admin: HTTPS) -> None:
    await admin.call("POST", DEPLOYMENTS, deployment("web", 2))
    scale = (await admin.call("GET", f"{DEPLOYMENTS}/web/scale")).data
    assert (scale["kind"], scale["apiVersion"]) == ("Scale", "autoscaling/v1")
    assert scale["spec"] == {"replicas": 2}
    assert scale["status"]["selector"] == "app=web"
    scale["spec"]["replicas"] = 4
    put = await admin.call("PUT", f"{DEPLOYMENTS}/web/scale", scale)
    assert (put.status, put.data["spec"]["replicas"]) == (200, 4)
    stale = await admin.call("PUT", f"{DEPLOYMENTS}/web/scale", scale)
    assert stale.status == 409
    patched = await admin.call(
        "PATCH",
        f"{DEPLOYMENTS}/web/scale",
        {"spec": {"replicas": 1}},
        content_type="application/merge-patch+json",
    )
    assert patched.data["spec"]["replicas"] == 1
    negative = await admin.call(
        "PATCH",
        f"{DEPLOYMENTS}/web/scale",
        {"spec": {"replicas": -1}},
        content_type="application/merge-patch+json",
    )
    assert (negative.status, negative.data["reason"]) == (422, "Invalid")
    assert (await admin.call("GET", f"{DEPLOYMENTS}/web")).data["spec"]["replicas"] == 1


async def test_status_and_binding_subresources(admin: HTTPS) -> None:
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
    created = (await admin.call("POST", PODS, pod)).data
    created["status"] = {"phase": "Running"}
    created["spec"]["containers"][0]["image"] = "ignored"
    status = await admin.call("PUT", f"{PODS}/p/status", created)
    assert status.data["status"]["phase"] == "Running"
    assert status.data["spec"]["containers"][0]["image"] == "i"  # status writes touch status
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}}
    assert (await admin.call("POST", "/api/v1/nodes", node)).status == 201
    binding = {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": "p"},
        "target": {"apiVersion": "v1", "kind": "Node", "name": "n1"},
    }
    bound = await admin.call("POST", f"{PODS}/p/binding", binding)
    assert (bound.status, bound.data["status"]) == (201, "Success")
    assert (await admin.call("GET", f"{PODS}/p")).data["spec"]["nodeName"] == "n1"
    again = await admin.call("POST", f"{PODS}/p/binding", binding)
    assert again.status == 409
    logs = await admin.call("GET", f"{PODS}/p/log")
    assert logs.status == 503  # node n1 has no kubelet to ask: the proxy says so


async def test_patch_types(admin: HTTPS) -> None:
    await admin.call("POST", DEPLOYMENTS, deployment("web"))
    url = f"{DEPLOYMENTS}/web"
    strategic = {"spec": {"template": {"spec": {"containers": [{"name": "side", "image": "b"}]}}}}
    answer = await admin.call(
        "PATCH", url, strategic, content_type="application/strategic-merge-patch+json"
    )
    names = [c["name"] for c in answer.data["spec"]["template"]["spec"]["containers"]]
    assert names == ["web", "side"]  # merged by name
    merged = await admin.call(
        "PATCH",
        url,
        {"metadata": {"labels": {"tier": "front"}}},
        content_type="application/merge-patch+json",
    )
    assert merged.data["metadata"]["labels"] == {"app": "web", "tier": "front"}
    ops = [{"op": "replace", "path": "/spec/replicas", "value": 7}]
    jsonp = await admin.call("PATCH", url, ops, content_type="application/json-patch+json")
    assert jsonp.data["spec"]["replicas"] == 7
    pinned = [{"op": "replace", "path": "/metadata/resourceVersion", "value": "1"}]
    stale = await admin.call("PATCH", url, pinned, content_type="application/json-patch+json")
    assert (stale.status, stale.data["reason"]) == (409, "Conflict")


async def test_server_side_apply_owns_fields_and_reports_conflicts(admin: HTTPS) -> None:
    url = f"{DEPLOYMENTS}/web?fieldManager=alice"
    yaml_type = "application/apply-patch+yaml"
    first = await admin.call("PATCH", url, deployment("web", 2), content_type=yaml_type)
    assert first.status == 201
    managed = first.data["metadata"]["managedFields"]
    assert managed[0]["manager"] == "alice"
    assert managed[0]["operation"] == "Apply"
    assert "f:replicas" in managed[0]["fieldsV1"]["f:spec"]
    assert "annotations" not in first.data["metadata"]  # the record is shown, not leaked
    bob = f"{DEPLOYMENTS}/web?fieldManager=bob"
    # bob's configuration is partial: only what bob cares about.
    mine = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"replicas": 3},
    }
    clash = await admin.call("PATCH", bob, mine, content_type=yaml_type)
    assert (clash.status, clash.data["reason"]) == (409, "Conflict")
    assert clash.data["message"] == (
        'Apply failed with 1 conflict: conflict with "alice" using apps/v1: .spec.replicas'
    )
    cause = clash.data["details"]["causes"][0]
    assert cause == {
        "reason": "FieldManagerConflict",
        "field": ".spec.replicas",
        "message": 'conflict with "alice" using apps/v1',
    }
    forced = await admin.call("PATCH", bob + "&force=true", mine, content_type=yaml_type)
    assert forced.data["spec"]["replicas"] == 3
    # alice stops setting the label she owned alone: it is removed.
    smaller = deployment("web", 3)
    smaller["metadata"]["labels"] = {}
    again = await admin.call("PATCH", url, smaller, content_type=yaml_type)
    assert again.status == 200
    assert "labels" not in again.data["metadata"]
    no_manager = await admin.call("PATCH", f"{DEPLOYMENTS}/web", mine, content_type=yaml_type)
    assert (no_manager.status, no_manager.data["reason"]) == (422, "Invalid")


async def test_deletecollection(admin: HTTPS) -> None:
    for name in ("a", "b", "c"):
        data = configmap(name)
        data["metadata"]["labels"] = {"drop": "yes" if name != "c" else "no"}
        await admin.call("POST", CONFIGMAPS, data)
    answer = await admin.call("DELETE", f"{CONFIGMAPS}?labelSelector=drop%3Dyes")
    assert answer.status == 200
    assert [i["metadata"]["name"] for i in answer.data["items"]] == ["a", "b"]
    left = (await admin.call("GET", CONFIGMAPS)).data["items"]
    assert [i["metadata"]["name"] for i in left] == ["c"]


async def test_watch_stream_lines_are_json(admin: HTTPS) -> None:
    await admin.call("POST", CONFIGMAPS, configmap("z"))
    answer = await admin.call("GET", f"{CONFIGMAPS}?watch=1&timeoutSeconds=1")
    events = list(lines(answer.body))
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "z")]
