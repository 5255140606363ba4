"""`scale`, `set image` and `rollout ...` end to end: CLI -> API server -> controllers -> pods.

Each CLI command runs its own `asyncio.run`, as from a shell, so the API
server, the workload controllers and the pod runner (workloads.py) live in a
child process; the tests drive it with click's CliRunner.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from apimachinery.client import Client
from cli.cmd_rollout import status_message
from cli.context import CommandError
from cli.durations import parse_duration
from cli.main import cli
from tests.unit.controllers.workloads import deployment

ROOT = Path(__file__).parents[3]

pytestmark = pytest.mark.timeout(90)

CLUSTER_SCRIPT = """
import asyncio, sys
from apimachinery.client import Client
from apiserver.server import APIServer
from apiserver.storage import open_storage
from tests.unit.controllers.workloads import Manager, PodRunner

async def main():
    storage = await open_storage("sqlite", sys.argv[1])
    server = APIServer(storage, f"unix:{sys.argv[1]}/api.sock")
    await server.start()
    address = server.local_address
    runner = PodRunner(Client(address))
    runner.start()
    Manager(address).start()
    print(address, flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


class Cluster:
    def __init__(self, data_dir: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CLUSTER_SCRIPT, str(data_dir)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.address = self.proc.stdout.readline().strip()

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)

    def call(self, fn: Any) -> Any:
        async def run() -> Any:
            async with Client(self.address) as client:
                return await fn(client)

        return asyncio.run(run())

    def tk(self, *args: str) -> Result:
        return CliRunner().invoke(cli, ["--server", self.address, *args])

    def image(self, name: str) -> str:
        d = self.call(lambda c: c.get("deployments", name))
        return str(d.spec.template.spec.containers[0].image)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    try:
        yield c
    finally:
        c.stop()


def _done(result: Result, name: str = "web") -> None:
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[-1] == f'deployment "{name}" successfully rolled out'
    assert all(
        line.startswith(f'Waiting for deployment "{name}"')
        or line.startswith("Waiting for deployment spec update")
        for line in lines[:-1]
    ), lines


def test_scale_set_image_status_history_undo(cluster: Cluster) -> None:
    cluster.call(lambda c: c.create(deployment("web", 2, "nginx:latest")))
    _done(cluster.tk("rollout", "status", "deployment/web", "--timeout", "30s"))

    result = cluster.tk("scale", "deploy", "web", "--replicas", "3")
    assert (result.exit_code, result.output) == (0, "deployment.apps/web scaled\n")
    _done(cluster.tk("rollout", "status", "deploy/web"))
    d = cluster.call(lambda c: c.get("deployments", "web"))
    assert (d.spec.replicas, d.status.available_replicas) == (3, 3)

    result = cluster.tk("set", "image", "deployment/web", "web=nginx:1.25")
    assert (result.exit_code, result.output) == (0, "deployment.apps/web image updated\n")
    _done(cluster.tk("rollout", "status", "deployment/web", "--timeout", "30s"))

    result = cluster.tk("rollout", "history", "deployment/web")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "deployment.apps/web",
        "REVISION  CHANGE-CAUSE",
        "1         <none>",
        "2         <none>",
        "",
    ]
    result = cluster.tk("rollout", "history", "deployment/web", "--revision", "1")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("deployment.apps/web with revision #1\nPod Template:\n")
    assert "nginx:latest" in result.output
    assert "pod-template-hash" not in result.output

    result = cluster.tk("rollout", "undo", "deployment/web", "--to-revision", "9")
    assert result.exit_code == 1
    assert result.output.strip() == "error: unable to find specified revision 9 in history"

    result = cluster.tk("rollout", "undo", "deployment/web")
    assert (result.exit_code, result.output) == (0, "deployment.apps/web rolled back\n")
    assert cluster.image("web") == "nginx:latest"
    _done(cluster.tk("rollout", "status", "deployment/web", "--timeout", "30s"))
    result = cluster.tk("rollout", "history", "deployment/web")
    assert result.output.splitlines()[2:4] == ["2         <none>", "3         <none>"]


def test_pause_resume_and_errors(cluster: Cluster) -> None:
    cluster.call(lambda c: c.create(deployment("web", 1, "nginx:1")))
    _done(cluster.tk("rollout", "status", "deployment/web", "--timeout", "30s"))
    assert cluster.tk("rollout", "pause", "deployment/web").output == "deployment.apps/web paused\n"
    again = cluster.tk("rollout", "pause", "deployment/web")
    assert again.exit_code == 1
    assert again.output.strip() == 'error: deployments.apps "web" is already paused'

    assert cluster.tk("set", "image", "deployment/web", "web=nginx:2").exit_code == 0
    timed_out = cluster.tk("rollout", "status", "deployment/web", "--timeout", "1s")
    assert timed_out.exit_code == 1
    assert timed_out.output.splitlines()[-1] == "error: timed out waiting for the condition"
    undo = cluster.tk("rollout", "undo", "deployment/web")
    assert undo.exit_code == 1
    assert "you cannot rollback a paused deployment" in undo.output

    resume = cluster.tk("rollout", "resume", "deployment/web")
    assert resume.output == "deployment.apps/web resumed\n"
    _done(cluster.tk("rollout", "status", "deployment/web", "--timeout", "30s"))
    assert cluster.tk("rollout", "resume", "deployment/web").exit_code == 1

    missing = cluster.tk("set", "image", "deployment/web", "nope=x")
    assert missing.exit_code == 1
    assert missing.output.strip() == 'error: unable to find container named "nope"'
    wrong_kind = cluster.tk("scale", "pod/x", "--replicas", "1")
    assert wrong_kind.exit_code == 1
    assert wrong_kind.output.startswith("error: scale is not supported for pods")
    absent = cluster.tk("rollout", "status", "deployment/absent")
    assert absent.exit_code == 1
    assert "NotFound" in absent.output


def test_status_message_follows_kubectl() -> None:
    d = deployment("web-app", 2)
    d.metadata.generation = 2
    d.status.observed_generation = 1
    assert status_message(d) == ("Waiting for deployment spec update to be observed...", False)
    d.status.observed_generation = 2
    d.status.updated_replicas = 1
    d.status.replicas = 3
    assert status_message(d) == (
        'Waiting for deployment "web-app" rollout to finish: '
        "1 out of 2 new replicas have been updated...",
        False,
    )
    d.status.updated_replicas = 2
    assert status_message(d)[0].endswith("1 old replicas are pending termination...")
    d.status.replicas = 2
    d.status.available_replicas = 1
    assert status_message(d)[0].endswith("1 of 2 updated replicas are available...")
    d.status.available_replicas = 2
    assert status_message(d) == ('deployment "web-app" successfully rolled out', True)
    d.status.conditions.add(type="Progressing", status="False", reason="ProgressDeadlineExceeded")
    with pytest.raises(CommandError, match="exceeded its progress deadline"):
        status_message(d)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0", 0.0), ("30s", 30.0), ("5m", 300.0), ("1h30m", 5400.0), ("500ms", 0.5)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "1x", "s", "3m junk"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(CommandError):
        parse_duration(text)
