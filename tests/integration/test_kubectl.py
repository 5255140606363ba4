"""The real kubectl against a real API server over TLS: the seed's session, typed as a user would.

One `tinykube apiserver` process for the module, as `tinykube up` runs it (TLS on its port with
the PKI of `pki init`, the scheduler and controllers in the process), and the machine's own
kubectl with the admin kubeconfig pki init wrote: `KUBECONFIG=admin.conf kubectl ...`, unchanged.
No node joins, so pods stay Pending: what is tested is the API kubectl sees. kubectl's caches
go to the test's own directory. Skipped where no kubectl is installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.procs import REPO, ApiServerProcess

SEED = REPO / "examples" / "web-app.yaml"
KUBECTL = shutil.which("kubectl")

pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")


class Kubectl:
    def __init__(self, kubeconfig: Path, home: Path) -> None:
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("KUBE")},
            "KUBECONFIG": str(kubeconfig),
            "HOME": str(home),
        }

    def __call__(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        assert KUBECTL is not None
        out = subprocess.run(
            [KUBECTL, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            env=self.env,
            cwd=REPO,
        )
        if check:
            assert out.returncode == 0, (args, out.stdout, out.stderr)
        return out

    def popen(self, *args: str) -> subprocess.Popen[str]:
        assert KUBECTL is not None
        return subprocess.Popen(
            [KUBECTL, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
        )


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServerProcess]:
    server = ApiServerProcess(tmp_path_factory.mktemp("kubectl") / "data")
    server.add_node("node1")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def kubectl(srv: ApiServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return Kubectl(srv.admin_kubeconfig, tmp_path_factory.mktemp("home"))


def wait_for(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def test_version_and_nodes_with_the_kubeconfig_unchanged(kubectl: Kubectl) -> None:
    assert "Server Version: v1.32.0+tinykube-" in kubectl("version").stdout
    assert kubectl("get", "nodes").stderr.strip() == "No resources found"
    assert "kube-system" in kubectl("get", "namespaces").stdout


def test_apply_twice(kubectl: Kubectl) -> None:
    first = kubectl("apply", "-f", str(SEED)).stdout.splitlines()
    assert first == ["deployment.apps/web-app created", "service/web-app-service created"]
    second = kubectl("apply", "-f", str(SEED)).stdout.splitlines()
    assert second == ["deployment.apps/web-app unchanged", "service/web-app-service unchanged"]


def test_get_pods_wide_and_deployments(kubectl: Kubectl) -> None:
    def two_pods() -> bool:
        return kubectl("get", "pods", "-o", "name").stdout.count("pod/web-app-") == 2

    wait_for(two_pods, "the deployment's two pods")
    wide = kubectl("get", "pods", "-o", "wide").stdout.splitlines()
    assert wide[0].split() == [
        "NAME",
        "READY",
        "STATUS",
        "RESTARTS",
        "AGE",
        "IP",
        "NODE",
        "NOMINATED",
        "NODE",
        "READINESS",
        "GATES",
    ]
    for row in wide[1:]:
        assert row.split()[1:4] == ["0/1", "Pending", "0"]
    deploy = kubectl("get", "deploy").stdout.splitlines()
    assert deploy[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert deploy[1].split()[:2] == ["web-app", "0/2"]
    svc = kubectl("get", "svc", "web-app-service").stdout.splitlines()[1].split()
    assert svc[:2] == ["web-app-service", "ClusterIP"]
    assert svc[2].startswith("10.")


def test_describe_and_explain(kubectl: Kubectl) -> None:
    described = kubectl("describe", "deployment", "web-app").stdout
    assert "Name:                   web-app" in described
    assert "Selector:               app=web-app" in described
    assert "Replicas:               2 desired" in described
    assert "nginx:latest" in described
    explained = kubectl("explain", "deployment.spec.replicas").stdout
    assert "FIELD: replicas <integer>" in explained
    assert "KIND:       Deployment" in explained


def test_auth_can_i(kubectl: Kubectl, srv: ApiServerProcess, tmp_path: Path) -> None:
    assert kubectl("auth", "can-i", "create", "pods").stdout.strip() == "yes"
    node = Kubectl(srv.kubeconfig("kubelet-node1"), tmp_path)
    refused = node("auth", "can-i", "list", "secrets", check=False)
    assert refused.returncode == 1
    assert (
        refused.stdout.strip() == "no - no relationship found between node 'node1' and this object"
    )
    assert node("auth", "whoami").stdout.split("\n")[1].split()[-1] == "system:node:node1"
    assert "No resources found" in node("get", "nodes").stderr


def test_get_watch_receives_an_event(kubectl: Kubectl) -> None:
    watcher = kubectl.popen("get", "configmaps", "-w", "--output-watch-events")
    try:
        time.sleep(1.5)  # the watch is open before the write
        kubectl("create", "configmap", "watched", "--from-literal=a=b")
        assert watcher.stdout is not None
        seen = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = watcher.stdout.readline()
            seen.append(line)
            if "watched" in line:
                break
        assert any(line.split()[:2] == ["ADDED", "watched"] for line in seen), seen
    finally:
        watcher.kill()
        watcher.communicate()


def test_label_patch_scale(kubectl: Kubectl) -> None:
    assert kubectl("label", "deploy", "web-app", "tier=frontend").stdout.strip() == (
        "deployment.apps/web-app labeled"
    )
    labels = kubectl("get", "deploy", "web-app", "--show-labels").stdout.splitlines()[1]
    assert labels.split()[-1] == "tier=frontend"
    patched = kubectl("patch", "deploy", "web-app", "-p", '{"spec":{"revisionHistoryLimit":3}}')
    assert patched.stdout.strip() == "deployment.apps/web-app patched"
    typed = kubectl(
        "patch",
        "deploy",
        "web-app",
        "--type",
        "json",
        "-p",
        '[{"op":"add","path":"/spec/minReadySeconds","value":1}]',
    )
    assert typed.stdout.strip() == "deployment.apps/web-app patched"
    assert kubectl("scale", "deploy", "web-app", "--replicas=3").stdout.strip() == (
        "deployment.apps/web-app scaled"
    )
    fields = "{.spec.replicas} {.spec.revisionHistoryLimit} {.spec.minReadySeconds}"
    got = kubectl("get", "deploy", "web-app", "-o", f"jsonpath={fields}").stdout
    assert got == "3 3 1"
    bad = kubectl("patch", "deploy", "web-app", "-p", '{"spec":{"replicas":-1}}', check=False)
    assert bad.returncode == 1
    assert 'The Deployment "web-app" is invalid' in bad.stderr


def test_bad_manifests_are_refused_in_kubernetes_words(kubectl: Kubectl) -> None:
    typo = SEED.read_text().replace("replicas: 2", "replicass: 2")
    out = kubectl("apply", "-f", "-", stdin=typo, check=False)
    assert out.returncode == 1
    assert 'unknown field "spec.replicass"' in out.stderr
    bad_name = kubectl("create", "namespace", "Bad_Name", check=False)
    assert bad_name.returncode == 1
    assert 'The Namespace "Bad_Name" is invalid: metadata.name: Invalid value' in bad_name.stderr
    missing = kubectl("get", "deploy", "nope", check=False)
    assert missing.stderr.strip() == (
        'Error from server (NotFound): deployments.apps "nope" not found'
    )


def test_server_side_apply_and_its_conflicts(kubectl: Kubectl, tmp_path: Path) -> None:
    manifest = tmp_path / "ssa.yaml"
    manifest.write_text(SEED.read_text().split("---")[0].replace("web-app", "ssa"))
    applied = kubectl("apply", "--server-side", "-f", str(manifest))
    assert applied.stdout.strip() == "deployment.apps/ssa serverside-applied"
    kubectl("scale", "deploy", "ssa", "--replicas=4")
    clash = kubectl("apply", "--server-side", "-f", str(manifest), check=False)
    assert clash.returncode == 1
    assert "Apply failed with 1 conflict" in clash.stderr
    assert ".spec.replicas" in clash.stderr
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(manifest))
    assert kubectl("get", "deploy", "ssa", "-o", "jsonpath={.spec.replicas}").stdout == "2"
    kubectl("delete", "deploy", "ssa")


def test_delete_f(kubectl: Kubectl) -> None:
    out = kubectl("delete", "-f", str(SEED)).stdout.splitlines()
    assert out == ['deployment.apps "web-app" deleted', 'service "web-app-service" deleted']
    assert kubectl("get", "deploy").stderr.strip() == "No resources found in default namespace."
