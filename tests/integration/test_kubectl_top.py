"""The real `kubectl top pods` and `kubectl top nodes` against tinykube: a real API server and a
real node, the numbers read from the containers' cgroups.

kubectl first looks for metrics.k8s.io in discovery, then lists NodeMetrics or PodMetrics
(asking for protobuf, taking JSON), and for nodes reads the Nodes' allocatable for the
percentages. The node is tests/integration/runtime/node.py's: `tinykube apiserver` with pki
init's PKI and `tinykube kubelet --runtime containerd`, with the same spinning and
memory-holding pods as test_stats_real_node.py. kubectl runs with the admin kubeconfig,
unchanged, as in test_kubectl.py.

The containerd, registry and pod network are this module's own (the runtime tests' fixtures
live in their directory's conftest): the bridge is named `tkk<pid>` on 10.98.0.0/24, so it
sits beside the runtime tests' `tkt<pid>` on 10.99.0.0/24 when both run in one session.
Everything is stopped and removed at the end, however the tests end. Skipped without root,
the runtime's tools, or kubectl.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest

from localcluster import images
from localcluster.containerd import Containerd, ContainerdConfig
from localcluster.hostbridge import HostBridgeNetwork
from localcluster.registry import LocalRegistry
from tests.integration.runtime.conftest import RuntimeEnv, _missing
from tests.integration.runtime.node import RealNode, pod_yaml, started_node
from tests.integration.runtime.test_stats_real_node import BURNER, BUSY, HOG
from tests.integration.test_kubectl import KUBECTL, Kubectl
from tests.procs import run_cli

MARK = "kubectl-top"


def _why_skip() -> str:
    if KUBECTL is None:
        return "kubectl is not installed"
    if os.geteuid() != 0:
        return "needs root (containerd, network namespaces)"
    missing = _missing()
    return "missing: " + ", ".join(missing) if missing else ""


pytestmark = [pytest.mark.root, pytest.mark.skipif(bool(_why_skip()), reason=_why_skip())]


@pytest.fixture(scope="module")
def runtime_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeEnv]:
    """A containerd with the pause and busybox images, on a pod network of this module's."""
    base = tmp_path_factory.mktemp("top-ctrd")
    archives = images.build_all(base / "images", which=("pause", "busybox"))
    network = HostBridgeNetwork(base / "cni" / "net.d", base / "cni" / "ipam", "10.98.0.0/24")
    network.bridge = f"tkk{os.getpid() % 100000}"
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
        for archive in archives:
            registry.push_archive(archive)
        daemon.start()
        for archive in archives:
            images.import_archive(archive, config.socket)
        yield RuntimeEnv(daemon, network, registry, base / "pods-logs", base / "images")
    finally:
        daemon.stop()
        registry.stop()
        network.teardown()


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory, runtime_env: RuntimeEnv) -> Iterator[RealNode]:
    with started_node(tmp_path_factory.mktemp("top-node"), runtime_env, MARK) as n:
        n.create(pod_yaml("burner", MARK, BURNER))
        n.create(pod_yaml("hog", MARK, HOG))
        n.wait(lambda: n.running("burner") and n.running("hog"), "burner and hog running", 60)
        yield n


@pytest.fixture(scope="module")
def kubectl(node: RealNode, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return Kubectl(node.apiserver.admin_kubeconfig, tmp_path_factory.mktemp("home"))


def _rows(text: str) -> dict[str, list[str]]:
    return {line.split()[0]: line.split() for line in text.splitlines()[1:]}


def test_kubectl_top_pods(node: RealNode, kubectl: Kubectl) -> None:
    def busy_and_holding() -> dict[str, list[str]] | None:
        rows = _rows(kubectl("top", "pods").stdout)
        busy = "burner" in rows and int(rows["burner"][1].rstrip("m")) > BUSY // 1_000_000
        holding = "hog" in rows and int(rows["hog"][2].removesuffix("Mi")) >= 64
        return rows if busy and holding else None

    rows = node.wait(busy_and_holding, "kubectl top pods: the burner busy, the hog at 64Mi", 60)
    assert rows["burner"][1].endswith("m") and rows["hog"][2].endswith("Mi")
    out = kubectl("top", "pods", "--containers", "--sort-by", "memory", "-A").stdout
    lines = out.splitlines()
    assert lines[0].split() == ["NAMESPACE", "POD", "NAME", "CPU(cores)", "MEMORY(bytes)"]
    assert lines[1].split()[:3] == ["default", "hog", "hog"]
    assert {tuple(line.split()[1:3]) for line in lines[1:]} == {
        ("hog", "hog"),
        ("hog", "idle"),
        ("burner", "burner"),
    }
    # the same table as tinykube's (the numbers move between the two calls; the cells do not)
    ours = run_cli(node.apiserver, "top", "pods", "--containers", "--sort-by", "memory", "-A")
    assert ours.returncode == 0, ours.stderr
    assert [line.split()[:3] for line in ours.stdout.splitlines()][:2] == [
        line.split()[:3] for line in lines[:2]
    ]
    one = kubectl("top", "pod", "hog", "--no-headers").stdout.split()
    assert one[0] == "hog" and int(one[2].removesuffix("Mi")) >= 64
    missing = kubectl("top", "pod", "nobody", check=False)
    assert missing.returncode == 1
    assert missing.stderr.strip() == 'Error from server (NotFound): pods "nobody" not found'
    empty = kubectl("top", "pods", "-n", "kube-system", check=False)
    assert empty.returncode == 0 and empty.stderr.strip() == (
        "No resources found in kube-system namespace."
    )


def test_kubectl_top_nodes(node: RealNode, kubectl: Kubectl) -> None:
    out = kubectl("top", "nodes").stdout
    header, row = out.splitlines()
    assert header.split() == ["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"]
    name, cpu, cpu_share, memory, memory_share = row.split()
    assert name == "node1" and cpu.endswith("m") and memory.endswith("Mi")
    assert cpu_share.endswith("%") and memory_share.endswith("%")
    ours = run_cli(node.apiserver, "top", "nodes")
    assert ours.stdout.splitlines()[0] == header  # the same header, padding and all
    raw = json.loads(kubectl("get", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes/node1").stdout)
    assert raw["kind"] == "NodeMetrics" and raw["metadata"]["name"] == "node1"
    assert raw["usage"]["cpu"].endswith("n") and raw["window"].endswith("s")
    assert "metrics.k8s.io/v1beta1" in kubectl("api-versions").stdout.split()
