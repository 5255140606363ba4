"""`tinykube dashboard` on a real two-node cluster running the seed, seen by a real browser.

    tinykube up (own cluster) -> apply examples/web-app.yaml -> one replica per node
    tinykube dashboard (a process, as a user runs it) -> prints its address with the token
    headless Chromium (tests/cdp.py) opens that address

What the page must show, and how fast:

1. both nodes, Ready, and both web-app replicas Running, one on each;
2. the packet path of web-app-service from node1 through the real overlay: the
   VTEP MAC and node IP node2's agent published, the FDB entry to 10.201.0.12;
3. a replica deleted (as `tinykube delete pod` does): the page shows it going, then
   its replacement, then the replacement Running, each within 2 s of the moment the
   API's own watch (a second client of the test's) saw that change;
4. screenshots of the page (the seed spread over both nodes, then after the
   replacement) are written under /tmp/tinykube-artifacts/ and kept (their paths
   are printed), for CI to keep as artifacts.

The browser reaches only the dashboard on 127.0.0.1; the dashboard reaches the
cluster through its unix socket. Everything is stopped in `finally` blocks.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from apimachinery.client import Client
from localcluster.cluster import Cluster
from localcluster.processes import REPO, cluster_env, tinykube_cmd
from localcluster.seedprobes import running, spread
from tests.cdp import Browser, chromium_path
from tests.e2e.localcluster_fixture import SEED, cli, local_cluster, skip_reason, wait

REASON = skip_reason() or (
    "" if chromium_path() else "chromium not installed (apt-get install chromium)"
)
pytestmark = pytest.mark.skipif(bool(REASON), reason=REASON or "ready")

NAME = f"dash{os.getpid() % 100000}"
ARTIFACTS = Path("/tmp/tinykube-artifacts")
PROMISE = 2.0  # seconds from the API's event to the page
PODS = (
    "JSON.stringify(Object.fromEntries([...document.querySelectorAll('[data-pod]')]"
    ".map(e => [e.dataset.pod, [e.closest('[data-node]').dataset.node, e.dataset.status]])))"
)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with local_cluster(NAME) as c:
        yield c


def start_dashboard(cluster: Cluster) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [*tinykube_cmd(), "dashboard"],
        cwd=REPO,
        env={**cluster_env(cluster.name), "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    proc.stdout.readline()  # Starting to serve on 127.0.0.1:PORT
    line = proc.stdout.readline()
    if not line.startswith("Open http://127.0.0.1:"):
        proc.kill()
        raise AssertionError(f"dashboard did not start: {line}{proc.communicate()[1]}")
    return proc, line.split()[1]


class ApiClock:
    """When the API's watch first showed each change to a web-app pod (monotonic time)."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, str], float] = {}

    async def run(self, client: Client) -> None:
        async for event in client.watch("pods", "default", label_selector="app=web-app"):
            pod, now = event.object, time.monotonic()
            name = pod.metadata.name
            if event.type == "ADDED":
                self.seen.setdefault(("added", name), now)
            if event.type == "DELETED" or pod.metadata.HasField("deletion_timestamp"):
                self.seen.setdefault(("going", name), now)
            if pod.status.phase == "Running" and not pod.metadata.HasField("deletion_timestamp"):
                self.seen.setdefault(("running", name), now)


async def page_pods(browser: Browser) -> dict[str, list[str]]:
    return dict(json.loads(await browser.evaluate(PODS)))


async def when_page(browser: Browser, check: Any, what: str, timeout: float = 120) -> float:
    """The monotonic time at which the page first satisfied `check(pods)` (polled at 20 Hz)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pods = await page_pods(browser)
        if check(pods):
            return time.monotonic()
        await asyncio.sleep(0.05)
    raise AssertionError(f"the page never showed {what}: {await page_pods(browser)}")


async def scenario(cluster: Cluster, url: str, victim: str) -> Path:
    browser = await Browser.launch(width=1600, height=1000)
    clock = ApiClock()
    async with Client(cluster.client_address, timeout=10) as client:
        watcher = asyncio.ensure_future(clock.run(client))
        try:
            await browser.navigate(url)
            await browser.wait_for("document.getElementById('live').dataset.state === 'live'")
            before = await page_pods(browser)
            web = {n: v for n, v in before.items() if n.startswith("web-app-")}
            assert sorted(node for node, _ in web.values()) == ["node1", "node2"], before
            assert all(status == "Running" for _, status in web.values()), before
            ready = "[...document.querySelectorAll('[data-node][data-ready=True]')].length"
            assert await browser.evaluate(ready) == 2
            path = await browser.wait_for(
                "document.querySelectorAll('#path .hop[data-kind=fdb]').length &&"
                " document.getElementById('path').innerText"
            )
            assert "dev tinykube.1 dst 10.201.0.12 self permanent" in path, path
            seed_shot = await browser.screenshot(ARTIFACTS / f"dashboard-{NAME}.png")

            await client.delete("pods", victim, "default")
            gone = await when_page(
                browser, lambda p: p.get(victim, ["", "Terminating"])[1] == "Terminating", "it go"
            )
            new = await when_page(
                browser,
                lambda p: len([n for n in p if n.startswith("web-app-") and n not in before]) == 1,
                "a replacement",
            )
            (replacement,) = [n for n in await page_pods(browser) if n not in before]
            up = await when_page(
                browser, lambda p: p.get(replacement, ["", ""])[1] == "Running", "it Running"
            )
            delays = {
                "deletion": gone - clock.seen[("going", victim)],
                "replacement": new - clock.seen[("added", replacement)],
                "running": up - clock.seen[("running", replacement)],
            }
            print(f"page behind the API's watch: {delays}")
            assert all(d <= PROMISE for d in delays.values()), delays
            await when_page(browser, lambda p: victim not in p, "the old pod gone")
            after = await browser.screenshot(ARTIFACTS / f"dashboard-{NAME}-after-delete.png")
            print(f"dashboard screenshots: {seed_shot} {after}")
            assert browser.problems() == []
            return seed_shot
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
            await browser.close()


@pytest.mark.timeout(900)
def test_the_dashboard_shows_the_seed_live(cluster: Cluster) -> None:
    assert "created" in cli(cluster, "apply", "-f", SEED).stdout
    wait(lambda: len(running(cluster)) == 2, "two web-app pods Running", cluster, 180)
    spread(cluster)
    victim = next(name for name, (node, _) in running(cluster).items() if node == "node2")
    proc, url = start_dashboard(cluster)
    try:
        shot = asyncio.run(scenario(cluster, url, victim))
        assert shot.stat().st_size > 10_000
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    cli(cluster, "delete", "-f", SEED)
