"""The control plane's user session, on three hollow nodes, typed through the real CLI.

tinykube apply -f examples/web-app.yaml   -> two pods Running, on two different nodes
tinykube get endpoints web-app-service    -> two pod IPs
tinykube describe pod ...                 -> events and the scheduling record
tinykube explain-placement pod/... --node node3
tinykube scale / set image / rollout status|history|undo
tinykube cordon node2 ; tinykube drain node2
tinykube get events
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.hollow import HollowCluster, hollow_cluster
from tests.procs import REPO, run_cli

SEED = str(REPO / "examples" / "web-app.yaml")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HollowCluster]:
    with hollow_cluster(tmp_path_factory.mktemp("hollow"), nodes=3) as c:
        yield c


def cli(cluster: HollowCluster, *args: str) -> str:
    out = run_cli(cluster.server, *args)
    assert out.returncode == 0, f"tinykube {' '.join(args)}\n{out.stdout}\n{out.stderr}"
    return out.stdout


def test_seed_runs_on_two_nodes(cluster: HollowCluster) -> None:
    cli(cluster, "apply", "-f", SEED)
    cluster.wait(lambda: len(cluster.running()) == 2, "two web-app pods Running")
    pods = cluster.running()
    assert len({p.spec.node_name for p in pods}) == 2, "the replicas must spread"
    table = cli(cluster, "get", "pods", "-o", "wide")
    assert table.count("Running") == 2
    ips = {p.status.pod_ip for p in pods}
    cluster.wait(
        lambda: all(ip in cli(cluster, "get", "endpoints", "web-app-service") for ip in ips),
        "endpoints with both pod IPs",
    )


def test_describe_shows_scheduling_record_and_events(cluster: HollowCluster) -> None:
    pod = cluster.running()[0]
    text = cli(cluster, "describe", "pod", pod.metadata.name)
    assert "<- chosen" in text and pod.spec.node_name in text
    assert "Scheduled" in text
    why = cli(cluster, "explain-placement", f"pod/{pod.metadata.name}", "--node", "node3")
    assert "node3" in why


def test_scale_and_rolling_update_and_undo(cluster: HollowCluster) -> None:
    cli(cluster, "scale", "deployment/web-app", "--replicas", "5")
    cluster.wait(lambda: len(cluster.running()) == 5, "five replicas Running")
    cli(cluster, "set", "image", "deployment/web-app", "web-app=nginx:1.25")
    status = cli(cluster, "rollout", "status", "deployment/web-app", "--timeout", "60s")
    assert 'deployment "web-app" successfully rolled out' in status

    def images() -> set[str]:
        return {p.spec.containers[0].image for p in cluster.running()}

    cluster.wait(lambda: images() == {"nginx:1.25"} and len(cluster.running()) == 5, "new image")
    history = cli(cluster, "rollout", "history", "deployment/web-app")
    assert "1" in history and "2" in history
    cli(cluster, "rollout", "undo", "deployment/web-app")
    cli(cluster, "rollout", "status", "deployment/web-app", "--timeout", "60s")
    cluster.wait(lambda: images() == {"nginx:latest"}, "rolled back image")


def test_cordon_and_drain_move_pods_off_the_node(cluster: HollowCluster) -> None:
    assert "node/node2 cordoned" in cli(cluster, "cordon", "node2")
    nodes = cli(cluster, "get", "nodes")
    assert "SchedulingDisabled" in nodes
    out = cli(cluster, "drain", "node2", "--timeout", "60s")
    assert "node/node2 drained" in out
    cluster.wait(
        lambda: (
            len(cluster.running()) == 5
            and all(p.spec.node_name != "node2" for p in cluster.running())
        ),
        "replicas off node2",
        60,
    )
    cli(cluster, "uncordon", "node2")
    events = cli(cluster, "get", "events")
    for reason in ("Scheduled", "ScalingReplicaSet", "SuccessfulCreate"):
        assert reason in events


def test_failed_scheduling_counts_reasons(cluster: HollowCluster, tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: too-big}\n"
        "spec:\n  containers:\n  - name: c\n    image: nginx:1.25\n"
        "    resources: {requests: {cpu: '64'}}\n"
    )
    cli(cluster, "apply", "-f", str(big))
    cluster.wait(
        lambda: "0/3 nodes are available" in cli(cluster, "describe", "pod", "too-big"),
        "FailedScheduling event",
    )
    text = cli(cluster, "describe", "pod", "too-big")
    assert "Insufficient cpu" in text and "Pending" in text
    cli(cluster, "delete", "pod", "too-big")
