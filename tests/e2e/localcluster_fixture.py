"""A real two-node local cluster for end-to-end tests, and the probes they use.

The cluster is `tinykube up`'s own (localcluster.cluster.Cluster) under a name
unique to the test process, with the short failover timings, and not made the
user's current cluster; it is removed in a `finally` however the tests end.
Every probe runs inside the cluster's namespaces (`nsenter` into a node or the
underlay namespace, or `tinykube exec` into a pod), so no traffic touches the
host's network.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from localcluster import prereqs
from localcluster.cluster import Cluster
from localcluster.processes import REPO, cluster_env, tinykube_cmd

SEED = str(REPO / "examples" / "web-app.yaml")
SERVED_BY = re.compile(r"Served by pod ([a-z0-9-]+)")


@functools.lru_cache(maxsize=1)
def skip_reason() -> str:
    if os.geteuid() != 0:
        return "needs root (namespaces, containerd, nftables)"
    problems = prereqs.check()
    if shutil.which("dockerd") is None:
        problems.append("dockerd not found: apt-get install docker.io")
    if shutil.which("curl") is None:
        problems.append("curl not found: apt-get install curl")
    return "; ".join(problems)


@contextmanager
def local_cluster(name: str, runtime: str = "containerd") -> Iterator[Cluster]:
    cluster = Cluster(name, nodes=2, runtime=runtime, fast_failover=True, make_current=False)
    try:
        cluster.up(progress=print)
        yield cluster
    finally:
        cluster.down(progress=print)


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


def host_snapshot() -> set[str]:
    """The host's links, routes and nft tables, one string each (to diff before/after)."""

    def out(*argv: str) -> list[str]:
        return subprocess.run(argv, capture_output=True, text=True, check=False).stdout.splitlines()

    links = [f"link {line.split(':')[1].strip()}" for line in out("ip", "-o", "link")]
    routes = [f"route {line}" for line in out("ip", "route")]
    tables = [f"nft {line}" for line in out("nft", "list", "tables")]
    return {*links, *routes, *tables}


CLUSTER_MARKS = ("tk0", "tinykube", "ul0", "v-node", "10.244.", "10.201.", "10.96.")


def cluster_traces(before: set[str], after: set[str]) -> list[str]:
    """Host entries that appeared and look like the cluster's (other tests may add their own)."""
    return sorted(e for e in after - before if any(mark in e for mark in CLUSTER_MARKS))


def skip_unless_ready() -> None:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
