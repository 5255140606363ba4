"""pods/exec over HTTP: a WebSocket (v5.channel.k8s.io) or SPDY/3.1, relayed to a stand-in kubelet.

Each test drives the protocol as kubectl does, frame by frame
(streamclient.py), against a real API server on TLS, and checks both ends:
the frames the client reads and what reached the kubelet (standin_kubelet.py).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from apiserver.httpapi import spdy
from tests.unit.apiserver.httpapi.client import HTTPS, PODS, Cluster
from tests.unit.apiserver.httpapi.standin_kubelet import StandInKubelet, kubelet_with_pods
from tests.unit.apiserver.httpapi.streamclient import (
    SpdyClient,
    WSClient,
    spdy_headers,
    upgrade,
    websocket_headers,
)

V5, V4 = "v5.channel.k8s.io", "v4.channel.k8s.io"


@pytest.fixture
async def kubelet(admin: HTTPS) -> AsyncIterator[StandInKubelet]:
    async with kubelet_with_pods(admin) as stand_in:
        yield stand_in


def exec_path(pod: str, *command: str, **params: str) -> str:
    query = "&".join(f"command={c.replace('/', '%2F')}" for c in command)
    query += "".join(f"&{k}={v}" for k, v in params.items())
    return f"{PODS}/{pod}/exec?{query}"


async def test_websocket_v5_exec_with_stdin(admin: HTTPS, kubelet: StandInKubelet) -> None:
    path = exec_path("one", "cat", "/dev/stdin", stdin="true", stdout="true", stderr="true")
    up = await upgrade(admin, path, websocket_headers(V5, V4))
    assert up.status == 101, up.body
    assert up.headers["sec-websocket-protocol"] == V5
    assert up.headers["upgrade"] == "websocket"
    ws = WSClient(up)
    try:
        assert await ws.frame() == (0x2, b"\x01")  # the empty message: the streams are up
        await ws.binary(b"\x00hello ")
        await ws.send(0x2, b"\x00wor", fin=False)  # a fragmented message
        await ws.send(0x9, b"beat")  # a ping between the fragments
        await ws.send(0x0, b"ld\n", fin=True)
        got = [await ws.frame() for _ in range(3)]
        assert (0xA, b"beat") in got  # the pong, whenever the relay's data comes
        assert [f for f in got if f[0] == 0x2] == [(0x2, b"\x01HELLO "), (0x2, b"\x01WORLD\n")]
        await ws.binary(b"\xff\x00")  # v5: close stdin
        messages, code = await ws.messages_until_close()
        await ws.send(0x8, code.to_bytes(2, "big"))
    finally:
        up.close()
    assert code == 1000
    assert [m[0] for m in messages] == [3]
    assert json.loads(messages[0][1:]) == {"metadata": {}, "status": "Success"}
    start = kubelet.starts[-1]
    assert (start.pod, start.container, list(start.command)) == ("one", "c", ["cat", "/dev/stdin"])
    assert (start.stdin, start.stdout, start.stderr, start.tty) == (True, True, True, False)
    assert kubelet.requests == ["stdin", "stdin"]  # then the end of the call: stdin's EOF


async def test_websocket_exit_code_is_a_status(admin: HTTPS, kubelet: StandInKubelet) -> None:
    path = exec_path("p", "print", "3", container="b", stdout="true", stderr="true")
    up = await upgrade(admin, path, websocket_headers(V5))
    assert up.status == 101, up.body
    ws = WSClient(up)
    try:
        messages, code = await ws.messages_until_close()
    finally:
        up.close()
    assert messages[:3] == [b"\x01", b"\x01out\n", b"\x02err\n"]
    status = json.loads(messages[3][1:])
    assert messages[3][0] == 3 and code == 1000
    assert status["status"] == "Failure"
    assert status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
    assert status["message"].startswith("command terminated with non-zero exit code")
    assert kubelet.starts[-1].container == "b"


async def test_websocket_tty_resizes(admin: HTTPS, kubelet: StandInKubelet) -> None:
    params = {"stdin": "true", "stdout": "true", "stderr": "true", "tty": "true"}
    up = await upgrade(admin, exec_path("one", "tty", **params), websocket_headers(V5))
    ws = WSClient(up)
    try:
        assert await ws.frame() == (0x2, b"\x01")
        await ws.binary(b'\x04{"Width":80,"Height":24}{"Width":1')
        await ws.binary(b'\x0400,"Height":40}')
        assert await ws.frame() == (0x2, b"\x0180x24")  # a TTY's stderr is its stdout
        assert await ws.frame() == (0x2, b"\x01100x40")
        await ws.binary(b"\xff\x00")
        messages, _ = await ws.messages_until_close()
    finally:
        up.close()
    assert json.loads(messages[-1][1:])["status"] == "Success"
    start = kubelet.starts[-1]
    assert (start.tty, start.stderr) == (True, False)
    assert kubelet.requests == ["resize", "resize", "stdin_close"]  # resizes may follow it


async def test_spdy_exec(admin: HTTPS, kubelet: StandInKubelet) -> None:
    path = exec_path("one", "cat", stdin="true", stdout="true", stderr="true")
    up = await upgrade(admin, path, spdy_headers(V5, V4, "v3.channel.k8s.io"), method="POST")
    assert up.status == 101, up.body
    assert up.headers["upgrade"] == "SPDY/3.1"
    assert up.headers["x-stream-protocol-version"] == V5
    client = SpdyClient(up.reader, up.writer)
    try:
        for sid, kind in ((1, "error"), (3, "stdin"), (5, "stdout"), (7, "stderr")):
            await client.open(sid, streamtype=kind)
            assert await client.frame() == spdy.SynReply(sid, {})
        await client.send(spdy.Ping(1))
        assert await client.frame() == spdy.Ping(1)
        await client.send(spdy.Data(3, b"abc"))
        assert await client.frame() == spdy.Data(5, b"ABC")
        await client.send(spdy.Data(3, b"", fin=True))
        frames = [await client.frame() for _ in range(6)]
    finally:
        up.close()
    status = json.loads(frames[0].data)
    assert frames[0].stream_id == 1 and status == {"metadata": {}, "status": "Success"}
    fins = {f.stream_id for f in frames[1:5] if isinstance(f, spdy.Data) and f.fin}
    assert fins == {1, 3, 5, 7}
    assert frames[5] == spdy.GoAway(7, 0)


async def test_spdy_v2_error_is_text(admin: HTTPS, kubelet: StandInKubelet) -> None:
    path = exec_path("one", "print", "2", stdout="true")
    up = await upgrade(admin, path, spdy_headers("v2.channel.k8s.io"), method="POST")
    assert up.headers["x-stream-protocol-version"] == "v2.channel.k8s.io"
    client = SpdyClient(up.reader, up.writer)
    try:
        await client.open(1, streamtype="error")
        await client.open(3, streamtype="stdout")
        frames = [await client.frame() for _ in range(6)]
    finally:
        up.close()
    assert frames[2] == spdy.Data(3, b"out\n")
    assert frames[3].stream_id == 1
    assert frames[3].data.startswith(b"command terminated with non-zero exit code")


async def test_refusals_before_the_upgrade(
    cluster: Cluster, admin: HTTPS, kubelet: StandInKubelet
) -> None:
    ws = websocket_headers(V5)
    path = exec_path("one", "cat", stdout="true")
    nobody = await upgrade(cluster.client(None), path, ws)
    assert (nobody.status, json.loads(nobody.body)["reason"]) == (401, "Unauthorized")
    bob = await upgrade(cluster.client(None, token="s3cret-token"), path, websocket_headers(V5))
    assert bob.status == 403
    assert 'cannot create resource "pods/exec"' in json.loads(bob.body)["message"]
    cases = [
        (exec_path("one", "cat", stdout="true"), {}, 400, "Upgrade request required"),
        (exec_path("one", stdout="true"), ws, 400, "you must specify at least 1 command"),
        (exec_path("one", "cat"), ws, 400, "at least 1 of stdin, stdout, stderr"),
        (exec_path("p", "cat", stdout="true"), ws, 400, "a container name must be specified"),
        (exec_path("one", "missing", stdout="true"), ws, 400, 'container "c" is not running'),
        (exec_path("gone", "cat", stdout="true"), ws, 404, 'pods "gone" not found'),
        (exec_path("pending", "cat", stdout="true"), ws, 400, "does not have a host assigned"),
        (path, websocket_headers("v9.channel.k8s.io"), 400, "requested protocol(s) are not"),
        (path, spdy_headers("v9.channel.k8s.io"), 403, "unable to negotiate protocol"),
        (f"{PODS}/one/attach?stdout=true", ws, 405, "pods/attach is not supported"),
    ]
    for target, headers, code, text in cases:
        answer = await upgrade(admin, target, headers)
        assert answer.status == code, (target, answer.body)
        assert text in json.loads(answer.body)["message"], answer.body


RBAC = "rbac.authorization.k8s.io"


def grant(verbs: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A Role of `verbs` on pods/exec, and its binding to bob (the token's user)."""
    role = {
        "apiVersion": f"{RBAC}/v1",
        "kind": "Role",
        "metadata": {"name": "execer"},
        "rules": [{"apiGroups": [""], "resources": ["pods/exec"], "verbs": verbs}],
    }
    binding = {
        "apiVersion": f"{RBAC}/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "execer"},
        "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": "execer"},
        "subjects": [{"apiGroup": RBAC, "kind": "User", "name": "bob"}],
    }
    return role, binding


async def test_a_websocket_get_needs_create(
    cluster: Cluster, admin: HTTPS, kubelet: StandInKubelet
) -> None:
    """Kubernetes 1.30+: the upgrade is authorized as `create` even when it is a GET."""
    rbac = f"/apis/{RBAC}/v1/namespaces/default"
    role, binding = grant(["get"])
    assert (await admin.call("POST", f"{rbac}/roles", role)).status == 201
    assert (await admin.call("POST", f"{rbac}/rolebindings", binding)).status == 201
    bob = cluster.client(None, token="s3cret-token")
    path = exec_path("one", "print", "0", stdout="true")
    refused = await upgrade(bob, path, websocket_headers(V5))
    assert refused.status == 403, refused.body
    current = (await admin.call("GET", f"{rbac}/roles/execer")).data
    current["rules"] = grant(["create"])[0]["rules"]
    assert (await admin.call("PUT", f"{rbac}/roles/execer", current)).status == 200
    up = await upgrade(bob, path, websocket_headers(V5))
    try:
        assert up.status == 101, up.body
        messages, _ = await WSClient(up).messages_until_close()
    finally:
        up.close()
    assert messages[1:] == [b"\x01out\n", b'\x03{"metadata":{},"status":"Success"}']


async def test_a_client_that_leaves_cancels_the_kubelet(
    admin: HTTPS, kubelet: StandInKubelet
) -> None:
    up = await upgrade(admin, exec_path("one", "sleep", stdout="true"), websocket_headers(V5))
    assert up.status == 101
    assert await WSClient(up).frame() == (0x2, b"\x01")
    up.close()
    await asyncio.wait_for(kubelet.cancelled.wait(), 10)
