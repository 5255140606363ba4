"""Probes of a local cluster shared by the e2e tests and the benchmarks (bench/chaos.py).

Each one looks at the cluster the way a user would: `cli` runs `tinykube`
as typed at a shell, `curl_from` sends one HTTP GET from a node's namespace,
`served_by` reads which replica answered (the offline nginx page names its
pod), and `running_containers` asks a node's containerd over CRI which pods
really run. `wait` polls a check and, on timeout, fails with the cluster's
log tails, so a failure says what the components were doing.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from localcluster.cluster import Cluster
from localcluster.processes import REPO, cluster_env, tinykube_cmd

SEED = str(REPO / "examples" / "web-app.yaml")
SERVED_BY = re.compile(r"Served by pod ([a-z0-9-]+)")


def cli(
    cluster: Cluster, *args: str, check: bool = True, timeout: float = 90, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`tinykube ARGS` as a user types it, finding the cluster by TINYKUBE_CLUSTER."""
    out = subprocess.run(
        [*tinykube_cmd(), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env=cluster_env(cluster.name),
        check=False,
    )
    if check:
        assert out.returncode == 0, f"tinykube {' '.join(args)}\n{out.stdout}\n{out.stderr}"
    return out


def served_by(text: str) -> list[str]:
    """The pod names in nginx pages (the offline image's page names its pod)."""
    return SERVED_BY.findall(text)


def curl_from(cluster: Cluster, where: str, url: str) -> str:
    """One HTTP GET from a node's namespace (or "underlay"); "" on failure."""
    argv = ["curl", "-s", "-m", "5", url]
    out = cluster.underlay_exec(argv) if where == "underlay" else cluster.node_exec(where, argv)
    return out.stdout if out.returncode == 0 else ""


def replicas_seen(fetch: Callable[[], str], want: set[str], tries: int = 50) -> set[str]:
    """Pods named by up to `tries` fetches, stopping once all of `want` answered."""
    seen: set[str] = set()
    for _ in range(tries):
        seen.update(served_by(fetch()))
        if want <= seen:
            break
    return seen


def wait(check: Callable[[], bool], what: str, cluster: Cluster, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}\n{logs(cluster)}")


def logs(cluster: Cluster, chars: int = 3000) -> str:
    parts = []
    for log in sorted(Path(cluster.state.log_dir).glob("*.log")):
        parts.append(f"==== {log.name}\n{log.read_text(errors='replace')[-chars:]}")
    return "\n".join(parts)


def running_containers(cluster: Cluster, node: str, pod_prefix: str) -> list[str]:
    """Names of pods with a RUNNING container on `node`'s containerd (through CRI)."""
    import grpc

    from protos import cri_pb2, cri_pb2_grpc

    socket = cluster.node(node).paths.containerd_socket
    running = cri_pb2.ContainerStateValue(state=cri_pb2.CONTAINER_RUNNING)
    with grpc.insecure_channel(f"unix://{socket}") as channel:
        stub = cri_pb2_grpc.RuntimeServiceStub(channel)
        reply = stub.ListContainers(
            cri_pb2.ListContainersRequest(filter=cri_pb2.ContainerFilter(state=running)),
            timeout=10,
        )
    names = [c.labels.get("io.kubernetes.pod.name", "") for c in reply.containers]
    return sorted(n for n in names if n.startswith(pod_prefix))
