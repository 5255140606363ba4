"""Losing a control-plane node of `tinykube up --control-planes 3 --nodes 3` mid-rollout.

The cluster is kubeadm's stacked topology (localcluster/stacked.py): on each
of the three nodes an etcd member, an API server, a scheduler and a
controller-manager (both leader-elected), containerd and a kubelet. The seed
(examples/web-app.yaml) is applied and rolled from nginx:latest to
nginx:1.25; while it rolls, a client writes ConfigMaps ten times a second
(each acknowledged write recorded with its resourceVersion), and a prober
curls the Service's ClusterIP from a node that will survive, five times a
second. Then everything of the node whose controller-manager holds the
Lease is killed with SIGKILL -- its etcd member, API server, scheduler,
controller-manager, kubelet, containerd and its pods' containers -- as a
machine that loses power.

What must hold:

* a new controller-manager leader (on another node) holds the Lease within
  the lease's bounds. A candidate sees the old holder's last renewal at its
  next try (within retryPeriod, 2 s), counts leaseDuration (15 s) from
  there, and takes the Lease at the try after that (within 2 s more): so it
  acquires the Lease at most 15 + 2 x 2 s after that renewal (+1 s of
  slack for the API calls);
* the rollout completes (the dead node's pods are evicted and replaced);
* every acknowledged write is there afterwards, read one by one, at its
  resourceVersion, and writes went on after the kill;
* the Service answered from the surviving nodes throughout; the longest gap
  between two answers is printed (and bounded);
* the dead node rejoins: `up` restarts its processes, its etcd member is
  healthy again and serves the writes, its API server is back in the
  `kubernetes` Endpoints, and the Node is Ready.

The cluster is removed however the test ends.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from apimachinery import errors
from apimachinery.client import Client
from localcluster.cluster import Cluster
from localcluster.seedprobes import cluster_ip
from protos import core_pb2, meta_pb2
from tests.e2e.localcluster_fixture import SEED, cli, curl_from, logs, skip_unless_ready, wait
from tests.unit.controllers.workloads import rollout_done

pytestmark = pytest.mark.timeout(900)

LEASE_DURATION, RETRY_PERIOD = 15.0, 2.0
WRITE_RATE = 10.0


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    skip_unless_ready()
    if not os.path.exists("/usr/bin/etcd"):
        pytest.skip("etcd is not installed (Debian's etcd-server package)")
    name = f"ha{os.getpid() % 100000}"
    c = Cluster(name, nodes=3, control_planes=3, fast_failover=True, make_current=False)
    try:
        c.up(progress=print)
        yield c
    finally:
        c.down(progress=print)


@dataclass
class Writer:
    """ConfigMaps written at a steady rate through every API server (the client fails over)."""

    address: str
    acked: dict[str, str] = field(default_factory=dict)  # name -> resourceVersion
    ack_times: list[float] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        asyncio.run(self._loop())

    async def _loop(self) -> None:
        async with Client(self.address, timeout=10) as client:
            i = 0
            next_at = time.monotonic()
            while not self.stop.is_set():
                name = f"ha-write-{i}"
                cm = core_pb2.ConfigMap(
                    metadata=meta_pb2.ObjectMeta(name=name, namespace="default"),
                    data={"i": str(i)},
                )
                try:
                    made = await client.create(cm)
                    self.acked[name] = made.metadata.resource_version
                    self.ack_times.append(time.monotonic())
                except errors.StatusError as err:
                    self.failed.append(f"{name}: {err}")
                i += 1
                next_at += 1.0 / WRITE_RATE
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))


@dataclass
class Prober:
    """The Service's ClusterIP, from a node's namespace, every 0.2 s: when it answered."""

    cluster: Cluster
    node: str
    url: str
    answers: list[float] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            if "Welcome to nginx" in curl_from(self.cluster, self.node, self.url):
                self.answers.append(time.monotonic())
            time.sleep(0.2)

    def longest_gap(self, start: float, end: float) -> float:
        times = [start, *(t for t in self.answers if start < t < end), end]
        return max(b - a for a, b in itertools.pairwise(times))


def lease(cluster: Cluster, name: str) -> Any:
    async def read(client: Any) -> Any:
        return await client.get("leases", name, "kube-system")

    return cluster.api(read)


def holder_node(cluster: Cluster, name: str) -> str:
    """The node of a Lease's holder: holderIdentity is `<hostname>_<uuid>`, and each
    control-plane component's hostname is its node's (localcluster/stacked.py)."""
    return str(lease(cluster, name).spec.holder_identity).partition("_")[0]


def deployment_image_pods(cluster: Cluster, image: str) -> int:
    async def read(client: Any) -> int:
        pods, _ = await client.list("pods", "default", label_selector="app=web-app")
        return sum(1 for p in pods if p.spec.containers[0].image == image)

    return cluster.api(read)


def kill_node(cluster: Cluster, node: str) -> None:
    """SIGKILL every process of `node`, its pods' containers too (a power loss)."""
    for part in ("etcd", "apiserver", "scheduler", "controller-manager", "kubelet", "containerd"):
        cluster.stop_component(f"{node}-{part}", kill=True)
    cluster.node(node).containerd().kill_leftovers()


def test_losing_the_leaders_node_mid_rollout(cluster: Cluster) -> None:
    assert cluster.ha is not None
    cli(cluster, "apply", "-f", SEED)
    wait(lambda: deployment_ready(cluster, "nginx:latest"), "the seed's 2 replicas", cluster, 120)
    victim = holder_node(cluster, "kube-controller-manager")
    assert victim in cluster.nodes, lease(cluster, "kube-controller-manager")
    survivors = [n for n in cluster.nodes if n != victim]
    ip = cluster_ip(cluster)
    writer = Writer(cluster.client_address)
    prober = Prober(cluster, survivors[0], f"http://{ip}/")
    threads = [threading.Thread(target=w.run, daemon=True) for w in (writer, prober)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(2.0)
        cli(cluster, "set", "image", "deployment/web-app", "web-app=nginx:1.25")
        wait(lambda: deployment_image_pods(cluster, "nginx:1.25") >= 1, "a new pod", cluster)
        mid_rollout = not deployment_ready(cluster, "nginx:1.25")
        before = lease(cluster, "kube-controller-manager")
        killed_at = time.monotonic()
        kill_node(cluster, victim)
        print(f"killed {victim} (controller-manager leader) mid-rollout={mid_rollout}")

        wait(
            lambda: holder_node(cluster, "kube-controller-manager") in survivors,
            "a new controller-manager leader",
            cluster,
            60,
        )
        took_over = time.monotonic() - killed_at
        after = lease(cluster, "kube-controller-manager")
        last_renew = before.spec.renew_time.ToDatetime()
        acquired = after.spec.acquire_time.ToDatetime()
        handover = (acquired - last_renew).total_seconds()
        print(f"new leader {after.spec.holder_identity} {took_over:.1f} s after the kill;")
        print(f"  acquired {handover:.1f} s after the old holder's last renewal")
        assert handover <= LEASE_DURATION + 2 * RETRY_PERIOD + 1.0, handover
        assert after.spec.lease_transitions > before.spec.lease_transitions

        def scheduler_led() -> bool:
            return holder_node(cluster, "kube-scheduler") in survivors

        wait(scheduler_led, "a scheduler leader on a surviving node", cluster, 60)

        wait(lambda: deployment_ready(cluster, "nginx:1.25"), "the rollout", cluster, 240)
        rolled_at = time.monotonic()
        time.sleep(3.0)
    finally:
        writer.stop.set()
        prober.stop.set()
        for thread in threads:
            thread.join(30)
    check_writes(cluster, writer, killed_at)
    gap = prober.longest_gap(killed_at, rolled_at)
    print(f"service: {len(prober.answers)} answers, longest gap {gap:.1f} s after the kill")
    assert gap < 30.0, f"the Service did not answer for {gap:.1f} s"
    rejoin(cluster, victim, writer)


def deployment_ready(cluster: Cluster, image: str) -> bool:
    try:
        return cluster.api(lambda c: rollout_done(c, "web-app", image))
    except Exception:
        return False


def check_writes(cluster: Cluster, writer: Writer, killed_at: float) -> None:
    """Every acknowledged write, one by one, at the resourceVersion it was acknowledged at."""
    after_kill = [t for t in writer.ack_times if t > killed_at]
    times = sorted(writer.ack_times)
    write_gap = max(b - a for a, b in itertools.pairwise(times))
    print(
        f"writes: {len(writer.acked)} acknowledged ({len(after_kill)} after the kill), "
        f"{len(writer.failed)} failed, longest pause between acknowledgements {write_gap:.1f} s"
    )
    assert len(after_kill) > 50, "writes must go on after the kill"

    async def read_all(client: Any) -> list[str]:
        missing = []
        for name, version in writer.acked.items():
            try:
                got = await client.get("configmaps", name, "default")
            except errors.NotFound:
                missing.append(f"{name} (gone)")
                continue
            if got.metadata.resource_version != version:
                missing.append(f"{name} at {got.metadata.resource_version}, acked at {version}")
        return missing

    lost = cluster.api(read_all)
    assert not lost, f"acknowledged writes lost: {lost[:20]}"


def rejoin(cluster: Cluster, victim: str, writer: Writer) -> None:
    """`up` restarts the dead node's processes; its member, server and Node come back."""
    ha = cluster.ha
    assert ha is not None
    cluster.up(progress=print)
    assert ha.etcd_healthy(victim), f"{victim}'s etcd member is not healthy\n{logs(cluster)}"
    wait(lambda: cluster.node_conditions().get(victim, False), f"{victim} Ready", cluster, 120)

    async def endpoints(client: Any) -> int:
        ep = await client.get("endpoints", "kubernetes", "default")
        return sum(len(s.addresses) for s in ep.subsets)

    wait(lambda: cluster.api(endpoints) == 3, "3 API servers in kubernetes", cluster, 60)

    async def through_own_server() -> int:  # the rejoined server, on the rejoined member
        async with Client(ha.socket(victim), timeout=10) as client:
            items, _ = await client.list("configmaps", "default")
        return len({i.metadata.name for i in items} & set(writer.acked))

    assert asyncio.run(through_own_server()) == len(writer.acked)
