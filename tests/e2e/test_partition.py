"""A network partition between the two nodes, then healed: nothing runs twice afterwards.

    node1 (control plane + worker) --X-- node2 (worker)

nftables in node2's namespace drops everything to and from node1's address,
both directions, ahead of conntrack (priority -300), so established flows
die too: node2's kubelet loses the API server (its Lease stops), and the
VXLAN between them is cut. Kubernetes' behaviour, step by step, with the
cluster's short failover timings (fast_failover: NotReady after ~6 s,
eviction 5 s later):

1. node2 NotReady on the Lease's schedule; its pod is marked not ready, so
   the endpoints controller takes it out of the Service;
2. the pod is evicted after its toleration, and the ReplicaSet makes a
   replacement, which the scheduler puts on node1;
3. the Service keeps answering from node1 throughout (the test reports the
   longest gap between two answers seen from node1);
4. heal: node2's kubelet reaches the API server again, finds its pod deleted,
   and stops the container it kept running while cut off. Afterwards no
   pod runs twice and exactly the two replicas on node1 serve.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from localcluster.cluster import Cluster
from localcluster.seedprobes import cluster_ip, endpoints_of, running, spread, web_pods
from tests.e2e.localcluster_fixture import (
    SEED,
    cli,
    curl_from,
    local_cluster,
    replicas_seen,
    running_containers,
    served_by,
    skip_reason,
    wait,
)

pytestmark = pytest.mark.skipif(bool(skip_reason()), reason=skip_reason() or "ready")

NAME = f"part{os.getpid() % 100000}"
NODE1_IP = "10.201.0.11"
TABLE = "tinykube-partition"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with local_cluster(NAME) as c:
        yield c


@contextmanager
def partition(cluster: Cluster, node: str, peer: str) -> Iterator[None]:
    """Drop all traffic between `node` and `peer`'s address, both ways, until the block ends."""
    rules = (
        f"table inet {TABLE} {{\n"
        f"  chain input {{ type filter hook input priority -300; ip saddr {peer} drop; }}\n"
        f"  chain output {{ type filter hook output priority -300; ip daddr {peer} drop; }}\n"
        "}\n"
    )
    with tempfile.NamedTemporaryFile("w", suffix=".nft") as f:
        f.write(rules)
        f.flush()
        made = cluster.node_exec(node, ["nft", "-f", f.name])
        assert made.returncode == 0, made.stderr
    try:
        yield
    finally:
        cluster.node_exec(node, ["nft", "delete", "table", "inet", TABLE])


def answers_from_node1(cluster: Cluster, url: str) -> str:
    argv = ["curl", "-s", "-m", "1", url]
    out = cluster.node_exec("node1", argv)
    return out.stdout if out.returncode == 0 else ""


@pytest.mark.timeout(600)
def test_partition_then_heal_runs_nothing_twice(cluster: Cluster) -> None:
    assert "created" in cli(cluster, "apply", "-f", SEED).stdout
    wait(lambda: len(running(cluster)) == 2, "two web-app pods Running", cluster, 120)
    spread(cluster)
    cut_off = [name for name, (node, _) in running(cluster).items() if node == "node2"]
    assert len(cut_off) == 1
    url = f"http://{cluster_ip(cluster)}/"

    with partition(cluster, "node2", NODE1_IP):
        started = time.monotonic()
        last_answer, longest_gap = started, 0.0

        def probe() -> None:
            nonlocal last_answer, longest_gap
            if served_by(answers_from_node1(cluster, url)):
                now = time.monotonic()
                longest_gap = max(longest_gap, now - last_answer)
                last_answer = now

        def probing(check: Callable[[], bool]) -> bool:
            probe()
            return check()

        def moved() -> bool:
            probe()
            pods = running(cluster)
            return len(pods) == 2 and {n for n, _ in pods.values()} == {"node1"}

        wait(
            lambda: probing(lambda: not cluster.node_conditions().get("node2")),
            "node2 NotReady",
            cluster,
            60,
        )
        wait(moved, "both replicas Running on node1", cluster, 120)
        want = set(running(cluster))
        assert not set(cut_off) & want
        wait(
            lambda: probing(
                lambda: endpoints_of(cluster) == {ip for _, ip in running(cluster).values()}
            ),
            "endpoints on node1 only",
            cluster,
        )
        for _ in range(20):
            probe()
        print(f"longest gap between answers from node1 during the partition: {longest_gap:.1f} s")
        assert longest_gap < 15, longest_gap
        assert replicas_seen(lambda: curl_from(cluster, "node1", url), want) == want

    wait(lambda: bool(cluster.node_conditions().get("node2")), "node2 Ready again", cluster, 90)
    wait(
        lambda: running_containers(cluster, "node2", "web-app") == [],
        "node2 stopped the replica it kept while cut off",
        cluster,
        90,
    )
    assert set(running(cluster)) == want
    assert len(web_pods(cluster)) == 2
    assert running_containers(cluster, "node1", "web-app") == sorted(want)
    for node in ("node1", "node2"):  # the Service serves from both sides again
        assert replicas_seen(lambda n=node: curl_from(cluster, n, url), want) == want  # type: ignore[misc]
