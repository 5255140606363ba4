"""`tinykube logs -f` as a real process against a hollow kubelet: it follows a container
across its restarts, ends when the pod goes or the container will not come back, and
`--previous` reads the instance before the last restart."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.cli_node import ClusterProcess, watching

pytestmark = pytest.mark.timeout(90)


def crasher(name: str, policy: str) -> str:
    return (
        f"apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, labels: {{app: crash}}}}\n"
        f"spec:\n  nodeName: node1\n  restartPolicy: {policy}\n"
        "  terminationGracePeriodSeconds: 0\n"
        "  containers: [{name: crash, image: busybox}]\n"
    )


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ClusterProcess]:
    c = ClusterProcess(tmp_path, kubelet=True)
    try:
        # every instance prints "boot", then exits 1 a second after it started
        c.runtime("behave", container="crash", logs=["boot"], exit_code=1, exit_after=1.0)
        yield c
    finally:
        c.stop()


def restarts(cluster: ClusterProcess, name: str) -> int:
    statuses = cluster.pod(name).status.container_statuses
    return int(statuses[0].restart_count) if statuses else 0


def test_follow_goes_on_across_restarts_until_the_pod_is_deleted(
    cluster: ClusterProcess,
) -> None:
    cluster.apply(crasher("looping", "Always"))
    cluster.wait(lambda: cluster.pod("looping").status.container_statuses, "a container status")
    with watching(cluster.address, "logs", "looping", "-f", "--timestamps") as follow:
        seen = [follow.next_line(), follow.next_line(), follow.next_line()]
        assert all(line.endswith("Z boot") for line in seen), seen  # three instances
        assert restarts(cluster, "looping") >= 2
        assert cluster.tk("delete", "pod", "looping").exit_code == 0
        assert follow.wait(20) == 0


def test_follow_ends_when_the_policy_does_not_restart(cluster: ClusterProcess) -> None:
    cluster.apply(crasher("once", "Never"))

    def started() -> bool:
        statuses = cluster.pod("once").status.container_statuses
        return bool(statuses and statuses[0].container_id)

    cluster.wait(started, "the container started")
    with watching(cluster.address, "logs", "once", "-f") as follow:
        assert follow.next_line() == "boot"
        assert follow.wait(20) == 0  # exited 1, restartPolicy Never: nothing more to follow
        with pytest.raises(queue.Empty):
            follow.lines.get(timeout=0.5)


def test_previous_reads_the_instance_before_the_restart(cluster: ClusterProcess) -> None:
    cluster.apply(crasher("again", "OnFailure"))
    cluster.wait(lambda: restarts(cluster, "again") >= 1, "a restart", 20)
    assert cluster.runtime("write", pod="again", container="crash", text="newest only")["ok"]
    previous = cluster.tk("logs", "again", "--previous")
    assert (previous.exit_code, previous.stdout) == (0, "boot\n"), previous.output
    current = cluster.tk("logs", "again", "--tail=1")
    assert current.stdout == "newest only\n"
