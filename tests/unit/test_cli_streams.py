"""`exec -i`, `cp` and `port-forward` end to end on a hollow node: CLI -> API server ->
kubelet -> the fake runtime, whose played sessions echo `cat`, run `tar` over its in-memory
files and echo on a pod's declared port (kubelet/runtime/fake_streams.py); and the bad
input of each, in kubectl's words. The real runtimes are tests/integration/runtime's."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.cli_node import ROOT, ClusterProcess

pytestmark = pytest.mark.timeout(120)

PODS = """apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  nodeName: node1
  terminationGracePeriodSeconds: 0
  containers: [{name: web, image: nginx, ports: [{name: http, containerPort: 80}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: pending}
spec:
  containers: [{name: app, image: nginx}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: front, port: 8080, targetPort: http}]
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterProcess]:
    c = ClusterProcess(tmp_path_factory.mktemp("streams"), kubelet=True)
    try:
        c.apply(PODS)
        c.wait(lambda: c.pod("web").status.phase == "Running", "pod web Running")
        yield c
    finally:
        c.stop()


def test_exec_i_streams_stdin_and_keeps_the_exit_code(cluster: ClusterProcess) -> None:
    echoed = cluster.tk("exec", "-i", "web", "--", "cat", stdin="hello\nworld\n")
    assert (echoed.exit_code, echoed.stdout) == (0, "hello\nworld\n"), echoed.output
    failed = cluster.tk("exec", "-i", "web", "--", "false", stdin="")
    assert failed.exit_code == 1
    assert failed.stderr == "command terminated with exit code 1\n"
    no_tty = cluster.tk("exec", "-it", "pod/web", "--", "cat", stdin="x")
    assert no_tty.exit_code == 0 and no_tty.stdout == "x"
    assert "Unable to use a TTY - input is not a terminal or the right kind of file" in (
        no_tty.stderr
    )
    missing = cluster.tk("exec", "-i", "nope", "--", "cat", stdin="")
    assert missing.exit_code == 1
    assert missing.stderr == 'Error from server (NotFound): pods "nope" not found\n'


def test_cp_into_the_container_and_back(cluster: ClusterProcess, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_bytes(b"line one\nline two\n")
    put = cluster.tk("cp", str(notes), "web:/srv/notes.txt")
    assert put.exit_code == 0, put.output
    shown = cluster.tk("exec", "web", "--", "cat", "/srv/notes.txt")
    assert shown.stdout == "line one\nline two\n"

    tree = tmp_path / "site"
    (tree / "css").mkdir(parents=True)
    (tree / "index.html").write_text("<h1>hi</h1>\n")
    (tree / "css" / "main.css").write_text("h1 {}\n")
    assert cluster.tk("cp", str(tree), "default/web:/srv").exit_code == 0  # /srv is a dir
    back = tmp_path / "back"
    fetched = cluster.tk("cp", "web:/srv/site", str(back))
    assert fetched.exit_code == 0, fetched.output
    assert (back / "index.html").read_text() == "<h1>hi</h1>\n"
    assert (back / "css" / "main.css").read_text() == "h1 {}\n"
    one = cluster.tk("cp", "web:/srv/notes.txt", str(tmp_path / "copy.txt"))
    assert one.exit_code == 0, one.output
    assert (tmp_path / "copy.txt").read_bytes() == b"line one\nline two\n"

    gone = cluster.tk("cp", "web:/nope", str(tmp_path / "x"))
    assert gone.exit_code == 2
    assert "tar: /nope: Cannot stat: No such file or directory" in gone.stderr
    assert gone.stderr.endswith("error: command terminated with exit code 2\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("only-one",), "source and destination are required"),
        (("a", "b"), "one of src or dest must be a remote file specification"),
        (("web:/a", "web:/b"), "one of src or dest must be a local file specification"),
        (("web:", "x"), "filepath can not be empty"),
        ((":x", "y"), "filespec must match the canonical format: [[namespace/]pod:]file/path"),
        (
            ("a/b/c:/x", "y"),
            "filespec must match the canonical format: [[namespace/]pod:]file/path",
        ),
        (("/no/such/file", "web:/tmp"), "/no/such/file doesn't exist in local filesystem"),
    ],
)
def test_cp_refuses_what_kubectl_refuses(
    cluster: ClusterProcess, args: tuple[str, ...], message: str
) -> None:
    result = cluster.tk("cp", *args)
    assert (result.exit_code, result.stderr) == (1, f"error: {message}\n")


class Forwarding:
    """`tinykube port-forward ARGS` as a process; its lines, a connection to it."""

    def __init__(self, address: str, *args: str) -> None:
        env = dict(os.environ, TINYKUBE_CLUSTERS_DIR="/nonexistent/tinykube-clusters")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "--server", address, "port-forward", *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )

    def line(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().rstrip("\n")

    def stop(self) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout=20)
        assert self.proc.stderr is not None
        return code, self.proc.stderr.read()


def talk(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(data)
        conn.shutdown(socket.SHUT_WR)
        got = b""
        while chunk := conn.recv(4096):
            got += chunk
    return got


def test_port_forward_to_a_pod_and_through_a_service(cluster: ClusterProcess) -> None:
    for target, spec, remote in (("web", ":80", 80), ("svc/web", ":front", 80)):
        fwd = Forwarding(cluster.address, target, spec, "--address", "127.0.0.1")
        try:
            first = fwd.line()
            assert first.startswith("Forwarding from 127.0.0.1:") and first.endswith(
                f" -> {remote}"
            ), first
            port = int(first.split(":")[1].split(" ")[0])
            assert talk(port, b"ping\n") == b"ping\n"
            assert fwd.line() == f"Handling connection for {port}"
        finally:
            code, err = fwd.stop()
        assert code == 0 and "Traceback" not in err, err


def test_port_forward_ends_when_its_pod_is_gone(cluster: ClusterProcess) -> None:
    cluster.apply(PODS.split("---")[0].replace("name: web,", "name: short,"))
    cluster.wait(lambda: cluster.pod("short").status.phase == "Running", "pod short Running")
    fwd = Forwarding(cluster.address, "short", ":80", "--address", "127.0.0.1")
    try:
        assert fwd.line().startswith("Forwarding from 127.0.0.1:")
        assert cluster.tk("delete", "pod", "short").exit_code == 0
        assert fwd.proc.wait(timeout=30) == 1
    finally:
        _, err = fwd.stop()
    assert err == "error: lost connection to pod\n"


def test_port_forward_reports_a_refused_port_and_keeps_going(cluster: ClusterProcess) -> None:
    fwd = Forwarding(cluster.address, "pod/web", ":81", "--address", "127.0.0.1")
    try:
        port = int(fwd.line().split(":")[1].split(" ")[0])
        assert talk(port, b"x") == b""
        assert talk(port, b"y") == b""  # still listening
    finally:
        code, err = fwd.stop()
    assert code == 0
    assert f"an error occurred forwarding {port} -> 81: error forwarding port 81 to pod " in err
    assert "failed to connect to localhost:81 inside namespace" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("web",), "TYPE/NAME and list of ports are required for port-forward"),
        (("web", "abc"), "Pod 'web' does not have a named port 'abc'"),
        (("web", "x:80"), "error parsing local port 'x': strconv.ParseUint: parsing \"x\": "),
        (("web", "70000:80"), "error parsing local port '70000': strconv.ParseUint: "),
        (("web", "0"), "remote port must be > 0"),
        (("web", "1:2:3"), "invalid port format '1:2:3'"),
        (("svc/web", "9999"), "Service web does not have a service port 9999"),
        (("svc/web", "other"), "Service 'web' does not have a named port 'other'"),
        (("pending", "80"), "unable to forward port because pod is not running. Current status="),
        (("cm/x", "80"), 'Error from server (NotFound): configmaps "x" not found'),
        (("web", "80", "--address", "nowhere"), "nowhere is not a valid IP"),
    ],
)
def test_port_forward_refuses_what_kubectl_refuses(
    cluster: ClusterProcess, args: tuple[str, ...], message: str
) -> None:
    result = cluster.tk("port-forward", *args)
    assert result.exit_code == 1
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.output
