"""The dashboard follows the API: the event stream, the packet path, the user's own rights.

Against a real API server: objects are written with the real client, and the
dashboard's event stream must carry each change within the page's promise (2 s;
here it takes a few tens of milliseconds). The RBAC test runs the dashboard as a
user who may read nothing, over TLS with a bearer token, and checks that the
page is told so in the server's words rather than shown an empty cluster.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

from apimachinery import codec
from apimachinery.channel import Credentials
from apimachinery.client import Client
from netplugin.constants import ANNOTATION_NODE_IP, ANNOTATION_VTEP_MAC
from tests.unit.apiserver.httpapi.client import TOKEN, Cluster
from tests.unit.apiserver.httpapi.conftest import cluster as cluster  # the TLS server
from tests.unit.cli_apiserver import ROOT, ApiServerProcess
from tests.unit.cli_apiserver import apiserver as apiserver  # the module's server
from tests.unit.dashboard_http import events, next_state, request, running_dashboard


def node(name: str, cidr: str, ip: str, mac: str) -> Any:
    return codec.from_dict(
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "annotations": {ANNOTATION_NODE_IP: ip, ANNOTATION_VTEP_MAC: mac},
            },
            "spec": {"podCIDR": cidr},
        }
    )


def pod(name: str, node_name: str = "") -> Any:
    spec: dict[str, Any] = {"containers": [{"name": "web", "image": "nginx:latest"}]}
    if node_name:
        spec["nodeName"] = node_name
    return codec.from_dict(
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}
    )


def names(doc: dict[str, Any], kind: str) -> set[str]:
    return {item["name"] for item in doc[kind]}


async def test_the_event_stream_carries_every_change_at_once(apiserver: ApiServerProcess) -> None:
    async with Client(apiserver.address) as client, running_dashboard(client) as dash:
        await client.create(node("live1", "10.244.7.0/24", "10.201.0.71", "02:00:00:00:07:01"))
        stream = events(dash.port, dash.cookie)
        first = await next_state(stream)
        deadline = time.monotonic() + 5
        while "live1" not in names(first, "nodes") and time.monotonic() < deadline:
            first = await next_state(stream)
        assert "live1" in names(first, "nodes")
        assert first["context"] == {"server": apiserver.address, "namespace": "default"}
        assert first["errors"] == {}

        started = time.monotonic()
        await client.create(pod("stream-a", "live1"))
        doc = await next_state(stream, timeout=2.0)
        while "stream-a" not in names(doc, "pods"):
            doc = await next_state(stream, timeout=2.0 - (time.monotonic() - started))
        assert time.monotonic() - started < 2.0
        seen = next(p for p in doc["pods"] if p["name"] == "stream-a")
        assert seen["node"] == "live1" and seen["phase"] == "Pending" and seen["restarts"] == 0
        assert doc["generation"] > first["generation"]

        await client.delete("pods", "stream-a", "default", grace_period_seconds=0)
        doc = await next_state(stream, timeout=2.0)
        while "stream-a" in names(doc, "pods"):
            doc = await next_state(stream, timeout=2.0)
        state = (await request(dash.port, "/api/state", cookie=dash.cookie)).data
        assert state["generation"] >= doc["generation"]
        await stream.aclose()


async def test_a_quiet_stream_sends_heartbeats(apiserver: ApiServerProcess) -> None:
    async with Client(apiserver.address) as client, running_dashboard(client) as dash:
        stream = events(dash.port, dash.cookie)
        kinds = [event async for event, _ in _take(stream, 3)]
        assert kinds[:2] == ["", "state"]  # the retry line, then the document
        assert kinds[2] == ""  # `: keep-alive` after a quiet second (heartbeat=1.0)
        await stream.aclose()


async def _take(stream: Any, n: int) -> Any:
    async for item in stream:
        yield item
        n -= 1
        if n == 0:
            return


async def test_the_packet_path_route(apiserver: ApiServerProcess) -> None:
    manifest = """\
apiVersion: v1
kind: Service
metadata: {name: pathweb}
spec:
  selector: {app: pathweb}
  ports: [{name: http, port: 80, targetPort: 80}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: pathweb}
subsets:
- addresses:
  - {ip: 10.244.8.5, nodeName: path1, targetRef: {kind: Pod, name: pathweb-a}}
  - {ip: 10.244.9.7, nodeName: path2, targetRef: {kind: Pod, name: pathweb-b}}
  ports: [{name: http, port: 80}]
"""
    async with Client(apiserver.address) as client:
        await client.create(node("path1", "10.244.8.0/24", "10.201.0.81", "02:00:00:00:08:01"))
        await client.create(node("path2", "10.244.9.0/24", "10.201.0.82", "02:00:00:00:09:01"))
        for obj in codec.decode_documents(manifest):
            await client.create(obj)
        async with running_dashboard(client) as dash:
            path = "/api/path?service=default/pathweb&port=http&from=path1"
            answer = await request(dash.port, path, cookie=dash.cookie)
            assert answer.status == 200, answer.body
            data = answer.data
            assert data["clientNode"] == "path1" and data["protocol"] == "tcp"
            by_node = {b["node"]: b for b in data["branches"]}
            assert set(by_node) == {"path1", "path2"}
            assert by_node["path2"]["pod"] == "pathweb-b" and by_node["path2"]["complete"]
            kinds = [h["kind"] for h in by_node["path2"]["hops"]]
            assert "fdb" in kinds and "vxlan" in kinds
            assert [h["kind"] for h in by_node["path1"]["hops"]] == ["nft", "route", "pod"]
            for bad, message in (
                ("service=default/nothing&from=path1", 'services "nothing" not found'),
                ("service=default/pathweb&from=path9", 'node "path9" not found'),
                ("service=pathweb&from=path1", "want NAMESPACE/NAME"),
            ):
                refused = await request(dash.port, f"/api/path?{bad}", cookie=dash.cookie)
                assert refused.status == 404 and message in refused.data["error"], bad


async def test_the_dashboard_reads_with_the_users_own_rights(cluster: Cluster) -> None:
    ca = (cluster.pki / "pki" / "ca.crt").read_bytes()
    credentials = Credentials(ca_pem=ca, token=TOKEN, server_name="localhost")
    async with (
        Client(f"127.0.0.1:{cluster.port}", credentials=credentials) as bob,
        running_dashboard(bob) as dash,
    ):
        state = (await request(dash.port, "/api/state", cookie=dash.cookie)).data
    assert set(state["errors"]) == {"nodes", "pods", "services", "endpoints"}
    assert 'User "bob" cannot list resource "nodes"' in state["errors"]["nodes"]
    assert state["nodes"] == [] and state["pods"] == []


def test_the_command_prints_its_address_and_stops_on_sigterm(apiserver: ApiServerProcess) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "--server", apiserver.address, "dashboard"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        second = proc.stdout.readline()
        assert first.startswith("Starting to serve on 127.0.0.1:"), first
        url = second.split()[1]
        assert second.startswith("Open http://127.0.0.1:") and "?token=" in url
        port = int(url.split(":")[2].split("/")[0])
        import asyncio

        login = asyncio.run(request(port, url[url.index("/?") :]))
        assert login.status == 303
        cookie = login.headers["set-cookie"].split(";")[0]
        assert asyncio.run(request(port, "/api/state", cookie=cookie)).status == 200
        assert asyncio.run(request(port, "/api/state")).status == 401
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
