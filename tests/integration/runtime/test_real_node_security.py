"""Secure by default on a whole node: what the user sees through the API, on containerd
and on Docker.

test_security_context.py checks each mechanism inside the containers, with
the kubelet's runtime manager in-process; here one API server and one
`tinykube kubelet` process (node.py) show the same through the API, as
`tinykube get pods` / `describe` would: a runAsNonRoot pod with a root image
waits with CreateContainerConfigError and Kubernetes' message, with the
matching `Failed` event; a pod's secret volume is a tmpfs on the node while
the pod runs, and is unmounted and removed when the pod is deleted (the
kubelet's teardown, not the test's).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubelet.mount import SystemMounter
from tests.integration.runtime.conftest import RuntimeEnv
from tests.integration.runtime.node import RealNode, pod_yaml, started_node

pytestmark = pytest.mark.root

MARK = "secure-node"
SLEEPER = '["sh", "-c", "trap \'exit 0\' TERM; while true; do sleep 1; done"]'


@pytest.fixture(scope="module", params=["containerd", "docker"])
def node(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    runtime_env: RuntimeEnv,
) -> Iterator[RealNode]:
    docker_env = request.getfixturevalue("docker_env") if request.param == "docker" else None
    root = tmp_path_factory.mktemp("secure-node")
    with started_node(root, runtime_env, MARK, docker_env) as real:
        yield real


def _waiting(pod: Any, name: str) -> tuple[str, str] | None:
    for status in pod.status.container_statuses if pod is not None else []:
        if status.name == name and status.state.HasField("waiting"):
            return status.state.waiting.reason, status.state.waiting.message
    return None


def test_run_as_non_root_with_a_root_image_is_refused(node: RealNode) -> None:
    body = f"""  securityContext: {{runAsNonRoot: true}}
  containers:
  - {{name: app, image: "busybox:1.36", command: {SLEEPER}}}
"""
    node.create(pod_yaml("rootless", MARK, body))

    def refused() -> tuple[str, str] | None:
        found = _waiting(node.pod("rootless"), "app")
        return found if found and found[0] == "CreateContainerConfigError" else None

    _, message = node.wait(refused, "CreateContainerConfigError", 30)
    uid = node.pod("rootless").metadata.uid
    expected = (
        "container has runAsNonRoot and image will run as root "
        f'(pod: "rootless_default({uid})", container: app)'
    )
    assert message == expected
    node.wait(
        lambda: any(e.message == f"Error: {expected}" for e in node.events("rootless")),
        "the Failed event",
        10,
    )
    assert all(e.reason != "Started" for e in node.events("rootless"))
    node.delete("rootless")


def test_secret_volume_is_a_tmpfs_until_the_pod_goes(node: RealNode) -> None:
    node.create(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\nstringData:\n  token: s3cret\n"
    )
    body = f"""  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: busybox:1.36
    command: {SLEEPER}
    volumeMounts: [{{name: creds, mountPath: /etc/creds}}]
  volumes:
  - {{name: creds, secret: {{secretName: creds}}}}
"""
    node.create(pod_yaml("holder", MARK, body))
    pod = node.wait(lambda: node.running("holder"), "pod holder Running", 30)
    pod_dir = node.kubelet_root / "pods" / pod.metadata.uid
    volume = (pod_dir / "volumes" / "kubernetes.io~secret" / "creds").resolve()
    mounts = {m.path: m.fstype for m in SystemMounter().mount_points()}
    assert mounts.get(str(volume)) == "tmpfs", mounts
    assert (volume / "token").read_text() == "s3cret"
    node.delete("holder")
    node.wait(lambda: node.pod("holder") is None, "pod holder gone", 30)
    node.wait(lambda: not _mounted_under(pod_dir), "the secret's tmpfs unmounted", 15)
    node.wait(lambda: not pod_dir.exists(), "the pod's directory removed", 15)


def _mounted_under(path: Path) -> list[str]:
    return SystemMounter().mounts_under(str(path))
