"""containerd over CRI: what only a real CRI runtime shows (the shared conformance suite
runs on it from test_conformance.py).

The fixtures (conftest.py) start a private containerd with the offline
images imported and a test bridge network; `target.http_get` fetches from
the host through the test bridge's own address.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from kubelet import runtime as runtimes
from kubelet.runtime.cri import CRIRuntime
from kubelet.runtime.interface import ContainerState
from localcluster import images
from tests.integration.runtime.conformance import container, fetch, run_reader, sandbox_config
from tests.integration.runtime.conftest import RuntimeEnv, http_get

pytestmark = pytest.mark.root


@pytest.fixture
def runtime(cri_runtime: CRIRuntime) -> CRIRuntime:
    return cri_runtime


def test_registered_by_name(runtime_env: RuntimeEnv) -> None:
    runtime = runtimes.new_runtime("containerd", endpoint=runtime_env.endpoint)
    assert isinstance(runtime, CRIRuntime)
    assert runtime.name == "containerd"


async def test_version_is_containerd(runtime: CRIRuntime) -> None:
    version = await runtime.version()
    assert version.runtime_name == "containerd"
    assert version.runtime_api_version == "v1"
    assert str(version).startswith("containerd://1.")


async def test_imported_images_listed(runtime: CRIRuntime) -> None:
    tags = await runtime.list_images()
    for name in (images.PAUSE_IMAGE, *images.BUSYBOX_IMAGES, *images.NGINX_IMAGES):
        assert name in tags
    # Short names resolve as Docker's do.
    assert await runtime.image_status("nginx:latest") == await runtime.image_status(
        images.NGINX_IMAGES[0]
    )


async def test_nginx_serves_welcome_page(runtime: CRIRuntime, runtime_env: RuntimeEnv) -> None:
    config = sandbox_config("nginx")
    sandbox = await runtime.run_pod_sandbox(config)
    cid = await runtime.create_container(sandbox.id, container("nginx", "nginx:latest"), config)
    await runtime.start_container(cid)
    assert images.NGINX_WELCOME in await fetch(http_get, f"http://{sandbox.ip}/")
    conf = await runtime.exec_sync(cid, ["cat", "/etc/nginx/nginx.conf"], 5)
    assert b"daemon off;" in conf.stdout
    started = time.monotonic()
    await runtime.stop_container(cid, 10)  # SIGQUIT (the image's STOPSIGNAL): graceful
    assert time.monotonic() - started < 5
    assert (await runtime.container_status(cid)).state == ContainerState.EXITED


async def test_mounts_env_and_limits(
    runtime: CRIRuntime, runtime_env: RuntimeEnv, tmp_path: Path
) -> None:
    script = "cat /data/greeting; echo $POD_IP; cat /data/../proc/self/cgroup"
    config, sandbox, cid = await run_reader(runtime, images.BUSYBOX_IMAGES[0], tmp_path, script)
    status = await runtime.container_status(cid)
    assert status.exit_code == 0, status.message
    text = [line.text async for line in runtime.container_logs(cid)]
    assert text[:2] == ["hello from the host", sandbox.ip]
    log_dir = runtime_env.log_root / f"default_{config.name}_{config.uid}" / "reader"
    assert (log_dir / "0.log").exists()


async def test_unknown_sandbox_and_container_are_not_found(runtime: CRIRuntime) -> None:
    from kubelet.errors import NotFoundError

    with pytest.raises(NotFoundError):
        await runtime.container_status(uuid.uuid4().hex)
    with pytest.raises(NotFoundError):
        await runtime.pod_sandbox_status(uuid.uuid4().hex)
