"""Node registration and node status (Kubernetes' kubelet_node_status.go + nodestatus/setters.go).

Registration (`register_node`, the kubelet's tryRegisterWithAPIServer):

1. build the Node: labels (kubernetes.io/hostname, os, arch, --node-labels),
   --register-with-taints, and a full status (below);
2. create it. If it already exists -- the kubelet restarted, or the node
   was registered before -- keep that Node: add any missing well-known
   label with an update, and let the status loop bring the status up to
   date. The existing spec (podCIDR, unschedulable, taints) is never
   touched: those belong to the node IPAM controller, `cordon`, and the node
   lifecycle controller;
3. on failure (API server down) retry, 0.1 s doubling to 7 s.

The kubelet never sets spec.podCIDR. The node IPAM controller allocates it
after the Node exists; the kubelet reads it from its Node (an informer on
metadata.name=<node>) and hands it to the runtime (CRI UpdateRuntimeConfig).

Status (`NodeStatusSetter`): capacity and allocatable (from the config;
for a real runtime the kubelet first measures the host's cpu and memory
with `machine_capacity`, the hollow `fake` node keeps the configured ones),
addresses (InternalIP = --node-ip, Hostname), nodeInfo (kernel, OS image,
architecture, runtime `fake://0.1.0`, kubelet version, bootID), the
kubelet's endpoint port, and four conditions:

    MemoryPressure False KubeletHasSufficientMemory  kubelet has sufficient memory available
    DiskPressure   False KubeletHasNoDiskPressure    kubelet has no disk pressure
    PIDPressure    False KubeletHasSufficientPID     kubelet has sufficient PID available
    Ready          True  KubeletReady                kubelet is posting ready status
                   False KubeletNotReady             <the runtime's complaint>

Each condition's lastTransitionTime changes only when its status changes;
lastHeartbeatTime is the time of the write.

When to write (`NodeStatusUpdater`): every node_status_update_frequency (10
s) the status is computed and compared with the Node as last seen, ignoring
heartbeat times. It is written only if something differs -- for instance
the node lifecycle controller set Ready=Unknown while the kubelet was away --
or if node_status_report_frequency (5 min) has passed since the last write.
The Lease is the heartbeat; the status is data. Writes use UpdateStatus,
re-reading the Node and retrying on Conflict.

Until the node is Ready for the first time, the status is computed every
FAST_STATUS_INTERVAL (0.2 s) instead (the kubelet's fastStatusUpdateOnce): a
new node is usually waiting for its network plugin to write the CNI config,
and it should turn Ready as soon as that appears, not up to 10 s later.
"""

from __future__ import annotations

import asyncio
import logging
import os
import platform
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable

from google.protobuf import timestamp_pb2
from google.protobuf.internal.containers import RepeatedCompositeFieldContainer

from apimachinery import errors
from apimachinery.client import Client, retry_on_conflict
from kubelet.config import KUBELET_VERSION, KubeletConfig
from kubelet.runtime.interface import RuntimeStatus, RuntimeVersion
from protos import core_pb2

log = logging.getLogger(__name__)

FAST_STATUS_INTERVAL = 0.2  # seconds, until the node is first Ready

_REGISTER_RETRY_INITIAL = 0.1
_REGISTER_RETRY_MAX = 7.0

# (type, status-when-fine, reason, message) for the pressure conditions; no eviction
# manager measures anything yet, so they are always False.
_PRESSURE_CONDITIONS = (
    ("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
    ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
)


def now_seconds() -> timestamp_pb2.Timestamp:
    """metav1.Time: whole seconds, so what is written reads back equal."""
    return timestamp_pb2.Timestamp(seconds=int(time.time()))


def machine_capacity(meminfo: str = "/proc/meminfo") -> dict[str, str]:
    """The host's cpu and memory as quantities (cAdvisor's MachineInfo, the part we need).

    cpu is the CPUs this process may run on (sched_getaffinity: a cpuset
    limits it), memory is MemTotal from /proc/meminfo in Ki, as Kubernetes
    reports it: `{"cpu": "8", "memory": "16303948Ki"}`. What cannot be read is
    left out, so the configured figure stays.
    """
    out: dict[str, str] = {}
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 0
    if cpus:
        out["cpu"] = str(cpus)
    try:
        with open(meminfo, encoding="ascii") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    out["memory"] = f"{int(line.split()[1])}Ki"
                    break
    except (OSError, ValueError, IndexError):
        pass
    return out


def os_image() -> str:
    try:
        with open("/etc/os-release", encoding="utf-8") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.system() or "Linux"


def get_condition(
    conditions: Iterable[core_pb2.NodeCondition], type_: str
) -> core_pb2.NodeCondition | None:
    for condition in conditions:
        if condition.type == type_:
            return condition
    return None


class NodeStatusSetter:
    """Fills a Node's status from the config and the runtime (nodestatus/setters.go)."""

    def __init__(self, config: KubeletConfig, boot_id: str = "") -> None:
        self.config = config
        self.boot_id = boot_id or str(uuid.uuid4())
        self.machine_id = uuid.uuid5(uuid.NAMESPACE_DNS, config.node_name).hex

    def set_status(
        self,
        node: core_pb2.Node,
        runtime_version: RuntimeVersion,
        runtime_status: RuntimeStatus,
        now: timestamp_pb2.Timestamp | None = None,
    ) -> None:
        """Overwrite node.status in place (conditions keep their transition times)."""
        now = now or now_seconds()
        status = node.status
        cfg = self.config
        status.capacity.clear()
        status.capacity.update(cfg.capacity)
        status.allocatable.clear()
        status.allocatable.update(cfg.allocatable())
        del status.addresses[:]
        status.addresses.add(type="InternalIP", address=cfg.node_ip)
        status.addresses.add(type="Hostname", address=cfg.node_name)
        info = status.node_info
        info.machine_id = self.machine_id
        info.system_uuid = self.machine_id
        info.boot_id = self.boot_id
        info.kernel_version = platform.release()
        info.os_image = os_image()
        info.container_runtime_version = str(runtime_version)
        info.kubelet_version = KUBELET_VERSION
        info.operating_system = "linux"
        info.architecture = cfg.node_labels()["kubernetes.io/arch"]
        status.daemon_endpoints.kubelet_endpoint.port = cfg.kubelet_port
        for type_, reason, message in _PRESSURE_CONDITIONS:
            _set_condition(status.conditions, type_, "False", reason, message, now)
        if runtime_status.runtime_ready and runtime_status.network_ready:
            ready = ("True", "KubeletReady", "kubelet is posting ready status")
        else:
            detail = runtime_status.message or (
                "container runtime is down"
                if not runtime_status.runtime_ready
                else "container runtime network not ready"
            )
            ready = ("False", "KubeletNotReady", detail)
        _set_condition(status.conditions, "Ready", *ready, now)


def _set_condition(
    conditions: RepeatedCompositeFieldContainer[core_pb2.NodeCondition],
    type_: str,
    status: str,
    reason: str,
    message: str,
    now: timestamp_pb2.Timestamp,
) -> None:
    condition = get_condition(conditions, type_)
    if condition is None:
        condition = conditions.add(type=type_)
    if condition.status != status or not condition.HasField("last_transition_time"):
        condition.last_transition_time.CopyFrom(now)
    condition.status = status
    condition.reason = reason
    condition.message = message
    condition.last_heartbeat_time.CopyFrom(now)


def status_differs(old: core_pb2.NodeStatus, new: core_pb2.NodeStatus) -> bool:
    """True if the statuses differ in anything but heartbeat times."""
    a, b = core_pb2.NodeStatus(), core_pb2.NodeStatus()
    a.CopyFrom(old)
    b.CopyFrom(new)
    for status in (a, b):
        for condition in status.conditions:
            condition.ClearField("last_heartbeat_time")
    return a != b


def initial_node(config: KubeletConfig) -> core_pb2.Node:
    """The Node a kubelet registers, without status (kubelet_node_status.go initialNode)."""
    node = core_pb2.Node(api_version="v1", kind="Node")
    node.metadata.name = config.node_name
    node.metadata.labels.update(config.node_labels())
    for taint in config.register_with_taints:
        node.spec.taints.add(key=taint.key, value=taint.value, effect=taint.effect)
    return node


async def register_node(
    client: Client,
    config: KubeletConfig,
    setter: NodeStatusSetter,
    runtime_version: RuntimeVersion,
    runtime_status: RuntimeStatus,
) -> core_pb2.Node:
    """Create the Node, or adopt the existing one; retries until it succeeds."""
    delay = _REGISTER_RETRY_INITIAL
    context = {"node": config.node_name}
    while True:
        try:
            return await _register_once(client, config, setter, runtime_version, runtime_status)
        except errors.StatusError as exc:
            log.warning(
                "unable to register node", extra={**context, "error": str(exc), "retry_in": delay}
            )
        await asyncio.sleep(delay)
        delay = min(delay * 2, _REGISTER_RETRY_MAX)


async def _register_once(
    client: Client,
    config: KubeletConfig,
    setter: NodeStatusSetter,
    runtime_version: RuntimeVersion,
    runtime_status: RuntimeStatus,
) -> core_pb2.Node:
    node = initial_node(config)
    setter.set_status(node, runtime_version, runtime_status)
    try:
        created = await client.create(node)
        log.info("successfully registered node", extra={"node": config.node_name})
        return created
    except errors.AlreadyExists:
        pass
    wanted = config.node_labels()

    async def reconcile_labels() -> core_pb2.Node:
        existing = await client.get(core_pb2.Node, config.node_name)
        if all(existing.metadata.labels.get(k) == v for k, v in wanted.items()):
            return existing
        existing.metadata.labels.update(wanted)
        return await client.update(existing)

    existing = await retry_on_conflict(reconcile_labels)
    log.info("node already registered, adopting it", extra={"node": config.node_name})
    return existing


class NodeStatusUpdater:
    """Writes the node status when it changes, or every report interval (see module doc)."""

    def __init__(
        self,
        client: Client,
        config: KubeletConfig,
        setter: NodeStatusSetter,
        *,
        runtime_version: Callable[[], RuntimeVersion],
        runtime_status: Callable[[], Awaitable[RuntimeStatus]],
        current_node: Callable[[], core_pb2.Node | None],
        on_ready_change: Callable[[core_pb2.Node, str], None] | None = None,
    ) -> None:
        self.client = client
        self.config = config
        self.setter = setter
        self._runtime_version = runtime_version
        self._runtime_status = runtime_status
        self._current_node = current_node
        self._on_ready_change = on_ready_change
        self._last_write = 0.0
        self._been_ready = False
        self.writes = 0

    async def run(self) -> None:
        while True:
            try:
                await self.update_once()
            except Exception as exc:  # the API server or the runtime away: log, try again
                log.warning(
                    "error updating node status",
                    extra={"node": self.config.node_name, "error": str(exc)},
                )
            interval = self.config.node_status_update_frequency
            if not self._been_ready:
                interval = min(interval, FAST_STATUS_INTERVAL)
            await asyncio.sleep(interval)

    async def update_once(self, *, force: bool = False) -> bool:
        """Compute the status; write it if it changed or is due. True if written."""
        runtime_status = await self._runtime_status()
        if runtime_status.runtime_ready and runtime_status.network_ready:
            self._been_ready = True
        version = self._runtime_version()
        seen = self._current_node()
        due = time.monotonic() - self._last_write >= self.config.node_status_report_frequency
        if seen is not None and not force and not due:
            probe = core_pb2.Node()
            probe.CopyFrom(seen)
            self.setter.set_status(probe, version, runtime_status)
            if not status_differs(seen.status, probe.status):
                return False

        async def write() -> core_pb2.Node:
            node = await self.client.get(core_pb2.Node, self.config.node_name)
            before = get_condition(node.status.conditions, "Ready")
            was = before.status if before is not None else ""
            self.setter.set_status(node, version, runtime_status)
            written = await self.client.update_status(node)
            after = get_condition(written.status.conditions, "Ready")
            now = after.status if after is not None else ""  # set_status always sets Ready
            if self._on_ready_change is not None and now != was:
                self._on_ready_change(written, now)
            return written

        await retry_on_conflict(write)
        self._last_write = time.monotonic()
        self.writes += 1
        return True
