"""The machine's kubectl against a real two-node `tinykube up` cluster running the seed manifest.

A user's session, typed as in Kubernetes' documentation, with the admin
kubeconfig `tinykube pki init` wrote for the cluster (kubernetes-admin,
mutual TLS to node1's 10.201.0.11:6443). kubectl runs in the cluster's
underlay namespace -- the cluster's own network, where a machine beside the
nodes would be -- so nothing touches the host's network; so does the curl
that goes through `kubectl port-forward`. In order, on one cluster:

    kubectl apply -f examples/web-app.yaml       created, then unchanged
    kubectl get pods -o wide                     two replicas Running, one per node
    kubectl exec POD -- cat /etc/nginx/nginx.conf   the image's file, byte for byte;
        exec -i with stdin, and a non-zero exit code as kubectl's own exit code
    kubectl port-forward pod/POD 18080:80 + curl the nginx page, served by that pod
    kubectl logs POD                             nginx's access log line for that GET
    kubectl scale --replicas 3, rollout status   a third replica, "successfully rolled out"
    kubectl get pods -w                          a deleted pod's replacement arrives as an event
    kubectl describe pod, explain, auth can-i    the node, the events; the field's type; yes
    kubectl set image + rollout undo             "image updated", then "rolled back" to nginx:latest
    kubectl label, patch, edit (scripted editor) "labeled", "patched", "edited"
    kubectl apply --server-side                  "serverside-applied"
    kubectl delete -f examples/web-app.yaml      deleted, and the pods go

Each expected output is what Kubernetes prints for the command.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from localcluster.cluster import Cluster
from localcluster.images import NGINX_CONF
from tests.e2e.localcluster_fixture import SEED, local_cluster, logs, served_by, skip_reason

KUBECTL = shutil.which("kubectl")
REASON = skip_reason() or ("kubectl is not installed" if KUBECTL is None else "")
pytestmark = pytest.mark.skipif(bool(REASON), reason=REASON or "ready")

NAME = f"kc{os.getpid() % 100000}"
LOCAL_PORT = 18080


class Kubectl:
    """kubectl with the cluster's admin kubeconfig, run in the underlay namespace."""

    def __init__(self, cluster: Cluster, home: Path) -> None:
        assert KUBECTL is not None
        self.cluster = cluster
        env = ["env", "-i", f"HOME={home}", "PATH=/usr/bin:/bin"]
        self.argv = [*cluster.underlay.ns.prefix(), *env, KUBECTL]
        self.argv += ["--kubeconfig", cluster.pki.admin_conf]

    def __call__(
        self,
        *args: str,
        stdin: str | None = None,
        check: bool = True,
        timeout: float = 120,
        env: tuple[str, ...] = (),
    ) -> subprocess.CompletedProcess[str]:
        argv = [*self.argv[:-3], *env, *self.argv[-3:]] if env else self.argv
        out = subprocess.run(
            [*argv, *args], input=stdin, capture_output=True, text=True, timeout=timeout
        )
        if check:
            assert out.returncode == 0, (args, out.stdout, out.stderr)
        return out

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*self.argv, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with local_cluster(NAME) as c:
        yield c


@pytest.fixture(scope="module")
def kubectl(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return Kubectl(cluster, tmp_path_factory.mktemp("home"))


def wait(check: Callable[[], bool], what: str, cluster: Cluster, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}\n{logs(cluster)}")


def running_pods(kubectl: Kubectl) -> list[str]:
    """Names of the web-app pods Running (and not being deleted)."""
    template = (
        "{range .items[?(@.status.phase=='Running')]}"
        "{.metadata.name} {.metadata.deletionTimestamp}{'\\n'}{end}"
    )
    out = kubectl("get", "pods", "-l", "app=web-app", "-o", f"jsonpath={template}").stdout
    return sorted(line.split()[0] for line in out.splitlines() if len(line.split()) == 1)


def test_apply_twice(kubectl: Kubectl) -> None:
    first = kubectl("apply", "-f", SEED).stdout.splitlines()
    assert first == ["deployment.apps/web-app created", "service/web-app-service created"]
    second = kubectl("apply", "-f", SEED).stdout.splitlines()
    assert second == ["deployment.apps/web-app unchanged", "service/web-app-service unchanged"]


def test_get_pods_wide(kubectl: Kubectl, cluster: Cluster) -> None:
    wait(lambda: len(running_pods(kubectl)) == 2, "two web-app pods Running", cluster)
    table = kubectl("get", "pods", "-o", "wide").stdout.splitlines()
    assert table[0].split() == [
        "NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE",
        "NOMINATED", "NODE", "READINESS", "GATES",
    ]  # fmt: skip
    rows = [line.split() for line in table[1:]]
    assert len(rows) == 2
    for row in rows:
        assert row[0].startswith("web-app-")
        assert row[1:4] == ["1/1", "Running", "0"]
        assert row[5].startswith("10.244.")
        assert row[7:] == ["<none>", "<none>"]
    assert {row[6] for row in rows} == {"node1", "node2"}


def test_exec(kubectl: Kubectl) -> None:
    pod = running_pods(kubectl)[0]
    conf = kubectl("exec", pod, "--", "cat", "/etc/nginx/nginx.conf")
    assert conf.stdout == NGINX_CONF
    piped = kubectl("exec", "-i", pod, "--", "cat", stdin="one\ntwo\n")
    assert piped.stdout == "one\ntwo\n"
    failed = kubectl("exec", pod, "--", "sh", "-c", "echo bye >&2; exit 3", check=False)
    assert failed.returncode == 3
    assert failed.stderr == "bye\ncommand terminated with exit code 3\n"


def test_port_forward_and_logs(kubectl: Kubectl, cluster: Cluster) -> None:
    pod = running_pods(kubectl)[0]
    proc = kubectl.popen("port-forward", f"pod/{pod}", f"{LOCAL_PORT}:80")
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first == f"Forwarding from 127.0.0.1:{LOCAL_PORT} -> 80\n", proc.stderr
        url = f"http://127.0.0.1:{LOCAL_PORT}/"
        page = cluster.underlay_exec(["curl", "-s", "-S", "-m", "10", url])
        assert page.returncode == 0, page.stderr
        assert "Welcome to nginx!" in page.stdout
        assert served_by(page.stdout) == [pod]
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert f"Handling connection for {LOCAL_PORT}" in out, err
    log = kubectl("logs", pod).stdout
    assert '"GET / HTTP/1.1" 200' in log and "curl/" in log, log


def test_scale_and_rollout_status(kubectl: Kubectl, cluster: Cluster) -> None:
    scaled = kubectl("scale", "deployment", "web-app", "--replicas", "3")
    assert scaled.stdout == "deployment.apps/web-app scaled\n"
    status = kubectl("rollout", "status", "deployment/web-app", "--timeout=180s", timeout=200)
    assert status.stdout.splitlines()[-1] == 'deployment "web-app" successfully rolled out'
    wait(lambda: len(running_pods(kubectl)) == 3, "three web-app pods Running", cluster)


def test_watch_describe_explain_can_i(kubectl: Kubectl, cluster: Cluster) -> None:
    watcher = kubectl.popen("get", "pods", "-l", "app=web-app", "-w", "--output-watch-events")
    try:
        time.sleep(1.5)  # the watch is open before the delete
        victim = running_pods(kubectl)[0]
        kubectl("delete", "pod", victim, "--wait=false")
        assert watcher.stdout is not None
        added: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not added:
            words = watcher.stdout.readline().split()
            if words[:1] == ["ADDED"] and words[1] != victim:
                added.append(words[1])
        assert added, "no ADDED event for the replacement"
    finally:
        watcher.kill()
        watcher.communicate()
    wait(lambda: len(running_pods(kubectl)) == 3, "three web-app pods Running again", cluster)
    pod = running_pods(kubectl)[0]
    described = kubectl("describe", "pod", pod).stdout
    lines = [line.split() for line in described.splitlines()]
    assert ["Name:", pod] in lines
    assert any(w[:1] == ["Node:"] and w[1].startswith("node") for w in lines if len(w) == 2)
    assert "Events:" in described
    explained = kubectl("explain", "deployment.spec.replicas").stdout
    assert "FIELD: replicas <integer>" in explained and "<empty>" not in explained
    assert kubectl("auth", "can-i", "create", "pods").stdout.strip() == "yes"


def test_set_image_undo_label_patch_edit_server_side(
    kubectl: Kubectl, cluster: Cluster, tmp_path: Path
) -> None:
    updated = kubectl("set", "image", "deployment/web-app", "web-app=nginx:not-in-registry")
    assert updated.stdout.strip() == "deployment.apps/web-app image updated"
    undone = kubectl("rollout", "undo", "deployment/web-app")
    assert undone.stdout.strip() == "deployment.apps/web-app rolled back"
    status = kubectl("rollout", "status", "deployment/web-app", "--timeout=180s", timeout=200)
    assert status.stdout.splitlines()[-1] == 'deployment "web-app" successfully rolled out'
    image = kubectl("get", "deploy", "web-app", "-o", "jsonpath={..containers[0].image}")
    assert image.stdout == "nginx:latest"

    labeled = kubectl("label", "deployment", "web-app", "tier=frontend")
    assert labeled.stdout.strip() == "deployment.apps/web-app labeled"
    patched = kubectl("patch", "deployment", "web-app", "-p", '{"spec":{"minReadySeconds":1}}')
    assert patched.stdout.strip() == "deployment.apps/web-app patched"
    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\nsed -i 's/minReadySeconds: 1/minReadySeconds: 2/' \"$1\"\n")
    editor.chmod(0o755)
    edited = kubectl("edit", "deployment", "web-app", env=(f"KUBE_EDITOR={editor}",))
    assert edited.stdout.strip() == "deployment.apps/web-app edited"
    fields = "{.metadata.labels.tier} {.spec.minReadySeconds}"
    got = kubectl("get", "deploy", "web-app", "-o", f"jsonpath={fields}")
    assert got.stdout == "frontend 2"

    manifest = tmp_path / "ssa.yaml"
    manifest.write_text(Path(SEED).read_text().split("---")[1].replace("web-app-service", "ssa"))
    applied = kubectl("apply", "--server-side", "-f", str(manifest))
    assert applied.stdout.strip() == "service/ssa serverside-applied"
    kubectl("delete", "service", "ssa")


def test_delete_f(kubectl: Kubectl, cluster: Cluster) -> None:
    out = kubectl("delete", "-f", SEED).stdout.splitlines()
    assert out == ['deployment.apps "web-app" deleted', 'service "web-app-service" deleted']

    def gone() -> bool:
        return kubectl("get", "pods").stderr.strip() == "No resources found in default namespace."

    wait(gone, "the web-app pods to go", cluster)
