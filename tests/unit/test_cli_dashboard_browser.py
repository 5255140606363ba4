"""The dashboard's page in a real headless Chromium, against a real API server (no root).

The objects are written straight to the API (no kubelet: the pods' status is set
by the test), so this runs anywhere Debian's chromium is installed, in seconds.
It checks what only a browser can: the script runs under the page's
Content-Security-Policy without one error, the login by the printed URL works
with the cookie's attributes, every panel draws (nodes and their pods, the
placement record, Services and endpoints, the packet path), and a change in the
API reaches the page within 2 s. tests/e2e/test_dashboard.py does the same on a
real two-node cluster running the seed.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from apimachinery import codec
from apimachinery.client import Client
from netplugin.constants import ANNOTATION_NODE_IP, ANNOTATION_VTEP_MAC
from protos import trace_pb2, trace_pb2_grpc
from scheduler.record import ANNOTATION
from tests.cdp import Browser, chromium_path
from tests.unit.cli_apiserver import ApiServerProcess
from tests.unit.cli_apiserver import apiserver as apiserver  # the module's server
from tests.unit.dashboard_http import running_dashboard
from tests.unit.test_cli_dashboard_traces import SPANS

pytestmark = pytest.mark.skipif(
    chromium_path() is None, reason="chromium not installed (apt-get install chromium)"
)

RECORD = {
    "version": 1,
    "scheduler": "default-scheduler",
    "time": "2024-05-01T10:00:00Z",
    "chosen": "b1",
    "nodes": {"total": 2, "evaluated": 2, "feasible": 2},
    "weights": {"SelectorSpread": 2, "NodeResourcesLeastAllocated": 1},
    "scored": [
        {
            "node": "b1",
            "total": 290,
            "scores": {"SelectorSpread": 200, "NodeResourcesLeastAllocated": 90},
        },
        {
            "node": "b2",
            "total": 88,
            "scores": {"SelectorSpread": 0, "NodeResourcesLeastAllocated": 88},
        },
    ],
    "scoredOmitted": 0,
    "rejected": [],
    "rejectedOmitted": {},
}


def objects() -> list[Any]:
    def node(name: str, cidr: str, ip: str, mac: str) -> dict[str, Any]:
        annotations = {ANNOTATION_NODE_IP: ip, ANNOTATION_VTEP_MAC: mac}
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "annotations": annotations},
            "spec": {"podCIDR": cidr},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]},
        }

    def pod(name: str, node_name: str, **annotations: str) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": "bweb"}, "annotations": annotations},
            "spec": {"nodeName": node_name, "containers": [{"name": "web", "image": "nginx"}]},
        }

    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "bweb"},
        "spec": {"selector": {"app": "bweb"}, "ports": [{"port": 80, "targetPort": 80}]},
    }
    endpoints = {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": "bweb"},
        "subsets": [
            {
                "addresses": [
                    {
                        "ip": "10.244.4.2",
                        "nodeName": "b1",
                        "targetRef": {"kind": "Pod", "name": "bweb-1"},
                    },
                    {
                        "ip": "10.244.5.2",
                        "nodeName": "b2",
                        "targetRef": {"kind": "Pod", "name": "bweb-2"},
                    },
                ],
                "ports": [{"port": 80}],
            }
        ],
    }
    return [
        codec.from_dict(o)
        for o in (
            node("b1", "10.244.4.0/24", "10.201.0.41", "02:00:00:00:04:01"),
            node("b2", "10.244.5.0/24", "10.201.0.42", "02:00:00:00:05:01"),
            pod("bweb-1", "b1", **{ANNOTATION: json.dumps(RECORD)}),
            pod("bweb-2", "b2"),
            service,
            endpoints,
        )
    ]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    b = await Browser.launch(width=1500, height=1000)
    try:
        yield b
    finally:
        await b.close()


PODS = "[...document.querySelectorAll('[data-pod]')].map(e => e.dataset.pod).sort().join(',')"


@pytest.mark.timeout(120)
async def test_the_page_draws_the_cluster_and_follows_it(
    apiserver: ApiServerProcess, browser: Browser, tmp_path: Path
) -> None:
    async with Client(apiserver.address) as client:
        for obj in objects():
            await client.create(obj)
        await trace_pb2_grpc.TracesStub(client._connection.channel()).Export(
            trace_pb2.ExportRequest(spans=SPANS), timeout=10
        )
        async with running_dashboard(client, traces=True) as dash:
            await browser.navigate(dash.url)
            assert await browser.evaluate("location.href") == f"http://127.0.0.1:{dash.port}/"
            cookies = await browser.send(
                "Network.getCookies", urls=[f"http://127.0.0.1:{dash.port}/"]
            )
            (cookie,) = cookies["cookies"]
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
            assert await browser.evaluate("document.cookie") == ""  # HttpOnly: not for scripts
            await browser.wait_for("document.getElementById('live').dataset.state === 'live'")
            assert await browser.wait_for(f"{PODS} === 'bweb-1,bweb-2' && {PODS}")
            nodes = (
                "[...document.querySelectorAll('[data-node]')].map(e => e.dataset.node).join(',')"
            )
            assert await browser.evaluate(nodes) == "b1,b2"
            # The placement record of the newest pod with one: bweb-1 on b1.
            placement = await browser.wait_for("document.getElementById('placement').innerText")
            assert "chosen: b1" in placement and "SelectorSpread" in placement
            assert "null" not in placement
            # The packet path from b1: the nft lookup, then a branch through the overlay to b2.
            path = await browser.wait_for(
                "document.querySelectorAll('#path .hop[data-kind=fdb]').length &&"
                " document.getElementById('path').innerText"
            )
            assert "vmap @service-ips" in path and "dst 10.201.0.42 self permanent" in path

            # The waterfall of the newest trace, its critical path marked.
            rows = "document.querySelectorAll('#trace .span-row').length"
            assert await browser.wait_for(f"{rows} === {len(SPANS)} && {rows}")
            critical = "document.querySelectorAll('#trace .span-row.critical').length"
            assert await browser.evaluate(critical) == 5

            started = time.monotonic()
            await client.create(
                codec.from_dict({**codec.to_dict(objects()[3]), "metadata": {"name": "bweb-3"}})
            )
            await browser.wait_for(f"{PODS} === 'bweb-1,bweb-2,bweb-3'", timeout=2.0)
            assert time.monotonic() - started < 2.0
            await client.delete("pods", "bweb-2", "default", grace_period_seconds=0)
            await browser.wait_for(f"{PODS} === 'bweb-1,bweb-3'", timeout=2.0)

            shot = await browser.screenshot(tmp_path / "dashboard.png")
            assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            assert browser.problems() == []


async def test_a_browser_without_the_secret_gets_nothing(
    apiserver: ApiServerProcess, browser: Browser
) -> None:
    async with Client(apiserver.address) as client, running_dashboard(client) as dash:
        await browser.navigate(f"http://127.0.0.1:{dash.port}/")
        text = await browser.evaluate("document.body.innerText")
        assert text.startswith("401 Unauthorized")
        assert await browser.evaluate("document.querySelectorAll('[data-pod]').length") == 0
