"""tinykube's own processes, started and stopped from Python.

The demo, the benchmarks and the process-level tests all need "an API server
on a free loopback port with its data here": `ApiServerProcess` is that. Each
child runs in its own session so that stopping it stops everything it
started, and a child that fails to come up is reported with its log.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from apimachinery.clientcmd import ENV_CLUSTER, ENV_CONFIG, ENV_SERVER

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]


def tinykube_cmd() -> list[str]:
    script = BIN / "tinykube"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "cli.main"]


def cluster_env(name: str) -> dict[str, str]:
    """The environment for a `tinykube` command aimed at the local cluster `name`: its
    name in $TINYKUBE_CLUSTER, and nothing that would take precedence over it."""
    env = {k: v for k, v in os.environ.items() if k not in (ENV_SERVER, ENV_CONFIG)}
    env[ENV_CLUSTER] = name
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port}")


class ChildProcess:
    """A `tinykube` command in a child process, in its own session (stopped as a group)."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.args = args
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def spawn(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [*tinykube_cmd(), *self.args],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                start_new_session=True,
            )

    def kill9(self) -> None:
        """SIGKILL to the whole process group: no chance to clean up, as in a crash."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            self.proc = None

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill9()
        self.proc = None


class ApiServerProcess(ChildProcess):
    """`tinykube apiserver` on a free loopback port with its data in `data_dir`."""

    def __init__(
        self, data_dir: Path, port: int | None = None, extra_args: tuple[str, ...] = ()
    ) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        args = ["apiserver", "--data-dir", str(data_dir), "--listen", self.address, *extra_args]
        super().__init__(args, data_dir / "apiserver.log")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.spawn()
        try:
            wait_for_port(self.port)
        except TimeoutError:
            self.stop()
            raise RuntimeError("apiserver did not start:\n" + self.log.read_text()) from None


class KubeletProcess(ChildProcess):
    """`tinykube kubelet` for one node (hollow with runtime "fake")."""

    def __init__(
        self,
        node: str,
        server: str,
        log_dir: Path,
        runtime: str = "fake",
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.node = node
        args = ["kubelet", "--node-name", node, "--runtime", runtime, "--server", server]
        super().__init__([*args, *extra_args], log_dir / f"kubelet-{node}.log")

    def start(self) -> None:
        self.spawn()
