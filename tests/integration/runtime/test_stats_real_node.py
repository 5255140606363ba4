"""The kubelet's Summary on a real node (containerd, then Docker): a busy container's CPU and a
container holding 64 MiB appear in it, read from their cgroups; only the API server's client
certificate (or an admin) may read it; and `tinykube top pods` / `top nodes` show the same
numbers through the API server's metrics.k8s.io.

One API server process and one `tinykube kubelet` process per runtime (node.py), as the other
real-node modules start them; every pod is removed at the end, however a test ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest

from apimachinery import kubeconfig
from apimachinery.client import Client
from apiserver.proxy import KubeletClientConfig, kubelet_address
from protos import metrics_pb2, metrics_pb2_grpc
from tests.integration.runtime.conftest import RuntimeEnv
from tests.integration.runtime.node import RealNode, pod_yaml, started_node
from tests.procs import run_cli

pytestmark = pytest.mark.root

MARK = "stats-node"
MIB = 1024 * 1024
BUSY = 200_000_000  # 0.2 core: a spinning shell gets more even on a shared 2-core machine
# A shell spinning on one core, and a shell holding a 64 MiB string (it is used after the
# sleep, so the shell keeps it) beside an idle container.
BURNER = """  terminationGracePeriodSeconds: 1
  containers:
  - name: burner
    image: busybox:1.36
    command: ["sh", "-c", "while :; do :; done"]
"""
HOG = """  terminationGracePeriodSeconds: 1
  containers:
  - name: hog
    image: busybox:1.36
    command:
    - sh
    - -c
    - x=$(head -c 67108864 /dev/zero | tr '\\0' a); sleep 100000; echo ${#x}
  - name: idle
    image: busybox:1.36
    command: ["sleep", "100000"]
"""


@pytest.fixture(scope="module", params=["containerd", "docker"])
def node(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    runtime_env: RuntimeEnv,
) -> Iterator[RealNode]:
    docker_env = request.getfixturevalue("docker_env") if request.param == "docker" else None
    with started_node(tmp_path_factory.mktemp("stats-node"), runtime_env, MARK, docker_env) as n:
        n.create(pod_yaml("burner", MARK, BURNER))
        n.create(pod_yaml("hog", MARK, HOG))
        n.wait(lambda: n.running("burner") and n.running("hog"), "burner and hog running", 60)
        yield n


def _client_config(node: RealNode, user: str = "") -> KubeletClientConfig:
    """The API server's kubelet client certificate, or the kubeconfig of `user`."""
    pki = node.apiserver.pki
    if not user:
        client = "apiserver-kubelet-client"
        return KubeletClientConfig.from_files(pki.cert(client), pki.key(client), pki.ca_cert)
    config = kubeconfig.load(node.apiserver.kubeconfig(user))
    ca = Path(pki.ca_cert).read_bytes()
    return KubeletClientConfig(ca_pem=ca, cert_pem=config.cert_pem, key_pem=config.key_pem)


def summary(node: RealNode, config: KubeletClientConfig) -> metrics_pb2.Summary:
    """KubeletStats.Summary straight from the node's kubelet, at the address its Node names."""

    async def call() -> metrics_pb2.Summary:
        async with Client(node.apiserver.address, timeout=10) as client:
            address = kubelet_address(await client.get("nodes", "node1"))
        async with config.channel(address) as channel:
            stub = metrics_pb2_grpc.KubeletStatsStub(channel)
            answer: metrics_pb2.Summary = await stub.Summary(
                metrics_pb2.SummaryRequest(), timeout=30
            )
            return answer

    return asyncio.run(call())


def _pods(found: metrics_pb2.Summary) -> dict[str, Any]:
    return {p.pod_ref.name: p for p in found.pods}


def test_the_summary_shows_a_busy_container_and_one_holding_memory(node: RealNode) -> None:
    config = _client_config(node)

    def busy_and_holding() -> metrics_pb2.Summary | None:
        found = summary(node, config)
        burner, hog = _pods(found).get("burner"), _pods(found).get("hog")
        busy = burner is not None and burner.cpu.usage_nano_cores > BUSY
        held = (
            [c.memory.working_set_bytes for c in hog.containers if c.name == "hog"] if hog else []
        )
        return found if busy and held and held[0] >= 64 * MIB else None

    found = node.wait(busy_and_holding, "the burner busy and the hog holding 64 MiB", 60)
    pods = _pods(found)
    (burner,) = pods["burner"].containers
    assert burner.name == "burner" and burner.cpu.usage_nano_cores > BUSY
    assert burner.cpu.usage_core_nano_seconds > 0 and burner.cpu.window.ToNanoseconds() > 0
    hog = {c.name: c for c in pods["hog"].containers}
    assert set(hog) == {"hog", "idle"}
    assert hog["hog"].memory.working_set_bytes >= 64 * MIB, hog["hog"].memory
    assert hog["hog"].memory.rss_bytes >= 64 * MIB
    assert hog["idle"].memory.working_set_bytes < 8 * MIB
    pod_memory = pods["hog"].memory.working_set_bytes
    assert pod_memory == sum(c.memory.working_set_bytes for c in hog.values())
    assert pods["hog"].pod_ref.namespace == "default" and pods["hog"].pod_ref.uid
    # the node is the machine here (the kubelet runs in the host's network namespace)
    assert found.node.node_name == "node1" and found.node.scope == "machine"
    assert found.node.cpu.usage_nano_cores >= burner.cpu.usage_nano_cores * 0.9
    assert found.node.memory.working_set_bytes >= pod_memory
    assert found.node.memory.available_bytes > 0
    names = {s.name for s in found.node.system_containers}
    assert {"kubelet", "pods"} <= names


def test_only_the_api_server_and_admins_may_read_it(node: RealNode) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        summary(node, _client_config(node, "kubelet-node1"))
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert refused.value.details() == (
        "Forbidden (user=system:node:node1, verb=get, resource=nodes, subresource=stats)"
    )


def _rows(text: str) -> dict[str, list[str]]:
    return {line.split()[0]: line.split() for line in text.splitlines()[1:]}


def test_tinykube_top_pods_and_nodes(node: RealNode) -> None:
    def busy_and_holding() -> dict[str, list[str]] | None:
        top = run_cli(node.apiserver, "top", "pods")
        assert top.returncode == 0, top.stderr
        rows = _rows(top.stdout)
        busy = "burner" in rows and int(rows["burner"][1].rstrip("m")) > BUSY // 1_000_000
        holding = "hog" in rows and int(rows["hog"][2].removesuffix("Mi")) >= 64
        return rows if busy and holding else None

    rows = node.wait(busy_and_holding, "top pods: the burner busy, the hog at 64Mi", 60)
    assert rows["hog"][1].endswith("m") and rows["burner"][2].endswith("Mi")
    split = run_cli(node.apiserver, "top", "pods", "--containers", "--sort-by", "memory")
    assert split.returncode == 0, split.stderr
    lines = split.stdout.splitlines()
    assert lines[0].split() == ["POD", "NAME", "CPU(cores)", "MEMORY(bytes)"]
    assert lines[1].split()[:2] == ["hog", "hog"]
    selected = run_cli(node.apiserver, "top", "pods", "-l", f"tinykube-test={MARK}", "-A")
    assert selected.stdout.splitlines()[0].split()[0] == "NAMESPACE"

    nodes = run_cli(node.apiserver, "top", "nodes")
    assert nodes.returncode == 0, nodes.stderr
    header, row = nodes.stdout.splitlines()
    assert header.split() == ["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"]
    name, cpu, cpu_share, memory, memory_share = row.split()
    assert name == "node1" and int(cpu.rstrip("m")) > BUSY // 1_000_000
    assert cpu_share.endswith("%") and memory.endswith("Mi") and memory_share.endswith("%")
    missing = run_cli(node.apiserver, "top", "pod", "nobody")
    assert missing.returncode == 1
    assert missing.stderr.strip() == 'Error from server (NotFound): pods "nobody" not found'
