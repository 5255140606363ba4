"""A real etcd for tests: one member on loopback, free ports, its own data directory.

    server = EtcdServer(tmp_path / "etcd")
    server.start()                      # returns once /health says true
    store = EtcdStorage(EtcdConfig((server.endpoint,)))
    ...
    server.stop()                       # SIGKILL: what survives is what etcd made durable
    server.start()                      # same ports, same data directory

With `tls=EtcdTLS(...)` the member serves https and requires a client
certificate signed by the test CA (`--client-cert-auth`), as a production
etcd behind kube-apiserver does; `make_tls` makes that CA and the server and
client certificates with the project's own helpers (apimachinery/certs.py).

Every server started here is in `RUNNING` until stopped, so a fixture can
kill what a failing test left behind (`stop_all`). Tests skip with a clear
reason (`needs_etcd`) where /usr/bin/etcd is not installed.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from apimachinery import certs
from apimachinery.certs import CertConfig, CertKeyPair

ETCD = "/usr/bin/etcd"
needs_etcd = pytest.mark.skipif(
    not os.path.exists(ETCD),
    reason=f"etcd is not installed ({ETCD}: Debian's etcd-server package, `make system-deps`)",
)
START_TIMEOUT = 20.0
RUNNING: set[EtcdServer] = set()


@dataclass(frozen=True)
class EtcdTLS:
    """PEM files: the CA both sides trust, the member's serving pair, a client pair."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def make_tls(directory: Path) -> EtcdTLS:
    """A throwaway CA, a serving certificate for 127.0.0.1 and a client certificate."""
    key = certs.generate_key()
    ca = CertKeyPair(certs.new_self_signed_ca(key, "etcd-ca"), key)
    loopback = ipaddress.ip_address("127.0.0.1")
    server = certs.new_cert_and_key(
        ca, CertConfig("etcd-server", usages=("server", "client"), ip_addresses=(loopback,))
    )
    client = certs.new_cert_and_key(ca, CertConfig("kube-apiserver-etcd-client"))
    tls = EtcdTLS(
        directory / "ca.crt",
        directory / "server.crt",
        directory / "server.key",
        directory / "client.crt",
        directory / "client.key",
    )
    certs.write_cert(tls.ca, ca.cert)
    certs.write_cert(tls.server_cert, server.cert)
    certs.write_key(tls.server_key, server.key)
    certs.write_cert(tls.client_cert, client.cert)
    certs.write_key(tls.client_key, client.key)
    return tls


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EtcdServer:
    """One etcd member; see the module docstring."""

    def __init__(self, data_dir: Path, *, tls: EtcdTLS | None = None) -> None:
        self.data_dir = data_dir
        self.tls = tls
        self.client_port = _free_port()
        self.peer_port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def client_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.endpoint}"

    def _args(self) -> list[str]:
        peer = f"http://127.0.0.1:{self.peer_port}"
        args = [
            ETCD,
            "--name=default",
            f"--data-dir={self.data_dir}",
            f"--listen-client-urls={self.client_url}",
            f"--advertise-client-urls={self.client_url}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=default={peer}",
            "--logger=zap",
            "--log-level=error",
        ]
        if self.tls is not None:
            args += [
                f"--cert-file={self.tls.server_cert}",
                f"--key-file={self.tls.server_key}",
                f"--trusted-ca-file={self.tls.ca}",
                "--client-cert-auth",
            ]
        return args

    def start(self) -> None:
        """Run etcd and wait until it is healthy (raises, with its log, if it is not)."""
        if self.proc is not None:
            return
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        log_path = self.data_dir.parent / f"{self.data_dir.name}.log"
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self._args(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        RUNNING.add(self)
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise

    def _wait_healthy(self) -> None:
        context: ssl.SSLContext | None = None
        if self.tls is not None:
            context = ssl.create_default_context(cafile=str(self.tls.ca))
            context.load_cert_chain(str(self.tls.client_cert), str(self.tls.client_key))
        deadline = time.monotonic() + START_TIMEOUT
        assert self.proc is not None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"etcd exited with {self.proc.returncode}: {self._log_tail()}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(
                    f"{self.client_url}/health", timeout=1, context=context
                ) as reply,
            ):
                if b'"health":"true"' in reply.read():
                    return
            time.sleep(0.02)
        raise RuntimeError(f"etcd not healthy after {START_TIMEOUT}s: {self._log_tail()}")

    def _log_tail(self) -> str:
        log_path = self.data_dir.parent / f"{self.data_dir.name}.log"
        with contextlib.suppress(OSError):
            return log_path.read_text(errors="replace")[-2000:]
        return "(no log)"

    def stop(self) -> None:
        """SIGKILL etcd (idempotent); its data directory stays for a restart."""
        proc, self.proc = self.proc, None
        RUNNING.discard(self)
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def remove(self) -> None:
        """Stop etcd and delete its data directory."""
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)


def stop_all() -> None:
    """Kill every server still running (a failed test's leftovers)."""
    for server in list(RUNNING):
        server.stop()
