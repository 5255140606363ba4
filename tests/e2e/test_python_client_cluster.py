"""The official Python client (`kubernetes` from PyPI) against a real two-node cluster.

The script (scripts/python_client_session.py) is what a user writes: it
creates a Deployment, lists its pods with a label selector, watches until
two are Running on real nodes, reads a pod's log through the API server and
the kubelet, patches and deletes. It runs in the cluster's underlay
namespace with the cluster's admin kubeconfig, so nothing touches the
host's network. (The watch's resume after an API server restart is
tests/unit/apiserver/httpapi/test_python_client_resume.py.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from localcluster.cluster import Cluster
from tests.e2e.localcluster_fixture import local_cluster, logs, skip_reason

pytest.importorskip("kubernetes")
pytestmark = pytest.mark.skipif(bool(skip_reason()), reason=skip_reason() or "ready")

NAME = f"py{os.getpid() % 100000}"
SCRIPT = Path(__file__).parent / "scripts" / "python_client_session.py"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with local_cluster(NAME) as c:
        yield c


@pytest.mark.timeout(300)
def test_a_python_client_session(cluster: Cluster) -> None:
    argv = [*cluster.underlay.ns.prefix(), sys.executable, str(SCRIPT), cluster.pki.admin_conf]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=240, check=False)
    assert out.returncode == 0, f"{out.stdout}\n{out.stderr}\n{logs(cluster)}"
    assert out.stdout.splitlines() == [
        "created pyweb",
        "running 2",
        "log str",
        "replicas 1",
        "deleted",
    ]
