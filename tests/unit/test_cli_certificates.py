"""`tinykube token ...`, `tinykube certificate approve|deny`, `tinykube get csr`, end to end.

Each CLI command runs its own `asyncio.run`, as from a shell, so the API
server and the csrapproving, csrsigning and tokencleaner controllers live in
a child process, with a signing CA of their own in the test's directory; the
tests drive it with click's CliRunner as the local admin (the unix socket).
CSRs are created by the callers they are about, since the server stamps the
requester: on the token port as a bootstrapper or as bob (static tokens).
"""

# Expected lines are the CLI's exact output, so some are long.
# ruff: noqa: E501
from __future__ import annotations

import asyncio
import datetime
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from apimachinery import certs, errors
from apimachinery import clusterbootstrap as bt
from apimachinery import csr as csrs
from apimachinery.channel import Credentials
from apimachinery.client import Client
from cli.main import cli
from protos import core_pb2
from tests.unit.controllers.infra import eventually
from tests.unit.csr_fixtures import CSR, created_by, csr_writer, kubelet_csr, write_ca

ROOT = Path(__file__).parents[2]

pytestmark = pytest.mark.timeout(60)

SCRIPT = """
import asyncio, sys
from pathlib import Path
from apimachinery.client import Client
from apiserver.auth.authorizer import UserInfo
from apiserver.listeners import ServingOptions
from apiserver.server import APIServer
from apiserver.storage import open_storage
from cli.cmd_pki import PkiOptions, init_pki
from controllers.base import ControllerOptions
from controllers.manager import run_controller_manager

async def main():
    data = sys.argv[1]
    init_pki(PkiOptions(directory=Path(data) / "tls"), echo=lambda *_: None)
    storage = await open_storage("sqlite", data)
    serving = ServingOptions(
        listen=(),
        token_listen=("127.0.0.1:0",),
        tls_cert_file=f"{data}/tls/pki/apiserver.crt",
        tls_private_key_file=f"{data}/tls/pki/apiserver.key",
    )
    tokens = {
        "bootstrapper": UserInfo("system:bootstrap:abcdef", ("system:bootstrappers",)),
        "bob": UserInfo("bob", ("csr-writers",)),
    }
    server = APIServer(storage, f"unix:{data}/api.sock", serving=serving, static_tokens=tokens)
    await server.start()
    options = ControllerOptions(
        cluster_signing_cert_file=f"{data}/ca.crt",
        cluster_signing_key_file=f"{data}/ca.key",
    )
    names = ["csrapproving", "csrsigning", "tokencleaner"]
    task = asyncio.ensure_future(run_controller_manager(Client(server.local_address), options, only=names))
    print(server.local_address, f"127.0.0.1:{server.ports[-1]}", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


class Cluster:
    def __init__(self, data_dir: Path) -> None:
        self.ca = write_ca(data_dir)[0]
        self.ca_file = data_dir / "ca.crt"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SCRIPT, str(data_dir)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.address, self.token_address = self.proc.stdout.readline().split()
        self.tls_ca = (data_dir / "tls" / "pki" / "ca.crt").read_bytes()

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)

    def call(self, fn: Any) -> Any:
        async def run() -> Any:
            async with Client(self.address) as client:
                return await fn(client)

        return asyncio.run(run())

    def call_as(self, token: str, fn: Any) -> Any:
        """As a token user of the server's token port (the server stamps CSRs with it)."""

        async def run() -> Any:
            credentials = Credentials(ca_pem=self.tls_ca, token=token)
            async with Client(self.token_address, credentials=credentials) as client:
                return await fn(client)

        return asyncio.run(run())

    def tk(self, *args: str) -> Result:
        return CliRunner().invoke(cli, ["--server", self.address, *args])

    def secret(self, token_id: str) -> core_pb2.Secret | None:
        async def get(client: Client) -> core_pb2.Secret | None:
            try:
                return await client.get(core_pb2.Secret, bt.secret_name(token_id), bt.NAMESPACE)
            except errors.NotFound:
                return None

        found: core_pb2.Secret | None = self.call(get)
        return found

    def wait_csr(self, name: str, done: Any) -> Any:
        async def poll(client: Client) -> Any:
            for _ in range(200):
                csr = await client.get(CSR, name)
                if done(csr):
                    return csr
                await asyncio.sleep(0.05)
            raise AssertionError(f"csr {name} never got there")

        return self.call(poll)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    try:
        yield c
    finally:
        c.stop()


# ---- token ----------------------------------------------------------------------------------


def test_token_create_stores_kubeadms_secret(cluster: Cluster) -> None:
    result = cluster.tk("token", "create", "--description", "for node3", "--ttl", "1h")
    assert result.exit_code == 0, result.output
    token = result.output.strip()
    assert re.fullmatch(r"[a-z0-9]{6}\.[a-z0-9]{16}", token)
    secret = cluster.secret(token[:6])
    assert secret is not None and secret.type == "bootstrap.kubernetes.io/token"
    data = {k: v.decode() for k, v in secret.data.items()}
    expiration = bt.parse_rfc3339(data.pop("expiration"))
    left = expiration - datetime.datetime.now(datetime.timezone.utc)
    assert datetime.timedelta(minutes=58) < left <= datetime.timedelta(hours=1)
    assert data == {
        "token-id": token[:6],
        "token-secret": token[7:],
        "usage-bootstrap-authentication": "true",
        "usage-bootstrap-signing": "true",
        "auth-extra-groups": "system:bootstrappers:kubeadm:default-node-token",
        "description": "for node3",
    }


def test_token_create_given_token_once(cluster: Cluster) -> None:
    result = cluster.tk("token", "create", "abcdef.0123456789abcdef", "--ttl", "0")
    assert (result.exit_code, result.output) == (0, "abcdef.0123456789abcdef\n")
    secret = cluster.secret("abcdef")
    assert secret is not None and "expiration" not in secret.data  # --ttl 0: forever
    again = cluster.tk("token", "create", "abcdef.0123456789abcdef")
    assert (again.exit_code, again.output) == (
        1,
        'error: a token with id "abcdef" already exists\n',
    )
    bad = cluster.tk("token", "create", "ABCDEF.0123456789abcdef")
    assert bad.exit_code == 1
    assert bad.output.startswith('error: token "ABCDEF.0123456789abcdef" does not match')
    bad = cluster.tk("token", "create", "--usages", "signing", "--groups", "system:bootstrappers:x")
    assert (
        bad.output
        == 'error: token groups cannot be specified unless --usages includes "authentication"\n'
    )
    bad = cluster.tk("token", "create", "--groups", "system:masters")
    assert bad.exit_code == 1 and "system:masters" in bad.output


def test_token_create_prints_the_join_command(cluster: Cluster, tmp_path: Path) -> None:
    result = cluster.tk(
        "token",
        "create",
        "abcdef.0123456789abcdef",
        "--print-join-command",
        "--ca-cert",
        str(cluster.ca_file),
        "--join-address",
        "10.0.0.1:6444",
    )
    assert result.exit_code == 0, result.output
    pin = certs.ca_hash(cluster.ca.cert)
    assert result.output == (
        f"tinykube join 10.0.0.1:6444 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash {pin}"
        ' --node-name "$(hostname)" --out /etc/tinykube/bootstrap-kubelet.conf\n'
    )
    # No CA file: nothing is created. A unix-socket server names no address to join.
    missing = cluster.tk(
        "token",
        "create",
        "ghijkl.0123456789abcdef",
        "--print-join-command",
        "--ca-cert",
        str(tmp_path / "none.crt"),
    )
    assert missing.exit_code == 1 and "none.crt" in missing.output
    assert cluster.secret("ghijkl") is None
    no_address = cluster.tk(
        "token", "create", "--print-join-command", "--ca-cert", str(cluster.ca_file)
    )
    assert (
        no_address.output == "error: the server is a unix socket: give --join-address HOST:PORT\n"
    )


def test_token_list_and_delete(cluster: Cluster) -> None:
    assert (
        cluster.tk("token", "create", "abcdef.0123456789abcdef", "--description", "n3").exit_code
        == 0
    )
    assert cluster.tk("token", "create", "zyxwvu.0123456789abcdef", "--ttl", "0").exit_code == 0
    result = cluster.tk("token", "list")
    assert result.exit_code == 0, result.output
    header, first, second = result.output.splitlines()
    assert header.split() == ["TOKEN", "TTL", "EXPIRES", "USAGES", "DESCRIPTION", "EXTRA", "GROUPS"]
    assert first.split()[0] == "abcdef.0123456789abcdef"
    assert first.split()[1] in ("23h", "24h")
    assert first.split()[3:] == [
        "authentication,signing",
        "n3",
        "system:bootstrappers:kubeadm:default-node-token",
    ]
    assert second.split()[:3] == ["zyxwvu.0123456789abcdef", "<forever>", "<never>"]

    result = cluster.tk(
        "token", "delete", "abcdef", "zyxwvu.0123456789abcdef", "nother", "Not-An-Id"
    )
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        'bootstrap token "abcdef" deleted',
        'bootstrap token "zyxwvu" deleted',
        'error: bootstrap token "nother" not found',
        'error: "Not-An-Id" is neither a token id nor a token',
    ]
    assert cluster.secret("abcdef") is None and cluster.secret("zyxwvu") is None


# ---- certificate approve / deny and get csr ----------------------------------------------------


def test_get_csr_and_decide_by_hand(cluster: Cluster) -> None:
    # A bootstrapper's kubelet CSR is approved and issued by the controllers on their own.
    cluster.call_as("bootstrapper", lambda c: c.create(kubelet_csr("node3")))
    cluster.wait_csr("node-csr-node3", lambda c: bool(c.status.certificate))
    # bob may create CSRs but is no bootstrapper: his wait for a human.
    cluster.call(lambda c: c.create(csr_writer("bob")))
    for node in ("node4", "node5"):
        csr = kubelet_csr(node)
        csr.spec.expiration_seconds = 3600
        cluster.call_as("bob", lambda c, csr=csr: eventually(lambda: created_by(c, csr)))

    result = cluster.tk("get", "csr")
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.output.splitlines()]
    assert rows[0] == ["NAME", "AGE", "SIGNERNAME", "REQUESTOR", "REQUESTEDDURATION", "CONDITION"]
    signer = csrs.KUBE_APISERVER_CLIENT_KUBELET
    assert [r[:1] + r[2:] for r in rows[1:]] == [
        ["node-csr-node3", signer, "system:bootstrap:abcdef", "<none>", "Approved,Issued"],
        ["node-csr-node4", signer, "bob", "60m", "Pending"],
        ["node-csr-node5", signer, "bob", "60m", "Pending"],
    ]

    result = cluster.tk("certificate", "approve", "node-csr-node4", "missing")
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "certificatesigningrequest.certificates.k8s.io/node-csr-node4 approved",
        'Error from server (NotFound): certificatesigningrequests.certificates.k8s.io "missing" not found',
    ]
    approved = cluster.wait_csr("node-csr-node4", lambda c: bool(c.status.certificate))
    cond = csrs.find_condition(approved, csrs.APPROVED)
    assert cond is not None and (cond.reason, cond.status) == ("KubectlApprove", "True")
    again = cluster.tk("certificate", "approve", "node-csr-node4")  # already approved: no error
    assert (again.exit_code, again.output) == (
        0,
        "certificatesigningrequest.certificates.k8s.io/node-csr-node4 approved\n",
    )

    result = cluster.tk("certificate", "deny", "node-csr-node5")
    assert (result.exit_code, result.output) == (
        0,
        "certificatesigningrequest.certificates.k8s.io/node-csr-node5 denied\n",
    )
    result = cluster.tk("certificate", "deny", "node-csr-node4")  # approved: cannot be denied
    assert result.exit_code == 1
    assert "Approved and Denied conditions are mutually exclusive" in result.output
    rows = [line.split() for line in cluster.tk("get", "csr").output.splitlines()]
    assert [(r[0], r[-1]) for r in rows[1:]] == [
        ("node-csr-node3", "Approved,Issued"),
        ("node-csr-node4", "Approved,Issued"),
        ("node-csr-node5", "Denied"),
    ]


# ---- the signing flags reach the controllers ----------------------------------------------------


def test_controller_manager_passes_the_signing_files(monkeypatch: pytest.MonkeyPatch) -> None:
    import controllers.manager

    seen: list[Any] = []

    async def fake(client: Any, options: Any, only: Any = None) -> None:
        seen.append(options)

    monkeypatch.setattr(controllers.manager, "run_controller_manager", fake)
    result = CliRunner().invoke(
        cli,
        [
            "--server",
            "unix:/nonexistent/api.sock",
            "controller-manager",
            "--cluster-signing-cert-file",
            "/etc/tinykube/pki/ca.crt",
            "--cluster-signing-key-file",
            "/etc/tinykube/pki/ca.key",
        ],
    )
    assert result.exit_code == 0, result.output
    [options] = seen
    assert (options.cluster_signing_cert_file, options.cluster_signing_key_file) == (
        "/etc/tinykube/pki/ca.crt",
        "/etc/tinykube/pki/ca.key",
    )


def test_apiserver_passes_the_signing_files(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import controlplane

    seen: list[Any] = []

    async def fake(data_dir: str, listen: str, **kwargs: Any) -> None:
        seen.append(kwargs["options"])

    monkeypatch.setattr(controlplane, "serve_control_plane", fake)
    result = CliRunner().invoke(
        cli,
        [
            "apiserver",
            "--data-dir",
            str(tmp_path),
            "--listen",
            f"unix:{tmp_path}/api.sock",
            "--no-scheduler",
            "--cluster-signing-cert-file",
            "ca.crt",
            "--cluster-signing-key-file",
            "ca.key",
        ],
    )
    assert result.exit_code == 0, result.output
    [options] = seen
    assert (options.cluster_signing_cert_file, options.cluster_signing_key_file) == (
        "ca.crt",
        "ca.key",
    )
