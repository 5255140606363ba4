"""The seed manifest on a real two-node `tinykube up` cluster (namespaces as nodes).

In order, on one cluster (module scope; each test leaves it as the next expects):

    secure by default: mTLS, node identities, PodSecurity   tinykube --kubeconfig ... (underlay)
    both replicas Running on different nodes            tinykube apply -f examples/web-app.yaml
    pod-to-pod across nodes                             tinykube exec POD -- wget <other pod>
    ClusterIP from each node reaches both replicas      tinykube node-shell nodeN -- curl ...
    ClusterIP from a pod reaches both replicas          tinykube exec probe -- wget ...
        and by the Service's DNS name                   tinykube run --rm -it ... web-app-service
    NodePort from the underlay namespace                curl http://10.201.0.1{1,2}:30080/
    two containers of one pod talk over localhost       tinykube exec pair -c side -- wget localhost
    a deleted pod is replaced
    node2 fails (kill -9 its kubelet, which runs its netplugin agent; containerd stopped)
        -> NotReady, its replica recreated on node1, the Service still serves;
        node2 back -> Ready, nothing runs twice
    vagrant/verify.sh passes against this cluster
    kill -9 of every process, then tinykube down: no namespace, link, process, mount or
        nftables table is left behind
    the same cluster with --runtime docker serves the seed; its down leaves nothing

The nginx image's page names the pod serving it ("Served by pod web-app-..."), which is
how a test tells the replicas apart.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from apimachinery import kubeconfig
from localcluster import clusterstate
from localcluster.cluster import Cluster, ClusterError
from localcluster.containerd import mounts_under
from localcluster.netns import namespaces_with_prefix
from localcluster.node import LocalNode
from localcluster.pki import TOKEN_PORT
from localcluster.processes import tinykube_cmd
from localcluster.seedprobes import (
    cluster_ip,
    endpoints_of,
    pod_ready,
    running,
    spread,
    two_running,
    web_pods,
)
from tests.e2e.localcluster_fixture import (
    SEED,
    cli,
    cluster_traces,
    curl_from,
    host_snapshot,
    local_cluster,
    logs,
    replicas_seen,
    running_containers,
    served_by,
    skip_reason,
    wait,
)
from tests.procs import REPO

pytestmark = pytest.mark.skipif(bool(skip_reason()), reason=skip_reason() or "ready")

NAME = f"e2e{os.getpid() % 100000}"
NODEPORT = 30080

NODEPORT_SERVICE = str(REPO / "examples" / "web-app-nodeport.yaml")  # nodePort 30080
EXTRA = """
apiVersion: v1
kind: Pod
metadata:
  name: probe
spec:
  containers:
  - name: probe
    image: busybox
    command: ["sleep", "3600"]
---
apiVersion: v1
kind: Pod
metadata:
  name: pair
spec:
  containers:
  - name: web
    image: nginx:latest
  - name: side
    image: busybox
    command: ["sleep", "3600"]
"""


BEFORE: set[str] = set()  # the host's links, routes and nft tables before the cluster


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    BEFORE.update(host_snapshot())
    with local_cluster(NAME) as c:
        yield c


def test_a_component_that_fails_is_named_with_its_log_and_up_undoes_itself(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broken = ["sh", "-c", "echo kubelet is broken; exit 3"]
    monkeypatch.setattr(LocalNode, "kubelet_argv", lambda self: broken)
    failing = Cluster(f"{NAME}f", nodes=2, make_current=False)
    lines: list[str] = []
    try:
        with pytest.raises(ClusterError) as caught:
            failing.up(progress=lines.append)
        assert caught.value.component.endswith("-kubelet")
        assert "kubelet is broken" in Path(caught.value.log_path).read_text()
        assert any(caught.value.log_path in line for line in lines)
        assert namespaces_with_prefix(clusterstate.namespace_prefix(failing.name)) == []
        assert not failing.state.path.exists()
    finally:
        failing.down(progress=lines.append)


def test_nodes_ready_with_pod_cidrs_and_addresses(cluster: Cluster) -> None:
    table = cli(cluster, "get", "nodes", "-o", "wide").stdout
    assert "node1" in table and "node2" in table
    assert "10.201.0.11" in table and "10.201.0.12" in table
    assert cluster.node_conditions() == {"node1": True, "node2": True}
    # no namespace has a route out, and the CLI reached the cluster over its unix socket
    for node in cluster.nodes:
        assert "default" not in cluster.node_exec(node, ["ip", "route"]).stdout
    assert "default" not in cluster.underlay_exec(["ip", "route"]).stdout
    assert cluster.client_address.startswith("unix:")


PRIVILEGED = """
apiVersion: v1
kind: Pod
metadata:
  name: root-of-the-node
spec:
  hostNetwork: true
  containers:
  - name: sh
    image: busybox
    command: ["sleep", "3600"]
"""


def test_secure_by_default(cluster: Cluster) -> None:
    """TLS on every TCP port with the cluster's certificates, each node only itself, the
    keys private, and Pod Security's baseline level enforced in `default`."""
    tinykube = tinykube_cmd()
    from_outside = partial(cluster.underlay_exec, timeout=60)
    plain = from_outside([*tinykube, "--server", cluster.state.server, "get", "nodes"])
    assert plain.returncode == 1 and "TLS only: give a kubeconfig" in plain.stderr
    admin = from_outside([*tinykube, "--kubeconfig", cluster.pki.admin_conf, "get", "nodes"])
    assert admin.returncode == 0 and "node2" in admin.stdout, admin.stderr
    node2 = ["--kubeconfig", cluster.pki.kubelet_conf("node2")]
    denied = from_outside([*tinykube, *node2, "get", "secrets", "-A"])
    assert denied.returncode == 1 and 'User "system:node:node2" cannot list' in denied.stderr
    for key in (cluster.pki.ca_key, cluster.pki.kubeconfig("admin")):
        assert os.stat(key).st_mode & 0o077 == 0, key
    assert os.stat(Path(cluster.pki.ca_key).parent).st_mode & 0o077 == 0
    assert os.stat(cluster.state.socket).st_mode & 0o007 == 0  # not for every user
    refused = cli(cluster, "apply", "-f", "-", stdin=PRIVILEGED, check=False)
    assert refused.returncode == 1
    assert 'violates PodSecurity "baseline:latest": host namespaces' in refused.stderr
    # Where a namespace says privileged, the same pod runs.
    cli(cluster, "apply", "-f", "-", stdin=PRIVILEGED_NAMESPACE)
    cli(cluster, "apply", "-n", "tools", "-f", "-", stdin=PRIVILEGED)

    def runs() -> bool:
        async def read(client: Any) -> bool:
            pod = await client.get("pods", "root-of-the-node", "tools")
            return bool(pod.status.phase == "Running")

        return bool(cluster.api(read))

    wait(runs, "the hostNetwork pod Running in a privileged namespace", cluster, 60)
    cli(cluster, "delete", "-n", "tools", "pod", "root-of-the-node", "--now")
    cli(cluster, "delete", "namespace", "tools")


PRIVILEGED_NAMESPACE = """
apiVersion: v1
kind: Namespace
metadata:
  name: tools
  labels:
    pod-security.kubernetes.io/enforce: privileged
"""


def test_no_credentials_from_a_namespace_of_its_own(cluster: Cluster, tmp_path: Path) -> None:
    """From the underlay namespace, holding nothing but the CA: the API server's ports answer
    Unauthorized to a list of Secrets and a pod's creation, the kubelet answers Unauthorized
    to an exec, and plain text fails the TLS handshake on the API and kubelet ports."""
    node1 = cluster.state.server.rpartition(":")[0]  # the API server's node, on the underlay
    ca = Path(cluster.pki.ca_cert).read_bytes()
    from_outside = partial(cluster.underlay_exec, timeout=60)
    for port in (6443, TOKEN_PORT):
        ca_only = tmp_path / f"ca-only-{port}.conf"
        config = kubeconfig.new_config(server=f"https://{node1}:{port}", ca_pem=ca, user="x")
        kubeconfig.write(ca_only, config)
        tinykube = [*tinykube_cmd(), "--kubeconfig", str(ca_only)]
        for argv in (["get", "secrets", "-A"], ["run", "x", "--image", "busybox"]):
            out = from_outside([*tinykube, *argv])
            assert out.returncode == 1, out
            assert "error: You must be logged in to the server (Unauthorized)" in out.stderr
    exec_without_cert = from_outside(
        [sys.executable, "-c", KUBELET_EXEC, f"{node1}:10250", cluster.pki.ca_cert]
    )
    assert exec_without_cert.stdout.strip() == "UNAUTHENTICATED Unauthorized", exec_without_cert
    for port in (6443, 10250):
        plain = from_outside(
            ["curl", "-s", "-m", "5", "--http2-prior-knowledge", f"http://{node1}:{port}/"]
        )
        assert plain.returncode != 0, plain


KUBELET_EXEC = """
import asyncio, sys, grpc
from protos import kubelet_pb2, kubelet_pb2_grpc

async def main():
    creds = grpc.ssl_channel_credentials(root_certificates=open(sys.argv[2], "rb").read())
    async with grpc.aio.secure_channel(sys.argv[1], creds) as channel:
        request = kubelet_pb2.ContainerExecRequest(namespace="default", pod="x", command=["id"])
        try:
            await kubelet_pb2_grpc.KubeletStub(channel).Exec(request, timeout=10)
        except grpc.aio.AioRpcError as err:
            print(err.code().name, err.details())

asyncio.run(main())
"""


def test_seed_replicas_run_on_different_nodes(cluster: Cluster) -> None:
    assert "created" in cli(cluster, "apply", "-f", SEED).stdout
    wait(lambda: len(running(cluster)) == 2, "two web-app pods Running", cluster, 120)
    nodes = {node for node, _ in running(cluster).values()}
    assert nodes == {"node1", "node2"}
    table = cli(cluster, "get", "pods", "-o", "wide").stdout
    assert table.count("Running") == 2


def test_pod_to_pod_across_nodes(cluster: Cluster) -> None:
    pods = running(cluster)
    by_node = {node: (name, ip) for name, (node, ip) in pods.items()}
    src, _ = by_node["node1"]
    dst, dst_ip = by_node["node2"]
    out = cli(cluster, "exec", src, "--", "wget", "-qO-", f"http://{dst_ip}/").stdout
    assert served_by(out) == [dst]
    back = cli(cluster, "exec", dst, "--", "wget", "-qO-", f"http://{by_node['node1'][1]}/")
    assert served_by(back.stdout) == [src]


def test_cluster_ip_from_each_node_reaches_both_replicas(cluster: Cluster) -> None:
    ip = cluster_ip(cluster)
    want = set(running(cluster))
    wait(
        lambda: endpoints_of(cluster) == {v[1] for v in running(cluster).values()},
        "endpoints",
        cluster,
    )
    for node in cluster.nodes:
        seen = replicas_seen(partial(curl_from, cluster, node, f"http://{ip}/"), want)
        assert seen == want, f"from {node}: {seen}"
        shell = cli(cluster, "node-shell", node, "--", "curl", "-s", "-m", "5", f"http://{ip}/")
        assert served_by(shell.stdout)[0] in want
    # the API server reaches each node's kubelet (logs) at its InternalIP over the underlay
    for pod in want:
        assert '"GET / HTTP/1.1" 200' in cli(cluster, "logs", pod).stdout


def test_cluster_ip_from_a_pod_reaches_both_replicas(cluster: Cluster) -> None:
    cli(cluster, "apply", "-f", NODEPORT_SERVICE)
    cli(cluster, "apply", "-f", "-", stdin=EXTRA)
    wait(lambda: pod_ready(cluster, "probe"), "the probe pod Running", cluster)
    ip = cluster_ip(cluster)
    want = set(running(cluster))
    loop = f"for i in $(seq 30); do wget -qO- http://{ip}/; done"
    seen = replicas_seen(
        lambda: cli(cluster, "exec", "probe", "--", "sh", "-c", loop).stdout, want, 3
    )
    assert seen == want
    # the issue's own line: a throw-away pod, the Service by its DNS name
    out = cli(cluster, "run", "dns-probe", "--rm", "-it", "--image", "busybox", "--",
              "wget", "-qO-", "web-app-service")  # fmt: skip
    assert served_by(out.stdout)[0] in want


def test_nodeport_from_the_underlay(cluster: Cluster) -> None:
    want = set(running(cluster))
    for address in ("10.201.0.11", "10.201.0.12"):
        url = f"http://{address}:{NODEPORT}/"
        fetch = partial(curl_from, cluster, "underlay", url)
        wait(lambda: bool(fetch()), f"NodePort {url}", cluster, 30)  # noqa: B023
        seen = replicas_seen(fetch, want)
        assert seen == want, f"through {url}: {seen}"
    shell = cli(cluster, "node-shell", "underlay", "--", "curl", "-s", "-m", "5", url)
    assert served_by(shell.stdout)[0] in want


def test_two_containers_of_one_pod_talk_over_localhost(cluster: Cluster) -> None:
    wait(lambda: pod_ready(cluster, "pair"), "the two-container pod Running", cluster)
    out = cli(cluster, "exec", "pair", "-c", "side", "--", "wget", "-qO-", "http://localhost/")
    assert "Welcome to nginx!" in out.stdout
    assert served_by(out.stdout) == ["pair"]


def test_deleted_pod_is_replaced(cluster: Cluster) -> None:
    old = set(running(cluster))
    victim = sorted(old)[0]
    cli(cluster, "delete", "pod", victim)
    wait(
        lambda: two_running(cluster, gone=victim),
        "a replacement Running",
        cluster,
    )
    assert len(set(running(cluster)) - old) == 1


@pytest.mark.timeout(400)
def test_node_failure_moves_the_replica_and_recovery_runs_nothing_twice(cluster: Cluster) -> None:
    spread(cluster)
    on_node2 = [name for name, (node, _) in running(cluster).items() if node == "node2"]
    cluster.stop_component("node2-kubelet", kill=True)  # and the network agent in its process
    cluster.stop_component("node2-containerd", kill=False)
    wait(lambda: not cluster.node_conditions().get("node2"), "node2 NotReady", cluster, 60)
    wait(
        lambda: two_running(cluster, on={"node1"}),
        "both replicas Running on node1",
        cluster,
        120,
    )
    assert not set(on_node2) & set(running(cluster))
    ip = cluster_ip(cluster)
    wait(
        lambda: endpoints_of(cluster) == {v[1] for v in running(cluster).values()},
        "endpoints on node1 only",
        cluster,
    )
    want = set(running(cluster))
    assert replicas_seen(lambda: curl_from(cluster, "node1", f"http://{ip}/"), want) == want

    cluster.up(progress=print)  # restarts node2's containerd and kubelet (with its agent)
    assert cluster.node_conditions().get("node2")
    wait(
        lambda: running_containers(cluster, "node2", "web-app") == [],
        "node2 stopped its evicted replica",
        cluster,
        90,
    )
    assert set(running(cluster)) == want
    assert running_containers(cluster, "node1", "web-app") == sorted(want)
    assert len(web_pods(cluster)) == 2


def test_status_node_shell_and_up_again(cluster: Cluster) -> None:
    again = cli(cluster, "up", "--name", cluster.name)
    assert "already running" in again.stdout
    out = cli(cluster, "status")
    assert out.stdout.count("running") == len(cluster.components())
    assert "node/node2" in out.stdout and "NotReady" not in out.stdout
    assert (
        cli(cluster, "node-shell", "node2", "--", "sh", "-c", "exit 7", check=False).returncode == 7
    )
    addr = cli(cluster, "node-shell", "node2", "--", "ip", "-o", "addr", "show", "eth1").stdout
    assert "10.201.0.12/24" in addr


@pytest.mark.timeout(600)
def test_verify_script_passes(cluster: Cluster) -> None:
    spread(cluster)  # after the failover both replicas are on node1; verify.sh wants one each
    env = dict(os.environ, TINYKUBE_CLUSTER=cluster.name, TINYKUBE=str(REPO / ".venv/bin/tinykube"))
    env.pop("TINYKUBE_SERVER", None)
    env["VERIFY_EXTERNAL"] = f"ip netns exec {cluster.underlay.ns.name} curl -fsS -m 5"
    out = subprocess.run(
        ["bash", str(REPO / "vagrant" / "verify.sh"), SEED],
        capture_output=True,
        text=True,
        env=env,
        timeout=500,
        check=False,
    )
    assert out.stdout.rstrip().endswith("PASS"), out.stdout + out.stderr


def test_down_after_a_crash_leaves_nothing_behind(cluster: Cluster) -> None:
    for key in cluster.components():  # kill -9 of every process: pods and shims live on
        cluster.stop_component(key, kill=True)
    assert running_containers_left(cluster)
    cli(cluster, "down", "--name", cluster.name, timeout=180)
    assert_nothing_left(cluster)


@pytest.mark.timeout(400)
def test_docker_runtime_cluster_serves_the_seed() -> None:
    with local_cluster(f"{NAME}d", runtime="docker") as docker:
        assert "docker://" in cli(docker, "get", "nodes", "-o", "wide").stdout
        cli(docker, "apply", "-f", SEED)
        wait(lambda: len(running(docker)) == 2, "two web-app pods Running", docker, 120)
        assert {node for node, _ in running(docker).values()} == {"node1", "node2"}
        want = set(running(docker))
        ip = cluster_ip(docker)
        wait(lambda: len(endpoints_of(docker)) == 2, "endpoints", docker)
        for node in docker.nodes:
            seen = replicas_seen(partial(curl_from, docker, node, f"http://{ip}/"), want)
            assert seen == want, f"from {node}: {seen}"
        cli(docker, "down", "--name", docker.name, timeout=180)
        assert_nothing_left(docker)


def running_containers_left(cluster: Cluster) -> list[str]:
    """Pids of processes naming the cluster's directory (shims, containers' parents)."""
    marker = str(cluster.directory).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "cmdline").read_bytes():
                    found.append(entry.name)
            except OSError:
                pass
    return found


def assert_nothing_left(cluster: Cluster) -> None:
    prefix = clusterstate.namespace_prefix(cluster.name)
    directory = cluster.directory
    assert namespaces_with_prefix(prefix) == []
    assert not directory.exists()
    assert mounts_under(directory) == []
    leftovers = running_containers_left(cluster)
    assert leftovers == [], f"processes still running: {leftovers}\n{logs(cluster)}"
    assert cluster_traces(BEFORE, host_snapshot()) == []
