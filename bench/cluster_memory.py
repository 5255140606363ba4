"""The memory and CPU of every process of a local cluster, read from /proc.

bench/pod_startup_cluster.py reads them with the burst's pods running (step
5 of its docstring). For each process `cluster.status()` names (the API
server, each node's kubelet and runtime daemon) and for each node's
containerd shims, summed:

* RSS and PSS from /proc/PID/smaps_rollup. RSS counts every page the process
  maps, shared libraries in full; PSS divides each shared page by the number
  of processes mapping it, so the PSS of all tinykube processes adds up to
  what the cluster really costs (each maps the same Python interpreter and
  grpc libraries). Kubernetes' kubelet reports a container's working set
  from cgroup files instead; a process of our own is read directly.
* CPU seconds (utime + stime from /proc/PID/stat) since the process started:
  where the benchmark's time went, and with `--tracing on` vs `off` what the
  spans cost each component (bench/tracing_overhead.py).

A process that has gone reads as zero rather than failing the report. MB is
10^6 bytes, the unit the targets are stated in.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from localcluster.cluster import Cluster


@dataclass
class Memory:
    component: str
    node: str
    pid: int
    rss_mb: float
    pss_mb: float
    cpu_s: float  # CPU seconds (user + system) used since the process started
    count: int = 1  # processes summed (the runtime's shims)


def smaps_rollup_kib(pid: int) -> tuple[int, int]:
    """(Rss, Pss) in KiB from /proc/PID/smaps_rollup; (0, 0) when the process is gone."""
    rss = pss = 0
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0, 0
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key == "Rss":
            rss = int(rest.split()[0])
        elif key == "Pss":
            pss = int(rest.split()[0])
    return rss, pss


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process from /proc/PID/stat; 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _mb(kib: int) -> float:
    return kib * 1024 / 1e6


def _cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def shims_of(node_dir: Path) -> list[int]:
    """The containerd shims serving this node's runtime (their command line names its socket)."""
    marker = str(node_dir) + "/"
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            line = _cmdline(int(entry.name))
            if line.startswith(("/usr/bin/containerd-shim", "containerd-shim")) and marker in line:
                pids.append(int(entry.name))
    return pids


def read_memory(cluster: Cluster) -> list[Memory]:
    out = []
    for status in cluster.status():
        if status.key == "registry" or not status.alive:
            continue
        rss, pss = smaps_rollup_kib(status.pid)
        part = status.key.partition("-")[2] or status.key
        cpu = cpu_seconds(status.pid)
        out.append(Memory(part, status.node, status.pid, _mb(rss), _mb(pss), cpu))
    for node in cluster.nodes:
        pids = shims_of(cluster.directory / node)
        sums = [smaps_rollup_kib(p) for p in pids]
        rss, pss = sum(s[0] for s in sums), sum(s[1] for s in sums)
        cpu = sum(cpu_seconds(p) for p in pids)
        out.append(Memory("shims", node, 0, _mb(rss), _mb(pss), cpu, len(pids)))
    return out
