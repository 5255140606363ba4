"""The container log manager (kubelet/logrotation.py) on the fake runtime, log files in a tmp dir.

The fake's containers get a `log_path` under the test's directory; the test
writes to it as a runtime would, runs rounds of the manager with a clock it
moves, and looks at the files: sizes, counts, names, gzip, and the CRI
ReopenContainerLog calls. Then the kubelet's settings: validation, and a
hollow kubelet that runs the manager on its own.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest

from apimachinery.client import Client
from kubelet.config import KubeletConfig
from kubelet.errors import ConfigError, ContainerRuntimeError
from kubelet.logrotation import ContainerLogManager, make_room, rotated_logs
from kubelet.runtime import docker_convert
from kubelet.runtime.cri import CRIRuntime
from kubelet.runtime.docker import DockerRuntime
from kubelet.runtime.fake import FakeRuntime
from kubelet.runtime.interface import ContainerConfig, PodSandboxConfig
from tests.unit.kubelet.conftest import Harness, eventually, pod

START = 1714557600.0  # 2024-05-01T10:00:00Z


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


async def running_container(runtime: FakeRuntime, log: Path, name: str = "app") -> str:
    sandbox_config = PodSandboxConfig(name="p", namespace="default", uid=f"uid-{name}")
    sandbox = await runtime.run_pod_sandbox(sandbox_config)
    cid = await runtime.create_container(sandbox.id, ContainerConfig(name, "img"), sandbox_config)
    await runtime.start_container(cid)
    log.parent.mkdir(parents=True, exist_ok=True)
    log.touch()
    runtime.containers[cid].log_path = str(log)
    return cid


def write(log: Path, size: int, fill: bytes = b"x") -> None:
    with log.open("ab") as f:
        f.write(fill * size)


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


async def test_a_log_past_the_size_is_renamed_and_reopened(tmp_path: Path) -> None:
    runtime, clock = FakeRuntime("10.244.1.0/24"), Clock()
    log = tmp_path / "default_p_uid" / "app" / "0.log"
    cid = await running_container(runtime, log)
    manager = ContainerLogManager(runtime, 1000, 5, now=clock)

    write(log, 999)
    assert await manager.rotate_logs() == 0  # below the size: left alone
    assert runtime.count("reopen_container_log") == 0 and names(log.parent) == ["0.log"]

    write(log, 1, b"y")
    assert await manager.rotate_logs() == 1
    assert runtime.calls[-1] == ("reopen_container_log", cid)
    assert names(log.parent) == ["0.log", "0.log.20240501-100000"]
    assert log.stat().st_size == 0  # the runtime's fresh file
    assert (log.parent / "0.log.20240501-100000").read_bytes() == b"x" * 999 + b"y"


async def test_at_most_max_files_kept_older_ones_gzipped(tmp_path: Path) -> None:
    runtime, clock = FakeRuntime("10.244.1.0/24"), Clock()
    log = tmp_path / "pod" / "app" / "0.log"
    await running_container(runtime, log)
    manager = ContainerLogManager(runtime, 100, 5, now=clock)
    for round_ in range(7):  # the module docstring's worked example, and two more rounds
        clock.now = START + 10 * (round_ + 1)
        write(log, 150, str(round_).encode())
        assert await manager.rotate_logs() == 1
        files = names(log.parent)
        assert len(files) == min(round_ + 2, 5), files
    assert names(log.parent) == [
        "0.log",
        "0.log.20240501-100040.gz",
        "0.log.20240501-100050.gz",
        "0.log.20240501-100100.gz",
        "0.log.20240501-100110",  # the newest rotated file stays plain
    ]
    with gzip.open(log.parent / "0.log.20240501-100050.gz") as f:
        assert f.read() == b"4" * 150
    assert (log.parent / "0.log.20240501-100110").read_bytes() == b"6" * 150
    assert runtime.count("reopen_container_log") == 7


async def test_two_files_at_most_keeps_one_rotated(tmp_path: Path) -> None:
    runtime, clock = FakeRuntime("10.244.1.0/24"), Clock()
    log = tmp_path / "pod" / "app" / "0.log"
    await running_container(runtime, log)
    manager = ContainerLogManager(runtime, 10, 2, now=clock)
    for round_ in range(3):
        clock.now = START + round_
        write(log, 10)
        await manager.rotate_logs()
    assert names(log.parent) == ["0.log", "0.log.20240501-100002"]


async def test_only_running_containers_and_their_own_files(tmp_path: Path) -> None:
    runtime, clock = FakeRuntime("10.244.1.0/24"), Clock()
    app, other = tmp_path / "pod" / "app" / "0.log", tmp_path / "pod" / "side" / "0.log"
    cid = await running_container(runtime, app)
    await running_container(runtime, other, "side")
    (app.parent / "1.log").write_bytes(b"z" * 50)  # another instance's log: not this one's
    runtime.kill(cid, 1)  # exited: writes nothing more, not rotated
    write(app, 50)
    write(other, 50)
    manager = ContainerLogManager(runtime, 10, 3, now=clock)
    assert await manager.rotate_logs() == 1
    assert names(app.parent) == ["0.log", "1.log"]
    assert names(other.parent) == ["0.log", "0.log.20240501-100000"]


async def test_a_missing_log_is_reopened(tmp_path: Path) -> None:
    runtime, clock = FakeRuntime("10.244.1.0/24"), Clock()
    log = tmp_path / "pod" / "app" / "0.log"
    cid = await running_container(runtime, log)
    log.unlink()  # lost by an interrupted rotation
    manager = ContainerLogManager(runtime, 10, 3, now=clock)
    assert await manager.rotate_logs() == 0
    assert runtime.calls[-1] == ("reopen_container_log", cid) and log.exists()


async def test_a_failed_reopen_puts_the_file_back(tmp_path: Path) -> None:
    class Refusing(FakeRuntime):
        async def reopen_container_log(self, container_id: str) -> None:
            raise ContainerRuntimeError("failed to reopen container log: container stopping")

    runtime, clock = Refusing("10.244.1.0/24"), Clock()
    log = tmp_path / "pod" / "app" / "0.log"
    await running_container(runtime, log)
    write(log, 20)
    manager = ContainerLogManager(runtime, 10, 3, now=clock)
    assert await manager.rotate_logs() == 0  # logged, not raised
    assert names(log.parent) == ["0.log"] and log.stat().st_size == 20


async def test_one_name_per_second(tmp_path: Path) -> None:
    runtime, clock = FakeRuntime("10.244.1.0/24"), Clock()
    log = tmp_path / "pod" / "app" / "0.log"
    await running_container(runtime, log)
    manager = ContainerLogManager(runtime, 10, 5, now=clock)
    write(log, 20)
    assert await manager.rotate_logs() == 1
    write(log, 20)
    assert await manager.rotate_logs() == 0  # the same second: next round
    clock.now += 1
    assert await manager.rotate_logs() == 1
    assert names(log.parent) == ["0.log", "0.log.20240501-100000.gz", "0.log.20240501-100001"]


def test_leftovers_of_an_interrupted_rotation_are_removed(tmp_path: Path) -> None:
    log = tmp_path / "0.log"
    for name in ["0.log", "0.log.20240501-100000.gz", "0.log.20240501-100000"]:
        (tmp_path / name).write_bytes(b"a")  # compressed, but the plain one not yet removed
    (tmp_path / "0.log.20240501-100010.tmp").write_bytes(b"half a gzip")
    (tmp_path / "0.log.20240501-100010").write_bytes(b"b")
    assert rotated_logs(str(log)) == (
        [str(tmp_path / "0.log.20240501-100000.gz"), str(tmp_path / "0.log.20240501-100010")],
        [str(tmp_path / "0.log.20240501-100000"), str(tmp_path / "0.log.20240501-100010.tmp")],
    )
    kept = make_room(str(log), 5)
    assert [os.path.basename(k) for k in kept] == [
        "0.log.20240501-100000.gz",
        "0.log.20240501-100010.gz",
    ]
    assert names(tmp_path) == ["0.log", "0.log.20240501-100000.gz", "0.log.20240501-100010.gz"]


def test_settings_are_checked_with_kubernetes_words() -> None:
    config = KubeletConfig("n1")
    config.validate()
    assert (config.container_log_max_bytes(), config.container_log_max_files) == (10 << 20, 5)
    config.container_log_max_size = "256Ki"
    assert config.container_log_max_bytes() == 262144
    config.container_log_max_files = 1
    with pytest.raises(ConfigError, match=r"^invalid configuration: containerLogMaxFiles must be"):
        config.validate()
    config.container_log_max_files = 2
    config.container_log_max_size = "ten megs"
    with pytest.raises(ConfigError, match='failed to parse container log max size "ten megs"'):
        config.validate()
    with pytest.raises(ValueError, match="invalid MaxFiles 1, must be > 1"):
        ContainerLogManager(FakeRuntime(), 10, 1)


def test_docker_rotates_by_itself_with_the_same_settings() -> None:
    sandbox = PodSandboxConfig(name="p", namespace="default", uid="u1")
    config = ContainerConfig("app", "busybox")
    request = docker_convert.container_create(config, "sb1", sandbox, log_limits=(262144, 3))
    assert request["host_config"]["log_config"] == {
        "Type": "json-file",
        "Config": {"max-size": "262144", "max-file": "3"},
    }
    off = docker_convert.container_create(config, "sb1", sandbox, log_limits=(-1, 5))
    assert "log_config" not in off["host_config"]  # the daemon's own default
    # ...so the kubelet's manager leaves Docker's containers alone, and rotates containerd's.
    assert not DockerRuntime.kubelet_rotates_logs and CRIRuntime.kubelet_rotates_logs


async def test_the_kubelet_runs_the_manager_with_its_settings(
    harness: Harness, client: Client, tmp_path: Path
) -> None:
    runtime = FakeRuntime("10.244.1.0/24")
    kubelet, _ = await harness.start(
        "node1",
        runtime,
        container_log_max_size="1Ki",
        container_log_max_files=3,
        container_log_monitor_interval=0.05,
    )
    assert (runtime.log_max_size, runtime.log_max_files) == (1024, 3)
    await client.create(pod("web", "node1"))
    running = await eventually(lambda: _running(runtime))
    log = tmp_path / "0.log"
    log.write_bytes(b"x" * 1024)
    runtime.containers[running].log_path = str(log)
    await eventually(lambda: _reopened(runtime, running))
    assert len(list(tmp_path.glob("0.log.*"))) == 1
    assert kubelet.log_manager.max_files == 3


async def _running(runtime: FakeRuntime) -> str:
    found = runtime.running()
    return found[0].id if found else ""


async def _reopened(runtime: FakeRuntime, container_id: str) -> bool:
    return ("reopen_container_log", container_id) in runtime.calls
