"""The real kubectl lists in pages: `kubectl get pods --chunk-size=2` against a real API server.

kubectl reads a list in chunks (`--chunk-size`, 500 by default) through
client-go's pager: `?limit=N`, then `?limit=N&continue=TOKEN` until a page
has no token, and it prints the pages as one table. One `tinykube apiserver`
process (TLS, the PKI of `pki init`), seven Pods (Pending: no node joins),
and kubectl at `-v=6` so its requests show in its log: the pages it asked
for, each answered 200, and every Pod printed once. Skipped where no kubectl
is installed.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from tests.procs import REPO, ApiServerProcess

KUBECTL = shutil.which("kubectl")
PODS = 7

pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")


def pod(name: str) -> str:
    return (
        "apiVersion: v1\nkind: Pod\n"
        f"metadata: {{name: {name}, labels: {{app: paging}}}}\n"
        "spec: {containers: [{name: c, image: nginx:latest}]}\n"
    )


@pytest.fixture(scope="module")
def kubectl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The environment kubectl runs in, against a started API server."""
    server = ApiServerProcess(tmp_path_factory.mktemp("paging") / "data")
    server.start()
    try:
        home: Path = tmp_path_factory.mktemp("home")
        yield {
            **{k: v for k, v in os.environ.items() if not k.startswith("KUBE")},
            "KUBECONFIG": str(server.admin_kubeconfig),
            "HOME": str(home),
        }
    finally:
        server.stop()


def run(
    env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    assert KUBECTL is not None
    out = subprocess.run(
        [KUBECTL, *args], input=stdin, capture_output=True, text=True, timeout=60, env=env, cwd=REPO
    )
    assert out.returncode == 0, (args, out.stdout, out.stderr)
    return out


def test_get_pods_with_chunk_size_reads_every_page(kubectl: dict[str, str]) -> None:
    names = [f"paged-{i}" for i in range(PODS)]
    run(kubectl, "apply", "-f", "-", stdin="---\n".join(pod(n) for n in names))
    out = run(kubectl, "get", "pods", "--chunk-size=2", "-v=6")
    rows = out.stdout.splitlines()
    assert rows[0].split()[:3] == ["NAME", "READY", "STATUS"]
    assert [row.split()[0] for row in rows[1:]] == names  # one table, each Pod once
    requests = re.findall(
        r"GET https://\S+/api/v1/namespaces/default/pods\?(\S+) 200 OK", out.stderr
    )
    assert len(requests) == 4, out.stderr  # 2 + 2 + 2 + 1
    assert all("limit=2" in query for query in requests)
    assert "continue=" not in requests[0]
    tokens = [parse_qs(query)["continue"][0] for query in requests[1:]]
    # Kubernetes' own tokens: the next key after the last one shown, all at one revision.
    decoded = [json.loads(base64.urlsafe_b64decode(t + "=" * (-len(t) % 4))) for t in tokens]
    assert [d["start"] for d in decoded] == ["paged-1\0", "paged-3\0", "paged-5\0"]
    assert len({d["rv"] for d in decoded}) == 1 and decoded[0]["v"] == "meta.k8s.io/v1"
    labelled = run(kubectl, "get", "pods", "-l", "app=paging", "--chunk-size=3", "-o", "name")
    assert labelled.stdout.split() == [f"pod/{n}" for n in names]
