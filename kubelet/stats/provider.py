"""The kubelet's Summary: every running container's CPU and memory, its pod's, and the node's.

Kubernetes' kubelet answers GET /stats/summary from its stats provider
(pkg/kubelet/stats): cadvisor reads the cgroups, the provider groups the
containers by pod and adds the node's own figures. tinykube's provider does
the same in one pass, on demand:

    list_containers() ---- running, labelled with a pod uid ----+
    container_pid(id)   (asked once per container, then kept)   |
    /proc/PID/cgroup -> cpu + memory counters (cgroups.py)      v
    the node (below)                                       one Collection
    RateTracker: usageNanoCores against the previous collection (rates.py)
    -> metrics_pb2.Summary: node, pods (the sum of their containers), containers

The first Summary has no previous collection to compare with: the provider
collects, waits `min_window` (1 s), collects again and answers from the
second, so even the first `kubectl top` gets CPU rates. Later calls compare
with the last one (their `window` is the time between them).

What "the node" is (NodeStats.scope):

    machine    the kubelet runs in its host's network namespace (a VM, a
               server): CPU is the root cgroup's (cpu.stat of the v2 root, or
               cpuacct.usage of the v1 root), memory comes from /proc/meminfo,
               as cadvisor reads the machine; the pods are part of it.
    namespace  the kubelet runs in a named network namespace (`ip netns`,
               /run/netns/NAME): a node of `tinykube up`, sharing one host with
               the other nodes. The host's root cgroup would count every node
               at once, so the node is the sum of its pods and its daemons --
               every process in the kubelet's network namespace (kubelet,
               containerd or dockerd and their shims, an API server on the
               first node) that is not in a pod's container. Processes are read
               from /proc/PID/stat and /proc/PID/status; a daemon that exits
               takes its CPU time with it, and the rate starts over.
    hollow     the fake runtime: nothing runs; the node is the kubelet process.

The "system containers" follow Kubernetes' names: "kubelet" (this process),
"pods" (the sum of the pods) and, for a namespace node, "runtime" (containerd,
dockerd, shims, runc) and "misc" (the rest of its daemons).

Tinykube's pods have no pod-level cgroup (no cgroup parent is given to the
runtime), so a pod's figures are the sum of its running containers; the
sandbox's pause process is left out, as Kubernetes leaves it out of the
containers list. A container whose process exits mid-read is left out of that
Summary only.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from kubelet.errors import ContainerRuntimeError
from kubelet.runtime.interface import (
    CONTAINER_NAME_LABEL,
    POD_NAME_LABEL,
    POD_NAMESPACE_LABEL,
    POD_UID_LABEL,
    Container,
    ContainerRuntime,
    ContainerState,
)
from kubelet.stats.cgroups import ZERO_MEMORY, CgroupError, CgroupFS
from kubelet.stats.procfs import ProcessGone, ProcFS, machine_memory, named_netns
from kubelet.stats.rates import RateTracker
from kubelet.stats.summary import Collection, ContainerSample, PodKey, Sample, build_summary
from protos import metrics_pb2

log = logging.getLogger(__name__)

MACHINE, NAMESPACE, HOLLOW = "machine", "namespace", "hollow"
RUNTIME_NAMES = ("containerd", "dockerd", "docker-", "runc")


def detect_scope(runtime_name: str, procfs: ProcFS, run_netns: str = "/run/netns") -> str:
    """hollow for the fake runtime, namespace in a named network namespace, else machine."""
    if runtime_name == "fake":
        return HOLLOW
    return NAMESPACE if named_netns(procfs.netns("self"), run_netns) else MACHINE


@dataclass(frozen=True)
class _Running:
    container: Container
    pid: int
    pod: PodKey


class StatsProvider:
    """Collects Summaries for one kubelet; one collection at a time."""

    def __init__(
        self,
        runtime: ContainerRuntime,
        *,
        scope: str = "",
        cgroups: CgroupFS | None = None,
        procfs: ProcFS | None = None,
        min_window: float = 1.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.runtime = runtime
        self.procfs = procfs or ProcFS()
        self.scope = scope or detect_scope(runtime.name, self.procfs)
        self._cgroups = cgroups
        self.rates = RateTracker(min_window)
        self.clock = clock
        self.sleep = sleep
        self._pids: dict[str, int] = {}
        self._lock = asyncio.Lock()
        self._boot_time: float | None = None

    @property
    def cgroups(self) -> CgroupFS:
        if self._cgroups is None:
            self._cgroups = CgroupFS(self.procfs.root)
        return self._cgroups

    async def summary(self, node_name: str) -> metrics_pb2.Summary:
        """The node's Summary now; the first call takes min_window longer (two readings)."""
        async with self._lock:
            collection = await self._collect()
            if self.rates.waiting(self._observe(collection)):
                await self.sleep(self.rates.min_window)
                collection = await self._collect()
                self._observe(collection)
            return build_summary(node_name, self.scope, collection, self.rates.rate)

    def _observe(self, collection: Collection) -> list[str]:
        """Feed the rate tracker; the keys seen."""
        keys: list[str] = []

        def observe(key: str, cpu_ns: int) -> None:
            self.rates.observe(key, collection.time, cpu_ns)
            keys.append(key)

        observe("node", collection.node.cpu_ns)
        for name, system in collection.systems.items():
            observe(f"system/{name}", system.cpu_ns)
        pods: dict[str, int] = {}
        for sample in collection.containers:
            observe(f"container/{sample.id}", sample.cpu_ns)
            pods[sample.pod.uid] = pods.get(sample.pod.uid, 0) + sample.cpu_ns
        for uid, cpu_ns in pods.items():
            observe(f"pod/{uid}", cpu_ns)
        self.rates.retain(keys)
        return keys

    # ---- one collection ------------------------------------------------------------------

    async def _collect(self) -> Collection:
        running = await self._running()
        started = {s.id: s.created_at for s in await self.runtime.list_pod_sandboxes()}
        collection = await asyncio.to_thread(self._read, running)
        for item in running:
            at = started.get(item.container.sandbox_id)
            if at is not None:
                collection.pod_started[item.pod.uid] = at
        return collection

    async def _running(self) -> list[_Running]:
        """The kubelet's running containers and their pids (0-pid ones left out)."""
        out: list[_Running] = []
        seen: set[str] = set()
        for container in await self.runtime.list_containers():
            labels = container.labels
            if container.state != ContainerState.RUNNING or POD_UID_LABEL not in labels:
                continue
            seen.add(container.id)
            pid = self._pids.get(container.id, 0)
            if not pid:
                try:
                    pid = await self.runtime.container_pid(container.id)
                except ContainerRuntimeError as exc:
                    log.debug("no pid for container", extra={"id": container.id, "error": str(exc)})
                    continue
            if pid <= 0:
                continue
            self._pids[container.id] = pid
            pod = PodKey(
                labels.get(POD_NAMESPACE_LABEL, ""),
                labels.get(POD_NAME_LABEL, ""),
                labels[POD_UID_LABEL],
            )
            out.append(_Running(container, pid, pod))
        self._pids = {cid: pid for cid, pid in self._pids.items() if cid in seen}
        return out

    def _read(self, running: list[_Running]) -> Collection:
        """The file reads of a collection (in a worker thread: many small reads)."""
        now = self.clock()
        samples: list[ContainerSample] = []
        in_pods: set[int] = set()
        for item in running:
            c = item.container
            try:
                dirs = self.cgroups.dirs_of(item.pid)
                cpu, memory = self.cgroups.cpu_ns(dirs), self.cgroups.memory(dirs)
            except CgroupError as exc:
                self._pids.pop(c.id, None)  # exited or replaced: ask the runtime again next time
                log.debug("container stats unreadable", extra={"id": c.id, "error": str(exc)})
                continue
            if self.scope == NAMESPACE:
                in_pods |= self.cgroups.pids(dirs) | {item.pid}
            name = c.labels.get(CONTAINER_NAME_LABEL, c.name)
            samples.append(ContainerSample(c.id, item.pod, name, c.started_at, cpu, memory))
        pods = Sample(sum(s.cpu_ns for s in samples), sum((s.memory for s in samples), ZERO_MEMORY))
        collection = Collection(now, pods, containers=samples, boot_time=self._started())
        self._read_node(collection, pods, in_pods)
        return collection

    def _started(self) -> float:
        """The node's start time: the machine's boot, or this kubelet's start when hollow."""
        if self._boot_time is None:
            try:
                hollow = self.scope == HOLLOW
                self._boot_time = (
                    self.procfs.process_start("self") if hollow else self.procfs.boot_time()
                )
            except (OSError, ValueError, IndexError):
                self._boot_time = 0.0
        return self._boot_time

    def _read_node(self, collection: Collection, pods: Sample, in_pods: set[int]) -> None:
        systems = collection.systems
        own = self.procfs.process(os.getpid())
        systems["kubelet"] = Sample(own.cpu_ns, own.memory)
        systems["pods"] = pods
        if self.scope == HOLLOW:
            collection.node = systems["kubelet"]
        elif self.scope == MACHINE:
            memory, capacity = machine_memory(self.procfs.meminfo())
            cpu = self.cgroups.cpu_ns(self.cgroups.root_dirs())
            collection.node = Sample(
                cpu, memory, available=max(0, capacity - memory.working_set_bytes)
            )
        else:
            self._read_daemons(systems, in_pods)
            total = Sample(0, ZERO_MEMORY)
            for name in ("kubelet", "runtime", "misc", "pods"):
                total = total + systems[name]
            collection.node = total

    def _read_daemons(self, systems: dict[str, Sample], in_pods: set[int]) -> None:
        """A namespace node's daemons: its network namespace's processes, less the pods'."""
        groups = {"runtime": Sample(0, ZERO_MEMORY), "misc": Sample(0, ZERO_MEMORY)}
        netns = self.procfs.netns("self")
        me = os.getpid()
        for pid in self.procfs.pids_in_netns(netns) if netns else []:
            if pid == me or pid in in_pods:
                continue
            try:
                process = self.procfs.process(pid)
            except ProcessGone:
                continue
            group = "runtime" if process.comm.startswith(RUNTIME_NAMES) else "misc"
            groups[group] = groups[group] + Sample(process.cpu_ns, process.memory)
        systems.update(groups)
