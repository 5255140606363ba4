"""Faults in the middle of a pod's creation: nothing leaks, the pod runs once.

Creating a pod on a node is two runtime steps with a gap between them:

    RunPodSandbox       pause process, netns, veth on tk0, an address reserved
        <-- here: kill -9 the kubelet / restart containerd / restart dockerd
    CreateContainer + StartContainer

The kubelet of node2 is started with the fault point `after-sandbox` armed
(kubelet/faultpoints.py, through Cluster.extra_env): it pauses right after
RunPodSandbox returns and writes `<dir>/after-sandbox.default.<pod>.reached`.
Each test then injects its fault, lets the kubelet go on (or starts a new
one), waits for the pod to run, and reads node2 from outside its kubelet
(localcluster/leaks.py): the runtime's sandboxes and containers, the veths in
node2's namespace, the IPAM reservation files, and (Docker) the CNI result
cache. Every test ends by deleting its pod and checking that nothing of it
is left.

What tinykube does, and Kubernetes with it:

* kill -9 of the kubelet: the sandbox is READY with no container. The new
  kubelet finds it by the pod's uid and adopts it (compute_pod_actions reuses
  a READY sandbox; Kubernetes' computePodActions does the same), so the pod
  keeps its IP and veth: one sandbox (attempt 0), one container (restartCount 0).
* containerd restarted: its shims, and so the sandbox's pause process, live on;
  the restarted containerd reports the sandbox READY again and the kubelet,
  released, creates the container in it: the same single sandbox and container.
* dockerd restarted (live-restore off): dockerd stops the pause container,
  the netns and its veth go with it, the reservation stays. Released, the
  kubelet's CreateContainer is refused (`sandbox container "<id>" is not
  running`: the Docker adapter checks, as containerd's CRI does, so no
  never-started container is left to count as a restart); the next sync sees
  the sandbox NOTREADY, kills it (CNI DEL through the cached result frees the
  reservation), removes it and makes sandbox attempt 1 (Kubernetes:
  SandboxChanged, then a new sandbox) with container attempt 0.

The pods tolerate not-ready/unreachable forever: a kubelet or runtime down for
a few seconds would otherwise get them evicted on the fast failover timings,
and eviction is not what these tests are about (test_partition.py is).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from apimachinery import errors as api_errors
from kubelet import faultpoints
from localcluster.cluster import Cluster
from localcluster.leaks import ContainerInfo, NodeInventory, SandboxInfo, inventory
from netplugin.cni.plugin import host_veth_name
from protos import core_pb2
from tests.e2e.localcluster_fixture import local_cluster, logs, skip_reason, wait

pytestmark = pytest.mark.skipif(bool(skip_reason()), reason=skip_reason() or "ready")

NAME = f"mid{os.getpid() % 100000}"
NODE = "node2"
KUBELET = f"{NODE}-kubelet"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with local_cluster(NAME) as c:
        yield c


@pytest.fixture
def fault_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="tk-faults-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def restart_kubelet(cluster: Cluster) -> None:
    """Stop node2's kubelet if it runs, and start it again (with extra_env, if set)."""
    if any(s.alive for s in cluster.status() if s.key == KUBELET):
        cluster.stop_component(KUBELET, kill=False)
    cluster.up(progress=print)


@contextmanager
def armed_kubelet(cluster: Cluster, fault_dir: Path) -> Iterator[None]:
    """node2's kubelet pausing at after-sandbox; plain again afterwards, however it ends."""
    cluster.extra_env[KUBELET] = {
        faultpoints.ENV_POINTS: faultpoints.AFTER_SANDBOX,
        faultpoints.ENV_DIR: str(fault_dir),
    }
    try:
        restart_kubelet(cluster)
        yield
    finally:
        cluster.extra_env.pop(KUBELET, None)
        for mark in fault_dir.glob("*.reached"):  # never leave a kubelet paused
            mark.with_suffix(".release").touch()
        restart_kubelet(cluster)


def sleeper(name: str) -> core_pb2.Pod:
    pod = core_pb2.Pod(api_version="v1", kind="Pod")
    pod.metadata.name = name
    pod.metadata.namespace = "default"
    pod.spec.node_name = NODE
    pod.spec.termination_grace_period_seconds = 1
    pod.spec.containers.add(
        name="main",
        image="docker.io/library/busybox:1.36",
        image_pull_policy="IfNotPresent",
        command=["sleep", "3600"],
    )
    for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
        pod.spec.tolerations.add(key=key, operator="Exists", effect="NoExecute")
    return pod


def get_pod(cluster: Cluster, name: str) -> core_pb2.Pod | None:
    async def read(client: Any) -> core_pb2.Pod | None:
        try:
            pod: core_pb2.Pod = await client.get("pods", name, "default")
        except api_errors.NotFound:
            return None
        return pod

    return cluster.api(read)


@contextmanager
def pod_on_node2(cluster: Cluster, name: str, fault_dir: Path) -> Iterator[core_pb2.Pod]:
    """Create the pod; at the end release any pause, delete the pod, and check that
    nothing of it is left on node2."""
    created: core_pb2.Pod = cluster.api(lambda c: c.create(sleeper(name)))
    try:
        yield created
    finally:
        for mark in fault_dir.glob("*.reached"):  # a paused worker could not stop the pod
            mark.with_suffix(".release").touch()
        cluster.api(lambda c: c.delete("pods", name, "default"))
        wait(lambda: get_pod(cluster, name) is None, f"pod {name} deleted", cluster, 90)
    uid = created.metadata.uid
    wait(lambda: inventory(cluster, NODE).of_pod(uid) == ([], []), f"{name} removed", cluster, 60)
    assert inventory(cluster, NODE).problems() == []


def wait_reached(cluster: Cluster, fault_dir: Path, name: str) -> None:
    mark = fault_dir / f"{faultpoints.AFTER_SANDBOX}.default.{name}.reached"
    wait(mark.exists, f"node2's kubelet paused after {name}'s sandbox", cluster, 90)


def release(fault_dir: Path, name: str) -> None:
    (fault_dir / f"{faultpoints.AFTER_SANDBOX}.default.{name}.release").touch()


def running_once(cluster: Cluster, name: str) -> core_pb2.Pod:
    """Wait for the pod Running with its container running; it must not have restarted."""

    def up() -> bool:
        pod = get_pod(cluster, name)
        statuses = list(pod.status.container_statuses) if pod is not None else []
        return (
            pod is not None
            and pod.status.phase == "Running"
            and len(statuses) == 1
            and statuses[0].state.HasField("running")
        )

    wait(up, f"pod {name} Running", cluster, 120)
    pod = get_pod(cluster, name)
    assert pod is not None
    (status,) = pod.status.container_statuses
    assert status.restart_count == 0, status
    return pod


def half_made(inv: NodeInventory, uid: str) -> str:
    """At the pause: one READY sandbox, no container, its veth and address present."""
    (sandbox,), containers = inv.of_pod(uid)
    assert sandbox.ready and containers == []
    assert sandbox.id in inv.reservations.values()
    assert inv.problems() == []  # the veth and the address are there, and no one else's
    return sandbox.id


def ran_once(cluster: Cluster, pod: core_pb2.Pod) -> NodeInventory:
    """After the fault: one live sandbox, one container started once, no leaks."""
    inv = inventory(cluster, NODE)
    sandboxes, containers = inv.of_pod(pod.metadata.uid)
    assert len(sandboxes) == 1 and sandboxes[0].ready, sandboxes
    assert len(containers) == 1, containers
    (container,) = containers
    assert (container.state, container.attempt) == ("running", 0), container
    assert container.sandbox_id == sandboxes[0].id and container.started_at > 0
    assert inv.problems() == [], f"{inv.problems()}\n{logs(cluster)}"
    owned = [a for a, owner in inv.reservations.items() if owner == sandboxes[0].id]
    assert owned == [pod.status.pod_ip], (owned, pod.status.pod_ip)
    return inv


def test_leak_checks_name_each_kind_of_leak() -> None:
    """The checks themselves, on a made-up node: each trace without its sandbox is named."""
    live = SandboxInfo("a" * 64, "u1", "default/web", True, 0, "10.244.2.5")
    dead = SandboxInfo("b" * 64, "u2", "default/old", False, 0)
    inv = NodeInventory(
        NODE,
        sandboxes=[live, dead],
        containers=[ContainerInfo("c" * 64, "d" * 64, "u3", "main", 0, "created")],
        veths={host_veth_name(live.id, "eth0"), host_veth_name(dead.id, "eth0")},
        reservations={"10.244.2.5": live.id, "10.244.2.6": dead.id},
        cni_cache={live.id, "e" * 64},
    )
    assert inv.problems() == [
        f"veth {host_veth_name(dead.id, 'eth0')} belongs to no live sandbox",
        "address 10.244.2.6 is reserved for bbbbbbbbbbbbb, no live sandbox",
        "sandbox bbbbbbbbbbbbb of default/old (attempt 0) is NOTREADY and left behind",
        "container main ccccccccccccc is in sandbox ddddddddddddd, which is gone",
        "CNI result cached for eeeeeeeeeeeee, no live sandbox",
    ]
    inv.reservations = {"10.244.2.7": live.id}
    inv.veths, inv.sandboxes, inv.containers, inv.cni_cache = set(), [live], [], None
    assert inv.problems() == [
        f"live sandbox {live.id[:13]} of default/web has no veth {host_veth_name(live.id, 'eth0')}",
        f"sandbox {live.id[:13]} has IP 10.244.2.5, reservation 10.244.2.7",
    ]


@pytest.mark.timeout(400)
def test_kubelet_killed_after_run_pod_sandbox_adopts_the_sandbox(
    cluster: Cluster, fault_dir: Path
) -> None:
    name = "mid-kill"
    with armed_kubelet(cluster, fault_dir), pod_on_node2(cluster, name, fault_dir) as pod:
        wait_reached(cluster, fault_dir, name)
        before = half_made(inventory(cluster, NODE), pod.metadata.uid)
        cluster.stop_component(KUBELET, kill=True)  # kill -9 while it is paused
        cluster.extra_env.pop(KUBELET)
        cluster.up(progress=print)  # the kubelet again, without the fault point
        running = running_once(cluster, name)
        inv = ran_once(cluster, running)
        (sandbox,), _ = inv.of_pod(pod.metadata.uid)
        assert sandbox.id == before and sandbox.attempt == 0  # adopted, not made again


def restart_runtime(cluster: Cluster) -> None:
    """Stop node2's container runtime cleanly (SIGTERM) and start it again with `up`."""
    key = f"{NODE}-{cluster.node(NODE).runtime_component}"
    started = time.monotonic()
    cluster.stop_component(key, kill=False)
    cluster.up(progress=print)
    print(f"{key} restarted in {time.monotonic() - started:.1f} s")


@pytest.mark.timeout(400)
def test_containerd_restarted_after_run_pod_sandbox_leaks_nothing(
    cluster: Cluster, fault_dir: Path
) -> None:
    name = "mid-crd"
    with armed_kubelet(cluster, fault_dir), pod_on_node2(cluster, name, fault_dir) as pod:
        wait_reached(cluster, fault_dir, name)
        before = half_made(inventory(cluster, NODE), pod.metadata.uid)
        restart_runtime(cluster)
        release(fault_dir, name)
        inv = ran_once(cluster, running_once(cluster, name))
        (sandbox,), _ = inv.of_pod(pod.metadata.uid)
        print(f"sandbox after the containerd restart: {'kept' if sandbox.id == before else 'new'}")


@pytest.mark.timeout(600)
def test_dockerd_restarted_after_run_pod_sandbox_leaks_nothing(fault_dir: Path) -> None:
    name = "mid-dkr"
    with (
        local_cluster(f"{NAME}d", runtime="docker") as docker,
        armed_kubelet(docker, fault_dir),
        pod_on_node2(docker, name, fault_dir) as pod,
    ):
        wait_reached(docker, fault_dir, name)
        before = half_made(inventory(docker, NODE), pod.metadata.uid)
        restart_runtime(docker)
        release(fault_dir, name)
        inv = ran_once(docker, running_once(docker, name))
        (sandbox,), _ = inv.of_pod(pod.metadata.uid)
        assert sandbox.id != before  # the pause container died with dockerd
        assert before not in inv.reservations.values()
