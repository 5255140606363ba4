"""The `tinykube` verbs end to end against the fake Resources server.

Every CLI command runs its own `asyncio.run`, exactly as it does from a
shell; the fake server therefore lives in a child process. Output, stderr
and exit codes are checked with click's CliRunner.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from apimachinery.client import Client
from cli.main import cli

ROOT = Path(__file__).parents[2]
WEB_APP = (ROOT / "examples" / "web-app.yaml").read_text()


# The fake server runs in a child process: grpc.aio cannot serve two event loops of
# one process at once, and each CLI command runs its own asyncio.run here.
SERVER_SCRIPT = """
import asyncio, sys
from apimachinery import errors
from tests.unit.fake_apiserver import FakeApiServer

async def main():
    api = FakeApiServer()
    await api.start()
    for message in sys.argv[1:]:
        api.resources.fail_next("Apply", errors.Invalid(message))
    print(api.address, flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


class ServerProcess:
    def __init__(self, *fail_apply: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVER_SCRIPT, *fail_apply],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.address = self.proc.stdout.readline().strip()

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)

    def stored(self, resource: str, namespace: str = "") -> list[str]:
        """Names stored for `resource`, read back through the real client."""

        async def names() -> list[str]:
            async with Client(self.address) as client:
                items, _ = await client.list(resource, namespace)
                return [o.metadata.name for o in items]

        return asyncio.run(names())


@pytest.fixture
def server() -> Iterator[ServerProcess]:
    srv = ServerProcess()
    try:
        yield srv
    finally:
        srv.stop()


def run(srv: ServerProcess, *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(cli, ["--server", srv.address, *args], input=stdin)


def test_apply_create_then_unchanged_then_get(server: ServerProcess, tmp_path: Path) -> None:
    manifest = tmp_path / "web-app.yaml"
    manifest.write_text(WEB_APP)
    first = run(server, "apply", "-f", str(manifest))
    assert first.exit_code == 0, first.output
    assert first.stdout == "deployment.apps/web-app created\nservice/web-app-service created\n"
    again = run(server, "apply", "-f", "-", stdin=WEB_APP)
    assert again.stdout.splitlines() == [
        "deployment.apps/web-app unchanged",
        "service/web-app-service unchanged",
    ]
    got = run(server, "get", "deploy,svc")
    assert got.exit_code == 0
    tables = got.stdout.split("\n\n")
    assert tables[0].splitlines()[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert tables[0].splitlines()[1].startswith("deployment.apps/web-app ")
    assert tables[1].splitlines()[1].startswith("service/web-app-service ")
    names = run(server, "get", "deploy", "-o", "name")
    assert names.stdout == "deployment.apps/web-app\n"


def test_decode_error_sends_nothing(server: ServerProcess, tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(WEB_APP)
    (tmp_path / "b.yaml").write_text(WEB_APP.replace("replicas:", "replica:"))
    result = run(server, "apply", "-f", str(tmp_path))
    assert result.exit_code == 1
    assert 'unknown field "spec.replica"' in result.stderr
    assert result.stderr.startswith("error: ")
    assert server.stored("deployments") == []
    assert "Traceback" not in result.output


def test_server_refusal_applies_nothing() -> None:
    """The dry run refuses the Deployment, so not even the valid Service is written."""
    server = ServerProcess('Deployment.apps "web-app" is invalid: spec.replicas: bad')
    try:
        result = run(server, "apply", "-f", "-", stdin=WEB_APP)
        listed = run(server, "get", "services", "-o", "name")
    finally:
        server.stop()
    assert result.exit_code == 1
    assert result.stderr.startswith('Error from server (Invalid): Deployment.apps "web-app"')
    assert result.stdout == ""
    assert listed.stdout == ""


def test_get_empty_and_not_found(server: ServerProcess) -> None:
    empty = run(server, "get", "pods")
    assert empty.exit_code == 0
    assert empty.stderr == "No resources found in default namespace.\n"
    missing = run(server, "get", "pods", "x")
    assert missing.exit_code == 1
    assert missing.stderr == 'Error from server (NotFound): pods "x" not found\n'


def test_create_node_and_namespace_then_get_yaml(server: ServerProcess) -> None:
    made = run(server, "create", "node", "node1")
    assert made.exit_code == 0 and made.stdout == "node/node1 created\n"
    dup = run(server, "create", "node", "node1")
    assert dup.exit_code == 1
    assert dup.stderr.startswith("Error from server (AlreadyExists):")
    ns = run(server, "create", "ns", "team-a")
    assert ns.stdout == "namespace/team-a created\n"
    got = run(server, "get", "node", "node1", "-o", "yaml")
    assert "kind: Node" in got.stdout and "name: node1" in got.stdout
    listed = run(server, "get", "nodes", "-o", "json")
    assert '"kind": "List"' in listed.stdout


def test_delete_by_name_and_ignore_not_found(server: ServerProcess) -> None:
    run(server, "apply", "-f", "-", stdin=WEB_APP)
    gone = run(server, "delete", "deploy", "web-app")
    assert gone.exit_code == 0, gone.output
    assert gone.stdout == 'deployment.apps "web-app" deleted\n'
    again = run(server, "delete", "deploy/web-app")
    assert again.exit_code == 1
    assert again.stderr.startswith("Error from server (NotFound):")
    quiet = run(server, "delete", "deploy", "web-app", "--ignore-not-found")
    assert quiet.exit_code == 0 and quiet.output == ""
    by_file = run(server, "delete", "-f", "-", "--ignore-not-found", stdin=WEB_APP)
    assert by_file.stdout == 'service "web-app-service" deleted\n'


def test_namespace_mismatch_is_refused_before_sending(server: ServerProcess) -> None:
    manifest = WEB_APP.replace("name: web-app\n", "name: web-app\n  namespace: prod\n", 1)
    result = run(server, "apply", "-n", "dev", "-f", "-", stdin=manifest)
    assert result.exit_code == 1
    assert "does not match the namespace" in result.stderr
    assert server.stored("services") == []


def test_all_namespaces_and_describe(server: ServerProcess) -> None:
    pod = """apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: kube-system}
spec:
  containers: [{name: web, image: nginx}]
"""
    assert run(server, "create", "-f", "-", stdin=pod).stdout == "pod/web-1 created\n"
    table = run(server, "get", "pods", "-A")
    assert table.stdout.splitlines()[0].split()[:2] == ["NAMESPACE", "NAME"]
    assert table.stdout.splitlines()[1].split()[:2] == ["kube-system", "web-1"]
    page = run(server, "describe", "pod", "web-1", "-n", "kube-system")
    assert page.exit_code == 0, page.output
    assert page.stdout.startswith("Name:")
    squashed = [" ".join(line.split()) for line in page.stdout.splitlines()]
    assert "Namespace: kube-system" in squashed
    assert squashed[-1] == "Events: <none>"


def test_api_resources_and_version(server: ServerProcess) -> None:
    res = run(server, "api-resources")
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    assert any(line.split() == ["deployments", "deploy", "apps/v1", "true", "Deployment"]
               for line in lines)  # fmt: skip
    ver = run(server, "version")
    assert "Server Version: v0.0.0-fake" in ver.stdout


def test_unreachable_server_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--server", "127.0.0.1:1", "get", "pods"])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: cannot reach the API server at 127.0.0.1:1")
    assert len(result.stderr.splitlines()) == 1


POD = """apiVersion: v1
kind: Pod
metadata: {name: NAME}
spec:
  containers: [{name: web, image: nginx}]
"""


def test_watch_prints_a_row_per_change_until_interrupted(server: ServerProcess) -> None:
    assert run(server, "create", "-f", "-", stdin=POD.replace("NAME", "a")).exit_code == 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "--server", server.address, "get", "pods", "-w"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        header = proc.stdout.readline()
        first = proc.stdout.readline()
        assert header.split()[:2] == ["NAME", "READY"]
        assert first.split()[0] == "a"
        assert run(server, "create", "-f", "-", stdin=POD.replace("NAME", "bb")).exit_code == 0
        second = proc.stdout.readline()
        assert second.split()[0] == "bb"
        assert second.index(second.split()[1]) == header.index("READY")  # same column widths
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 130
        assert proc.stderr is not None and "Traceback" not in proc.stderr.read()
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_apiserver_log_lines_are_msg_then_key_values() -> None:
    import logging

    from cli.main import KeyValueFormatter

    record = logging.LogRecord("apiserver.server", logging.INFO, __file__, 1, "serving", None, None)
    record.listen = "127.0.0.1:6443"
    record.reason = "two words"
    line = KeyValueFormatter().format(record)
    assert line.split(" ", 1)[1] == (
        'INFO apiserver.server serving listen=127.0.0.1:6443 reason="two words"'
    )
