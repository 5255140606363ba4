"""The real kubectl's exec and port-forward against `tinykube apiserver` and a stand-in kubelet.

kubectl 1.30+ runs exec over a WebSocket (`v5.channel.k8s.io`) and 1.31+
port-forward over SPDY tunnelled in a WebSocket; with
KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false and KUBECTL_PORT_FORWARD_WEBSOCKETS=false
both use plain SPDY/3.1, the protocol they fall back to. Every test runs
both ways.

The API server is the real process with pki init's PKI, as in
test_kubectl.py; it dials the node's kubelet with its kubelet-client
certificate, and the stand-in kubelet here serves the node's own serving
certificate and checks the caller's against the CA, as a kubelet does. It is
a gRPC server in this process whose exec is scripted (`cat FILE`, `cat` of
stdin, `sh -c "exit N"`) and whose port-forward connects, for real, to a
small HTTP server on a loopback port standing for the pod's port 80. The
pod is bound to the node and marked Running by hand: no real kubelet runs.
"""

from __future__ import annotations

import http.server
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from localcluster.processes import free_port
from tests.integration.scripted_kubelet import NGINX_CONF, ScriptedKubelet, serving
from tests.integration.test_kubectl import KUBECTL, Kubectl
from tests.procs import ApiServerProcess

pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")

PAGE = b"<h1>Welcome to nginx!</h1>\n"
POD = """\
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  nodeName: node1
  containers:
  - {name: nginx, image: "nginx:latest", ports: [{containerPort: 80}]}
"""
MODES = {
    "websocket": {},
    "spdy": {
        "KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false",
        "KUBECTL_PORT_FORWARD_WEBSOCKETS": "false",
    },
}


class Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def page() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServerProcess]:
    server = ApiServerProcess(tmp_path_factory.mktemp("streams") / "data")
    server.add_node("node1")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def kubelet(srv: ApiServerProcess, page: int) -> Iterator[ScriptedKubelet]:
    """The stand-in on mutual TLS with node1's serving certificate."""
    cert, key = srv.pki.kubelet_serving("node1")
    stand_in = ScriptedKubelet(page)
    with serving(stand_in, cert, key, srv.pki.ca_cert) as port:
        stand_in.port = port
        yield stand_in


@pytest.fixture(scope="module")
def admin(srv: ApiServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return Kubectl(srv.admin_kubeconfig, tmp_path_factory.mktemp("home"))


@pytest.fixture(scope="module")
def running_pod(admin: Kubectl, kubelet: ScriptedKubelet) -> str:
    """Node node1 (its kubelet: the stand-in) and pod web on it, Running."""
    admin("apply", "-f", "-", stdin="apiVersion: v1\nkind: Node\nmetadata: {name: node1}\n")
    port = kubelet.port
    status = (
        '{"status":{"addresses":[{"type":"InternalIP","address":"127.0.0.1"}],'
        f'"daemonEndpoints":{{"kubeletEndpoint":{{"Port":{port}}}}}}}}}'
    )
    admin("patch", "node", "node1", "--subresource=status", "--type=merge", "-p", status)
    admin("apply", "-f", "-", stdin=POD)
    running = '{"status":{"phase":"Running"}}'
    admin("patch", "pod", "web", "--subresource=status", "--type=merge", "-p", running)
    return "web"


def in_mode(admin: Kubectl, mode: str) -> Kubectl:
    kubectl = Kubectl.__new__(Kubectl)
    kubectl.env = {**admin.env, **MODES[mode]}
    return kubectl


@pytest.mark.parametrize("mode", sorted(MODES))
def test_exec(
    srv: ApiServerProcess, admin: Kubectl, running_pod: str, kubelet: ScriptedKubelet, mode: str
) -> None:
    kubectl = in_mode(admin, mode)
    out = kubectl("exec", "-v=6", running_pod, "--", "cat", "/etc/nginx/nginx.conf")
    assert out.stdout == NGINX_CONF
    method = "GET" if mode == "websocket" else "POST"  # a WebSocket upgrade is a GET
    upgraded = f"{method} https://{srv.secure_address}/api/v1/namespaces/default/pods/web/exec?command=cat&"
    lines = out.stderr.splitlines()
    assert any(upgraded in line and "101 Switching Protocols" in line for line in lines), lines
    start = kubelet.starts[-1]
    assert (start.pod, start.container, start.stdin, start.stdout, start.stderr) == (
        "web",
        "nginx",
        False,
        True,
        True,
    )
    piped = kubectl("exec", "-i", running_pod, "--", "cat", stdin="hello\nworld\n")
    assert piped.stdout == "hello\nworld\n"
    assert kubelet.starts[-1].stdin is True
    failed = kubectl("exec", running_pod, "--", "sh", "-c", "exit 3", check=False)
    assert failed.returncode == 3
    assert failed.stderr == "leaving\ncommand terminated with exit code 3\n"
    missing = kubectl("exec", running_pod, "--", "nosuch", check=False)
    assert missing.returncode == 127
    assert "sh: 1: nosuch: not found" in missing.stderr


def test_exec_errors_in_kubernetes_words(admin: Kubectl, running_pod: str) -> None:
    wrong = admin("exec", running_pod, "-c", "nope", "--", "true", check=False)
    assert wrong.returncode == 1
    assert (
        wrong.stderr == "Error from server (BadRequest): container nope is not valid for pod web\n"
    )
    attach = admin("attach", running_pod, check=False)
    assert attach.returncode == 1
    assert "pods/attach is not supported by this server" in attach.stderr


def forward(kubectl: Kubectl, *args: str) -> tuple[subprocess.Popen[str], int]:
    """`kubectl port-forward ARGS` on a free local port, once it says it is forwarding."""
    local = free_port()
    proc = kubectl.popen("port-forward", *args[:-1], f"{local}:{args[-1]}")
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith(f"Forwarding from 127.0.0.1:{local}"):
            return proc, local
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"port-forward did not start: {proc.communicate()}")


@pytest.mark.parametrize("mode", sorted(MODES))
def test_port_forward_and_http_get(
    srv: ApiServerProcess, admin: Kubectl, running_pod: str, kubelet: ScriptedKubelet, mode: str
) -> None:
    kubectl = in_mode(admin, mode)
    proc, local = forward(kubectl, "-v=6", f"pod/{running_pod}", "80")
    pages: list[bytes] = []
    try:
        for _ in range(2):  # two connections, one after the other
            with urllib.request.urlopen(f"http://127.0.0.1:{local}/", timeout=15) as answer:
                assert answer.status == 200
                pages.append(answer.read())
        curl = ["curl", "-s", "-S", f"http://127.0.0.1:{local}/"]
        pages.append(subprocess.run(curl, capture_output=True, timeout=30, check=True).stdout)
        alive = proc.poll() is None
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=15)
    assert pages == [PAGE] * 3, (out, err)
    assert alive, (out, err)  # still forwarding
    assert f"Handling connection for {local}" in out
    method = "GET" if mode == "websocket" else "POST"
    upgraded = (
        f"{method} https://{srv.secure_address}/api/v1/namespaces/default/pods/web/portforward 101"
    )
    assert upgraded in err
    assert kubelet.starts[-1].port == 80


def test_port_forward_to_a_closed_port_says_why(admin: Kubectl, running_pod: str) -> None:
    proc, local = forward(admin, f"pod/{running_pod}", "81")
    try:
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{local}/", timeout=15)
        proc.wait(timeout=30)  # kubectl 1.31+ stops forwarding after a forwarding error
    finally:
        proc.kill()
        _, err = proc.communicate(timeout=15)
    assert "an error occurred forwarding" in err
    assert "error forwarding port 81 to pod web, uid " in err
    assert "connection refused" in err
