"""A real API server (no scheduler, no controllers) and helpers to run hollow kubelets on it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from apimachinery import errors
from apimachinery.client import Client, retry_on_conflict
from kubelet.config import KubeletConfig
from kubelet.kubelet import Kubelet
from kubelet.runtime.fake import FakeRuntime
from protos import core_pb2


def fast_config(node: str, **overrides: Any) -> KubeletConfig:
    """Kubernetes' timings divided by about 50, so tests take a second or two."""
    values: dict[str, Any] = {
        "node_name": node,
        "node_ip": "192.168.50.10",
        "lease_renew_interval": 0.2,
        "node_status_update_frequency": 0.2,
        "sync_frequency": 0.5,
        "housekeeping_interval": 0.2,
        "pleg_relist_period": 0.1,
        "crash_backoff_initial": 0.2,
        "crash_backoff_max": 1.0,
        "image_backoff_initial": 0.2,
        "image_backoff_max": 1.0,
        "probe_time_unit": 0.05,
        "kubelet_address": "127.0.0.1",
        "kubelet_port": 0,
    }
    values.update(overrides)
    return KubeletConfig(**values)


class Harness:
    """Starts kubelets as tasks and stops them at the end of the test."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self._tasks: list[asyncio.Task[None]] = []

    async def start(
        self, node: str, runtime: FakeRuntime | None = None, **overrides: Any
    ) -> tuple[Kubelet, asyncio.Task[None]]:
        kubelet = Kubelet(self.client, fast_config(node, **overrides), runtime or FakeRuntime())
        task = asyncio.ensure_future(kubelet.run())
        self._tasks.append(task)
        assert await kubelet.wait_started(timeout=10)
        return kubelet, task

    @staticmethod
    async def stop(task: asyncio.Task[None]) -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def close(self) -> None:
        for task in self._tasks:
            await self.stop(task)


@pytest.fixture
async def harness(client: Client) -> AsyncIterator[Harness]:
    h = Harness(client)
    try:
        yield h
    finally:
        await h.close()


async def set_pod_cidr(client: Client, node: str, cidr: str) -> None:
    """What the node IPAM controller does: set spec.podCIDR once."""

    async def write() -> None:
        n = await client.get("nodes", node)
        n.spec.pod_cidr = cidr
        del n.spec.pod_cidrs[:]
        n.spec.pod_cidrs.append(cidr)
        await client.update(n)

    await retry_on_conflict(write)


def pod(
    name: str, node: str, *containers: str, grace: int | None = None, namespace: str = "default"
) -> core_pb2.Pod:
    p = core_pb2.Pod(api_version="v1", kind="Pod")
    p.metadata.name = name
    p.metadata.namespace = namespace
    for c in containers or ("web",):
        p.spec.containers.add(name=c, image="nginx:1.25").ports.add(container_port=80)
    p.spec.node_name = node
    if grace is not None:
        p.spec.termination_grace_period_seconds = grace
    return p


async def eventually(
    check: Callable[[], Awaitable[Any]], timeout: float = 10.0, interval: float = 0.05
) -> Any:
    """Call `check` until it returns something truthy without raising AssertionError."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = await check()
            if value:
                return value
        except (AssertionError, errors.NotFound) as exc:
            last = exc
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s: {last!r}")
