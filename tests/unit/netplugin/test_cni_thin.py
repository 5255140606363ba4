"""The thin tinykube-cni (thin.py) and the agent's CNI server (server.py), without root.

The thin client runs as install.py writes it (`python -IS` importing thin.py)
against a real CNIServer on a socket in a short temporary directory; the calls
here fail before any netlink (a missing netns, a bad field), which is what lets
them run without root -- the successful paths run as root in
tests/integration/network/test_cni.py and test_cni_thin.py.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyroute2  # noqa: F401  -- loaded for real, so main's light loader stays out of the way
import pytest

from netplugin.cni import config, main, thin
from netplugin.cni.install import thin_client_script
from netplugin.cni.server import CNIServer, socket_path, sweep_stale
from netplugin.constants import CNI_DATA_DIR, CNI_PLUGIN_TYPE, CNI_VERSION

FULL = Path(sys.executable).parent / "tinykube-cni"
MISSING_NETNS = "/run/netns/tinykube-thin-unit-missing"
CONF: dict[str, Any] = {
    "cniVersion": "1.0.0",
    "name": "tinykube",
    "type": "tinykube-cni",
    "subnet": "10.244.1.0/24",
    "dataDir": "/nonexistent/tinykube-thin-unit",
}


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory with a short path: a unix socket's path may have 107 bytes at most."""
    path = Path(tempfile.mkdtemp(prefix="tkthin", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def bin_dir(short_dir: Path) -> Path:
    """The thin client as install_bin_dir writes it, and the full plugin beside it."""
    directory = short_dir / "bin"
    directory.mkdir()
    (directory / CNI_PLUGIN_TYPE).write_text(thin_client_script())
    (directory / CNI_PLUGIN_TYPE).chmod(0o755)
    (directory / thin.FULL_PLUGIN).symlink_to(FULL)
    return directory


@pytest.fixture
def agent(short_dir: Path) -> Iterator[CNIServer]:
    """A CNIServer on its own event loop thread, as in the agent's process."""
    server = CNIServer(str(short_dir / "cni.sock"))
    loop = asyncio.new_event_loop()
    loop.run_until_complete(server.start())
    runner = threading.Thread(target=loop.run_forever, daemon=True)
    runner.start()
    try:
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        runner.join(30)
        loop.close()


def cni_env(command: str, **extra: str) -> dict[str, str]:
    base = {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": "abc123",
        "CNI_NETNS": MISSING_NETNS,
        "CNI_IFNAME": "eth0",
        "CNI_PATH": "/nonexistent/cni/bin",
    }
    base.update(extra)
    return {k: v for k, v in base.items() if v}


def run_thin(
    binary: Path, environ: dict[str, str], stdin: bytes, *python_flags: str
) -> tuple[int, dict[str, Any], str, int]:
    """The thin client as containerd runs it; (exit status, stdout JSON, stderr, pid)."""
    argv = [sys.executable, "-IS", *python_flags, str(binary)] if python_flags else [str(binary)]
    proc = subprocess.Popen(
        argv,
        env={"PATH": os.environ.get("PATH", ""), **environ},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = proc.communicate(stdin, timeout=60)
    return proc.returncode, json.loads(out) if out.strip() else {}, err.decode(), proc.pid


def run_full(environ: dict[str, str], stdin: bytes) -> tuple[int, dict[str, Any]]:
    """main.run, the full plugin's function, in this process."""
    stdout = io.StringIO()
    code = main.run(environ, io.BytesIO(stdin), stdout)
    return code, json.loads(stdout.getvalue()) if stdout.getvalue() else {}


def test_the_constants_agree_with_the_full_plugin() -> None:
    assert thin.CNI_VERSION == CNI_VERSION
    assert thin.SUPPORTED_VERSIONS == config.SUPPORTED_VERSIONS
    assert thin.PLUGIN_TYPE == CNI_PLUGIN_TYPE


def test_socket_paths_are_short_and_per_data_dir() -> None:
    assert socket_path() == socket_path(CNI_DATA_DIR) == "/run/tinykube/cni.sock"
    long_dir = "/var/lib/tinykube/clusters/" + "x" * 200 + "/node1/cni/data"
    path = socket_path(long_dir)
    assert path.startswith("/run/tinykube/cni-") and len(path) < 107
    assert path == socket_path(long_dir + "/") != socket_path("/var/lib/other/cni")


def test_the_thin_client_imports_only_the_standard_library(bin_dir: Path, agent: CNIServer) -> None:
    conf = json.dumps({**CONF, "agentSocket": agent.path}).encode()
    modules: set[str] = set()
    for command in ("VERSION", "ADD"):
        code, out, err, _ = run_thin(
            bin_dir / CNI_PLUGIN_TYPE, cni_env(command), conf, "-X", "importtime"
        )
        assert code == (0 if command == "VERSION" else 1), out
        modules |= {
            line.rsplit("|", 1)[1].strip()
            for line in err.splitlines()
            if line.startswith("import time:") and "imported package" not in line
        }
    assert agent.served == 1  # the ADD went to the agent
    ours = {m for m in modules if m.split(".")[0] not in sys.stdlib_module_names}
    assert ours == {"netplugin", "netplugin.cni", "netplugin.cni.thin"}
    assert "typing" not in modules and "logging" not in modules


@pytest.mark.parametrize(
    ("environ", "conf"),
    [
        (cni_env("ADD"), CONF),  # code 3: the netns is missing
        (cni_env("ADD"), {**CONF, "cniVersion": "0.4.0"}),  # the error in the config's version
        (cni_env("ADD"), {**CONF, "subnet": "10.244.1.0/99"}),  # code 7, the field named
        (cni_env("CHECK"), {**CONF, "cniVersion": "0.3.1"}),  # code 1: CHECK needs 0.4.0
        (cni_env("ADD", CNI_IFNAME="eth0-is-far-too-long"), CONF),  # code 4
        (cni_env("FROB"), CONF),  # code 4: not a CNI command
        (cni_env("DEL", CNI_NETNS=""), CONF),  # a DEL of nothing succeeds, prints nothing
    ],
)
def test_the_thin_client_answers_as_the_full_plugin(
    bin_dir: Path, agent: CNIServer, environ: dict[str, str], conf: dict[str, Any]
) -> None:
    with_socket = json.dumps({**conf, "agentSocket": agent.path}).encode()
    code, out, err, _ = run_thin(bin_dir / CNI_PLUGIN_TYPE, environ, with_socket)
    assert (code, out) == run_full(environ, with_socket)
    assert agent.served == 1
    assert f"tinykube-cni[{os.getpid()}]" in err  # the log lines the agent's run made


def test_version_needs_no_agent_and_no_stdin(bin_dir: Path) -> None:
    code, out, _, _ = run_thin(bin_dir / CNI_PLUGIN_TYPE, {"CNI_COMMAND": "VERSION"}, b"")
    assert (code, out) == run_full({"CNI_COMMAND": "VERSION"}, b"")


@pytest.mark.parametrize("stdin", [b"{{{", json.dumps(CONF).encode()])
def test_no_agent_named_or_garbage_runs_the_full_plugin(bin_dir: Path, stdin: bytes) -> None:
    """Not JSON (code 6), or no agentSocket: the full plugin, exec'd in the same process."""
    code, out, err, pid = run_thin(bin_dir / CNI_PLUGIN_TYPE, cni_env("ADD"), stdin)
    assert (code, out) == run_full(cni_env("ADD"), stdin)
    assert f"tinykube-cni[{pid}]" in err


def test_a_stale_socket_runs_the_full_plugin(bin_dir: Path, short_dir: Path) -> None:
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(short_dir / "dead.sock"))
    stale.close()  # the file stays; nobody listens: connect() is refused
    conf = json.dumps({**CONF, "agentSocket": str(short_dir / "dead.sock")}).encode()
    code, out, err, pid = run_thin(bin_dir / CNI_PLUGIN_TYPE, cni_env("ADD"), conf)
    assert (code, out["code"]) == (1, 3)
    assert f"tinykube-cni[{pid}]" in err  # the client's own process, now the full plugin


def test_no_agent_and_no_full_plugin_is_a_clear_error(bin_dir: Path) -> None:
    (bin_dir / thin.FULL_PLUGIN).unlink()
    code, out, _, _ = run_thin(bin_dir / CNI_PLUGIN_TYPE, cni_env("ADD"), b"{}")
    assert code == 1 and out["code"] == 999
    assert thin.FULL_PLUGIN in out["msg"] and str(bin_dir) in out["msg"]


@pytest.mark.parametrize("answer", [b"", b'{"code": 0, "std', b"not json"])
def test_an_agent_that_dies_mid_request_is_error_11(
    bin_dir: Path, short_dir: Path, answer: bytes
) -> None:
    """The agent took the request and closed without a (whole) reply."""
    path = str(short_dir / "dying.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)

    def die() -> None:
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.sendall(answer)
        conn.close()

    dying = threading.Thread(target=die)
    dying.start()
    try:
        conf = json.dumps({**CONF, "cniVersion": "0.4.0", "agentSocket": path}).encode()
        code, out, _, _ = run_thin(bin_dir / CNI_PLUGIN_TYPE, cni_env("ADD"), conf)
    finally:
        dying.join(30)
        listener.close()
    assert code == 1
    assert out["code"] == 11 and out["cniVersion"] == "0.4.0"
    assert out["msg"] == thin.LOST and path in out["details"]


def test_the_server_answers_a_foreign_request_with_an_error(agent: CNIServer) -> None:
    for request in (b"GET / HTTP/1.0\r\n\r\n", b'{"v": 99, "env": {}}\n{}'):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(agent.path)
            client.sendall(request)
            client.shutdown(socket.SHUT_WR)
            reply = json.loads(thin._read_all(client))
        assert reply["code"] == 1
        error = json.loads(reply["stdout"])
        assert error["code"] == 4 and "not a CNI call of protocol 1" in error["msg"]
    assert agent.served == 0


def test_the_socket_is_private_and_a_second_server_is_refused(agent: CNIServer) -> None:
    assert os.stat(agent.path).st_mode & 0o777 == 0o600
    with pytest.raises(FileExistsError, match="another network agent"):
        asyncio.run(CNIServer(agent.path).start())


def test_a_starting_agent_sweeps_dead_agents_sockets_only(short_dir: Path) -> None:
    dead = short_dir / "cni-dead.sock"
    fresh = short_dir / "cni-fresh.sock"
    for path in (dead, fresh):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(path))
        sock.close()  # nobody listens on either
    os.utime(dead, (0, 0))  # long dead; `fresh` may be an agent between bind and listen
    (short_dir / "cni-file.sock").write_text("")  # not a socket: never touched
    live = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    live.bind(str(short_dir / "cni-live.sock"))
    live.listen(1)
    os.utime(short_dir / "cni-live.sock", (0, 0))
    try:
        assert sweep_stale(str(short_dir)) == [str(dead)]
    finally:
        live.close()
    names = {p.name for p in short_dir.iterdir()}
    assert {"cni-fresh.sock", "cni-file.sock", "cni-live.sock"} <= names
    assert "cni-dead.sock" not in names
