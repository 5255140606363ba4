"""Runtime conformance: what every ContainerRuntime must do, checked against a live runtime.

Written against kubelet/runtime/interface.py only, so any runtime can run it:
a test module subclasses `RuntimeConformance` and provides two fixtures,

    runtime  -> the ContainerRuntime under test (its sandboxes removed afterwards)
    target   -> ConformanceTarget: the busybox image name the runtime has (or can pull)
                and how the host reaches a pod IP

test_conformance.py does so for both real runtimes at once: conftest's
`runtime` fixture is parametrized over containerd (CRI) and docker.

Each check is one behaviour the kubelet relies on: identity labels come
back (adoption after a restart), sandboxes get an IP, a container's exit
code is reported, stop/remove are idempotent, a missing image is
ErrImagePull with the runtime's message, exec returns exit codes and
output, and logs are readable. Containers use busybox so each check runs in
well under a second.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from kubelet.errors import ExecTimeout, ImagePullError, NotFoundError
from kubelet.runtime.interface import (
    CONTAINER_NAME_LABEL,
    POD_NAME_LABEL,
    POD_NAMESPACE_LABEL,
    POD_UID_LABEL,
    ContainerConfig,
    ContainerRuntime,
    ContainerState,
    LinuxResources,
    Mount,
    PodSandbox,
    PodSandboxConfig,
    PortMapping,
    SandboxState,
)

# An image that cannot exist: its registry is a closed port on loopback, so the
# pull fails at once and nothing leaves the host.
MISSING_IMAGE = "localhost:1/tinykube/does-not-exist:1.0"


@dataclass
class ConformanceTarget:
    busybox: str
    http_get: Callable[[str], str]


def sandbox_config(name: str = "") -> PodSandboxConfig:
    uid = str(uuid.uuid4())
    name = name or f"conf-{uid[:8]}"
    return PodSandboxConfig(
        name=name,
        namespace="default",
        uid=uid,
        hostname=name,
        port_mappings=(PortMapping(80),),
        labels={
            POD_UID_LABEL: uid,
            POD_NAME_LABEL: name,
            POD_NAMESPACE_LABEL: "default",
            "app": "conformance",
        },
        annotations={"tinykube.io/test": "conformance"},
    )


def container(name: str, image: str, *command: str, attempt: int = 0) -> ContainerConfig:
    return ContainerConfig(
        name=name,
        image=image,
        command=tuple(command),
        attempt=attempt,
        labels={CONTAINER_NAME_LABEL: name},
    )


async def wait_state(
    runtime: ContainerRuntime, cid: str, state: ContainerState, timeout: float = 10.0
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        status = await runtime.container_status(cid)
        if status.state == state:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"container {cid} is {status.state}, not {state}")
        await asyncio.sleep(0.05)


async def fetch(get: Callable[[str], str], url: str, attempts: int = 50) -> str:
    """`get(url)`, retried every 0.1 s while the server comes up; "" if it never answers."""
    for _ in range(attempts):
        try:
            return await asyncio.to_thread(get, url)
        except OSError:
            await asyncio.sleep(0.1)
    return ""


async def run_reader(
    runtime: ContainerRuntime, busybox: str, tmp_path: Path, script: str
) -> tuple[PodSandboxConfig, PodSandbox, str]:
    """A pod whose container `reader` runs `script` (sh -c) to its end; (config, sandbox, id).

    Its working dir /data is `tmp_path`/shared, mounted read-only, holding a
    file `greeting` ("hello from the host"); $POD_IP is the sandbox's IP; its
    limits are half a CPU (quota 50000 of period 100000), 256 shares, 64 MiB.
    """
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "greeting").write_text("hello from the host\n")
    config = sandbox_config()
    sandbox = await runtime.run_pod_sandbox(config)
    spec = ContainerConfig(
        name="reader",
        image=busybox,
        command=("sh", "-c", script),
        env=(("POD_IP", sandbox.ip),),
        working_dir="/data",
        mounts=(Mount("/data", str(shared), read_only=True),),
        resources=LinuxResources(
            cpu_period=100000, cpu_quota=50000, cpu_shares=256, memory_limit_in_bytes=64 << 20
        ),
    )
    cid = await runtime.create_container(sandbox.id, spec, config)
    await runtime.start_container(cid)
    await wait_state(runtime, cid, ContainerState.EXITED)
    return config, sandbox, cid


class RuntimeConformance:
    async def test_version_names_the_runtime(self, runtime: ContainerRuntime) -> None:
        version = await runtime.version()
        assert version.runtime_name
        assert version.runtime_version
        assert str(version).startswith(f"{version.runtime_name}://")
        status = await runtime.status()
        assert status.runtime_ready, status.message

    async def test_sandbox_has_ip_and_identity(self, runtime: ContainerRuntime) -> None:
        config = sandbox_config()
        sandbox = await runtime.run_pod_sandbox(config)
        assert sandbox.state == SandboxState.READY
        assert sandbox.ip, "a pod network sandbox must get an IP"
        assert (sandbox.name, sandbox.namespace, sandbox.pod_uid) == (
            config.name,
            "default",
            config.uid,
        )
        listed = await runtime.list_pod_sandboxes(pod_uid=config.uid)
        assert [s.id for s in listed] == [sandbox.id]
        assert listed[0].labels[POD_UID_LABEL] == config.uid
        assert listed[0].labels["app"] == "conformance"
        assert listed[0].ip == sandbox.ip
        other = await runtime.list_pod_sandboxes(pod_uid=str(uuid.uuid4()))
        assert other == []
        await runtime.stop_pod_sandbox(sandbox.id)
        assert (await runtime.pod_sandbox_status(sandbox.id)).state == SandboxState.NOTREADY
        await runtime.remove_pod_sandbox(sandbox.id)
        await runtime.stop_pod_sandbox(sandbox.id)  # idempotent once gone
        await runtime.remove_pod_sandbox(sandbox.id)
        with pytest.raises(NotFoundError):
            await runtime.pod_sandbox_status(sandbox.id)

    async def test_image_present_after_pull(
        self, runtime: ContainerRuntime, target: ConformanceTarget
    ) -> None:
        ref = await runtime.pull_image(target.busybox)
        assert ref
        assert await runtime.image_status(target.busybox) == ref
        assert await runtime.image_status("localhost:1/tinykube/never-pulled:1") is None

    async def test_missing_image_is_err_image_pull(self, runtime: ContainerRuntime) -> None:
        with pytest.raises(ImagePullError) as caught:
            await runtime.pull_image(MISSING_IMAGE)
        assert caught.value.reason == "ErrImagePull"
        assert "does-not-exist" in str(caught.value)

    async def test_http_server_reachable_at_pod_ip(
        self, runtime: ContainerRuntime, target: ConformanceTarget
    ) -> None:
        config = sandbox_config()
        sandbox = await runtime.run_pod_sandbox(config)
        cid = await runtime.create_container(
            sandbox.id,
            container(
                "web",
                target.busybox,
                "sh",
                "-c",
                "echo conformance-ok > /www/index.html && exec httpd -f -p 80 -h /www",
            ),
            config,
        )
        await runtime.start_container(cid)
        await wait_state(runtime, cid, ContainerState.RUNNING)
        body = await fetch(target.http_get, f"http://{sandbox.ip}/")
        assert body.strip() == "conformance-ok"
        listed = await runtime.list_containers(sandbox_id=sandbox.id)
        assert [(c.id, c.name, c.state) for c in listed] == [(cid, "web", ContainerState.RUNNING)]
        assert listed[0].sandbox_id == sandbox.id
        # httpd is PID 1 and ignores SIGTERM: the runtime must SIGKILL after the timeout.
        await runtime.stop_container(cid, 1)
        status = await runtime.container_status(cid)
        assert status.state == ContainerState.EXITED
        await runtime.stop_container(cid, 1)  # idempotent
        await runtime.remove_container(cid)
        await runtime.remove_container(cid)
        with pytest.raises(NotFoundError):
            await runtime.container_status(cid)

    async def test_exit_code_is_reported(
        self, runtime: ContainerRuntime, target: ConformanceTarget
    ) -> None:
        config = sandbox_config()
        sandbox = await runtime.run_pod_sandbox(config)
        cids = []
        for name, code in (("fails", 1), ("succeeds", 0)):
            cid = await runtime.create_container(
                sandbox.id, container(name, target.busybox, "sh", "-c", f"exit {code}"), config
            )
            await runtime.start_container(cid)
            cids.append(cid)
        for cid in cids:
            await wait_state(runtime, cid, ContainerState.EXITED)
        failed, ok = [await runtime.container_status(cid) for cid in cids]
        assert (failed.exit_code, failed.reason) == (1, "Error")
        assert (ok.exit_code, ok.reason) == (0, "Completed")
        # Both set; a container that exits at once may be seen to finish a moment
        # before its start was recorded, so only "close together" is asked.
        assert failed.started_at > 0 and failed.finished_at > 0, failed
        assert abs(failed.finished_at - failed.started_at) < 5

    async def test_out_of_memory_is_oom_killed(
        self, runtime: ContainerRuntime, target: ConformanceTarget
    ) -> None:
        config = sandbox_config()
        sandbox = await runtime.run_pod_sandbox(config)
        hog = ContainerConfig(
            name="hog",
            image=target.busybox,
            # A shell variable of 64 MiB in a container limited to 16 MiB.
            command=("sh", "-c", "x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo survived"),
            labels={CONTAINER_NAME_LABEL: "hog"},
            resources=LinuxResources(memory_limit_in_bytes=16 << 20),
        )
        cid = await runtime.create_container(sandbox.id, hog, config)
        await runtime.start_container(cid)
        await wait_state(runtime, cid, ContainerState.EXITED, timeout=30)
        status = await runtime.container_status(cid)
        assert (status.reason, status.exit_code) == ("OOMKilled", 137), status

    async def test_exec_past_its_timeout(
        self, runtime: ContainerRuntime, target: ConformanceTarget
    ) -> None:
        config = sandbox_config()
        sandbox = await runtime.run_pod_sandbox(config)
        cid = await runtime.create_container(
            sandbox.id, container("idle", target.busybox, "sleep", "60"), config
        )
        await runtime.start_container(cid)
        await wait_state(runtime, cid, ContainerState.RUNNING)
        started = time.monotonic()
        with pytest.raises(ExecTimeout):
            await runtime.exec_sync(cid, ["sleep", "7"], 1)
        assert time.monotonic() - started < 6
        # The timed-out command does not linger (a probe's command must not pile up).
        for _ in range(50):
            ps = await runtime.exec_sync(cid, ["ps", "-o", "args"], 5)
            if b"sleep 7" not in ps.stdout:
                break
            await asyncio.sleep(0.1)
        assert b"sleep 7" not in ps.stdout, ps.stdout

    async def test_restart_attempts_are_kept_apart(
        self, runtime: ContainerRuntime, target: ConformanceTarget
    ) -> None:
        config = sandbox_config()
        sandbox = await runtime.run_pod_sandbox(config)
        for attempt in (0, 1):
            cid = await runtime.create_container(
                sandbox.id,
                container("again", target.busybox, "true", attempt=attempt),
                config,
            )
            await runtime.start_container(cid)
            await wait_state(runtime, cid, ContainerState.EXITED)
        listed = await runtime.list_containers(sandbox_id=sandbox.id)
        assert sorted(c.attempt for c in listed) == [0, 1]
        assert {c.name for c in listed} == {"again"}

    async def test_exec_and_logs(
        self, runtime: ContainerRuntime, target: ConformanceTarget
    ) -> None:
        config = sandbox_config()
        sandbox = await runtime.run_pod_sandbox(config)
        cid = await runtime.create_container(
            sandbox.id,
            container(
                "talker",
                target.busybox,
                "sh",
                "-c",
                "echo one; echo two >&2; echo three; exec sleep 30",
            ),
            config,
        )
        await runtime.start_container(cid)
        await wait_state(runtime, cid, ContainerState.RUNNING)
        result = await runtime.exec_sync(cid, ["sh", "-c", "echo out; echo err >&2; exit 3"], 5)
        assert (result.exit_code, result.stdout, result.stderr) == (3, b"out\n", b"err\n")
        missing = await runtime.exec_sync(cid, ["no-such-command"], 5)
        assert missing.exit_code in (126, 127)
        lines: list[tuple[str, str]] = []
        for _ in range(50):
            lines = [(line.stream, line.text) async for line in runtime.container_logs(cid)]
            if len(lines) == 3:
                break
            await asyncio.sleep(0.1)
        assert sorted(lines) == [("stderr", "two"), ("stdout", "one"), ("stdout", "three")]
        tail = [line.text async for line in runtime.container_logs(cid, tail=1)]
        assert len(tail) == 1
        await runtime.stop_container(cid, 0)
        followed = [line.text async for line in runtime.container_logs(cid, follow=True)]
        assert len(followed) == 3  # ends by itself: the container has exited
