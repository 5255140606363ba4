"""`tinykube exec -i`, `port-forward` and `cp` on a real node (containerd, then Docker), as a
user runs them: the CLI as a process with the admin's kubeconfig (mutual TLS to the API
server), the API server relaying PodExecStream / PodPortForward to a `tinykube kubelet`
process over its TLS port, and the kubelet speaking to the runtime (containerd's streaming
server over SPDY, or Docker's hijacked exec; a socket made in the pod's network namespace).

One API server process and one kubelet process per runtime (node.py); every pod is
removed at the end, however a test ends.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import select
import signal
import struct
import subprocess
import termios
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.runtime.conftest import RuntimeEnv
from tests.integration.runtime.node import RealNode, pod_yaml, started_node
from tests.procs import REPO, run_cli, tinykube_cmd

pytestmark = pytest.mark.root

MARK = "streams-node"
WEB = """  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: nginx:1.25
    ports:
    - name: http
      containerPort: 80
"""
SERVICE = """apiVersion: v1
kind: Service
metadata:
  name: web-svc
spec:
  selector:
    tinykube-test: streams-node
  ports:
  - name: front
    port: 8080
    targetPort: http
"""


@pytest.fixture(scope="module", params=["containerd", "docker"])
def node(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    runtime_env: RuntimeEnv,
) -> Iterator[RealNode]:
    docker_env = request.getfixturevalue("docker_env") if request.param == "docker" else None
    with started_node(tmp_path_factory.mktemp("streams-node"), runtime_env, MARK, docker_env) as n:
        n.create(pod_yaml("web", MARK, WEB))
        n.create(SERVICE)
        n.wait(lambda: n.running("web"), "the nginx pod running", 60)
        yield n


def test_exec_i_passes_stdin_and_the_exit_code(node: RealNode) -> None:
    server = node.apiserver
    echoed = run_cli(server, "exec", "-i", "web", "--", "cat", stdin="hello\nworld\n")
    assert (echoed.returncode, echoed.stdout) == (0, "hello\nworld\n"), echoed.stderr
    script = "read a; echo got:$a; echo to-stderr >&2; exit 3"
    mixed = run_cli(server, "exec", "-i", "web", "--", "sh", "-c", script, stdin="abc\n")
    assert mixed.returncode == 3
    assert mixed.stdout == "got:abc\n"
    assert mixed.stderr == "to-stderr\ncommand terminated with exit code 3\n"
    counted = run_cli(server, "exec", "-i", "web", "--", "wc", "-c", stdin="x" * 200_000)
    assert (counted.returncode, counted.stdout.strip()) == (0, "200000"), counted.stderr
    missing = run_cli(server, "exec", "-i", "web", "--", "no-such-command", stdin="")
    assert missing.returncode in (126, 127)
    assert "no-such-command" in missing.stderr


def test_exec_it_is_an_interactive_terminal_of_our_size(node: RealNode) -> None:
    """`exec -it web -- sh` on a pseudo-terminal 100x30: keys typed reach the shell, the
    shell's terminal has our size, and `exit 7` is the command's exit code."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TINYKUBE_", "KUBE"))}
    env["KUBECONFIG"] = str(node.apiserver.admin_kubeconfig)
    proc = subprocess.Popen(
        [*tinykube_cmd(), "exec", "-it", "web", "--", "sh"],
        cwd=REPO,
        env=env,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
    )
    os.close(slave)
    seen = bytearray()
    try:
        time.sleep(2)  # the shell starts, and our size reaches its terminal
        os.write(master, b"stty size; echo sum-$((6*7))\r")
        os.write(master, b"exit 7\r")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # the CLI has exited: its terminal is gone
                    break
                if not chunk:
                    break
                seen.extend(chunk)
            elif proc.poll() is not None:
                break
        assert proc.wait(timeout=10) == 7, bytes(seen)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        os.close(master)
    text = seen.decode(errors="replace")
    assert "30 100" in text and "sum-42" in text, text
    assert "command terminated with exit code 7" in text


class PortForward:
    """`tinykube port-forward ARGS` in the background, as a user leaves it running."""

    def __init__(self, node: RealNode, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TINYKUBE_", "KUBE"))}
        env["KUBECONFIG"] = str(node.apiserver.admin_kubeconfig)
        self.proc = subprocess.Popen(
            [*tinykube_cmd(), "port-forward", *args, "--address", "127.0.0.1"],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def local_port(self, remote: int) -> int:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        assert line.startswith("Forwarding from 127.0.0.1:"), (line, self.stop())
        assert line.endswith(f" -> {remote}"), line
        return int(line.split(":")[1].split(" ")[0])

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout=30)
        assert self.proc.stderr is not None
        err = self.proc.stderr.read()
        assert code == 0 and "Traceback" not in err, (code, err)
        return err


def fetch(port: int) -> tuple[int, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as resp:
        return resp.status, resp.read().decode()


@pytest.mark.parametrize(("target", "spec"), [("pod/web", ":80"), ("svc/web-svc", ":front")])
def test_port_forward_serves_nginx_from_inside_the_pod(
    node: RealNode, target: str, spec: str
) -> None:
    forward = PortForward(node, target, spec)
    try:
        port = forward.local_port(80)
        for _ in range(3):  # one stream per connection, each its own
            status, body = fetch(port)
            assert status == 200 and "Welcome to nginx!" in body
    finally:
        forward.stop()


def test_port_forward_to_a_closed_port_says_why(node: RealNode) -> None:
    forward = PortForward(node, "web", ":81")
    try:
        port = forward.local_port(81)
        with pytest.raises(OSError):
            fetch(port)
    finally:
        err = forward.stop()
    assert f"an error occurred forwarding {port} -> 81: error forwarding port 81 to pod " in err
    assert "failed to connect to localhost:81 inside namespace" in err
    assert "connection refused" in err


def test_cp_a_file_and_a_directory_into_the_pod_and_back(node: RealNode, tmp_path: Path) -> None:
    server = node.apiserver
    payload = os.urandom(300_000)
    source = tmp_path / "blob.bin"
    source.write_bytes(payload)
    put = run_cli(server, "cp", str(source), "web:/tmp")
    assert put.returncode == 0, put.stderr
    seen = run_cli(server, "exec", "web", "--", "md5sum", "/tmp/blob.bin")
    assert seen.stdout.split()[0] == hashlib.md5(payload).hexdigest()
    back = tmp_path / "back.bin"
    fetched = run_cli(server, "cp", "default/web:/tmp/blob.bin", str(back))
    assert fetched.returncode == 0, fetched.stderr
    assert back.read_bytes() == payload

    tree = tmp_path / "site"
    (tree / "img").mkdir(parents=True)
    (tree / "index.html").write_text("<h1>copied</h1>\n")
    (tree / "img" / "logo.txt").write_text("logo\n")
    put = run_cli(server, "cp", str(tree), "web:/usr/share/nginx/html/site")
    assert put.returncode == 0, put.stderr
    out = tmp_path / "out"
    fetched = run_cli(server, "cp", "web:/usr/share/nginx/html/site", str(out))
    assert fetched.returncode == 0, fetched.stderr
    assert (out / "index.html").read_text() == "<h1>copied</h1>\n"
    assert (out / "img" / "logo.txt").read_text() == "logo\n"

    gone = run_cli(server, "cp", "web:/no/such/file", str(tmp_path / "x"))
    assert gone.returncode != 0
    assert "/no/such/file" in gone.stderr and "command terminated with exit code" in gone.stderr
