"""Fixtures for the infrastructure controller tests (endpoints, IPAM, node lifecycle, GC).

A real API server on a unix socket (the local admin) over SQLite in the test's tmp_path, the
chosen controllers run by the real controller manager with short timings,
object builders, and `eventually`, which polls a condition until it holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from google.protobuf import timestamp_pb2

from apimachinery import errors
from apimachinery.client import Client
from apiserver.server import APIServer
from apiserver.storage import open_storage
from controllers.base import ControllerOptions
from controllers.controller_utils import HasKind
from controllers.manager import run_controller_manager
from protos import apps_pb2, coordination_pb2, core_pb2, meta_pb2

T = TypeVar("T")


@contextlib.asynccontextmanager
async def api_server(tmp_path: Path) -> AsyncIterator[Client]:
    storage = await open_storage("sqlite", str(tmp_path))
    server = APIServer(storage, f"unix:{tmp_path}/api.sock")
    await server.start()
    client = Client(server.local_address, timeout=10)
    try:
        yield client
    finally:
        await client.close()
        await server.stop(grace=0)


@contextlib.asynccontextmanager
async def controllers(
    client: Client, only: list[str], options: ControllerOptions | None = None
) -> AsyncIterator[None]:
    """Run `only` (controller names) with their own client until the block ends."""
    own = Client(client.server, timeout=10)
    task = asyncio.ensure_future(
        run_controller_manager(own, options or ControllerOptions(), only=only)
    )
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await own.close()


async def eventually(
    check: Callable[[], Awaitable[T | None]], timeout: float = 10.0, interval: float = 0.05
) -> T:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")


async def get_or_none(client: Client, resource: str, name: str, namespace: str = "") -> Any:
    try:
        return await client.get(resource, name, namespace)
    except errors.NotFound:
        return None


def now(offset: float = 0.0) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(int((time.time() + offset) * 1e9))
    return ts


# ---- builders --------------------------------------------------------------------------------


def node(name: str, ready: str | None = "True") -> core_pb2.Node:
    n = core_pb2.Node(api_version="v1", kind="Node")
    n.metadata.name = name
    if ready is not None:
        cond = n.status.conditions.add(type="Ready", status=ready, reason="KubeletReady")
        cond.last_heartbeat_time.CopyFrom(now())
        cond.last_transition_time.CopyFrom(now())
    return n


def lease(node_name: str) -> coordination_pb2.Lease:
    lz = coordination_pb2.Lease(api_version="coordination.k8s.io/v1", kind="Lease")
    lz.metadata.name = node_name
    lz.metadata.namespace = "kube-node-lease"
    lz.spec.holder_identity = node_name
    lz.spec.lease_duration_seconds = 40
    lz.spec.renew_time.CopyFrom(now())
    return lz


def pod(
    name: str,
    labels: dict[str, str] | None = None,
    *,
    node_name: str = "",
    ports: dict[str, int] | None = None,
    owner: HasKind | None = None,
) -> core_pb2.Pod:
    p = core_pb2.Pod(api_version="v1", kind="Pod")
    p.metadata.name = name
    p.metadata.namespace = "default"
    p.metadata.labels.update(labels or {})
    c = p.spec.containers.add(name="c", image="nginx:1.25")
    for port_name, number in (ports or {}).items():
        c.ports.add(name=port_name, container_port=number)
    if node_name:
        p.spec.node_name = node_name
    if owner is not None:
        p.metadata.owner_references.append(owner_ref(owner))
    return p


def service(name: str, selector: dict[str, str], target: int | str = 80) -> core_pb2.Service:
    s = core_pb2.Service(api_version="v1", kind="Service")
    s.metadata.name = name
    s.metadata.namespace = "default"
    s.spec.selector.update(selector)
    port = s.spec.ports.add(name="web", port=80, protocol="TCP")
    if isinstance(target, int):
        port.target_port.int_val = target
    else:
        port.target_port.str_val = target
    return s


def owner_ref(owner: HasKind, *, block: bool = True) -> meta_pb2.OwnerReference:
    ref = meta_pb2.OwnerReference(
        api_version=owner.api_version,
        kind=owner.kind,
        name=owner.metadata.name,
        uid=owner.metadata.uid,
        controller=True,
    )
    ref.block_owner_deletion = block
    return ref


def deployment(name: str) -> apps_pb2.Deployment:
    d = apps_pb2.Deployment(api_version="apps/v1", kind="Deployment")
    d.metadata.name = name
    d.metadata.namespace = "default"
    d.spec.replicas = 0  # nothing else runs here: no replicaset controller
    d.spec.selector.CopyFrom(meta_pb2.LabelSelector(match_labels={"app": name}))
    d.spec.template.metadata.labels["app"] = name
    d.spec.template.spec.containers.add(name="c", image="nginx:1.25")
    return d


def replicaset(name: str, owner: HasKind | None = None) -> apps_pb2.ReplicaSet:
    rs = apps_pb2.ReplicaSet(api_version="apps/v1", kind="ReplicaSet")
    rs.metadata.name = name
    rs.metadata.namespace = "default"
    rs.spec.replicas = 0
    rs.spec.selector.CopyFrom(meta_pb2.LabelSelector(match_labels={"app": name}))
    rs.spec.template.metadata.labels["app"] = name
    rs.spec.template.spec.containers.add(name="c", image="nginx:1.25")
    if owner is not None:
        rs.metadata.owner_references.append(owner_ref(owner))
    return rs


async def set_pod_running(client: Client, name: str, ip: str, ready: bool) -> core_pb2.Pod:
    """What a kubelet reports: Running with an IP, Ready or not."""
    p = await client.get(core_pb2.Pod, name)
    p.status.phase = "Running"
    p.status.pod_ip = ip
    del p.status.conditions[:]
    p.status.conditions.add(type="Ready", status="True" if ready else "False")
    return await client.update_status(p)
