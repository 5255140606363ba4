"""Init containers on the fake runtime: order, failure, restart policy, status and STATUS column.

Each step is one sync (kuberuntime_manager.sync_pod) followed by the status
the kubelet would write (status.generate_pod_status), which the test then
keeps as the pod's status, as the API server would.
"""

from __future__ import annotations

from typing import Any

from apimachinery.validation_pod_parts import choose_container
from cli.columns import pod_status
from kubelet.backoff import Backoff
from kubelet.kuberuntime_manager import KubeRuntimeManager
from kubelet.runtime.fake import FakeRuntime
from kubelet.status import generate_pod_status
from kubelet.volume_manager import referenced_objects
from protos import core_pb2
from tests.unit.kubelet.conftest import pod


def _pod(*init: str, policy: str = "Always") -> core_pb2.Pod:
    p = pod("app", "node1", "web")
    p.metadata.uid = "uid-app"
    p.spec.restart_policy = policy
    for name in init:
        p.spec.init_containers.add(name=name, image="busybox:1.36")
    return p


class Node:
    def __init__(self) -> None:
        self.runtime = FakeRuntime("10.244.3.0/24")
        self.manager = KubeRuntimeManager(self.runtime, crash_backoff=Backoff(10, 300))

    async def sync(self, p: core_pb2.Pod) -> core_pb2.PodStatus:
        result = await self.manager.sync_pod(p)
        status = generate_pod_status(
            p,
            p.status,
            node_ip="10.0.0.1",
            sandbox=result.sandbox,
            containers=result.containers,
            runtime_name="fake",
            waiting=result.waiting,
        )
        p.status.CopyFrom(status)
        return status

    def created(self) -> list[str]:
        """The names of the containers created so far, in order."""
        return [call[1] for call in self.runtime.calls if call[0] == "create_container"]


def _condition(status: core_pb2.PodStatus, type_: str) -> Any:
    return next(c for c in status.conditions if c.type == type_)


async def test_init_containers_run_in_order_each_to_success_before_the_app() -> None:
    node, p = Node(), _pod("migrate", "seed")
    node.runtime.behave("migrate", exit_code=0)
    node.runtime.behave("seed", exit_code=0)

    status = await node.sync(p)
    assert node.created() == ["migrate"]
    assert status.phase == "Pending"
    initialized = _condition(status, "Initialized")
    assert (initialized.status, initialized.reason) == ("False", "ContainersNotInitialized")
    assert initialized.message == "containers with incomplete status: [seed]"
    assert status.container_statuses[0].state.waiting.reason == "PodInitializing"
    migrate = status.init_container_statuses[0]
    assert migrate.state.HasField("terminated") and migrate.state.terminated.exit_code == 0
    assert status.init_container_statuses[1].state.waiting.reason == "PodInitializing"
    assert pod_status(_with(p, status)) == "Init:1/2"

    await node.sync(p)
    assert node.created() == ["migrate", "seed"]
    status = await node.sync(p)
    assert node.created() == ["migrate", "seed", "web"]
    assert status.phase == "Running"
    assert _condition(status, "Initialized").status == "True"
    assert pod_status(_with(p, status)) == "Running"

    await node.sync(p)  # nothing more to do: no init container runs twice
    assert node.created() == ["migrate", "seed", "web"]


async def test_a_failing_init_container_is_retried_with_backoff_and_the_app_waits() -> None:
    node, p = Node(), _pod("migrate")
    node.runtime.behave("migrate", exit_code=1)
    await node.sync(p)  # starts migrate; it fails
    await node.sync(p)  # the first restart is at once; it fails again
    status = await node.sync(p)  # now in CrashLoopBackOff
    assert node.created() == ["migrate", "migrate"]
    migrate = status.init_container_statuses[0]
    assert migrate.state.waiting.reason == "CrashLoopBackOff"
    assert migrate.last_state.terminated.exit_code == 1 and migrate.restart_count == 1
    assert status.phase == "Pending"
    assert pod_status(_with(p, status)) == "Init:CrashLoopBackOff"
    assert "web" not in node.created()


async def test_under_restart_policy_never_a_failed_init_container_fails_the_pod() -> None:
    node, p = Node(), _pod("migrate", policy="Never")
    node.runtime.behave("migrate", exit_code=3)
    await node.sync(p)
    status = await node.sync(p)
    assert node.created() == ["migrate"]  # never again, and no app container
    assert status.phase == "Failed"
    assert pod_status(_with(p, status)) == "Init:Error"


async def test_a_new_sandbox_runs_the_init_containers_again() -> None:
    node, p = Node(), _pod("migrate")
    node.runtime.behave("migrate", exit_code=0)
    for _ in range(2):
        await node.sync(p)
    assert node.created() == ["migrate", "web"]
    sandbox = next(iter(node.runtime.sandboxes))
    await node.runtime.stop_pod_sandbox(sandbox)  # the sandbox died (a node reboot, say)
    await node.sync(p)
    assert node.created() == ["migrate", "web", "migrate"]


async def test_an_initialized_pod_stays_so_when_its_init_containers_are_removed() -> None:
    node, p = Node(), _pod("migrate")
    node.runtime.behave("migrate", exit_code=0)
    for _ in range(2):
        await node.sync(p)
    done = [c for c in node.runtime.containers.values() if c.name == "migrate"]
    await node.runtime.remove_container(done[0].id)  # garbage collected, say
    status = await node.sync(p)
    assert node.created() == ["migrate", "web"]
    assert status.phase == "Running" and _condition(status, "Initialized").status == "True"
    migrate = status.init_container_statuses[0]  # its last status, kept
    assert migrate.state.terminated.reason == "Completed"


def test_init_containers_count_for_inputs_and_for_logs() -> None:
    p = _pod("migrate")
    var = p.spec.init_containers[0].env.add(name="DB")
    var.value_from.config_map_key_ref.name = "db-config"
    var.value_from.config_map_key_ref.key = "url"
    assert referenced_objects(p) == ({"db-config"}, set())
    assert choose_container(p, "migrate") == "migrate"
    assert choose_container(p, "") == "web"  # the app container, when it is the only one


def _with(p: core_pb2.Pod, status: core_pb2.PodStatus) -> core_pb2.Pod:
    out = core_pb2.Pod()
    out.CopyFrom(p)
    out.status.CopyFrom(status)
    return out
