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
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from localcluster import prereqs
from localcluster.cluster import Cluster

# The probes live in localcluster/probes.py (bench/chaos.py uses them too); the e2e tests
# import them from here.
from localcluster.probes import (
    SEED as SEED,
)
from localcluster.probes import (
    cli as cli,
)
from localcluster.probes import (
    curl_from as curl_from,
)
from localcluster.probes import (
    logs as logs,
)
from localcluster.probes import (
    replicas_seen as replicas_seen,
)
from localcluster.probes import (
    running_containers as running_containers,
)
from localcluster.probes import (
    served_by as served_by,
)
from localcluster.probes import (
    wait as wait,
)


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
