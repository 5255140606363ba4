"""What /proc tells about the machine and about single processes, for the node's own stats.

The pods' numbers come from their cgroups (cgroups.py). The node's come from
here when a cgroup does not describe it:

    /proc/meminfo          the machine's memory (cgroup v2 has no memory.current
                           at the root, so cadvisor reads this file for the
                           machine too)
    /proc/stat  btime      when the machine booted: the node's start time
    /proc/PID/stat         a process's CPU time: utime + stime, plus cutime +
                           cstime for the children it has reaped, in clock ticks
    /proc/PID/status       VmRSS: its resident memory
    /proc/PID/ns/net       which network namespace it is in
    /proc/PID/comm         its name (containerd, dockerd, ...)

Machine memory, cadvisor's way (kB in the file, bytes here):

    usage       = MemTotal - MemFree
    working set = usage - Inactive(file)
    rss         = AnonPages

Worked example: MemTotal 24683664 kB, MemFree 23541208 kB, Inactive(file)
164848 kB, AnonPages 97444 kB give a usage of 1142456 kB (1.09 GiB), a working
set of 977608 kB and an rss of 97444 kB.

A process that exits while being read raises ProcessGone; the caller leaves
it out of this sample.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from kubelet.stats.cgroups import MemoryUsage, working_set

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class ProcessGone(Exception):
    """The process exited (or was never there) while its files were read."""


@dataclass(frozen=True)
class ProcessUsage:
    """One process: its name, cumulative CPU and resident memory."""

    pid: int
    comm: str
    cpu_ns: int
    rss_bytes: int

    @property
    def memory(self) -> MemoryUsage:
        """A process's page cache is not its own: usage, working set and rss are all its RSS."""
        return MemoryUsage(self.rss_bytes, self.rss_bytes, self.rss_bytes)


def parse_meminfo(text: str) -> dict[str, int]:
    """/proc/meminfo in bytes: {"MemTotal": 25276071936, "Inactive(file)": ..., ...}."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, sep, rest = line.partition(":")
        parts = rest.split()
        if not sep or not parts or not parts[0].isdigit():
            continue
        scale = 1024 if len(parts) > 1 and parts[1] == "kB" else 1
        out[key.strip()] = int(parts[0]) * scale
    return out


def machine_memory(meminfo: dict[str, int]) -> tuple[MemoryUsage, int]:
    """The machine's memory usage from meminfo, and its capacity (MemTotal)."""
    total = meminfo.get("MemTotal", 0)
    usage = max(0, total - meminfo.get("MemFree", 0))
    ws = working_set(usage, meminfo.get("Inactive(file)", 0))
    return MemoryUsage(usage, ws, meminfo.get("AnonPages", 0)), total


def parse_stat_cpu_ns(text: str) -> int:
    """CPU time from a /proc/PID/stat line, in nanoseconds (its own and reaped children's).

    The name (field 2) is in parentheses and may hold spaces, so fields are
    counted after the last ')': utime, stime, cutime, cstime are fields 14-17.
    """
    after = text.rpartition(")")[2].split()
    if len(after) < 15:
        raise ValueError("a /proc/PID/stat line with too few fields")
    ticks = sum(int(v) for v in after[11:15])
    return ticks * 1_000_000_000 // CLOCK_TICKS


def parse_status_rss(text: str) -> int:
    """VmRSS from /proc/PID/status, in bytes (0 for a kernel thread, which has none)."""
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            parts = line.split()
            return int(parts[1]) * 1024 if len(parts) > 1 and parts[1].isdigit() else 0
    return 0


class ProcFS:
    """Reads under `root` (/proc, or a fixture directory in tests)."""

    def __init__(self, root: str = "/proc") -> None:
        self.root = root

    def _text(self, *parts: str) -> str:
        return Path(os.path.join(self.root, *parts)).read_text()

    def meminfo(self) -> dict[str, int]:
        return parse_meminfo(self._text("meminfo"))

    def boot_time(self) -> float:
        """btime from /proc/stat: when the machine booted (Unix seconds); 0 if unknown."""
        for line in self._text("stat").splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
        return 0.0

    def process_start(self, pid: int | str) -> float:
        """When a process started (Unix seconds): btime + its starttime (field 22, in ticks)."""
        after = self._text(str(pid), "stat").rpartition(")")[2].split()
        return self.boot_time() + int(after[19]) / CLOCK_TICKS

    def process(self, pid: int) -> ProcessUsage:
        try:
            cpu = parse_stat_cpu_ns(self._text(str(pid), "stat"))
            rss = parse_status_rss(self._text(str(pid), "status"))
            comm = self._text(str(pid), "comm").strip()
        except (OSError, ValueError) as exc:
            raise ProcessGone(f"process {pid}: {exc}") from None
        return ProcessUsage(pid, comm, cpu, rss)

    def netns(self, pid: int | str) -> tuple[int, int] | None:
        """(device, inode) of the network namespace of `pid` ("self" for this process)."""
        try:
            st = os.stat(os.path.join(self.root, str(pid), "ns", "net"))
        except OSError:
            return None
        return st.st_dev, st.st_ino

    def pids(self) -> list[int]:
        """Every process id there is now."""
        try:
            return sorted(int(name) for name in os.listdir(self.root) if name.isdigit())
        except OSError:
            return []

    def pids_in_netns(self, netns: tuple[int, int]) -> list[int]:
        """The processes whose network namespace is `netns` (kernel threads never are)."""
        return [pid for pid in self.pids() if self.netns(pid) == netns]


def named_netns(netns: tuple[int, int] | None, run_netns: str = "/run/netns") -> str:
    """The name `ip netns` gives `netns` (a bind mount under /run/netns), or ""."""
    if netns is None:
        return ""
    try:
        names = sorted(os.listdir(run_netns))
    except OSError:
        return ""
    for name in names:
        try:
            st = os.stat(os.path.join(run_netns, name))
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == netns:
            return name
    return ""
