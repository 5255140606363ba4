"""The kubelet's parts without an API server: IPAM, config, fake runtime, status, pod workers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kubelet import errors
from kubelet.config import KubeletConfig, TaintSpec
from kubelet.image_manager import pull_policy
from kubelet.kuberuntime_manager import KubeRuntimeManager
from kubelet.pod_workers import PodWorkers, grace_period
from kubelet.runtime import names, new_runtime
from kubelet.runtime.fake import FakeRuntime, image_ref
from kubelet.runtime.interface import ContainerState, SandboxState
from kubelet.runtime.ipam import PodIPAM
from kubelet.status import generate_pod_status, pod_phase
from protos import core_pb2
from tests.unit.kubelet.conftest import pod


def test_ipam_worked_example() -> None:
    ipam = PodIPAM("10.0.0.0/29")
    assert ipam.gateway == "10.0.0.1"
    assert [ipam.allocate(o) for o in "ab"] == ["10.0.0.2", "10.0.0.3"]
    assert ipam.allocate("a") == "10.0.0.2"  # same owner, same address
    ipam.release("a")
    ipam.release("a")  # idempotent
    assert [ipam.allocate(o) for o in "cdef"] == ["10.0.0.4", "10.0.0.5", "10.0.0.6", "10.0.0.2"]
    with pytest.raises(errors.PodIPsExhausted):
        ipam.allocate("g")


def test_ipam_without_cidr_is_not_ready() -> None:
    with pytest.raises(errors.NetworkNotReady):
        PodIPAM().allocate("x")


def test_allocatable_subtracts_reserved() -> None:
    cfg = KubeletConfig("node1", kube_reserved={"cpu": "500m", "memory": "512Mi"})
    cfg.system_reserved = {"cpu": "250m"}
    assert cfg.allocatable() == {"cpu": "3250m", "memory": "7680Mi", "pods": "110"}
    assert KubeletConfig("n", system_reserved={"cpu": "9"}).allocatable()["cpu"] == "0"


def test_config_validation() -> None:
    cfg = KubeletConfig("node1")
    cfg.validate()
    assert cfg.node_ip  # defaulted
    assert cfg.node_labels()["kubernetes.io/hostname"] == "node1"
    with pytest.raises(errors.ConfigError, match="invalid node name"):
        KubeletConfig("Node_1").validate()
    with pytest.raises(errors.ConfigError, match="not a quantity"):
        KubeletConfig("n", capacity={"cpu": "lots"}).validate()


def test_taint_parsing() -> None:
    assert TaintSpec.parse("a=b:NoExecute") == TaintSpec("a", "b", "NoExecute")
    assert TaintSpec.parse("example.com/gpu:NoSchedule") == TaintSpec(
        "example.com/gpu", "", "NoSchedule"
    )
    for bad in ("novalue", "a=b:Sometimes", ":NoSchedule"):
        with pytest.raises(errors.ConfigError):
            TaintSpec.parse(bad)


def test_runtime_registry() -> None:
    assert "fake" in names()
    assert isinstance(new_runtime("fake"), FakeRuntime)
    with pytest.raises(errors.UnknownRuntime, match=r"known: .*fake"):
        new_runtime("rkt")


def test_image_refs_and_pull_policy() -> None:
    assert image_ref("nginx:1.25").startswith("docker.io/library/nginx@sha256:")
    assert image_ref("registry.local:5000/app:v1").startswith("registry.local:5000/app@sha256:")
    assert image_ref("nginx") == image_ref("nginx")
    spec = core_pb2.Container(name="c", image="nginx:latest")
    assert pull_policy(spec) == "Always"
    spec.image = "nginx:1.25"
    assert pull_policy(spec) == "IfNotPresent"
    spec.image_pull_policy = "Never"
    assert pull_policy(spec) == "Never"


def _pod(uid: str = "u1", *names: str) -> core_pb2.Pod:
    p = pod("p", "node1", *names)
    p.metadata.uid = uid
    return p


async def test_fake_runtime_lifecycle_and_calls() -> None:
    runtime = FakeRuntime("10.244.3.0/24")
    manager = KubeRuntimeManager(runtime)
    p = _pod("u1", "web")
    result = await manager.sync_pod(p)
    assert result.error is None and result.sandbox is not None
    assert result.sandbox.ip == "10.244.3.2"
    assert [c.state for c in result.containers] == [ContainerState.RUNNING]
    again = await manager.sync_pod(p)  # nothing to do the second time
    assert again.sandbox is not None and again.sandbox.id == result.sandbox.id
    assert runtime.count("run_pod_sandbox") == 1 and runtime.count("start_container") == 1

    sandboxes = await runtime.list_pod_sandboxes(pod_uid="u1")
    await manager.kill_pod(p, sandboxes, grace=12)
    assert next(c for c in runtime.calls if c[0] == "stop_container")[2] == 12
    assert runtime.count("stop_container") == 1
    assert runtime.sandboxes == {} and runtime.ipam.allocated() == {}


async def test_fake_runtime_failures() -> None:
    runtime = FakeRuntime("10.244.3.0/24")
    runtime.behave("crash", start_error="exec: not found")
    runtime.image_errors["broken:1"] = "manifest unknown"
    manager = KubeRuntimeManager(runtime)
    p = _pod("u2", "crash", "ok")
    p.spec.containers.add(name="img", image="broken:1")
    result = await manager.sync_pod(p)
    assert isinstance(result.error, errors.ContainerStartError)
    assert result.waiting["crash"].reason == "RunContainerError"
    assert result.waiting["img"].reason == "ErrImagePull"
    assert {c.name: c.state for c in result.containers} == {
        "crash": ContainerState.EXITED,
        "ok": ContainerState.RUNNING,
    }
    assert await runtime.list_pod_sandboxes() and (
        (await runtime.list_pod_sandboxes())[0].state == SandboxState.READY
    )


async def test_scripted_exit_and_phase() -> None:
    runtime = FakeRuntime("10.244.3.0/24")
    runtime.behave("job", exit_code=1, exit_after=0.0)
    p = _pod("u3", "job")
    p.spec.restart_policy = "Never"
    result = await KubeRuntimeManager(runtime).sync_pod(p)
    status = generate_pod_status(
        p,
        core_pb2.PodStatus(),
        node_ip="10.0.0.1",
        sandbox=result.sandbox,
        containers=result.containers,
        runtime_name="fake",
    )
    assert status.phase == "Failed"
    assert status.container_statuses[0].state.terminated.exit_code == 1
    ready = next(c for c in status.conditions if c.type == "Ready")
    assert (ready.status, ready.reason) == ("False", "PodCompleted")


def test_phase_table() -> None:
    def statuses(*states: str) -> list[core_pb2.ContainerStatus]:
        out = []
        for s in states:
            cs = core_pb2.ContainerStatus()
            if s == "running":
                cs.state.running.SetInParent()
            elif s == "waiting":
                cs.state.waiting.reason = "ContainerCreating"
            else:
                cs.state.terminated.exit_code = int(s)
            out.append(cs)
        return out

    p = _pod()
    assert pod_phase(p, statuses("waiting", "running")) == "Pending"
    assert pod_phase(p, statuses("running", "0")) == "Running"
    assert pod_phase(p, statuses("0", "1")) == "Running"  # restartPolicy Always (default)
    p.spec.restart_policy = "OnFailure"
    assert pod_phase(p, statuses("0", "0")) == "Succeeded"
    assert pod_phase(p, statuses("0", "1")) == "Running"
    p.spec.restart_policy = "Never"
    assert pod_phase(p, statuses("0", "1")) == "Failed"


def test_status_keeps_transition_times_and_start_time() -> None:
    p = _pod("u4", "web")
    base = core_pb2.PodStatus()
    base.start_time.seconds = 1000
    base.conditions.add(type="Ready", status="True").last_transition_time.seconds = 1001
    base.conditions.add(type="PodScheduled", status="True").last_transition_time.seconds = 999
    status = generate_pod_status(
        p, base, node_ip="10.0.0.1", sandbox=None, containers=[], runtime_name="fake"
    )
    assert status.start_time.seconds == 1000
    times = {c.type: c.last_transition_time.seconds for c in status.conditions}
    assert times["PodScheduled"] == 999  # the scheduler's, kept
    assert times["Ready"] != 1001  # Ready went True -> False: a new transition
    assert status.container_statuses[0].state.waiting.reason == "ContainerCreating"


def test_grace_period_choice() -> None:
    p = _pod()
    assert grace_period(p) == 30
    p.spec.termination_grace_period_seconds = 10
    assert grace_period(p) == 10
    p.metadata.deletion_grace_period_seconds = 0
    assert grace_period(p) == 2  # never below Kubernetes' minimum


class _RecordingSyncer:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.gate = asyncio.Event()

    async def sync_pod(self, pod: Any) -> None:
        self.calls.append(("sync", pod.metadata.resource_version))
        await self.gate.wait()

    async def sync_terminating_pod(self, pod: Any, grace_seconds: int) -> None:
        self.calls.append(("terminating", grace_seconds))

    async def sync_terminated_pod(self, pod: Any, removed: bool) -> None:
        self.calls.append(("terminated", removed))


async def test_pod_worker_coalesces_and_never_restarts_after_termination() -> None:
    syncer = _RecordingSyncer()
    workers = PodWorkers(syncer, resync_interval=60)
    p = _pod("u5")
    p.metadata.resource_version = "1"
    workers.update_pod(p)
    await asyncio.sleep(0.01)  # the first sync is now blocked on the gate
    for rv in ("2", "3", "4"):
        newer = core_pb2.Pod()
        newer.CopyFrom(p)
        newer.metadata.resource_version = rv
        workers.update_pod(newer)
    syncer.gate.set()
    await asyncio.sleep(0.05)
    assert syncer.calls == [("sync", "1"), ("sync", "4")]  # one more sync, the newest object

    deleting = core_pb2.Pod()
    deleting.CopyFrom(p)
    deleting.metadata.deletion_timestamp.seconds = 1
    deleting.metadata.deletion_grace_period_seconds = 5
    workers.update_pod(deleting)
    await asyncio.sleep(0.05)
    workers.update_pod(p)  # an old version arriving late must not start it again
    await asyncio.sleep(0.05)
    workers.remove_pod(p)
    await asyncio.sleep(0.05)
    assert syncer.calls[2:] == [
        ("terminating", 5),
        ("terminated", False),
        ("terminated", False),
        ("terminated", True),
    ]
    assert workers.known_uids() == set()
    await workers.stop()


async def test_pod_removed_while_its_object_is_deleted_is_cleaned_up() -> None:
    """The DELETED event can arrive while the worker deletes the object: clean up all the same."""
    syncer = _RecordingSyncer()
    workers = PodWorkers(syncer, resync_interval=60)
    p = _pod("u6")
    p.metadata.deletion_timestamp.seconds = 1
    p.metadata.deletion_grace_period_seconds = 3

    async def deleting(pod: Any, removed: bool) -> None:
        syncer.calls.append(("terminated", removed))
        if not removed:
            workers.remove_pod(pod)  # the informer's DELETED, during the delete call

    syncer.sync_terminated_pod = deleting  # type: ignore[method-assign]
    workers.update_pod(p)
    await asyncio.sleep(0.05)
    assert syncer.calls == [("terminating", 3), ("terminated", False), ("terminated", True)]
    assert workers.known_uids() == set()
    await workers.stop()
