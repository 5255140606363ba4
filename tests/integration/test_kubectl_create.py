"""The real kubectl's typed commands: `kubectl create KIND ...` and `kubectl drain`, in protobuf.

kubectl's generic verbs (apply, create -f, patch) send JSON, but its typed
commands go through client-go's clientset, which encodes the body as
Kubernetes protobuf (`application/vnd.kubernetes.protobuf`): `kubectl create
deployment|service|configmap|secret|namespace` and the Eviction each `kubectl
drain` posts. The cluster is a hollow one (tests/e2e/hollow.py): a real
`tinykube apiserver` with its scheduler and controllers, and two real kubelets
on the fake runtime, so pods run, drain evicts them, their kubelet stops them,
and the Deployment's replacements land on the other node. kubectl is the
machine's own, with the admin kubeconfig `pki init` wrote. Skipped where no
kubectl is installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.hollow import HollowCluster

KUBECTL = shutil.which("kubectl")
PROTOBUF = "Content-Type: application/vnd.kubernetes.protobuf"

pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")


class Kubectl:
    def __init__(self, kubeconfig: Path, home: Path) -> None:
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("KUBE")},
            "KUBECONFIG": str(kubeconfig),
            "HOME": str(home),  # kubectl's discovery cache goes to the test's directory
        }

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        assert KUBECTL is not None
        out = subprocess.run(
            [KUBECTL, *args], capture_output=True, text=True, timeout=90, env=self.env
        )
        if check:
            assert out.returncode == 0, (args, out.stdout, out.stderr)
        return out

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "-o", "json").stdout)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HollowCluster]:
    hollow = HollowCluster(tmp_path_factory.mktemp("kubectl-create"), nodes=2)
    try:
        hollow.start()
        yield hollow
    finally:
        hollow.stop()


@pytest.fixture(scope="module")
def kubectl(cluster: HollowCluster, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return Kubectl(cluster.apiserver.admin_kubeconfig, tmp_path_factory.mktemp("home"))


def wait_for(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def test_create_deployment_sends_protobuf(kubectl: Kubectl) -> None:
    out = kubectl("create", "deployment", "web", "--image", "nginx:latest", "-v=8")
    assert out.stdout.strip() == "deployment.apps/web created"
    assert PROTOBUF in out.stderr  # the body went as Kubernetes protobuf
    made = kubectl.json("get", "deployment", "web")
    assert made["spec"]["replicas"] == 1
    assert made["spec"]["selector"] == {"matchLabels": {"app": "web"}}
    [container] = made["spec"]["template"]["spec"]["containers"]
    assert (container["name"], container["image"]) == ("nginx", "nginx:latest")
    zero = kubectl("create", "deployment", "idle", "--image", "nginx:latest", "--replicas", "0")
    assert zero.stdout.strip() == "deployment.apps/idle created"
    assert kubectl.json("get", "deployment", "idle")["spec"]["replicas"] == 0  # a *int32 zero


def test_create_configmap_secret_namespace_service(kubectl: Kubectl) -> None:
    cm = kubectl("create", "configmap", "x", "--from-literal", "a=b")
    assert cm.stdout.strip() == "configmap/x created"
    assert kubectl.json("get", "configmap", "x")["data"] == {"a": "b"}
    secret = kubectl("create", "secret", "generic", "s", "--from-literal", "k=v")
    assert secret.stdout.strip() == "secret/s created"
    assert kubectl.json("get", "secret", "s")["data"] == {"k": "dg=="}
    ns = kubectl("create", "namespace", "team", "-v=8")
    assert ns.stdout.strip() == "namespace/team created"
    assert PROTOBUF in ns.stderr
    assert kubectl.json("get", "namespace", "team")["status"]["phase"] == "Active"
    svc = kubectl("create", "service", "clusterip", "front", "--tcp=80:8080")
    assert svc.stdout.strip() == "service/front created"
    spec = kubectl.json("get", "service", "front")["spec"]
    assert spec["ports"] == [{"name": "80-8080", "port": 80, "protocol": "TCP", "targetPort": 8080}]
    assert spec["selector"] == {"app": "front"}
    assert spec["clusterIP"]  # allocated by the server, as for a JSON body
    again = kubectl("create", "configmap", "x", "--from-literal", "a=c", check=False)
    assert again.returncode == 1
    assert again.stderr.strip() == (
        'error: failed to create configmap: configmaps "x" already exists'
    )


def _pods(kubectl: Kubectl) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = kubectl.json("get", "pods")["items"]
    return items


def _running_on(kubectl: Kubectl) -> dict[str, str]:
    """Each pod's node, for the pods that run (not terminating)."""
    return {
        p["metadata"]["name"]: p["spec"].get("nodeName", "")
        for p in _pods(kubectl)
        if p.get("status", {}).get("phase") == "Running"
        and "deletionTimestamp" not in p["metadata"]
    }


def test_drain_cordons_and_evicts(kubectl: Kubectl) -> None:
    kubectl("create", "deployment", "spread", "--image", "nginx:latest", "--replicas", "4")
    bare = '{"spec": {"nodeName": "node1"}}'
    kubectl("run", "bare", "--image", "nginx:latest", f"--overrides={bare}")

    def settled() -> bool:
        nodes = _running_on(kubectl)
        spread = [n for name, n in nodes.items() if name.startswith("spread-")]
        return len(spread) == 4 and nodes.get("bare") == "node1" and "node1" in spread

    wait_for(settled, "four replicas and the bare pod running, some on node1")
    refused = kubectl("drain", "node1", "--ignore-daemonsets", check=False)
    assert refused.returncode == 1
    assert "cannot delete Pods that declare no controller (use --force to override)" in (
        refused.stderr
    )
    drained = kubectl("drain", "node1", "--ignore-daemonsets", "--force", "--timeout=60s")
    lines = drained.stdout.splitlines()
    assert lines[0] == "node/node1 cordoned" or lines[0] == "node/node1 already cordoned"
    assert "evicting pod default/bare" in drained.stderr + drained.stdout
    assert "pod/bare evicted" in lines
    assert lines[-1] == "node/node1 drained"
    node = kubectl.json("get", "node", "node1")
    assert node["spec"]["unschedulable"] is True
    nodes = _running_on(kubectl)
    assert "bare" not in nodes  # no controller: gone for good
    assert all(n != "node1" for n in nodes.values()), nodes

    def replaced() -> bool:
        now = _running_on(kubectl)
        return sorted(n for name, n in now.items() if name.startswith("spread-")) == ["node2"] * 4

    wait_for(replaced, "the Deployment's four replicas back, all on node2")
    assert kubectl("uncordon", "node1").stdout.strip() == "node/node1 uncordoned"
    assert "unschedulable" not in kubectl.json("get", "node", "node1")["spec"]
