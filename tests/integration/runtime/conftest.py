"""Fixtures for runtime tests: a private containerd and dockerd, offline images, a test network.

Everything lives under one temporary directory per session: the images'
archives, containerd's root/state/socket, the CNI config and leases, and
the pods' log files. The containerd instance is shared by the session (it
starts in ~0.2 s, but importing the nginx image takes longer); each test
removes the sandboxes it made, and the session's teardown removes whatever
is left, stops containerd, kills leftover shims, unmounts and deletes the
bridge (localcluster/containerd.py and hostbridge.py).

The Docker runtime's fixtures (`docker_env`, `docker_runtime`) add a
private dockerd (localcluster/dockerd.py) beside it, sharing the registry
and the test network: its images are pulled through the registry (the
pause image by the registry's address, then tagged), and the kubelet-side
adapter calls the same CNI config containerd uses.

`runtime` is parametrized over both (`containerd`, `docker`): a test that
asks for it runs once per runtime -- the shared conformance suite
(test_conformance.py) does.

The tests need root, containerd, runc, the CNI plugins, busybox-static,
nginx and gcc (the Makefile's APT_PACKAGES); without them they are skipped
with the reason, so `make test` as a normal user still runs the rest. The
Docker tests also need dockerd (docker.io); without it they alone are skipped.
"""

from __future__ import annotations

import os
import shutil
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kubelet.runtime.cri import CRIRuntime
from kubelet.runtime.docker import DockerRuntime
from kubelet.runtime.interface import ContainerRuntime
from localcluster import images
from localcluster.containerd import CNI_BIN_DIR, Containerd, ContainerdConfig
from localcluster.dockerd import Dockerd, DockerdConfig
from localcluster.hostbridge import HostBridgeNetwork
from localcluster.registry import LocalRegistry

NEEDED = (
    "containerd",
    "runc",
    "ctr",
    "gcc",
    "docker-registry",
    images.BUSYBOX_BINARY,
    images.NGINX_BINARY,
)


def _missing() -> list[str]:
    out = [tool for tool in NEEDED if shutil.which(tool) is None and not Path(tool).exists()]
    if not Path(CNI_BIN_DIR, "bridge").exists():
        out.append(f"{CNI_BIN_DIR}/bridge (containernetworking-plugins)")
    return out


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    reason = ""
    if os.geteuid() != 0:
        reason = "needs root (containerd, network namespaces)"
    elif _missing():
        reason = "missing: " + ", ".join(_missing()) + " (sudo make system-deps)"
    if not reason:
        return
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.skip(reason=reason))


def needs_dockerd() -> None:
    if shutil.which("dockerd") is None:
        pytest.skip("missing: dockerd (docker.io)")


@dataclass
class RuntimeEnv:
    """What runtime tests share: the daemon, the network, and where logs go."""

    containerd: Containerd
    network: HostBridgeNetwork
    registry: LocalRegistry
    log_root: Path
    image_dir: Path

    @property
    def endpoint(self) -> str:
        return self.containerd.endpoint


def http_get(url: str, timeout: float = 5.0) -> str:
    """GET from the host (the test's bridge address reaches the pod)."""
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        body: bytes = resp.read()
        return body.decode(errors="replace")


@pytest.fixture(scope="session")
def image_archives(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return images.build_all(tmp_path_factory.mktemp("images"))


@pytest.fixture(scope="session")
def runtime_env(
    tmp_path_factory: pytest.TempPathFactory, image_archives: list[Path]
) -> Iterator[RuntimeEnv]:
    base = tmp_path_factory.mktemp("ctrd")
    network = HostBridgeNetwork(base / "cni" / "net.d", base / "cni" / "ipam")
    registry = LocalRegistry(base / "registry")
    config = ContainerdConfig(
        base=base,
        sandbox_image=images.PAUSE_IMAGE,
        cni_conf_dir=str(network.conf_dir),
        registry_config_path=str(registry.hosts_dir),
    )
    daemon = Containerd(config)
    try:
        network.setup()
        registry.start()
        for archive in image_archives:
            registry.push_archive(archive)
        daemon.start()
        # Imported (so RunPodSandbox finds the pause image at once) and also
        # served by the local registry (so PullImage of nginx:latest works).
        for archive in image_archives:
            images.import_archive(archive, config.socket)
        yield RuntimeEnv(daemon, network, registry, base / "pods-logs", image_archives[0].parent)
    finally:
        daemon.stop()
        registry.stop()
        network.teardown()


@dataclass
class DockerEnv:
    """The session's dockerd, beside the containerd of RuntimeEnv (same registry, network)."""

    dockerd: Dockerd
    runtime_env: RuntimeEnv
    base: Path

    @property
    def endpoint(self) -> str:
        return self.dockerd.endpoint

    @property
    def log_root(self) -> Path:
        return self.base / "pods-logs"

    @property
    def cni_cache_dir(self) -> Path:
        return self.base / "cni-results"

    def new_runtime(self) -> DockerRuntime:
        return DockerRuntime(
            self.endpoint,
            log_root=str(self.log_root),
            cni_conf_dir=str(self.runtime_env.network.conf_dir),
            cni_bin_dir=CNI_BIN_DIR,
            cni_cache_dir=str(self.cni_cache_dir),
            pause_image=images.PAUSE_IMAGE,
        )


@pytest.fixture(scope="session")
def docker_env(
    tmp_path_factory: pytest.TempPathFactory, runtime_env: RuntimeEnv
) -> Iterator[DockerEnv]:
    needs_dockerd()
    base = tmp_path_factory.mktemp("dockerd")
    registry = runtime_env.registry
    daemon = Dockerd(DockerdConfig(base=base / "daemon", registry_mirror=registry.address))
    try:
        daemon.start()
        # The pause image is not under docker.io, so the mirror does not serve it:
        # pull it by the registry's address and tag it (localcluster/dockerd.py).
        daemon.preload_images([images.PAUSE_IMAGE, *images.BUSYBOX_IMAGES], registry.address)
        yield DockerEnv(daemon, runtime_env, base)
    finally:
        daemon.stop()


async def _cleanup_after(runtime: ContainerRuntime, before: set[str]) -> None:
    for sandbox in await runtime.list_pod_sandboxes():
        if sandbox.id not in before:
            await runtime.stop_pod_sandbox(sandbox.id)
            await runtime.remove_pod_sandbox(sandbox.id)
    await runtime.close()


@pytest.fixture
async def cri_runtime(runtime_env: RuntimeEnv) -> AsyncIterator[CRIRuntime]:
    """A CRI client for one test; the sandboxes it leaves are removed afterwards."""
    runtime = CRIRuntime(runtime_env.endpoint, log_root=str(runtime_env.log_root))
    before = {s.id for s in await runtime.list_pod_sandboxes()}
    try:
        yield runtime
    finally:
        await _cleanup_after(runtime, before)


@pytest.fixture
async def docker_runtime(docker_env: DockerEnv) -> AsyncIterator[DockerRuntime]:
    """A Docker runtime for one test; the sandboxes it leaves are removed afterwards."""
    runtime = docker_env.new_runtime()
    before = {s.id for s in await runtime.list_pod_sandboxes()}
    try:
        yield runtime
    finally:
        await _cleanup_after(runtime, before)


@pytest.fixture(params=["containerd", "docker"])
def runtime_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def runtime(request: pytest.FixtureRequest, runtime_name: str) -> ContainerRuntime:
    """The runtime under test, once per runtime: the conformance suite runs on both."""
    fixture = "cri_runtime" if runtime_name == "containerd" else "docker_runtime"
    found: ContainerRuntime = request.getfixturevalue(fixture)
    return found
