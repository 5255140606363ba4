"""A real API server, and on demand a hollow kubelet, in a child process, for CLI tests.

Each CLI command runs its own `asyncio.run`, as from a shell, and grpc.aio
cannot serve one process's loop while another loop calls it, so the API
server (SQLite in the test's directory, no scheduler, no controllers) lives
in a child process, listening on a unix socket there. With `kubelet=True`
the child also runs a kubelet for node `node1` on the fake runtime, its
server on 127.0.0.1 (the Node's InternalIP, which the API server's log proxy
dials), so `tinykube logs` goes the real way: CLI -> API server -> kubelet.

The test steers the fake runtime through the child's stdin, one JSON line
per command, answered by one JSON line:

    {"op": "behave", "container": "web", "logs": ["a", "b"], "exit_code": 1, "exit_after": 0.5}
    {"op": "write", "pod": "web", "container": "web", "text": "line"}
    {"op": "kill", "pod": "web", "container": "web", "exit_code": 1}

The child is killed when the fixture ends, even when a test fails, and its
files go with the test's tmp_path.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from click.testing import CliRunner, Result

from apimachinery.client import Client
from cli.main import cli

ROOT = Path(__file__).parents[2]
T = TypeVar("T")

SCRIPT = """
import asyncio, json, sys
from apimachinery.client import Client, retry_on_conflict
from apiserver.server import APIServer
from apiserver.storage import open_storage
from kubelet.config import KubeletConfig
from kubelet.kubelet import Kubelet
from kubelet.runtime.fake import FakeRuntime
from kubelet.runtime.interface import ContainerState

FAST = dict(
    lease_renew_interval=0.2, node_status_update_frequency=0.2, sync_frequency=0.5,
    housekeeping_interval=0.2, pleg_relist_period=0.1, crash_backoff_initial=0.2,
    crash_backoff_max=0.5, image_backoff_initial=0.2, image_backoff_max=1.0,
    probe_time_unit=0.05, kubelet_address="127.0.0.1", kubelet_port=0, node_ip="127.0.0.1",
)

def newest(runtime, pod, container):
    uids = {s.id for s in runtime.sandboxes.values() if s.name == pod}
    found = [c for c in runtime.containers.values()
             if c.sandbox_id in uids and c.name == container]
    return max(found, key=lambda c: c.attempt) if found else None

async def node(client):
    runtime = FakeRuntime()
    kubelet = Kubelet(client, KubeletConfig(node_name="node1", **FAST), runtime)
    asyncio.ensure_future(kubelet.run())
    assert await kubelet.wait_started(timeout=10)
    async def cidr():
        n = await client.get("nodes", "node1")
        n.spec.pod_cidr = "10.244.1.0/24"
        del n.spec.pod_cidrs[:]
        n.spec.pod_cidrs.append("10.244.1.0/24")
        await client.update(n)
    await retry_on_conflict(cidr)
    return runtime

def command(runtime, cmd):
    if cmd["op"] == "behave":
        runtime.behave(cmd["container"], logs=cmd.get("logs", ()), exit_code=cmd.get("exit_code"),
                       exit_after=cmd.get("exit_after", 0.0))
        return {"ok": True}
    c = newest(runtime, cmd["pod"], cmd["container"])
    if c is None or c.state != ContainerState.RUNNING:
        return {"ok": False}
    if cmd["op"] == "write":
        runtime.write_log(c.id, cmd["text"])
    elif cmd["op"] == "kill":
        runtime.kill(c.id, cmd.get("exit_code", 1))
    return {"ok": True, "attempt": c.attempt}

async def main():
    data = sys.argv[1]
    storage = await open_storage("sqlite", data)
    server = APIServer(storage, f"unix:{data}/api.sock")
    await server.start()
    runtime = await node(Client(server.local_address)) if sys.argv[2] == "1" else None
    print(server.local_address, flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        print(json.dumps(command(runtime, json.loads(line))), flush=True)

asyncio.run(main())
"""


class ClusterProcess:
    """The child process, its address, and ways to drive it."""

    def __init__(self, data_dir: Path, *, kubelet: bool = False) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SCRIPT, str(data_dir), "1" if kubelet else "0"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
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

    def runtime(self, op: str, **args: Any) -> dict[str, Any]:
        """Send one command to the fake runtime; its answer."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.proc.stdin.flush()
        answer: dict[str, Any] = json.loads(self.proc.stdout.readline())
        return answer

    def call(self, fn: Callable[[Client], Awaitable[T]]) -> T:
        """Run `fn(client)` with a client of the server's, on a loop of its own."""

        async def run() -> T:
            async with Client(self.address, timeout=10) as client:
                return await fn(client)

        return asyncio.run(run())

    def tk(self, *args: str, stdin: str | None = None) -> Result:
        """`tinykube ARGS` against this server, in this process (click's CliRunner)."""
        return CliRunner().invoke(cli, ["--server", self.address, *args], input=stdin)

    def apply(self, manifest: str) -> None:
        result = self.tk("apply", "-f", "-", stdin=manifest)
        assert result.exit_code == 0, result.output

    def wait(self, check: Callable[[], T], what: str, timeout: float = 15.0) -> T:
        """Call `check` until it returns something truthy."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}")

    def pod(self, name: str, namespace: str = "default") -> Any:
        return self.call(lambda c: c.get("pods", name, namespace))


class Watcher:
    """`tinykube ARGS` as a real process in the background (`get -w`, `logs -f`); its
    stdout lines as they come."""

    def __init__(self, address: str, *args: str) -> None:
        env = dict(os.environ, TINYKUBE_CLUSTERS_DIR="/nonexistent/tinykube-clusters")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "--server", address, *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def next_line(self, timeout: float = 10.0) -> str:
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("no line from the watcher in time") from None

    def wait(self, timeout: float) -> int:
        """The exit code once the process ends by itself."""
        return self.proc.wait(timeout=timeout)

    def stop(self) -> str:
        """Kill it (if still running); what it wrote on stderr."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        assert self.proc.stderr is not None
        return self.proc.stderr.read()


@contextlib.contextmanager
def watching(address: str, *args: str) -> Iterator[Watcher]:
    """A Watcher, killed at the end; it must not have printed a traceback."""
    w = Watcher(address, *args)
    try:
        yield w
    finally:
        err = w.stop()
        assert "Traceback" not in err, err
