"""The Summary from a fake runtime and fixture cgroups: rates, pods, the node's scopes, auth."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from apimachinery import certs
from kubelet.runtime.fake import FakeRuntime
from kubelet.runtime.interface import ContainerConfig, PodSandboxConfig
from kubelet.server import KubeletServicer
from kubelet.stats.cgroups import CgroupFS
from kubelet.stats.procfs import CLOCK_TICKS, ProcFS
from kubelet.stats.provider import HOLLOW, MACHINE, NAMESPACE, StatsProvider, detect_scope
from kubelet.stats.servicer import KubeletStatsServicer
from protos import metrics_pb2
from tests.unit.kubelet.test_stats_cgroups import mountinfo_line, write

MIB = 1024 * 1024
SECOND = 1_000_000_000


class Node:
    """A fixture machine: /proc and a cgroup v2 tree under tmp, a clock that the sleep moves."""

    def __init__(self, tmp: Path, netns: str = "host") -> None:
        self.proc, self.cg = tmp / "proc", tmp / "cg"
        me = os.getpid()  # the kubelet: this process, /proc/self
        self.process(me, "python3", ticks=CLOCK_TICKS, rss_kb=1024, netns=netns)
        (self.proc / "self").symlink_to(str(me))
        write(self.proc / str(me) / "mountinfo", mountinfo_line(30, "/", self.cg, "cgroup2", "rw"))
        write(self.proc / "stat", "btime 1700000000\n")
        write(
            self.proc / "meminfo",
            "MemTotal: 4194304 kB\nMemFree: 2097152 kB\nInactive(file): 1048576 kB\n"
            "AnonPages: 524288 kB\n",
        )
        self.now = 1000.0
        self.root_cpu = 0

    def process(self, pid: int, comm: str, ticks: int, rss_kb: int, netns: str = "") -> None:
        fields = ["S", *["0"] * 10, str(ticks), "0", "0", "0", "20", "0", "1", "0", "0"]
        write(self.proc / str(pid) / "stat", f"{pid} ({comm}) " + " ".join(fields) + "\n")
        write(self.proc / str(pid) / "status", f"VmRSS:\t{rss_kb} kB\n")
        write(self.proc / str(pid) / "comm", comm + "\n")
        if netns:  # a namespace is a file; processes in it share its inode (hard links)
            ns = self.proc / str(pid) / "ns" / "net"
            ns.parent.mkdir(parents=True, exist_ok=True)
            target = self.proc.parent / f"netns-{netns}"
            if not target.exists():
                target.write_text("")
            os.link(target, ns)

    def container(self, pid: int, name: str, cpu_ns: int, memory: int, inactive: int) -> None:
        write(self.proc / str(pid) / "cgroup", f"0::/k8s.io/{name}\n")
        box = self.cg / "k8s.io" / name
        write(box / "cpu.stat", f"usage_usec {cpu_ns // 1000}\n")
        write(box / "memory.current", f"{memory}\n")
        write(box / "memory.stat", f"anon {memory - inactive}\ninactive_file {inactive}\n")
        write(box / "cgroup.procs", f"{pid}\n")

    def set_root(self, cpu_ns: int) -> None:
        write(self.cg / "cpu.stat", f"usage_usec {cpu_ns // 1000}\n")

    def clock(self) -> float:
        return self.now

    def provider(self, runtime: FakeRuntime, scope: str) -> StatsProvider:
        return StatsProvider(
            runtime,
            scope=scope,
            cgroups=CgroupFS(str(self.proc)),
            procfs=ProcFS(str(self.proc)),
            clock=self.clock,
            sleep=self.sleep,
        )

    async def sleep(self, seconds: float) -> None:
        """Time passes: the busy container used 0.5 s of CPU per second, the root 1.5 s."""
        self.now += seconds
        self.container(4711, "busy", int((2 + seconds * 0.5) * SECOND), 64 * MIB, 16 * MIB)
        self.set_root(int((100 + seconds * 1.5) * SECOND))


async def run_pod(runtime: FakeRuntime, name: str, *containers: str) -> list[str]:
    sandbox_config = PodSandboxConfig(name, "default", f"uid-{name}")
    sandbox = await runtime.run_pod_sandbox(sandbox_config)
    ids = []
    for c in containers:
        labels = {
            "io.kubernetes.pod.uid": f"uid-{name}",
            "io.kubernetes.pod.name": name,
            "io.kubernetes.pod.namespace": "default",
            "io.kubernetes.container.name": c,
        }
        config = ContainerConfig(c, "busybox", labels=labels)
        cid = await runtime.create_container(sandbox.id, config, sandbox_config)
        await runtime.start_container(cid)
        ids.append(cid)
    return ids


async def test_first_summary_reads_twice_and_rates_the_busy_container(tmp_path: Path) -> None:
    node = Node(tmp_path)
    node.container(4711, "busy", 2 * SECOND, 64 * MIB, 16 * MIB)
    node.set_root(100 * SECOND)
    runtime = FakeRuntime("10.0.0.0/24")
    (cid,) = await run_pod(runtime, "web", "app")
    await run_pod(runtime, "idle", "sleeper")  # a container without a process: left out
    runtime.pids[cid] = 4711
    provider = node.provider(runtime, MACHINE)

    summary = await provider.summary("node1")
    assert node.now == 1001.0  # one reading, the 1 s window, the second reading
    assert [p.pod_ref.name for p in summary.pods] == ["web"]
    pod = summary.pods[0]
    assert pod.pod_ref.uid == "uid-web" and pod.start_time.seconds > 0
    (app,) = pod.containers
    assert app.name == "app"
    assert app.cpu.usage_nano_cores == SECOND // 2
    assert app.cpu.usage_core_nano_seconds == int(2.5 * SECOND)
    assert app.cpu.window.seconds == 1 and app.cpu.time.seconds == 1001
    assert (app.memory.usage_bytes, app.memory.working_set_bytes) == (64 * MIB, 48 * MIB)
    assert pod.cpu.usage_nano_cores == SECOND // 2 and pod.memory.working_set_bytes == 48 * MIB
    # the machine: the root cgroup's CPU, /proc/meminfo's memory
    assert summary.node.node_name == "node1" and summary.node.scope == MACHINE
    assert summary.node.cpu.usage_nano_cores == int(1.5 * SECOND)
    memory = summary.node.memory
    assert memory.usage_bytes == 2048 * MIB and memory.working_set_bytes == 1024 * MIB
    assert memory.available_bytes == 3072 * MIB and memory.rss_bytes == 512 * MIB
    assert summary.node.start_time.seconds == 1700000000
    systems = {s.name: s for s in summary.node.system_containers}
    assert set(systems) == {"kubelet", "pods"}
    assert systems["pods"].memory.working_set_bytes == 48 * MIB
    assert systems["kubelet"].memory.rss_bytes == MIB

    # the next call compares with the last reading: no second wait
    node.now += 4
    node.container(4711, "busy", int(4.5 * SECOND), 64 * MIB, 16 * MIB)
    again = await provider.summary("node1")
    assert node.now == 1005.0
    assert again.pods[0].containers[0].cpu.usage_nano_cores == SECOND // 2
    assert again.pods[0].containers[0].cpu.window.seconds == 4
    # the container stops: it leaves the Summary
    await runtime.stop_container(cid, 0)
    assert not (await provider.summary("node1")).pods


async def test_a_namespace_node_is_its_pods_plus_its_daemons(tmp_path: Path) -> None:
    node = Node(tmp_path, netns="node1")
    node.container(4711, "busy", 2 * SECOND, 64 * MIB, 16 * MIB)
    node.set_root(100 * SECOND)
    # a containerd and a shim beside the kubelet, another daemon, and a process of node2
    node.process(500, "containerd", ticks=2 * CLOCK_TICKS, rss_kb=2048, netns="node1")
    node.process(501, "containerd-shim", ticks=0, rss_kb=512, netns="node1")
    node.process(502, "etcd", ticks=CLOCK_TICKS, rss_kb=4096, netns="node1")
    node.process(600, "other-node", ticks=50 * CLOCK_TICKS, rss_kb=99999, netns="node2")
    runtime = FakeRuntime("10.0.0.0/24")
    (cid,) = await run_pod(runtime, "web", "app")
    runtime.pids[cid] = 4711
    provider = node.provider(runtime, NAMESPACE)

    summary = await provider.summary("node1")
    systems = {s.name: s for s in summary.node.system_containers}
    assert set(systems) == {"kubelet", "runtime", "misc", "pods"}
    assert systems["runtime"].memory.rss_bytes == (2048 + 512) * 1024
    assert systems["runtime"].cpu.usage_core_nano_seconds == 2 * SECOND
    assert systems["misc"].memory.rss_bytes == 4096 * 1024  # not node2's process
    node_memory = summary.node.memory
    assert node_memory.working_set_bytes == (1024 + 2048 + 512 + 4096) * 1024 + 48 * MIB
    assert not node_memory.HasField("available_bytes")
    # only the container's CPU moved (0.5 core) while the daemons stood still
    assert summary.node.cpu.usage_nano_cores == SECOND // 2
    assert summary.node.scope == NAMESPACE


async def test_hollow_node_and_scope_detection(tmp_path: Path) -> None:
    node = Node(tmp_path)
    runtime = FakeRuntime("10.0.0.0/24")
    await run_pod(runtime, "web", "app")
    summary = await node.provider(runtime, HOLLOW).summary("hollow-1")
    assert not summary.pods  # nothing runs on a hollow node
    assert summary.node.memory.rss_bytes == MIB  # the kubelet process itself
    assert detect_scope("fake", ProcFS(str(node.proc))) == HOLLOW
    procfs = ProcFS(str(node.proc))
    run_netns = tmp_path / "run-netns"  # what `ip netns add` keeps: one file per namespace
    run_netns.mkdir()
    assert detect_scope("containerd", procfs, str(run_netns)) == MACHINE
    os.link(tmp_path / "netns-host", run_netns / "tk-demo-node1")
    assert detect_scope("containerd", procfs, str(run_netns)) == NAMESPACE


class Front:
    def __init__(self, identity: certs.Identity | None) -> None:
        self.identity = identity

    def identity_of(self, peer: str) -> tuple[Any, certs.Identity | None]:
        return None, self.identity


class Context:
    def peer(self) -> str:
        return "unix:relay"

    async def abort_with_status(self, status: Any) -> None:
        raise AbortedWith(status)


class AbortedWith(Exception):
    def __init__(self, status: Any) -> None:
        super().__init__(status.details)
        self.status = status


@pytest.mark.parametrize(
    ("identity", "allowed"),
    [
        (certs.Identity("kube-apiserver-kubelet-client", ("system:masters",)), True),
        (certs.Identity("alice", ("system:masters",)), True),
        (certs.Identity("system:node:node2", ("system:nodes",)), False),
        (None, False),
    ],
)
async def test_who_may_read_the_summary(
    tmp_path: Path, identity: certs.Identity | None, allowed: bool
) -> None:
    node = Node(tmp_path)
    node.set_root(SECOND)
    runtime = FakeRuntime("10.0.0.0/24")
    kubelet = SimpleNamespace(
        check=True,
        front=Front(identity),
        node_name="node1",
        kubelet=SimpleNamespace(runtime=runtime),
    )
    servicer = KubeletStatsServicer(cast(KubeletServicer, kubelet), node.provider(runtime, MACHINE))
    if allowed:
        summary = await servicer.Summary(metrics_pb2.SummaryRequest(), cast(Any, Context()))
        assert summary.node.node_name == "node1"
        return
    with pytest.raises(AbortedWith) as caught:
        await servicer.Summary(metrics_pb2.SummaryRequest(), cast(Any, Context()))
    if identity is None:
        assert "Unauthorized" in caught.value.status.details
    else:
        assert caught.value.status.details == (
            "Forbidden (user=system:node:node2, verb=get, resource=nodes, subresource=stats)"
        )
