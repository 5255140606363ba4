"""A real API server in a child process, for the CLI tests of the object verbs.

Each CLI command runs its own `asyncio.run`, exactly as from a shell, and
grpc.aio cannot serve one process's loop while another loop calls it, so the
server (SQLite in the test's directory, no scheduler, no controllers) lives
in a child process and listens on a unix socket there: the tests are its
local admin, as the host's CLI is a local cluster's. `ApiServerProcess.call`
reads and writes objects with the real client (to set up a pod's status, or
check what a verb stored); `tk` runs a verb with click's CliRunner.

The child is killed when the fixture ends, even when a test fails, and its
directory goes with the test's tmp_path: nothing outlives the module.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from click.testing import CliRunner, Result

from apimachinery import codec
from apimachinery.client import Client
from cli.main import cli

ROOT = Path(__file__).parents[2]
T = TypeVar("T")

SCRIPT = """
import asyncio, sys
from apiserver.server import APIServer
from apiserver.storage import open_storage

async def main():
    data = sys.argv[1]
    storage = await open_storage("sqlite", data)
    server = APIServer(storage, f"unix:{data}/api.sock", run_dir=data)
    await server.start()
    print(server.local_address, flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


class ApiServerProcess:
    """The child process, its address, and ways to drive it."""

    def __init__(self, data_dir: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SCRIPT, str(data_dir)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.address = self.proc.stdout.readline().strip()
        if not self.address:
            self.stop()
            raise RuntimeError("the API server did not start")

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)

    def call(self, fn: Callable[[Client], Awaitable[T]]) -> T:
        """Run `fn(client)` with a client of the server's, on a loop of its own."""

        async def run() -> T:
            async with Client(self.address, timeout=10) as client:
                return await fn(client)

        return asyncio.run(run())

    def tk(self, *args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> Result:
        """`tinykube --server <this server> ARGS...`."""
        return CliRunner().invoke(cli, ["--server", self.address, *args], input=stdin, env=env)

    def create_yaml(self, text: str) -> list[Any]:
        """Create every object of a manifest (in `default` unless it names a namespace)."""
        objs = codec.decode_documents(text)

        async def create(client: Client) -> list[Any]:
            return [await client.create(obj) for obj in objs]

        return self.call(create)

    def get(self, resource: str, name: str, namespace: str = "default") -> Any:
        async def fetch(client: Client) -> Any:
            return await client.get(resource, name, namespace)

        return self.call(fetch)

    def get_dict(self, resource: str, name: str, namespace: str = "default") -> dict[str, Any]:
        return codec.to_dict(self.get(resource, name, namespace))

    def exists(self, resource: str, name: str, namespace: str = "default") -> bool:
        async def names(client: Client) -> list[str]:
            items, _ = await client.list(resource, namespace)
            return [o.metadata.name for o in items]

        return name in self.call(names)


@pytest.fixture(scope="module")
def apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServerProcess]:
    srv = ApiServerProcess(tmp_path_factory.mktemp("api"))
    try:
        yield srv
    finally:
        srv.stop()


def no_traceback(result: Result) -> None:
    """A failure a user can cause is a message, never a Python traceback."""
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception


DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels: {{app: {name}}}
spec:
  replicas: 2
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
      - name: web
        image: nginx:1.25
        ports:
        - containerPort: 80
        env:
        - {{name: A, value: "1"}}
        - {{name: B, value: "2"}}
      - name: sidecar
        image: busybox
"""

POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels: {{run: {name}}}
spec:
  containers:
  - name: main
    image: busybox
    ports:
    - containerPort: 8080
"""
