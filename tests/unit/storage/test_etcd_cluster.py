"""Three etcd members over TLS (localcluster/etcdcluster.py): a dead leader loses no write.

The members serve on 127.0.0.2-4 (no namespaces, no root), each with its
certificate from the cluster's own CA, peers and clients both verified. The
storage writes through all three endpoints while the test kills the raft
leader with SIGKILL: writes go on once the survivors elect a new leader,
every write that was acknowledged is there afterwards (checked key by key),
and the killed member, started again with the same command, rejoins and
serves every acknowledged key itself.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from apiserver.storage.etcd import EtcdStorage
from apiserver.storage.etcd_client import EtcdConfig, EtcdUnavailable
from apiserver.storage.interface import StorageError
from localcluster.clusterstate import ProcessRecord
from localcluster.etcdcluster import EtcdCluster, EtcdMember, make_pki
from localcluster.node import kill9, stop_process
from localcluster.processes import free_port

from .etcd_server import needs_etcd

pytestmark = [needs_etcd, pytest.mark.timeout(120)]


class Running:
    """The cluster and its processes, stopped whatever happens."""

    def __init__(self, root: Path) -> None:
        members = tuple(
            EtcdMember(f"m{i}", f"127.0.0.{i + 1}", root / f"m{i}", free_port(), free_port())
            for i in (1, 2, 3)
        )
        pki = make_pki(root / "pki", list(members), extra_ips=("127.0.0.1",))
        self.cluster = EtcdCluster(members, pki, "tk-test")
        self.root = root
        self.records: dict[str, ProcessRecord] = {}

    def start(self, member: EtcdMember) -> None:
        self.records[member.name] = self.cluster.start(member, self.root / f"{member.name}.log")

    def stop(self) -> None:
        for record in self.records.values():
            stop_process(record, grace=2)


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    cluster = Running(tmp_path)
    try:
        for member in cluster.cluster.members:
            cluster.start(member)
        cluster.cluster.wait_healthy(list(cluster.cluster.members))
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(tmp_path / "pki", ignore_errors=True)


def test_killing_the_leader_loses_no_acknowledged_write(running: Running) -> None:
    cluster = running.cluster
    leader = cluster.leader()
    assert leader is not None
    acked, unknown, gap = asyncio.run(write_through_a_kill(running, leader))
    assert len(acked) > 100, "writes must go on after the kill"
    assert gap < 10.0, f"no write was acknowledged for {gap:.1f}s around the kill"

    new_leader = cluster.leader()
    assert new_leader is not None and new_leader != leader
    running.start(leader)  # the same command: it rejoins from its data directory
    cluster.wait_healthy([leader])
    missing = asyncio.run(missing_from(cluster.config(), acked))
    assert missing == [], f"acknowledged writes lost: {missing[:10]}"
    both = cluster.config()
    alone = EtcdConfig(
        (leader.endpoint,), cafile=both.cafile, certfile=both.certfile, keyfile=both.keyfile
    )
    assert asyncio.run(missing_from(alone, acked)) == []  # the rejoined member has them all
    assert len(unknown) <= 5, unknown  # only the writes in flight at the kill were in doubt


async def write_through_a_kill(
    running: Running, leader: EtcdMember
) -> tuple[list[str], list[str], float]:
    """Create keys one after another, killing the leader after 50; the keys acknowledged,
    those whose outcome is unknown, and the longest time between two acknowledgements."""
    store = EtcdStorage(running.cluster.config())
    acked: list[str] = []
    unknown: list[str] = []
    last_ack, gap = time.monotonic(), 0.0
    try:
        killed_at = 0.0
        n = 0
        while True:
            key = f"/registry/configmaps/default/w{n:05d}"
            n += 1
            try:
                await store.create(key, b"v")
                acked.append(key)
                now = time.monotonic()
                gap, last_ack = max(gap, now - last_ack), now
            except EtcdUnavailable:
                unknown.append(key)  # sent, then the member died: applied or not
            except StorageError:
                unknown.append(key)
            if n == 50:
                kill9(running.records[leader.name])
                killed_at = time.monotonic()
            if killed_at and time.monotonic() - killed_at > 4 and len(acked) > 120:
                return acked, unknown, gap
            if killed_at and time.monotonic() - killed_at > 30:
                return acked, unknown, gap
    finally:
        await store.close()


async def missing_from(config: EtcdConfig, keys: list[str]) -> list[str]:
    store = EtcdStorage(config)
    try:
        items, _ = await store.list("/registry/configmaps/default/")
        present = {kv.key for kv in items}
        return [k for k in keys if k not in present]
    finally:
        await store.close()
