"""A snapshot taken under load restores into a new cluster with every object at its revision.

A real `tinykube apiserver --storage etcd://...` on a real etcd member takes
a steady stream of writes from four writers (creates of new ConfigMaps and
updates of earlier ones, each acknowledged write recorded with its
resourceVersion and value). While they write, `tinykube snapshot save`
streams etcd's snapshot through the API server. The snapshot is restored
with etcd's own tool into a new data directory, a new etcd and a new API
server start on it, and the restored store must be one consistent cut of the
history the writers saw, at one revision R:

* every acknowledged write at or below R is there -- each object in the state
  its newest acknowledged write at or below R left it: the same
  resourceVersion, the same value;
* nothing acknowledged above R is there (neither objects created later nor
  later versions of earlier ones), and nothing that no writer wrote;
* writes were acknowledged on both sides of R (the snapshot was taken under
  load). R is what `snapshot status` reads in the file (etcd's revision,
  printed as a resourceVersion: docs/etcd.md, "The revision offset"), and
  the new store's revision is at least R (the new server's own start-up
  writes come after);
* the new cluster goes on from there: its next write gets a higher
  resourceVersion.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from apimachinery.client import Client
from apiserver.storage.etcd_snapshot import etcd_tool
from localcluster.processes import ApiServerProcess, tinykube_cmd
from protos import core_pb2

from .etcd_server import EtcdServer, needs_etcd

pytestmark = [
    needs_etcd,
    pytest.mark.timeout(180),
    pytest.mark.skipif(etcd_tool() is None, reason="no etcdutl/etcdctl (Debian: etcd-client)"),
]
WRITERS = 4
API_ARGS = ("--no-scheduler", "--no-controllers")


def configmap(name: str, value: str) -> core_pb2.ConfigMap:
    cm = core_pb2.ConfigMap(api_version="v1", kind="ConfigMap")
    cm.metadata.name, cm.metadata.namespace = name, "default"
    cm.data["v"] = value
    return cm


@dataclass
class History:
    """Every acknowledged write: (resourceVersion, name, value)."""

    writes: list[tuple[int, str, str]] = field(default_factory=list)

    def state_at(self, revision: int) -> dict[str, tuple[int, str]]:
        """name -> (resourceVersion, value) of the newest acknowledged write at or below."""
        state: dict[str, tuple[int, str]] = {}
        for rv, name, value in sorted(self.writes):
            if rv <= revision:
                state[name] = (rv, value)
        return state


async def write(client: Client, writer: int, history: History, stop: asyncio.Event) -> None:
    """Create `w<writer>-<n>`; every third write updates one this writer created."""
    n = 0
    created: list[str] = []
    while not stop.is_set():
        if n % 3 == 2:
            name, value = created[len(created) // 2], f"updated-{n}"
            cm = await client.get(core_pb2.ConfigMap, name, "default")
            cm.data["v"] = value
            done = await client.update(cm)
        else:
            name, value = f"w{writer}-{n}", f"created-{n}"
            done = await client.create(configmap(name, value))
            created.append(name)
        history.writes.append((int(done.metadata.resource_version), name, value))
        n += 1


async def save_under_load(address: str, path: Path, history: History) -> str:
    """`tinykube snapshot save` while the writers run (a second in, and a second after)."""
    stop = asyncio.Event()
    async with Client(address) as client:
        writers = [asyncio.create_task(write(client, w, history, stop)) for w in range(WRITERS)]
        await asyncio.sleep(1.0)
        proc = await asyncio.create_subprocess_exec(
            *tinykube_cmd(),
            "--server",
            address,
            "snapshot",
            "save",
            str(path),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        out, _ = await proc.communicate()
        await asyncio.sleep(1.0)
        stop.set()
        await asyncio.gather(*writers)
    assert proc.returncode == 0, out.decode()
    return out.decode()


def restore(path: Path, etcd: EtcdServer) -> None:
    """etcd's own restore (etcdutl, or Debian 3.4's etcdctl) into a new data directory."""
    tool = etcd_tool()
    assert tool is not None
    peer = f"http://127.0.0.1:{etcd.peer_port}"
    argv = [*tool, "snapshot", "restore", str(path), "--data-dir", str(etcd.data_dir)]
    argv += ["--name", "default", "--initial-cluster", f"default={peer}"]
    argv += ["--initial-advertise-peer-urls", peer]
    run = subprocess.run(
        argv, capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "ETCDCTL_API": "3"},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr


def status_revision(path: Path) -> int:
    out = subprocess.run(
        [*tinykube_cmd(), "--server", "unix:/nonexistent", "snapshot", "status", str(path)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return int(out.stdout.splitlines()[1].split()[0])


async def restored_state(address: str) -> tuple[int, dict[str, tuple[int, str]], int]:
    """The restored ConfigMaps, the list's resourceVersion, and a new write's."""
    async with Client(address) as client:
        items, list_rv = await client.list(core_pb2.ConfigMap, "default")
        state = {
            o.metadata.name: (int(o.metadata.resource_version), o.data["v"])
            for o in items
            if o.metadata.name.startswith("w")
        }
        made = await client.create(configmap("after-restore", "new"))
    return int(list_rv), state, int(made.metadata.resource_version)


def test_snapshot_under_load_restores_every_object_at_its_revision(
    etcd_server: EtcdServer, tmp_path: Path
) -> None:
    storage = ("--storage", f"etcd://{etcd_server.endpoint}", *API_ARGS)
    apiserver = ApiServerProcess(tmp_path / "apiserver", extra_args=storage)
    apiserver.start()
    history = History()
    path = tmp_path / "under-load.db"
    try:
        saved = asyncio.run(save_under_load(apiserver.address, path, history))
    finally:
        apiserver.stop()
    print(saved.strip(), f"({len(history.writes)} writes acknowledged)", file=sys.stderr)

    restored = EtcdServer(tmp_path / "restored" / "etcd")
    restore(path, restored)
    restored.start()
    fresh = ApiServerProcess(
        tmp_path / "restored" / "apiserver",
        extra_args=("--storage", f"etcd://{restored.endpoint}", *API_ARGS),
    )
    try:
        fresh.start()
        revision, state, next_rv = asyncio.run(restored_state(fresh.address))
    finally:
        fresh.stop()
        restored.remove()

    cut = status_revision(path)  # the file's etcd revision, as a resourceVersion
    rvs = [rv for rv, _, _ in history.writes]
    assert min(rvs) < cut < max(rvs), "the snapshot must cut through the writes"
    assert revision >= cut  # the new server's own start-up writes (if any) come after
    expected = history.state_at(cut)
    missing = {n: v for n, v in expected.items() if state.get(n) != v}
    assert not missing, f"not restored at their revision: {list(missing.items())[:10]}"
    extra = {n: v for n, v in state.items() if n not in expected}
    assert not extra, f"restored but never acknowledged at or below {cut}: {extra}"
    assert next_rv > revision
    later = sum(1 for rv in rvs if rv > cut)
    print(f"restored at {cut}: {len(state)} objects, {later} later writes absent", file=sys.stderr)
