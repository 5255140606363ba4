"""Reading cgroups and /proc from fixture directories: v2, v1, hybrid; meminfo; rates."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubelet.stats.cgroups import (
    CgroupError,
    CgroupFS,
    MemoryUsage,
    parse_mountinfo,
    parse_proc_cgroup,
)
from kubelet.stats.procfs import (
    CLOCK_TICKS,
    ProcFS,
    machine_memory,
    parse_meminfo,
    parse_stat_cpu_ns,
    parse_status_rss,
)
from kubelet.stats.rates import RateTracker

MIB = 1024 * 1024


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def mountinfo_line(n: int, root: str, mountpoint: Path, fstype: str, opts: str) -> str:
    return f"{n} 1 0:{n} {root} {mountpoint} rw,relatime shared:{n} - {fstype} cgroup {opts}\n"


def v2_host(tmp: Path) -> CgroupFS:
    """A pure cgroup v2 machine: one hierarchy at <tmp>/cg."""
    proc, cg = tmp / "proc", tmp / "cg"
    write(proc / "self" / "mountinfo", mountinfo_line(30, "/", cg, "cgroup2", "rw,nsdelegate"))
    write(proc / "4711" / "cgroup", "0::/k8s.io/abc\n")
    box = cg / "k8s.io" / "abc"
    write(box / "cpu.stat", "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n")
    write(box / "memory.current", f"{230 * MIB}\n")
    write(box / "memory.stat", f"anon {30 * MIB}\nfile {200 * MIB}\ninactive_file {195 * MIB}\n")
    write(box / "cgroup.procs", "4711\n4712\n")
    write(cg / "cpu.stat", "usage_usec 9000000\n")
    return CgroupFS(str(proc))


def test_v2_container_counters_and_the_working_set(tmp_path: Path) -> None:
    fs = v2_host(tmp_path)
    dirs = fs.dirs_of(4711)
    assert dirs.cpu == dirs.memory == str(tmp_path / "cg" / "k8s.io" / "abc")
    assert (dirs.cpu_version, dirs.memory_version) == (2, 2)
    assert fs.cpu_ns(dirs) == 2_500_000_000
    # the module docstring's example: 230 MiB charged, 195 MiB of it inactive file cache
    assert fs.memory(dirs) == MemoryUsage(230 * MIB, 35 * MIB, 30 * MIB)
    assert fs.pids(dirs) == {4711, 4712}
    assert fs.cpu_ns(fs.root_dirs()) == 9_000_000_000


def test_v2_without_the_memory_controller_and_after_the_process_exits(tmp_path: Path) -> None:
    fs = v2_host(tmp_path)
    current = tmp_path / "cg" / "k8s.io" / "abc" / "memory.current"
    current.unlink()
    with pytest.raises(CgroupError, match=r"memory\.current is missing: the memory controller"):
        fs.memory(fs.dirs_of(4711))
    with pytest.raises(CgroupError, match=r"cannot read .*/proc/999/cgroup"):
        fs.dirs_of(999)


def test_v1_with_cpu_and_cpuacct_together_and_a_mounted_subtree(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    cpu, mem = tmp_path / "cpu,cpuacct", tmp_path / "memory"
    write(
        proc / "self" / "mountinfo",
        mountinfo_line(31, "/", cpu, "cgroup", "rw,cpu,cpuacct")
        # the memory hierarchy mounted from a sub-tree, as inside some containers
        + mountinfo_line(32, "/machine", mem, "cgroup", "rw,memory"),
    )
    write(
        proc / "42" / "cgroup",
        "3:memory:/machine/docker/x\n2:cpu,cpuacct:/docker/x\n1:name=systemd:/\n",
    )
    write(cpu / "docker" / "x" / "cpuacct.usage", "123456789\n")
    box = mem / "docker" / "x"
    write(box / "memory.usage_in_bytes", f"{50 * MIB}\n")
    write(
        box / "memory.stat",
        f"cache {40 * MIB}\nrss {1 * MIB}\ninactive_file {5 * MIB}\n"
        f"total_rss {8 * MIB}\ntotal_inactive_file {32 * MIB}\n",
    )
    fs = CgroupFS(str(proc))
    dirs = fs.dirs_of(42)
    assert dirs.cpu == str(cpu / "docker" / "x") and dirs.memory == str(box)
    assert fs.cpu_ns(dirs) == 123456789
    # the total_ counters (the cgroup and its children), as cadvisor reads them
    assert fs.memory(dirs) == MemoryUsage(50 * MIB, 18 * MIB, 8 * MIB)


def test_hybrid_hosts_read_the_v1_controllers(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    acct, mem, unified = tmp_path / "cpuacct", tmp_path / "memory", tmp_path / "unified"
    write(
        proc / "self" / "mountinfo",
        mountinfo_line(33, "/", acct, "cgroup", "rw,cpuacct")
        + mountinfo_line(35, "/", mem, "cgroup", "rw,memory")
        + mountinfo_line(41, "/", unified, "cgroup2", "rw"),
    )
    write(proc / "7" / "cgroup", "4:memory:/k8s.io/c\n2:cpuacct:/k8s.io/c\n0::/\n")
    write(acct / "k8s.io" / "c" / "cpuacct.usage", "5\n")
    write(mem / "k8s.io" / "c" / "memory.usage_in_bytes", "8192\n")
    write(mem / "k8s.io" / "c" / "memory.stat", "total_inactive_file 4096\ntotal_rss 4096\n")
    fs = CgroupFS(str(proc))
    dirs = fs.dirs_of(7)
    assert (dirs.cpu_version, dirs.memory_version) == (1, 1)
    assert fs.cpu_ns(dirs) == 5
    assert fs.memory(dirs) == MemoryUsage(8192, 4096, 4096)


def test_parsing_mountinfo_and_proc_cgroup() -> None:
    text = (
        "25 20 0:22 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n"
        "26 25 0:23 / /sys/fs/cgroup/my\\040cg rw,nosuid - cgroup2 cgroup2 rw\n"
        "27 25 0:24 /sub /sys/fs/cgroup/memory rw master:9 - cgroup cgroup rw,memory\n"
    )
    mounts = parse_mountinfo(text)
    assert [(m.mountpoint, m.root, m.version) for m in mounts] == [
        ("/sys/fs/cgroup/my cg", "/", 2),
        ("/sys/fs/cgroup/memory", "/sub", 1),
    ]
    assert "memory" in mounts[1].controllers
    paths = parse_proc_cgroup("2:cpu,cpuacct:/a\n1:name=systemd:/s\n0::/b\n")
    assert paths == {"cpu": "/a", "cpuacct": "/a", "name=systemd": "/s", "": "/b"}
    with pytest.raises(CgroupError, match="no cgroup hierarchy carries cpuacct"):
        CgroupFS("/nonexistent", mounts=[]).root_dirs()


def test_machine_memory_from_meminfo() -> None:
    # procfs.py's worked example
    meminfo = parse_meminfo(
        "MemTotal:       24683664 kB\nMemFree:        23541208 kB\n"
        "Inactive(file):   164848 kB\nAnonPages:         97444 kB\nHugePages_Total:  0\n"
    )
    assert meminfo["HugePages_Total"] == 0
    memory, capacity = machine_memory(meminfo)
    assert capacity == 24683664 * 1024
    assert memory == MemoryUsage(1142456 * 1024, 977608 * 1024, 97444 * 1024)


def test_process_cpu_memory_and_start(tmp_path: Path) -> None:
    # a name with spaces and parentheses: fields are counted after the last ')'
    fields = ["S", *["0"] * 10, "150", "50", "30", "20", "20", "0", "1", "0", "3000"]
    stat = "77 (my (odd) name) " + " ".join(fields) + " 1 2 3\n"
    assert parse_stat_cpu_ns(stat) == (150 + 50 + 30 + 20) * 1_000_000_000 // CLOCK_TICKS
    assert parse_status_rss("Name:\tx\nVmRSS:\t    2048 kB\n") == 2048 * 1024
    assert parse_status_rss("Name:\tkthreadd\n") == 0
    proc = tmp_path / "proc"
    write(proc / "stat", "cpu  1 2 3\nbtime 1700000000\n")
    write(proc / "77" / "stat", stat)
    write(proc / "77" / "status", "VmRSS:\t100 kB\n")
    write(proc / "77" / "comm", "containerd\n")
    fs = ProcFS(str(proc))
    process = fs.process(77)
    assert (process.comm, process.rss_bytes) == ("containerd", 100 * 1024)
    assert process.memory == MemoryUsage(102400, 102400, 102400)
    assert fs.process_start(77) == 1700000000 + 3000 / CLOCK_TICKS
    assert fs.pids() == [77]


def test_rates_follow_the_worked_example() -> None:
    rates = RateTracker(min_window=1.0)
    rates.observe("c", 100.0, 40_000_000_000)
    assert rates.rate("c") is None and rates.waiting(["c"])
    rates.observe("c", 100.4, 40_300_000_000)  # too close: the first reading is kept
    assert rates.rate("c") is None
    rates.observe("c", 101.0, 40_900_000_000)
    rate = rates.rate("c")
    assert rate is not None and rate.nano_cores == 900_000_000 and rate.window == 1.0
    rates.observe("c", 101.2, 41_000_000_000)  # too close: the last rate stands
    assert rates.rate("c") == rate
    # a counter that goes down starts over; an unseen key is forgotten
    rates.observe("c", 103.0, 5)
    assert rates.rate("c") is None
    rates.observe("d", 103.0, 1)
    rates.retain(["d"])
    rates.observe("c", 110.0, 10)
    assert rates.rate("c") is None
