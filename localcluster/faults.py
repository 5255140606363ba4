"""Faults for a `tinykube up` cluster: crashes, runtime restarts, partitions, a full disk.

What a production cluster meets, each made real on the namespace nodes of
localcluster.cluster and each undone as the thing that normally undoes it
would (systemd restarting a daemon, an operator healing the network, a disk
being cleaned up). Kubernetes has no in-tree equivalent; its e2e suite's
"disruptive" tests and tools such as chaos-mesh or Netflix's Chaos Monkey
play this role. bench/chaos.py draws faults from here at random and
tests/e2e/test_chaos.py runs it in CI.

The faults, and what each does on the host:

    kill-apiserver       SIGKILL to the API server's process group. In `tinykube up`'s
                         layout the scheduler and the controller-manager run in that
                         process (cli/cmd_apiserver.py), so they die with it.
    kill-kubelet NODE    SIGKILL to the kubelet, and with it the node's network agent
                         (our kube-proxy and flanneld, in the kubelet's process). Pods
                         and their shims live on.
    restart-containerd NODE   SIGTERM to containerd (as `systemctl restart`); the shims,
                         so the containers, live on.
    partition NODE       nftables in NODE's namespace drops all traffic to and from the
                         other node's address, ahead of conntrack (priority -300), both
                         directions: kubelet <-> API server and the VXLAN between the
                         nodes are cut. Healed by deleting the table.
    disk-full            the API server's data directory is a small tmpfs (DataDirTmpfs,
                         installed once at the start); a filler file takes every free
                         byte, then is removed. Writes may fail meanwhile; none that was
                         acknowledged may be lost.

After every kill or stop the injector does what systemd's `Restart=always`
does: after a pause (RestartSec) it starts every component found dead
(`Supervisor.dead()`; `Cluster.up()` on an existing cluster restarts the dead
ones) and waits until the nodes are Ready -- that wait is the fault's "back
in" time. A component that died without being killed (the fault found a bug) is
restarted too, and the fault log says so.

Every fault is undone in a `finally`, and `Injector.cleanup()` undoes all of
them idempotently (tables deleted, filler removed, tmpfs unmounted), so a run
that fails midway leaves nothing on the host.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from localcluster.cluster import Cluster, ClusterError

TABLE = "tinykube-chaos"
KINDS = ("kill-apiserver", "kill-kubelet", "restart-containerd", "partition", "disk-full")
RESTART_SEC = 1.0  # the pause before a restart (the VMs' units: RestartSec=2, vagrant/systemd/)
READY_TIMEOUT = 180.0


@dataclass
class FaultRecord:
    """One fault: when (seconds since the run began), what, how long, how it ended."""

    at: float
    kind: str
    target: str = ""
    held: float = 0.0  # how long the fault lasted before it was undone
    back_in: float = 0.0  # from undoing it to every node Ready again
    note: str = ""

    def line(self) -> str:
        what = f"{self.kind} {self.target}".strip()
        text = f"t={self.at:7.1f}s  {what:<46} held {self.held:5.1f}s  back in {self.back_in:5.1f}s"
        return f"{text}  {self.note}".rstrip()


def _quiet(_: str) -> None:
    pass


@dataclass
class Supervisor:
    """systemd for the cluster's processes: restart what is dead (module docstring)."""

    cluster: Cluster

    def dead(self) -> list[str]:
        return [s.key for s in self.cluster.status() if not s.alive]


@contextlib.contextmanager
def partition(cluster: Cluster, node: str, peer_ip: str, table: str = TABLE) -> Iterator[None]:
    """Drop everything between `node` and `peer_ip`, both ways, until the block ends."""
    rules = (
        f"table inet {table} {{\n"
        f"  chain input {{ type filter hook input priority -300; ip saddr {peer_ip} drop; }}\n"
        f"  chain output {{ type filter hook output priority -300; ip daddr {peer_ip} drop; }}\n"
        "}\n"
    )
    with tempfile.NamedTemporaryFile("w", suffix=".nft") as f:
        f.write(rules)
        f.flush()
        made = cluster.node_exec(node, ["nft", "-f", f.name])
    if made.returncode != 0:
        raise RuntimeError(f"nft in {node}: {made.stderr.strip()}")
    try:
        yield
    finally:
        heal(cluster, node, table)


def heal(cluster: Cluster, node: str, table: str = TABLE) -> None:
    """Delete the partition's table in `node`'s namespace (nothing if there is none)."""
    listed = cluster.node_exec(node, ["nft", "list", "tables"])
    if f"inet {table}" in listed.stdout:
        cluster.node_exec(node, ["nft", "delete", "table", "inet", table])


def mounted(path: Path) -> bool:
    target = str(path.resolve())
    with open("/proc/self/mounts") as mounts:
        return any(line.split()[1] == target for line in mounts if len(line.split()) > 1)


@dataclass
class DataDirTmpfs:
    """The API server's data directory on a tmpfs of `size_mib`, and a filler to make it full.

    install(): stop the API server cleanly, move its files aside, mount the tmpfs
    on the directory, move them back, start the server again (`up`).
    fill() writes a filler file until ENOSPC (1 MiB, then 4 KiB pieces, so the
    disk is truly full); free() removes it; remove() unmounts (idempotent).
    """

    cluster: Cluster
    size_mib: int = 64
    installed: bool = False

    @property
    def path(self) -> Path:
        return Path(self.cluster.node(self.cluster.nodes[0]).paths.apiserver_data_dir)

    @property
    def filler(self) -> Path:
        return self.path / "chaos-filler"

    def install(self) -> None:
        self.cluster.stop_component("apiserver", kill=False)
        aside = self.path.with_name(self.path.name + ".chaos-aside")
        shutil.rmtree(aside, ignore_errors=True)
        self.path.rename(aside)
        self.path.mkdir(mode=0o700)
        self.installed = True
        opts = f"size={self.size_mib}m,mode=0700"
        subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(self.path)], check=True)
        shutil.copytree(aside, self.path, dirs_exist_ok=True, symlinks=True)
        shutil.rmtree(aside)
        self.cluster.up(progress=_quiet)

    def fill(self) -> int:
        """Take every free byte; the bytes written."""
        written = 0
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            for size in (1 << 20, 4096, 512):
                chunk = b"\0" * size
                while True:
                    try:
                        written += os.write(fd, chunk)
                    except OSError:
                        break
        finally:
            os.close(fd)
        return written

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def usage(self) -> str:
        st = os.statvfs(self.path)
        used = (st.f_blocks - st.f_bfree) * st.f_frsize
        return f"{used / 2**20:.1f} of {st.f_blocks * st.f_frsize / 2**20:.0f} MiB"

    def remove(self) -> None:
        self.free()
        if self.installed and mounted(self.path):
            subprocess.run(["umount", "-l", str(self.path)], check=False)
        self.installed = False


@dataclass
class Injector:
    """Draws faults from KINDS with a seeded RNG and injects them one at a time.

    Kinds are dealt like a shuffled deck -- each once per round of len(KINDS), in
    an order the RNG picks -- so a short run still meets every kind; the node and
    the hold time are drawn freely.
    """

    cluster: Cluster
    rng: random.Random
    disk: DataDirTmpfs | None = None  # disk-full needs it installed
    kinds: tuple[str, ...] = KINDS
    log: list[FaultRecord] = field(default_factory=list)
    origin: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.supervisor = Supervisor(self.cluster)
        self._deck: list[str] = []

    def now(self) -> float:
        return time.monotonic() - self.origin

    def check_alive(self) -> None:
        """Restart what died uninvited, and log it (a finding, not an injected fault)."""
        dead = self.supervisor.dead()
        if dead:
            record = FaultRecord(self.now(), "found-dead", ",".join(dead), note="not injected")
            self.log.append(record)
            self._recover(record, expected=set(dead))

    def inject(self, kind: str = "") -> FaultRecord:
        if not kind:
            if not self._deck:  # every kind once per round, in a random order
                self._deck = [k for k in self.kinds if k != "disk-full" or self.disk is not None]
                self.rng.shuffle(self._deck)
            kind = self._deck.pop()
        node = self.rng.choice(self.cluster.nodes)
        hold = round(self.rng.uniform(5.0, 12.0), 1)
        actions: dict[str, Callable[[FaultRecord], None]] = {
            "kill-apiserver": lambda r: self._kill(r, "apiserver"),
            "kill-kubelet": lambda r: self._kill(r, f"{node}-kubelet"),
            "restart-containerd": lambda r: self._stop(r, f"{node}-containerd"),
            "partition": lambda r: self._partition(r, node, hold),
            "disk-full": lambda r: self._disk_full(r, hold),
        }
        record = FaultRecord(self.now(), kind)
        self.log.append(record)
        actions[kind](record)
        return record

    def _kill(self, record: FaultRecord, key: str) -> None:
        record.target = key
        if key == "apiserver":
            record.note = "(its scheduler and controller-manager with it)"
        elif key.endswith("kubelet"):
            record.note = "(its network agent with it)"
        self.cluster.stop_component(key, kill=True)
        record.held = RESTART_SEC
        time.sleep(RESTART_SEC)
        self._recover(record, expected={key})

    def _stop(self, record: FaultRecord, key: str) -> None:
        record.target = key
        began = time.monotonic()
        self.cluster.stop_component(key, kill=False)
        time.sleep(RESTART_SEC)
        record.held = time.monotonic() - began
        self._recover(record, expected={key})

    def _partition(self, record: FaultRecord, node: str, hold: float) -> None:
        peer = next(n for n in self.cluster.nodes if n != node)
        record.target = f"{node} -/- {peer}"
        with partition(self.cluster, node, self.cluster.node(peer).config.node_ip):
            time.sleep(hold)
        record.held = hold
        self._recover(record)

    def _disk_full(self, record: FaultRecord, hold: float) -> None:
        assert self.disk is not None
        record.target = f"apiserver data dir ({self.disk.size_mib} MiB tmpfs)"
        try:
            filled = self.disk.fill()
            record.note = f"filled {filled / 2**20:.1f} MiB, {self.disk.usage()}"
            time.sleep(hold)
        finally:
            self.disk.free()
        record.held = hold
        self._recover(record)

    def _recover(
        self, record: FaultRecord, expected: frozenset[str] | set[str] = frozenset()
    ) -> None:
        """Restart what is dead (noting what died uninvited) and wait for every node Ready."""
        began = time.monotonic()
        for _ in range(3):
            dead = self.supervisor.dead()
            uninvited = sorted(set(dead) - (expected or set()))
            if uninvited:
                record.note += f" found dead: {','.join(uninvited)}"
            try:
                if dead:
                    self.cluster.up(progress=_quiet)
                self.cluster.wait_ready(timeout=READY_TIMEOUT)
                break
            except ClusterError as err:
                record.note += f" ({err})"
                time.sleep(RESTART_SEC)
        record.back_in = time.monotonic() - began

    def cleanup(self) -> None:
        """Undo every fault that may still be in place (idempotent)."""
        for node in self.cluster.nodes:
            with contextlib.suppress(Exception):
                heal(self.cluster, node)
        if self.disk is not None:
            self.disk.remove()
