"""Fixtures for runtime tests: a private containerd with offline images and a test network.

Everything lives under one temporary directory per session: the images'
archives, containerd's root/state/socket, the CNI config and leases, and
the pods' log files. The containerd instance is shared by the session (it
starts in ~0.2 s, but importing the nginx image takes longer); each test
removes the sandboxes it made, and the session's teardown removes whatever
is left, stops containerd, kills leftover shims, unmounts and deletes the
bridge (localcluster/containerd.py and network.py).

The tests need root, containerd, runc, the CNI plugins, busybox-static,
nginx and gcc (the Makefile's APT_PACKAGES); without them they are skipped
with the reason, so `make test` as a normal user still runs the rest.
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
from localcluster import images
from localcluster.containerd import CNI_BIN_DIR, Containerd, ContainerdConfig
from localcluster.registry import LocalRegistry
from tests.integration.runtime.network import TestBridgeNetwork

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


@dataclass
class RuntimeEnv:
    """What runtime tests share: the daemon, the network, and where logs go."""

    containerd: Containerd
    network: TestBridgeNetwork
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
    network = TestBridgeNetwork(base / "cni" / "net.d", base / "cni" / "ipam")
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


@pytest.fixture
async def cri_runtime(runtime_env: RuntimeEnv) -> AsyncIterator[CRIRuntime]:
    """A CRI client for one test; the sandboxes it leaves are removed afterwards."""
    runtime = CRIRuntime(runtime_env.endpoint, log_root=str(runtime_env.log_root))
    before = {s.id for s in await runtime.list_pod_sandboxes()}
    try:
        yield runtime
    finally:
        for sandbox in await runtime.list_pod_sandboxes():
            if sandbox.id not in before:
                await runtime.stop_pod_sandbox(sandbox.id)
                await runtime.remove_pod_sandbox(sandbox.id)
        await runtime.close()
