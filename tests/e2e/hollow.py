"""A hollow cluster for process-level tests: one API server and N fake-runtime kubelets.

Every part is a real `tinykube` process, as a user starts them, secured as a
cluster is (localcluster/processes.py): the kubelets, and with
`separate_control_plane` the scheduler and the controller-manager, reach the
API server over mutual TLS, each with the kubeconfig `tinykube pki init` made
for it, while the test itself reads the cluster as the local admin over the
server's unix socket (`server`). Only the container runtime is the hollow one
(kubemark's idea), so these tests need no root and no images. Timings are
shortened (lease 3 s, grace 4 s, eviction after 3 s) so that node failures play
out in seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from apimachinery.client import Client
from localcluster.processes import ApiServerProcess, ChildProcess, KubeletProcess

T = TypeVar("T")

FAST_APISERVER = ("--node-monitor-grace-period", "4", "--default-toleration-seconds", "3")
FAST_KUBELET = ("--lease-duration", "3", "--node-status-update-frequency", "1")


class HollowCluster:
    """With `separate_control_plane`, the scheduler and the controllers run as their own
    processes (`tinykube scheduler`, `tinykube controller-manager`), so a test can kill them."""

    def __init__(self, root: Path, nodes: int, separate_control_plane: bool = False) -> None:
        self.root = root
        extra: tuple[str, ...] = FAST_APISERVER
        if separate_control_plane:
            extra = (*extra, "--no-scheduler", "--no-controllers")
        self.apiserver = ApiServerProcess(root / "apiserver", extra_args=extra)
        self.control_plane: dict[str, ChildProcess] = {}
        if separate_control_plane:
            scheduler = ("--kubeconfig", str(self.apiserver.kubeconfig("scheduler")))
            manager = ("--kubeconfig", str(self.apiserver.kubeconfig("controller-manager")))
            self.control_plane = {
                "scheduler": ChildProcess(
                    [*scheduler, "scheduler"], root / "logs" / "scheduler.log"
                ),
                "controller-manager": ChildProcess(
                    [*manager, "controller-manager", "--node-monitor-grace-period", "4"],
                    root / "logs" / "controller-manager.log",
                ),
            }
        self.kubelets = {
            f"node{i}": KubeletProcess(
                f"node{i}", self.apiserver, root / "logs", extra_args=FAST_KUBELET
            )
            for i in range(1, nodes + 1)
        }

    @property
    def server(self) -> str:
        return self.apiserver.address

    def start(self) -> None:
        self.apiserver.start()
        for part in self.control_plane.values():
            part.spawn()
        for kubelet in self.kubelets.values():
            kubelet.start()
        self.wait(self._nodes_ready(len(self.kubelets)), "nodes Ready", 30)

    def stop(self) -> None:
        for kubelet in self.kubelets.values():
            kubelet.stop()
        for part in self.control_plane.values():
            part.stop()
        self.apiserver.stop()

    def logs(self) -> str:
        parts = []
        for log in sorted(self.root.rglob("*.log")):
            parts.append(f"==== {log.name}\n{log.read_text()[-4000:]}")
        return "\n".join(parts)

    # ---- reading the cluster -----------------------------------------------------------------

    def call(self, fn: Callable[[Client], Awaitable[T]]) -> T:
        async def run() -> T:
            async with Client(self.server) as c:
                return await fn(c)

        return asyncio.run(run())

    def pods(self, selector: str = "app=web-app") -> list[Any]:
        async def read(c: Client) -> list[Any]:
            items, _ = await c.list("pods", "default", label_selector=selector)
            return [p for p in items if not p.metadata.HasField("deletion_timestamp")]

        return self.call(read)

    def running(self, selector: str = "app=web-app") -> list[Any]:
        return [
            p
            for p in self.pods(selector)
            if p.status.phase == "Running" and p.status.pod_ip and p.spec.node_name
        ]

    def _nodes_ready(self, count: int) -> Callable[[], bool]:
        def check() -> bool:
            async def read(c: Client) -> bool:
                nodes, _ = await c.list("nodes")
                ready = [
                    n
                    for n in nodes
                    if any(x.type == "Ready" and x.status == "True" for x in n.status.conditions)
                    and n.spec.pod_cidr
                ]
                return len(ready) >= count

            return self.call(read)

        return check

    def wait(self, check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.3)
        raise AssertionError(f"timed out waiting for {what}\n{self.logs()}")


@contextmanager
def hollow_cluster(
    root: Path, nodes: int = 3, separate_control_plane: bool = False
) -> Iterator[HollowCluster]:
    cluster = HollowCluster(root, nodes, separate_control_plane)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
