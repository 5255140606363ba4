"""A container's CPU and memory, read from its cgroup: cadvisor's part of the Summary API.

In Kubernetes the kubelet asks cadvisor (or, with CRI stats, the runtime)
for each container's usage, and cadvisor reads it from the cgroup the
runtime put the container in. tinykube reads the same files itself. The
path from a container to its numbers:

    runtime.container_pid(id)        the container's first process, e.g. 4711
    /proc/4711/cgroup                which cgroup it is in, per hierarchy
    /proc/self/mountinfo             where each hierarchy is mounted
    <mount>/<path>/cpu.stat ...      the counters

cgroup v2 (one hierarchy, `0::/k8s.io/<id>` in /proc/PID/cgroup):

    cpu.stat       usage_usec              CPU time since the cgroup began (microseconds)
    memory.current                         usage: everything charged, page cache included
    memory.stat    inactive_file, anon     cache that may be dropped; anonymous memory

cgroup v1 (one hierarchy per controller, `4:memory:/k8s.io/<id>`):

    cpuacct.usage                          CPU time in nanoseconds
    memory.usage_in_bytes                  usage
    memory.stat    total_inactive_file, total_rss   (the `total_` counters include children)

Many hosts are "hybrid": v1 hierarchies for the controllers and an empty v2
hierarchy beside them (systemd's layout, and this project's CI machines).
Each controller is read where it is mounted: v1 when a v1 hierarchy carries
it, else v2.

The working set is what cadvisor calls it and what `kubectl top` shows:
usage minus the inactive file cache, i.e. memory the kernel could not take
back without the container's help. Worked example, a container that read a
200 MiB file once and holds 30 MiB of heap:

    memory.current = 230 MiB, inactive_file = 195 MiB, anon = 30 MiB
    working set    = 230 - 195 = 35 MiB          rss = 30 MiB

Failure modes: a process that has exited (the container stopped between the
runtime's answer and the read) has no /proc/PID/cgroup, and a cgroup whose
controller is not enabled (v2 without `memory` in the parent's
subtree_control) has no memory.current. Both raise CgroupError naming the
file; the caller skips that container for this sample.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

CPU_V1 = "cpuacct"
MEMORY = "memory"


class CgroupError(Exception):
    """A cgroup, or one of its files, cannot be found or read; the message names it."""


@dataclass(frozen=True)
class Mount:
    """One cgroup hierarchy as mounted (a line of /proc/self/mountinfo)."""

    mountpoint: str
    root: str  # the hierarchy's path shown at the mountpoint ("/" unless a sub-tree is mounted)
    version: int  # 1 or 2
    controllers: frozenset[str] = frozenset()  # v1 only: "cpu", "cpuacct", "memory", ...


@dataclass(frozen=True)
class MemoryUsage:
    """Memory charged to a cgroup (or a process, or a node), in bytes."""

    usage_bytes: int
    working_set_bytes: int
    rss_bytes: int

    def __add__(self, other: MemoryUsage) -> MemoryUsage:
        return MemoryUsage(
            self.usage_bytes + other.usage_bytes,
            self.working_set_bytes + other.working_set_bytes,
            self.rss_bytes + other.rss_bytes,
        )


ZERO_MEMORY = MemoryUsage(0, 0, 0)


@dataclass(frozen=True)
class CgroupDirs:
    """Where one cgroup's CPU and memory files are (the two may be in different hierarchies)."""

    cpu: str
    cpu_version: int
    memory: str
    memory_version: int


def parse_mountinfo(text: str) -> list[Mount]:
    """The cgroup mounts in a mountinfo text.

    proc(5): `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS`;
    a v1 hierarchy's controllers are among its super options (`rw,cpu,cpuacct`).
    """
    mounts: list[Mount] = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        root, mountpoint = _unescape(fields[3]), _unescape(fields[4])
        if tail[0] == "cgroup2":
            mounts.append(Mount(mountpoint, root, 2))
        elif tail[0] == "cgroup":
            options = frozenset(tail[2].split(","))
            mounts.append(Mount(mountpoint, root, 1, options))
    return mounts


def _unescape(text: str) -> str:
    """mountinfo writes a space as \\040 (and tab, newline, backslash likewise)."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        text = text.replace(code, char)
    return text


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """/proc/PID/cgroup as controller -> path; the v2 hierarchy's path under the key "".

    `2:cpu,cpuacct:/a` gives both "cpu" and "cpuacct"; `0::/b` gives "": "/b".
    """
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if not controllers:
            out[""] = path
            continue
        for controller in controllers.split(","):
            out[controller] = path
    return out


def parse_flat_keyed(text: str) -> dict[str, int]:
    """`key value` lines (cpu.stat, memory.stat) as a dict; lines that are not are skipped."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


def working_set(usage: int, inactive_file: int) -> int:
    """cadvisor's working set: usage less the inactive file cache, never below zero."""
    return max(0, usage - inactive_file)


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise CgroupError(f"cannot read {path}: {exc.strerror or exc}") from None


def _read_int(path: str) -> int:
    text = _read(path).strip()
    try:
        return int(text)
    except ValueError:
        raise CgroupError(f"{path} does not hold a number: {text[:40]!r}") from None


class CgroupFS:
    """The host's cgroup hierarchies: find a process's cgroup, read its counters.

    `proc` is /proc (a fixture directory in tests); the mounts come from
    `<proc>/self/mountinfo` unless given.
    """

    def __init__(self, proc: str = "/proc", mounts: list[Mount] | None = None) -> None:
        self.proc = proc
        if mounts is None:
            mounts = parse_mountinfo(_read(os.path.join(proc, "self", "mountinfo")))
        self.mounts = mounts

    def _mount(self, controller: str) -> Mount | None:
        """The v1 hierarchy carrying `controller`, else the v2 one, else None."""
        for mount in self.mounts:
            if mount.version == 1 and controller in mount.controllers:
                return mount
        return next((m for m in self.mounts if m.version == 2), None)

    @staticmethod
    def _dir(mount: Mount, path: str) -> str:
        """A cgroup path (as /proc/PID/cgroup shows it) inside a mount."""
        relative = os.path.relpath(path, mount.root) if mount.root != "/" else path.lstrip("/")
        if relative.startswith(".."):
            raise CgroupError(f"cgroup {path} is outside the mount at {mount.mountpoint}")
        return os.path.normpath(os.path.join(mount.mountpoint, relative))

    def _dirs(self, paths: Mapping[str, str], what: str) -> CgroupDirs:
        found: list[tuple[str, int]] = []
        for controller in (CPU_V1, MEMORY):
            mount = self._mount(controller)
            if mount is None:
                raise CgroupError(f"no cgroup hierarchy carries {controller} (see mountinfo)")
            key = controller if mount.version == 1 else ""
            if key not in paths:
                raise CgroupError(f"{what} names no {controller or 'v2'} cgroup")
            found.append((self._dir(mount, paths[key]), mount.version))
        (cpu, cpu_version), (memory, memory_version) = found
        return CgroupDirs(cpu, cpu_version, memory, memory_version)

    def dirs_of(self, pid: int) -> CgroupDirs:
        """The cgroup directories of process `pid` (CgroupError once it has exited)."""
        where = os.path.join(self.proc, str(pid), "cgroup")
        return self._dirs(parse_proc_cgroup(_read(where)), where)

    def root_dirs(self) -> CgroupDirs:
        """The root cgroup of each hierarchy: the whole machine, as the kubelet sees it."""
        return self._dirs({CPU_V1: "/", MEMORY: "/", "": "/"}, "the root")

    def cpu_ns(self, dirs: CgroupDirs) -> int:
        """Cumulative CPU time of the cgroup, in nanoseconds."""
        if dirs.cpu_version == 1:
            return _read_int(os.path.join(dirs.cpu, "cpuacct.usage"))
        where = os.path.join(dirs.cpu, "cpu.stat")
        usec = parse_flat_keyed(_read(where)).get("usage_usec")
        if usec is None:
            raise CgroupError(f"{where} has no usage_usec")
        return usec * 1000

    def memory(self, dirs: CgroupDirs) -> MemoryUsage:
        """The cgroup's memory usage, working set and rss."""
        if dirs.memory_version == 1:
            usage = _read_int(os.path.join(dirs.memory, "memory.usage_in_bytes"))
            stat = parse_flat_keyed(_read(os.path.join(dirs.memory, "memory.stat")))
            inactive = stat.get("total_inactive_file", stat.get("inactive_file", 0))
            rss = stat.get("total_rss", stat.get("rss", 0))
            return MemoryUsage(usage, working_set(usage, inactive), rss)
        current = os.path.join(dirs.memory, "memory.current")
        if not os.path.exists(current):
            raise CgroupError(f"{current} is missing: the memory controller is not enabled there")
        usage = _read_int(current)
        stat = parse_flat_keyed(_read(os.path.join(dirs.memory, "memory.stat")))
        return MemoryUsage(
            usage, working_set(usage, stat.get("inactive_file", 0)), stat.get("anon", 0)
        )

    def pids(self, dirs: CgroupDirs) -> set[int]:
        """The processes in the cgroup (its cgroup.procs; empty if it has gone)."""
        try:
            text = Path(os.path.join(dirs.cpu, "cgroup.procs")).read_text()
        except OSError:
            return set()
        return {int(line) for line in text.split() if line.isdigit()}
