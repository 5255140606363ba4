"""Fault points (kubelet/faultpoints.py): the pause, its handshake files, and where it sits.

The last two tests drive KubeRuntimeManager over the fake runtime: paused at
after-sandbox the runtime holds a READY sandbox and no container; a manager
that "dies" there (its task cancelled) and a new one (the restarted kubelet)
adopt that sandbox rather than make a second one, as Kubernetes'
computePodActions does.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from kubelet import faultpoints
from kubelet.kuberuntime_manager import KubeRuntimeManager
from kubelet.runtime.fake import FakeRuntime
from kubelet.runtime.interface import ContainerState, SandboxState
from protos import core_pb2
from tests.unit.kubelet.conftest import pod


def _pod() -> core_pb2.Pod:
    p = pod("web", "node1", "app", namespace="shop")
    p.metadata.uid = "uid-1"
    return p


def _arm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, points: str) -> None:
    monkeypatch.setenv(faultpoints.ENV_POINTS, points)
    monkeypatch.setenv(faultpoints.ENV_DIR, str(tmp_path))


async def _until(path: Path, timeout: float = 5.0) -> None:
    async def poll() -> None:
        while not path.exists():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)


async def test_unarmed_point_returns_at_once_and_writes_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(faultpoints.ENV_POINTS, raising=False)
    monkeypatch.setenv(faultpoints.ENV_DIR, str(tmp_path))
    await asyncio.wait_for(faultpoints.reached(faultpoints.AFTER_SANDBOX, _pod()), 1.0)
    _arm(monkeypatch, tmp_path, faultpoints.AFTER_CREATE)  # another point armed: not this one
    await asyncio.wait_for(faultpoints.reached(faultpoints.AFTER_SANDBOX, _pod()), 1.0)
    assert list(tmp_path.iterdir()) == []


async def test_armed_point_pauses_until_released_and_the_release_is_sticky(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _arm(monkeypatch, tmp_path, " after-sandbox , after-create ")
    task = asyncio.create_task(faultpoints.reached(faultpoints.AFTER_SANDBOX, _pod()))
    mark = tmp_path / "after-sandbox.shop.web.reached"
    await _until(mark)
    assert mark.read_text().strip().isdigit()  # the kubelet's pid
    await asyncio.sleep(0.2)
    assert not task.done()  # still paused
    release = faultpoints.release_path(tmp_path, faultpoints.AFTER_SANDBOX, _pod())
    assert release == tmp_path / "after-sandbox.shop.web.release"
    release.touch()
    await asyncio.wait_for(task, 2.0)
    assert not mark.exists() and release.exists()
    # Released stays released: a later pass of the same pod goes straight through.
    await asyncio.wait_for(faultpoints.reached(faultpoints.AFTER_SANDBOX, _pod()), 1.0)
    assert not mark.exists()


async def test_configuration_mistakes_are_errors(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _arm(monkeypatch, tmp_path, "after-sandbox,before-lunch")
    with pytest.raises(faultpoints.FaultPointError, match="unknown fault points before-lunch"):
        await faultpoints.reached(faultpoints.AFTER_SANDBOX, _pod())
    monkeypatch.setenv(faultpoints.ENV_POINTS, faultpoints.AFTER_SANDBOX)
    monkeypatch.delenv(faultpoints.ENV_DIR)
    with pytest.raises(faultpoints.FaultPointError, match="TINYKUBE_FAULTPOINT_DIR is not set"):
        await faultpoints.reached(faultpoints.AFTER_SANDBOX, _pod())
    with pytest.raises(faultpoints.FaultPointError, match="unknown fault point 'nowhere'"):
        await faultpoints.reached("nowhere", _pod())


async def test_paused_after_sandbox_then_killed_the_next_kubelet_adopts_the_sandbox(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _arm(monkeypatch, tmp_path, faultpoints.AFTER_SANDBOX)
    runtime = FakeRuntime("10.244.3.0/24")
    p = _pod()
    first = asyncio.create_task(KubeRuntimeManager(runtime).sync_pod(p))
    await _until(tmp_path / "after-sandbox.shop.web.reached")
    (sandbox,) = await runtime.list_pod_sandboxes(pod_uid="uid-1")
    assert sandbox.state == SandboxState.READY and sandbox.ip == "10.244.3.2"
    assert runtime.containers == {}
    first.cancel()  # the kubelet dies here
    with pytest.raises(asyncio.CancelledError):
        await first

    monkeypatch.delenv(faultpoints.ENV_POINTS)  # restarted without the fault point
    result = await KubeRuntimeManager(runtime).sync_pod(p)
    assert result.error is None and result.sandbox is not None
    assert result.sandbox.id == sandbox.id  # adopted, not made again
    assert runtime.count("run_pod_sandbox") == 1
    assert [(c.state, c.attempt) for c in result.containers] == [(ContainerState.RUNNING, 0)]
    assert list(runtime.ipam.allocated().values()) == ["10.244.3.2"]


async def test_after_create_pauses_between_create_and_start(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _arm(monkeypatch, tmp_path, faultpoints.AFTER_CREATE)
    runtime = FakeRuntime("10.244.3.0/24")
    task = asyncio.create_task(KubeRuntimeManager(runtime).sync_pod(_pod()))
    await _until(tmp_path / "after-create.shop.web.reached")
    assert [c.state for c in runtime.containers.values()] == [ContainerState.CREATED]
    (tmp_path / "after-create.shop.web.release").touch()
    result = await asyncio.wait_for(task, 5.0)
    assert [c.state for c in result.containers] == [ContainerState.RUNNING]
    assert runtime.count("start_container") == 1


async def test_killed_twice_after_create_keeps_one_never_started_container(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Each restarted kubelet makes a new container (Kubernetes: a CREATED one is started
    again as a new attempt); the never-started ones are garbage beyond one per name."""
    _arm(monkeypatch, tmp_path, faultpoints.AFTER_CREATE)
    runtime = FakeRuntime("10.244.3.0/24")
    mark = tmp_path / "after-create.shop.web.reached"
    for _ in range(2):
        task = asyncio.create_task(KubeRuntimeManager(runtime).sync_pod(_pod()))
        await _until(mark)
        mark.unlink()
        task.cancel()  # the kubelet dies between CreateContainer and StartContainer
        with pytest.raises(asyncio.CancelledError):
            await task
    monkeypatch.delenv(faultpoints.ENV_POINTS)
    result = await KubeRuntimeManager(runtime).sync_pod(_pod())
    states = sorted((c.attempt, c.state) for c in runtime.containers.values())
    assert states == [(1, ContainerState.CREATED), (2, ContainerState.RUNNING)]
    assert [c.attempt for c in result.containers if c.state == ContainerState.RUNNING] == [2]
    assert runtime.count("run_pod_sandbox") == 1 and runtime.count("start_container") == 1
