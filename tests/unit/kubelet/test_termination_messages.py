"""Termination messages on the fake runtime, with the kubelet's files under a temporary root.

The fake runtime starts nothing, so the test plays the container: it writes
the host file the kubelet mounted at terminationMessagePath (or the log
lines), then makes the container exit, and reads the status the kubelet
would write.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from kubelet.backoff import Backoff
from kubelet.kuberuntime_manager import KubeRuntimeManager
from kubelet.runtime.fake import FakeRuntime
from kubelet.runtime.interface import Mount
from kubelet.status import generate_pod_status
from kubelet.termination import POLICY_ANNOTATION, message_file
from kubelet.volume_manager import VolumeManager
from protos import core_pb2
from tests.unit.kubelet.conftest import pod


class Node:
    def __init__(self, root: Path, *, on_disk: bool = True) -> None:
        self.root = root
        self.runtime = FakeRuntime("10.244.3.0/24")
        self.manager = KubeRuntimeManager(
            self.runtime,
            volumes=VolumeManager(str(root), on_disk=on_disk),
            crash_backoff=Backoff(0.001, 0.001),
        )

    async def sync(self, p: core_pb2.Pod) -> core_pb2.ContainerStatus:
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
        return status.container_statuses[0]

    def newest_id(self) -> str:
        return max(self.runtime.containers.values(), key=lambda c: c.attempt).id


def _pod(policy: str = "File", restart: str = "Never") -> core_pb2.Pod:
    p = pod("app", "node1", "web")
    p.metadata.uid = "uid-app"
    p.spec.restart_policy = restart
    c = p.spec.containers[0]
    c.termination_message_path = "/dev/termination-log"
    c.termination_message_policy = policy
    return p


async def test_the_message_file_is_mounted_and_read_once_the_container_exits(
    tmp_path: Path,
) -> None:
    node, p = Node(tmp_path), _pod(restart="Always")
    await node.sync(p)
    cid = node.newest_id()
    host = message_file(tmp_path / "pods" / "uid-app", "web", 0)
    config = node.runtime.container_configs[cid]
    assert Mount("/dev/termination-log", str(host)) in config.mounts
    assert config.annotations[POLICY_ANNOTATION] == "File"
    assert host.read_bytes() == b"" and host.stat().st_mode & 0o777 == 0o666

    host.write_text("config missing\n")  # what the container wrote before it died
    node.runtime.kill(cid, exit_code=3)
    web = await node.sync(p)  # restarted at once (no backoff here): the message is lastState's
    assert web.last_state.terminated.message == "config missing\n"
    assert web.last_state.terminated.exit_code == 3
    fresh = message_file(tmp_path / "pods" / "uid-app", "web", 1)
    assert fresh.read_bytes() == b""  # the new instance has a file of its own

    node.runtime.kill(node.newest_id(), exit_code=1)
    await asyncio.sleep(0.01)  # the 1 ms backoff
    await node.sync(p)  # a third instance; the first is removed, and its file with it
    assert not host.exists() and fresh.exists()

    third = message_file(tmp_path / "pods" / "uid-app", "web", 2)
    third.write_bytes(b"x" * 5000)
    node.runtime.kill(node.newest_id(), exit_code=1)
    p.spec.restart_policy = "Never"
    web = await node.sync(p)
    assert web.state.terminated.message == "x" * 4096  # the file's end, at most 4096 bytes


async def test_fallback_to_logs_takes_the_last_80_lines_cut_to_2048_bytes(tmp_path: Path) -> None:
    node, p = Node(tmp_path), _pod("FallbackToLogsOnError")
    lines = [f"line {i:03d} " + "." * 10 for i in range(100)]
    node.runtime.behave("web", exit_code=2, logs=lines)
    web = await node.sync(p)
    expected = "".join(f"{line}\n" for line in lines[20:]).encode()[:2048].decode()
    assert web.state.terminated.message == expected
    assert web.state.terminated.message.startswith("line 020 ")


async def test_fallback_to_logs_needs_a_failure_and_an_empty_file(tmp_path: Path) -> None:
    node, p = Node(tmp_path), _pod("FallbackToLogsOnError")
    node.runtime.behave("web", exit_code=0, logs=["all good"])
    web = await node.sync(p)
    assert web.state.terminated.reason == "Completed" and web.state.terminated.message == ""

    node, p = Node(tmp_path / "b"), _pod("FallbackToLogsOnError")
    node.runtime.behave("web", exit_code=1, exit_after=0.05, logs=["from the log"])
    await node.sync(p)
    message_file(tmp_path / "b" / "pods" / "uid-app", "web", 0).write_text("from the file")
    await asyncio.sleep(0.1)
    web = await node.sync(p)
    assert web.state.terminated.message == "from the file"


async def test_policy_file_never_reads_the_log_and_a_hollow_node_writes_nothing(
    tmp_path: Path,
) -> None:
    node, p = Node(tmp_path), _pod("File")
    node.runtime.behave("web", exit_code=1, logs=["boom"])
    web = await node.sync(p)
    assert web.state.terminated.reason == "Error" and web.state.terminated.message == ""

    hollow, p = Node(tmp_path / "hollow", on_disk=False), _pod("FallbackToLogsOnError")
    hollow.runtime.behave("web", exit_code=1, logs=["boom"])
    web = await hollow.sync(p)
    assert web.state.terminated.message == "boom\n"
    config = next(iter(hollow.runtime.container_configs.values()))
    assert not config.mounts and not (tmp_path / "hollow").exists()
