"""pods/portforward over HTTP: SPDY/3.1, or SPDY tunnelled in a WebSocket, to a stand-in kubelet.

kubectl opens an error stream and a data stream per forwarded connection,
paired by requestID; the stand-in kubelet's port echoes upper-cased (81
refuses, 82 sends a banner and ends). Each test plays kubectl's frames and
checks what came back and what reached the kubelet.
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
    Upgraded,
    WSClient,
    spdy_headers,
    upgrade,
    websocket_headers,
)

PF = "portforward.k8s.io"
TUNNEL = "SPDY/3.1+portforward.k8s.io"


@pytest.fixture
async def kubelet(admin: HTTPS) -> AsyncIterator[StandInKubelet]:
    async with kubelet_with_pods(admin) as stand_in:
        yield stand_in


async def open_pair(client: SpdyClient, first: int, port: str, request_id: str) -> None:
    """kubectl's two streams for one connection: error (closed at once), then data."""
    await client.open(first, fin=True, streamtype="error", port=port, requestid=request_id)
    assert await client.frame() == spdy.SynReply(first, {})
    await client.open(first + 2, streamtype="data", port=port, requestid=request_id)
    assert await client.frame() == spdy.SynReply(first + 2, {})


async def frames_until(client: SpdyClient, count: int) -> list[Any]:
    return [await client.frame() for _ in range(count)]


async def test_spdy_port_forward(admin: HTTPS, kubelet: StandInKubelet) -> None:
    up = await upgrade(admin, f"{PODS}/one/portforward", spdy_headers(PF), method="POST")
    assert up.status == 101, up.body
    assert (up.headers["upgrade"], up.headers["x-stream-protocol-version"]) == ("SPDY/3.1", PF)
    client = SpdyClient(up.reader, up.writer)
    try:
        await open_pair(client, 1, "80", "0")
        await client.send(spdy.Data(3, b"GET / HTTP/1.0\r\n\r\n"))
        assert await client.frame() == spdy.Data(3, b"GET / HTTP/1.0\r\n\r\n".upper())
        await client.send(spdy.Data(3, b"", fin=True))  # the local side half-closed
        end = await frames_until(client, 2)
    finally:
        up.close()
    assert sorted(f.stream_id for f in end) == [1, 3]
    assert all(isinstance(f, spdy.Data) and f.fin and not f.data for f in end)
    start = kubelet.starts[-1]
    assert (start.namespace, start.pod, start.port) == ("default", "one", 80)
    assert start.pod_uid
    assert kubelet.requests == ["end"]  # the data stream's FIN: the call's half-close


async def test_two_connections_interleave(admin: HTTPS, kubelet: StandInKubelet) -> None:
    up = await upgrade(admin, f"{PODS}/one/portforward", spdy_headers(PF), method="POST")
    client = SpdyClient(up.reader, up.writer)
    try:
        await open_pair(client, 1, "80", "0")
        await open_pair(client, 5, "8080", "1")
        await client.send(spdy.Data(7, b"second"))
        await client.send(spdy.Data(3, b"first"))
        got = {f.stream_id: f.data for f in await frames_until(client, 2)}
        await client.send(spdy.Ping(3))
        assert await client.frame() == spdy.Ping(3)
    finally:
        up.close()
    assert got == {3: b"FIRST", 7: b"SECOND"}
    assert sorted(s.port for s in kubelet.starts) == [80, 8080]


async def test_the_pod_side_ends_first(admin: HTTPS, kubelet: StandInKubelet) -> None:
    up = await upgrade(admin, f"{PODS}/one/portforward", spdy_headers(PF), method="POST")
    client = SpdyClient(up.reader, up.writer)
    try:
        await open_pair(client, 1, "82", "7")
        frames = await frames_until(client, 3)
    finally:
        up.close()
    assert frames[0] == spdy.Data(3, b"banner\n")
    assert {(f.stream_id, f.fin) for f in frames[1:]} == {(1, True), (3, True)}


async def test_a_refused_port_is_told_on_the_error_stream(
    admin: HTTPS, kubelet: StandInKubelet
) -> None:
    up = await upgrade(admin, f"{PODS}/one/portforward", spdy_headers(PF), method="POST")
    client = SpdyClient(up.reader, up.writer)
    try:
        await open_pair(client, 1, "81", "0")
        frames = await frames_until(client, 3)
    finally:
        up.close()
    message = frames[0]
    assert message.stream_id == 1
    assert message.data.startswith(b"error forwarding port 81 to pod one, uid ")
    assert message.data.endswith(b"connection refused")
    assert {(f.stream_id, f.fin) for f in frames[1:]} == {(1, True), (3, True)}


async def test_bad_stream_headers_are_refused(admin: HTTPS, kubelet: StandInKubelet) -> None:
    up = await upgrade(admin, f"{PODS}/one/portforward", spdy_headers(PF), method="POST")
    client = SpdyClient(up.reader, up.writer)
    try:
        await client.open(1, streamtype="error", requestid="0")  # no port
        assert await client.frame() == spdy.RstStream(1, spdy.REFUSED_STREAM)
        await client.open(3, streamtype="error", port="99999", requestid="0")
        assert await client.frame() == spdy.RstStream(3, spdy.REFUSED_STREAM)
        await client.open(5, streamtype="bogus", port="80", requestid="0")
        assert await client.frame() == spdy.RstStream(5, spdy.REFUSED_STREAM)
        await client.open(5, streamtype="data", port="80", requestid="0")  # an id reused
        assert await client.frame() == spdy.RstStream(5, spdy.PROTOCOL_ERROR)
        await client.send(spdy.Data(41, b"x"))  # no such stream
        assert await client.frame() == spdy.RstStream(41, spdy.INVALID_STREAM)
    finally:
        up.close()
    assert kubelet.starts == []


async def tunnel(admin: HTTPS, chunk: int) -> tuple[Upgraded, SpdyClient]:
    up = await upgrade(admin, f"{PODS}/one/portforward", websocket_headers(TUNNEL))
    assert up.status == 101, up.body
    assert up.headers["sec-websocket-protocol"] == TUNNEL
    ws = WSClient(up)
    return up, SpdyClient(up.reader, up.writer, chunk=chunk, tunnel=ws)


async def test_spdy_in_a_websocket(admin: HTTPS, kubelet: StandInKubelet) -> None:
    up, client = await tunnel(admin, chunk=5)  # frames split across messages at random places
    try:
        await open_pair(client, 1, "80", "0")
        await client.send(spdy.Data(3, b"hello"))
        assert await client.frame() == spdy.Data(3, b"HELLO")
        await client.send(spdy.Data(3, b"", fin=True))
        end = await frames_until(client, 2)
        assert client.tunnel is not None
        await client.tunnel.send(0x8, (1000).to_bytes(2, "big"))
        assert await client.tunnel.frame() == (0x8, (1000).to_bytes(2, "big"))
    finally:
        up.close()
    assert {(f.stream_id, f.fin) for f in end} == {(1, True), (3, True)}


async def test_leaving_ends_the_kubelets_call(admin: HTTPS, kubelet: StandInKubelet) -> None:
    up, client = await tunnel(admin, chunk=0)
    await open_pair(client, 1, "80", "0")
    await client.send(spdy.Data(3, b"x"))
    assert await client.frame() == spdy.Data(3, b"X")
    up.close()
    await asyncio.wait_for(kubelet.ended.wait(), 10)


async def test_refusals_before_the_upgrade(
    cluster: Cluster, admin: HTTPS, kubelet: StandInKubelet
) -> None:
    path = f"{PODS}/one/portforward"
    nobody = await upgrade(cluster.client(None), path, websocket_headers(TUNNEL))
    assert nobody.status == 401
    bob = await upgrade(cluster.client(None, token="s3cret-token"), path, spdy_headers(PF))
    assert bob.status == 403
    assert 'cannot create resource "pods/portforward"' in json.loads(bob.body)["message"]
    cases = [
        (path, {}, 400, "Upgrade request required"),
        (path, websocket_headers("v4.channel.k8s.io"), 400, "requested protocol(s) are not"),
        (path, spdy_headers("v4.channel.k8s.io"), 403, "unable to negotiate protocol"),
        (f"{PODS}/gone/portforward", spdy_headers(PF), 404, 'pods "gone" not found'),
        (f"{PODS}/pending/portforward", spdy_headers(PF), 400, "does not have a host"),
    ]
    for target, headers, code, text in cases:
        method = "GET" if "Sec-WebSocket-Key" in headers else "POST"
        answer = await upgrade(admin, target, headers, method=method)
        assert answer.status == code, (target, answer.body)
        assert text in json.loads(answer.body)["message"], answer.body
