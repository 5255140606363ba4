"""The Docker runtime: what only the Docker adapter shows (the shared suite is test_conformance.py).

The fixtures (conftest.py) start a private dockerd beside the session's
containerd, with the same registry and test bridge; the adapter calls CNI
itself. Here: dockershim's names and labels as `docker ps` shows them, two
containers of one pod talking over localhost, nginx's graceful stop, mounts
and cgroup limits as Docker applied them, the pod log symlink, adoption by a
fresh adapter (a restarted kubelet), a hostNetwork sandbox, and the daemon
fault: dockerd not running -> not ready with Docker's message, then ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from dataclasses import replace
from pathlib import Path

import docker
import pytest

from kubelet import runtime as runtimes
from kubelet.errors import ContainerRuntimeError, NotFoundError
from kubelet.runtime.docker import DockerRuntime
from kubelet.runtime.interface import ContainerState, DNSConfig, PodSandboxConfig, SandboxState
from localcluster import images
from localcluster.dockerd import Dockerd, DockerdConfig
from tests.integration.runtime.conformance import (
    container,
    fetch,
    run_reader,
    sandbox_config,
    wait_state,
)
from tests.integration.runtime.conftest import DockerEnv, http_get

pytestmark = pytest.mark.root


def _inspect(env: DockerEnv, cid: str) -> dict[str, object]:
    client = docker.APIClient(base_url=env.endpoint, version="1.41")
    try:
        attrs: dict[str, object] = client.inspect_container(cid)
        return attrs
    finally:
        client.close()


def test_dockerd_flags_keep_the_host_untouched(tmp_path: Path) -> None:
    config = DockerdConfig(
        base=tmp_path, socket_path="/run/x/d.sock", registry_mirror="10.0.0.1:5000"
    )
    args = config.command()
    for flag in ("--bridge=none", "--iptables=false", "--ip-masq=false", "--ip-forward=false"):
        assert flag in args
    pairs = dict(itertools.pairwise(args))
    assert pairs["--data-root"] == str(tmp_path / "data")
    assert pairs["--exec-root"] == str(tmp_path / "exec")
    assert pairs["--pidfile"] == str(tmp_path / "docker.pid")
    assert pairs["-H"] == "unix:///run/x/d.sock" == config.endpoint
    assert pairs["--registry-mirror"] == "http://10.0.0.1:5000"
    assert pairs["--insecure-registry"] == "10.0.0.1:5000"


async def test_stop_finds_a_dockerd_it_did_not_start(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """`tinykube up` spawns dockerd itself (in a node namespace); Dockerd.stop() still stops it."""
    config = DockerdConfig(base=tmp_path_factory.mktemp("dockerd-foreign"))
    owner = Dockerd(config)
    await asyncio.to_thread(owner.start)
    proc, owner.proc = owner.proc, None  # a handle made from the config alone knows no process
    assert proc is not None
    try:
        await asyncio.to_thread(Dockerd(config).stop)
        assert await asyncio.to_thread(proc.wait, 5) is not None  # found by its pidfile, stopped
        assert not config.socket.exists() or not _answers(config)
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await asyncio.to_thread(proc.wait)


def _answers(config: DockerdConfig) -> bool:
    client = docker.APIClient(base_url=config.endpoint, version="1.41", timeout=2)
    try:
        client.ping()
        return True
    except Exception:
        return False
    finally:
        client.close()


def test_registered_by_name(docker_env: DockerEnv) -> None:
    runtime = runtimes.new_runtime("docker", endpoint=docker_env.endpoint)
    assert isinstance(runtime, DockerRuntime)
    assert runtime.name == "docker"


async def test_version_is_docker(docker_runtime: DockerRuntime) -> None:
    version = await docker_runtime.version()
    assert version.runtime_name == "docker"
    assert str(version).startswith("docker://20.")
    status = await docker_runtime.status()
    assert status.runtime_ready and status.network_ready, status.message


async def test_names_and_labels_as_dockershim(
    docker_runtime: DockerRuntime, docker_env: DockerEnv
) -> None:
    config = sandbox_config()
    sandbox = await docker_runtime.run_pod_sandbox(config)
    cid = await docker_runtime.create_container(
        sandbox.id,
        container("app", images.BUSYBOX_IMAGES[0], "sleep", "30", attempt=2),
        config,
    )
    pause = _inspect(docker_env, sandbox.id)
    assert pause["Name"] == f"/k8s_POD_{config.name}_default_{config.uid}_0"
    host = pause["HostConfig"]
    assert isinstance(host, dict)
    assert (host["NetworkMode"], host["IpcMode"]) == ("none", "shareable")
    attrs = _inspect(docker_env, cid)
    assert attrs["Name"] == f"/k8s_app_{config.name}_default_{config.uid}_2"
    labels = attrs["Config"]["Labels"]  # type: ignore[index]
    assert labels["io.kubernetes.docker.type"] == "container"
    assert labels["io.kubernetes.sandbox.id"] == sandbox.id
    assert labels["io.kubernetes.pod.uid"] == config.uid
    assert attrs["HostConfig"]["NetworkMode"] == f"container:{sandbox.id}"  # type: ignore[index]
    status = await docker_runtime.container_status(cid)
    assert (status.name, status.attempt, status.state) == ("app", 2, ContainerState.CREATED)
    sandboxes = await docker_runtime.list_pod_sandboxes(pod_uid=config.uid)
    assert sandboxes[0].annotations == {"tinykube.io/test": "conformance"}
    assert "io.kubernetes.docker.type" not in sandboxes[0].labels


async def test_containers_of_a_pod_share_localhost(docker_runtime: DockerRuntime) -> None:
    config = sandbox_config()
    sandbox = await docker_runtime.run_pod_sandbox(config)
    busybox = images.BUSYBOX_IMAGES[0]
    server = await docker_runtime.create_container(
        sandbox.id,
        container(
            "server", busybox, "sh", "-c", "echo pod-local > /www/i && httpd -f -p 8080 -h /www"
        ),
        config,
    )
    await docker_runtime.start_container(server)
    client = await docker_runtime.create_container(
        sandbox.id, container("client", busybox, "sleep", "30"), config
    )
    await docker_runtime.start_container(client)
    await wait_state(docker_runtime, client, ContainerState.RUNNING)
    result = None
    for _ in range(50):
        result = await docker_runtime.exec_sync(
            client, ["wget", "-q", "-O", "-", "http://127.0.0.1:8080/i"], 5
        )
        if result.exit_code == 0:
            break
        await asyncio.sleep(0.1)
    assert result is not None and result.stdout == b"pod-local\n", result
    # One network namespace: the same eth0 address in both.
    addr = await docker_runtime.exec_sync(client, ["ip", "-4", "addr", "show", "eth0"], 5)
    assert sandbox.ip in addr.stdout.decode()


async def test_nginx_graceful_stop(docker_runtime: DockerRuntime) -> None:
    config = sandbox_config("nginx")
    sandbox = await docker_runtime.run_pod_sandbox(config)
    await docker_runtime.pull_image("nginx:latest")
    cid = await docker_runtime.create_container(
        sandbox.id, container("nginx", "nginx:latest"), config
    )
    await docker_runtime.start_container(cid)
    assert images.NGINX_WELCOME in await fetch(http_get, f"http://{sandbox.ip}/")
    logs = [line.text async for line in docker_runtime.container_logs(cid)]
    assert any("GET / HTTP/1.1" in text for text in logs), logs
    started = time.monotonic()
    await docker_runtime.stop_container(cid, 10)  # SIGQUIT (the image's STOPSIGNAL)
    assert time.monotonic() - started < 5
    status = await docker_runtime.container_status(cid)
    assert status.state == ContainerState.EXITED and status.finished_at >= status.started_at


async def test_mounts_env_limits_and_log_link(
    docker_runtime: DockerRuntime, docker_env: DockerEnv, tmp_path: Path
) -> None:
    script = "cat greeting; echo $POD_IP; touch /data/x || echo read-only"
    config, sandbox, cid = await run_reader(
        docker_runtime, images.BUSYBOX_IMAGES[0], tmp_path, script
    )
    status = await docker_runtime.container_status(cid)
    assert (status.exit_code, status.reason) == (0, "Completed"), status.message
    # Docker copies stdout and stderr separately: their order is kept within a stream only.
    lines = [line async for line in docker_runtime.container_logs(cid)]
    assert [x.text for x in lines if x.stream == "stdout"] == [
        "hello from the host",
        sandbox.ip,
        "read-only",
    ]
    assert [x.text for x in lines if x.stream == "stderr"] == [
        "touch: /data/x: Read-only file system"
    ]
    host = _inspect(docker_env, cid)["HostConfig"]
    assert isinstance(host, dict)
    assert (host["CpuPeriod"], host["CpuQuota"], host["CpuShares"]) == (100000, 50000, 256)
    assert host["Memory"] == host["MemorySwap"] == 64 << 20
    link = docker_env.log_root / f"default_{config.name}_{config.uid}" / "reader" / "0.log"
    assert link.is_symlink() and link.resolve().name == f"{cid}-json.log"
    await docker_runtime.remove_pod_logs(config.uid)
    assert not link.parent.exists()


async def test_a_fresh_adapter_adopts_everything(
    docker_runtime: DockerRuntime, docker_env: DockerEnv
) -> None:
    """What a restarted kubelet sees: same sandbox, IP, container, attempt, from Docker alone."""
    config = sandbox_config()
    sandbox = await docker_runtime.run_pod_sandbox(config)
    cid = await docker_runtime.create_container(
        sandbox.id, container("app", images.BUSYBOX_IMAGES[0], "sleep", "30", attempt=1), config
    )
    await docker_runtime.start_container(cid)
    fresh = docker_env.new_runtime()
    try:
        [found] = await fresh.list_pod_sandboxes(pod_uid=config.uid)
        assert (found.id, found.ip, found.state) == (sandbox.id, sandbox.ip, SandboxState.READY)
        [again] = await fresh.list_containers(sandbox_id=sandbox.id)
        assert (again.id, again.name, again.attempt) == (cid, "app", 1)
        assert again.state == ContainerState.RUNNING and again.image_ref
    finally:
        await fresh.close()


async def test_pod_dns_config_is_the_containers_resolv_conf(
    docker_runtime: DockerRuntime,
) -> None:
    base = sandbox_config()
    dns = DNSConfig(("10.96.0.10",), ("default.svc.cluster.local", "cluster.local"), ("ndots:5",))
    config = replace(base, dns=dns)
    sandbox = await docker_runtime.run_pod_sandbox(config)
    cid = await docker_runtime.create_container(
        sandbox.id, container("app", images.BUSYBOX_IMAGES[0], "sleep", "30"), config
    )
    await docker_runtime.start_container(cid)
    result = await docker_runtime.exec_sync(cid, ["cat", "/etc/resolv.conf"], 5)
    text = result.stdout.decode()
    assert "nameserver 10.96.0.10" in text, text
    assert "search default.svc.cluster.local cluster.local" in text, text
    assert "options ndots:5" in text, text


async def test_failed_cni_add_leaves_no_sandbox(docker_env: DockerEnv, tmp_path: Path) -> None:
    conf_dir = tmp_path / "net.d"
    conf_dir.mkdir()
    (conf_dir / "10-broken.conflist").write_text(
        '{"cniVersion": "1.0.0", "name": "broken", "plugins": [{"type": "no-such-plugin"}]}'
    )
    runtime = DockerRuntime(
        docker_env.endpoint,
        log_root=str(tmp_path / "logs"),
        cni_conf_dir=str(conf_dir),
        cni_bin_dir="/usr/lib/cni",
        cni_cache_dir=str(tmp_path / "cni"),
        pause_image=images.PAUSE_IMAGE,
    )
    config = sandbox_config()
    try:
        with pytest.raises(ContainerRuntimeError) as caught:
            await runtime.run_pod_sandbox(config)
        message = str(caught.value)
        assert "failed to set up sandbox container network" in message, message
        assert 'failed to find plugin "no-such-plugin"' in message, message
        assert await runtime.list_pod_sandboxes(pod_uid=config.uid) == []
    finally:
        await runtime.close()


async def test_host_network_sandbox(docker_runtime: DockerRuntime) -> None:
    base = sandbox_config()
    config = PodSandboxConfig(
        name=base.name, namespace="default", uid=base.uid, host_network=True, labels=base.labels
    )
    sandbox = await docker_runtime.run_pod_sandbox(config)
    assert sandbox.state == SandboxState.READY and sandbox.ip == ""
    await docker_runtime.stop_pod_sandbox(sandbox.id)
    await docker_runtime.remove_pod_sandbox(sandbox.id)
    with pytest.raises(NotFoundError):
        await docker_runtime.pod_sandbox_status(sandbox.id)


async def test_sandbox_is_not_a_container(docker_runtime: DockerRuntime) -> None:
    sandbox = await docker_runtime.run_pod_sandbox(sandbox_config())
    with pytest.raises(NotFoundError):
        await docker_runtime.container_status(sandbox.id)


async def test_daemon_down_is_not_ready_then_recovers(
    docker_env: DockerEnv, tmp_path_factory: pytest.TempPathFactory
) -> None:
    base = tmp_path_factory.mktemp("dockerd-late")
    config = DockerdConfig(base=base)
    runtime = DockerRuntime(
        config.endpoint,
        cni_conf_dir=str(docker_env.runtime_env.network.conf_dir),
        cni_cache_dir=str(base / "cni"),
    )
    daemon = Dockerd(config)
    try:
        status = await runtime.status()
        assert not status.runtime_ready
        assert status.network_ready
        assert "Cannot connect to the Docker daemon" in status.message
        assert str(config.socket) in status.message
        with pytest.raises(ContainerRuntimeError):
            await runtime.version()
        await asyncio.to_thread(daemon.start)
        status = await runtime.status()
        assert status.runtime_ready, status.message
        assert (await runtime.version()).runtime_name == "docker"
    finally:
        await runtime.close()
        await asyncio.to_thread(daemon.stop)
