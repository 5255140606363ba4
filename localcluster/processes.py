"""tinykube's own processes, started and stopped from Python.

The demo, the benchmarks and the process-level tests all need "an API server
on free loopback ports with its data here", secured as a cluster's is:
`ApiServerProcess` is that. Each child runs in its own session so that
stopping it stops everything it started, and a child that fails to come up
is reported with its log.

An ApiServerProcess has a PKI of its own, made by `tinykube pki init` (as
`tinykube up` and the VMs make theirs, localcluster/pki.py) in a directory
beside its data, and serves what a cluster's API server serves:

    127.0.0.1:PORT          mTLS (`secure_address`): the kubelets, the scheduler and
                            the controller-manager, each with its own kubeconfig
    127.0.0.1:TOKEN_PORT    bearer tokens (`token_address`)
    unix:<short path>       the local admin (`address`): whoever may open the socket
                            -- here the test itself -- is kubernetes-admin

so `Client(srv.address)` and `tinykube --server srv.address` are the admin
without certificates, while `srv.client()` and `--kubeconfig
srv.admin_kubeconfig` are the admin over TLS, as a user on another machine.
A `KubeletProcess` given the ApiServerProcess (rather than an address) is
added to the PKI as a node (`--node NAME=IP`: its kubeconfig, identity
system:node:NAME, and its serving certificate) and runs with them, so the
Node authorizer and the kubelet's own mTLS server are exercised by every
process-level test. Unix socket paths are limited to 107 bytes, so a socket
that would not fit in the data directory goes to a short temporary one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from apimachinery.clientcmd import ENV_CLUSTER, ENV_CONFIG, ENV_KUBECONFIG, ENV_SERVER
from localcluster import pki
from localcluster.pki import PkiLayout

if TYPE_CHECKING:
    from apimachinery.client import Client

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
    dropped = (ENV_SERVER, ENV_CONFIG, ENV_KUBECONFIG)
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env[ENV_CLUSTER] = name
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 15.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex((host, port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port}")


class PkiInitError(RuntimeError):
    """`tinykube pki init` failed; the message holds what it printed."""


def pki_init(
    layout: PkiLayout,
    addresses: Sequence[str],
    nodes: Mapping[str, str],
    port: int = pki.APISERVER_PORT,
) -> str:
    """Run `tinykube pki init` into `layout` (files that exist are kept); its output,
    whose last line is the CA hash a joining node pins."""
    argv = [*tinykube_cmd(), *pki.init_args(layout, addresses, nodes, port)]
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=120, check=False)
    if proc.returncode != 0:
        raise PkiInitError(f"tinykube pki init failed: {(proc.stderr or proc.stdout).strip()}")
    return proc.stdout


def short_socket_path(directory: Path, name: str = "api.sock") -> Path:
    """`directory/name` if a unix socket fits there (107 bytes), else in a short temporary
    directory; the caller removes that (`weakref.finalize`)."""
    path = directory / name
    if len(str(path)) < 100:
        return path
    return Path(tempfile.mkdtemp(prefix="tkapi-")) / name


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
    """`tinykube apiserver` on free loopback ports, TLS as a cluster's (module docstring)."""

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        extra_args: tuple[str, ...] = (),
        host: str = "127.0.0.1",
    ) -> None:
        self.data_dir = data_dir
        self.host = host  # any of 127.0.0.0/8: a test may want the conventional port 6443
        self.port = port or free_port()
        self.token_port = free_port()
        self.pki = PkiLayout(str(data_dir.with_name(f"{data_dir.name}-pki")))
        self.nodes: dict[str, str] = {}  # name -> IP, for the kubelets' certificates
        self.socket_path = short_socket_path(data_dir)
        if self.socket_path.parent != data_dir:
            weakref.finalize(self, shutil.rmtree, self.socket_path.parent, True)
        args = [
            "apiserver",
            "--data-dir",
            str(data_dir),
            "--listen",
            self.secure_address,
            "--listen",
            self.address,
            "--token-listen",
            self.token_address,
            *pki.apiserver_args(self.pki),
            *extra_args,
        ]
        super().__init__(args, data_dir / "apiserver.log")

    @property
    def address(self) -> str:
        """The local admin's unix socket (no certificate: the file's mode is the trust)."""
        return f"unix:{self.socket_path}"

    @property
    def secure_address(self) -> str:
        """The mTLS port, as the kubeconfigs name it."""
        return f"{self.host}:{self.port}"

    @property
    def token_address(self) -> str:
        return f"{self.host}:{self.token_port}"

    @property
    def admin_kubeconfig(self) -> Path:
        """kubernetes-admin (system:masters) over mTLS: `tinykube --kubeconfig` takes it."""
        return Path(self.pki.admin_conf)

    def kubeconfig(self, user: str) -> Path:
        """`scheduler`, `controller-manager`, `kubelet-NAME`: that identity's kubeconfig."""
        return Path(self.pki.kubeconfig(user))

    def client(self, timeout: float = 30.0) -> Client:
        """A client that is the admin over mTLS (admin.conf), as a remote user is."""
        from apimachinery import kubeconfig
        from apimachinery.client import Client

        return Client.from_config(kubeconfig.load(self.admin_kubeconfig), timeout=timeout)

    def add_node(self, name: str, ip: str = "127.0.0.1") -> None:
        """Make NAME a node of the PKI: its kubelet's kubeconfig and serving certificate
        (now if the PKI exists, else with the rest at start)."""
        self.nodes[name] = ip
        if Path(self.pki.ca_cert).exists() and not Path(self.pki.kubelet_conf(name)).exists():
            self.ensure_pki()

    def ensure_pki(self) -> None:
        """`tinykube pki init` for this server and its nodes; what exists is kept."""
        pki_init(self.pki, [self.host], self.nodes, port=self.port)

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        missing = [n for n in self.nodes if not Path(self.pki.kubelet_conf(n)).exists()]
        if missing or not Path(self.pki.admin_conf).exists():
            self.ensure_pki()
        self.socket_path.unlink(missing_ok=True)
        self.spawn()
        try:
            wait_for_port(self.port, host=self.host)
        except TimeoutError:
            self.stop()
            raise RuntimeError("apiserver did not start:\n" + self.log.read_text()) from None


def _flag(args: Sequence[str], name: str) -> str:
    """The value after `name` in args, "" when absent."""
    return args[args.index(name) + 1] if name in args[:-1] else ""


class KubeletProcess(ChildProcess):
    """`tinykube kubelet` for one node (hollow with runtime "fake").

    Given an ApiServerProcess the kubelet is a node of its PKI: its kubeconfig, serving
    certificate and client CA (localcluster/pki.kubelet_args), its InternalIP the
    `--node-ip` of `extra_args` or 127.0.0.1; given an address, `--server ADDRESS`.
    """

    def __init__(
        self,
        node: str,
        server: str | ApiServerProcess,
        log_dir: Path,
        runtime: str = "fake",
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.node = node
        self.apiserver = server if isinstance(server, ApiServerProcess) else None
        args = ["kubelet", "--node-name", node, "--runtime", runtime]
        if isinstance(server, ApiServerProcess):
            ip = _flag(extra_args, "--node-ip") or "127.0.0.1"
            server.add_node(node, ip)
            args += pki.kubelet_args(server.pki, node, cert_dir=str(log_dir / f"{node}-pki"))
            if not _flag(extra_args, "--node-ip"):
                args += ["--node-ip", ip]
        else:
            args += ["--server", server]
        if not _flag(extra_args, "--root-dir"):  # kubelets on one host need their own
            # (the TLS front's sockets live there: a shared one is wiped by each start)
            args += ["--root-dir", str(log_dir / f"{node}-root")]
        super().__init__([*args, *extra_args], log_dir / f"kubelet-{node}.log")

    def start(self) -> None:
        if self.apiserver is not None:
            self.apiserver.add_node(self.node, self.apiserver.nodes.get(self.node, "127.0.0.1"))
        self.spawn()
