"""The seed on one real node: `tinykube apply -f examples/web-app.yaml`, then curl each pod.

A real API server process (with the scheduler and controllers) and one real
`tinykube kubelet --runtime containerd --runtime-endpoint unix://...` on the
session's private containerd. The manifest is unchanged: `nginx:latest`
with pull policy Always, so the kubelet's PullImage goes through the local
registry mirror (conftest.py); the page must be nginx's welcome page, fetched
from the host at each pod IP on the test bridge.
"""

from __future__ import annotations

import asyncio
import time
import urllib.error
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from apimachinery.client import Client
from kubelet.runtime.cri import CRIRuntime
from localcluster import images
from localcluster.processes import ApiServerProcess, KubeletProcess
from tests.integration.runtime.conftest import RuntimeEnv, http_get
from tests.procs import REPO, run_cli

pytestmark = pytest.mark.root

SEED = str(REPO / "examples" / "web-app.yaml")


class OneNode:
    def __init__(self, root: Path, env: RuntimeEnv) -> None:
        self.root = root
        self.apiserver = ApiServerProcess(root / "apiserver")
        self.kubelet = KubeletProcess(
            "node1",
            self.apiserver,  # a node of its PKI: system:node:node1 over mTLS
            root / "logs",
            runtime="containerd",
            extra_args=(
                "--runtime-endpoint",
                env.endpoint,
                "--pod-log-dir",
                str(root / "pods"),
                "--node-ip",
                env.network.gateway,
                "--lease-duration",
                "3",
                "--node-status-update-frequency",
                "1",
            ),
        )

    def logs(self) -> str:
        parts = []
        for log in sorted(self.root.rglob("*.log")):
            if log.parent.name == "logs" or log.name == "apiserver.log":
                parts.append(f"==== {log.name}\n{log.read_text()[-4000:]}")
        return "\n".join(parts)

    def pods(self) -> list[Any]:
        async def read() -> list[Any]:
            async with Client(self.apiserver.address) as c:
                items, _ = await c.list("pods", "default", label_selector="app=web-app")
                return list(items)

        return asyncio.run(read())

    def wait(self, check: Any, what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}\n{self.logs()}")


@pytest.fixture
def one_node(tmp_path: Path, runtime_env: RuntimeEnv) -> Iterator[OneNode]:
    node = OneNode(tmp_path, runtime_env)
    node.apiserver.start()
    try:
        node.kubelet.start()
        yield node
    finally:
        node.kubelet.stop()
        node.apiserver.stop()
        asyncio.run(_remove_pods(runtime_env))


async def _remove_pods(env: RuntimeEnv) -> None:
    runtime = CRIRuntime(env.endpoint)
    try:
        for sandbox in await runtime.list_pod_sandboxes():
            if sandbox.labels.get("app") == "web-app":
                await runtime.stop_pod_sandbox(sandbox.id)
                await runtime.remove_pod_sandbox(sandbox.id)
    finally:
        await runtime.close()


def test_web_app_serves_nginx_on_each_pod_ip(one_node: OneNode) -> None:
    out = run_cli(one_node.apiserver, "apply", "-f", SEED)  # the admin's kubeconfig, TLS
    assert out.returncode == 0, out.stderr

    def running() -> bool:
        pods = one_node.pods()
        return len(pods) == 2 and all(p.status.phase == "Running" and p.status.pod_ip for p in pods)

    one_node.wait(running, "two web-app pods Running with IPs", 45)
    pods = one_node.pods()
    ips = sorted(p.status.pod_ip for p in pods)
    assert len(set(ips)) == 2
    for ip in ips:
        body = ""
        for _ in range(50):
            try:
                body = http_get(f"http://{ip}/")
                break
            except (OSError, urllib.error.URLError):
                time.sleep(0.1)
        assert images.NGINX_WELCOME in body, f"{ip}: {body!r}"
    for pod in pods:
        status = pod.status.container_statuses[0]
        assert status.ready or status.state.HasField("running")
        assert status.container_id.startswith("containerd://")
    table = run_cli(one_node.apiserver.address, "get", "pods", "-o", "wide")
    assert table.stdout.count("Running") == 2 and all(ip in table.stdout for ip in ips)
