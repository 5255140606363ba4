"""The kubelet's client certificate: the store, one CSR's wait, TLS bootstrapping, rotation.

The signer here is the test itself (`Signer`): it approves and signs every
pending CertificateSigningRequest with the `pki init` CA through UpdateStatus,
as kube-controller-manager's csrapproving and csrsigning controllers do --
signing in the test lets a certificate live a few seconds, which the
signing controller (ten minutes at least) would not.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from apimachinery import certs, errors, kubeconfig
from apimachinery import clusterbootstrap as bt
from apimachinery.client import Client
from cli.main import cli
from controllers.base import ControllerOptions
from kubelet.certificate.bootstrap import (
    load_client_cert,
    request_node_certificate,
    secure_server,
    usable_kubeconfig,
    write_kubeconfig,
)
from kubelet.certificate.client_config import ClientOptions, build_client
from kubelet.certificate.csr import CertificateRequestError, issued, request_certificate
from kubelet.certificate.manager import CertificateManager, rotation_deadline
from kubelet.certificate.store import CURRENT, PENDING_KEY, FileStore
from protos import certificates_pb2
from tests.unit.controllers.infra import controllers
from tests.unit.csr_fixtures import TOKEN, SecuredCluster, secured_cluster
from tests.unit.kubelet.test_server_tls import Pki, make_pki

CSR = certificates_pb2.CertificateSigningRequest
UTC = datetime.timezone.utc


class Signer:
    """Approves and signs (or denies) every pending CSR, polling the API."""

    def __init__(
        self,
        client: Client,
        ca: certs.CertKeyPair,
        *,
        validity: datetime.timedelta = certs.CERT_VALIDITY,
        deny: str = "",
    ) -> None:
        self.client, self.ca, self.validity, self.deny = client, ca, validity, deny
        self.signed: list[str] = []

    async def run(self) -> None:
        while True:
            items, _ = await self.client.list(CSR)
            for csr in items:
                if not csr.status.certificate and not csr.status.conditions:
                    await self._answer(csr)
            await asyncio.sleep(0.05)

    async def _answer(self, csr: CSR) -> None:
        verdict = "Denied" if self.deny else "Approved"
        reason = "NotMyNode" if self.deny else "AutoApproved"
        csr.status.conditions.add(type=verdict, status="True", reason=reason, message=self.deny)
        csr = await self.client.update_status(csr)
        if self.deny:
            return
        # notBefore = now: the signer's usual five minutes of backdating would eat a short life
        now = datetime.datetime.now(UTC) + certs.BACKDATE
        cert = certs.sign_csr(self.ca, csr.spec.request, validity=self.validity, now=now)
        csr.status.certificate = certs.encode_cert_pem(cert)
        self.signed.append(csr.metadata.name)  # before: the requester may be done at once
        await self.client.update_status(csr)


@contextlib.asynccontextmanager
async def running(signer: Signer) -> AsyncIterator[Signer]:
    task = asyncio.ensure_future(signer.run())
    try:
        yield signer
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pki]:
    yield make_pki(tmp_path_factory.mktemp("pki"))


def _ca(pki: Pki) -> certs.CertKeyPair:
    base = pki.directory / "pki"
    return certs.CertKeyPair(certs.read_cert(base / "ca.crt"), certs.read_key(base / "ca.key"))


# ---- the store --------------------------------------------------------------------------


def test_the_store_keeps_dated_pairs_behind_a_link(pki: Pki, tmp_path: Path) -> None:
    store = FileStore(tmp_path / "pki")
    assert store.current() is None
    pending = store.pending_key()
    assert os.stat(tmp_path / "pki" / PENDING_KEY).st_mode & 0o777 == 0o600
    assert certs.spki_der(store.pending_key().public_key()) == certs.spki_der(
        pending.public_key()
    )  # the same key again after a restart: the same request
    cert = certs.sign_certificate(
        _ca(pki), pending.public_key(), certs.CertConfig("system:node:n1", ("system:nodes",))
    )
    dated = store.update(cert, pending)
    store.drop_pending_key()
    link = tmp_path / "pki" / CURRENT
    assert link.is_symlink() and os.readlink(link) == dated.name
    assert os.stat(dated).st_mode & 0o777 == 0o600
    current = store.current()
    assert current is not None and current.cert == cert
    assert not (tmp_path / "pki" / PENDING_KEY).exists()


# ---- one request ------------------------------------------------------------------------


async def test_a_denied_request_stops_the_wait(client: Client, pki: Pki, tmp_path: Path) -> None:
    store = FileStore(tmp_path / "pki")
    async with running(Signer(client, _ca(pki), deny="not a node of ours")):
        with pytest.raises(CertificateRequestError) as denied:
            await request_node_certificate(client, store, "node3", timeout=10)
    assert "was denied: NotMyNode: not a node of ours" in str(denied.value)
    assert store.current() is None
    assert not (tmp_path / "pki" / PENDING_KEY).exists()  # the next start asks anew


async def test_the_same_request_finds_its_object(client: Client) -> None:
    key = certs.generate_key()
    pem = certs.make_csr(key, "system:node:node3", ["system:nodes"])
    first = await request_certificate(client, pem)
    again = await request_certificate(client, pem)
    assert first.metadata.name == again.metadata.name and first.metadata.name.startswith(
        "node-csr-"
    )
    assert list(first.spec.usages) == ["digital signature", "client auth"]
    assert first.spec.signer_name == "kubernetes.io/kube-apiserver-client-kubelet"
    failed = CSR()
    failed.metadata.name = "x"
    failed.status.conditions.add(type="Failed", reason="SignerValidationFailure")
    with pytest.raises(CertificateRequestError, match="x failed: SignerValidationFailure"):
        issued(failed)


# ---- bootstrap --------------------------------------------------------------------------


async def test_bootstrap_writes_the_pair_and_a_kubeconfig(
    client: Client, pki: Pki, tmp_path: Path
) -> None:
    store = FileStore(tmp_path / "pki")
    async with running(Signer(client, _ca(pki))) as signer:
        pair = await request_node_certificate(client, store, "node3", timeout=10)
    assert len(signer.signed) == 1
    assert certs.identity(pair.cert) == certs.Identity("system:node:node3", ("system:nodes",))
    assert not (tmp_path / "pki" / PENDING_KEY).exists()

    # a crash after the pair was stored: the next start writes the kubeconfig from it
    bootstrap = tmp_path / "bootstrap-kubelet.conf"
    document = kubeconfig.new_config(server=f"unix:{tmp_path}/none.sock", ca_pem=pki.ca, user="x")
    del document["clusters"][0]["cluster"]["certificate-authority-data"]
    kubeconfig.write(bootstrap, document)
    conf = tmp_path / "kubelet.conf"
    await load_client_cert(
        conf, bootstrap, tmp_path / "pki", "node3", server="https://10.0.0.1:6443"
    )
    written = kubeconfig.load(conf)
    assert written.server == "https://10.0.0.1:6443" and written.cert_pem is not None
    assert certs.load_cert_pem(written.cert_pem) == pair.cert
    assert usable_kubeconfig(conf) and os.stat(conf).st_mode & 0o777 == 0o600


def test_the_certificate_port_is_the_bootstrap_host_on_6443() -> None:
    assert secure_server("https://10.0.0.1:6444") == "https://10.0.0.1:6443"
    assert secure_server("https://[fd00::1]:6444") == "https://[fd00::1]:6443"
    assert secure_server("10.0.0.1:6444") == "https://10.0.0.1:6443"


# ---- rotation ---------------------------------------------------------------------------


def test_the_deadline_is_70_to_90_percent_of_the_lifetime(pki: Pki) -> None:
    start = datetime.datetime(2024, 5, 1, tzinfo=UTC)
    key = certs.generate_key()
    config = certs.CertConfig("system:node:n", validity=datetime.timedelta(days=100))
    cert = certs.sign_certificate(_ca(pki), key.public_key(), config, now=start + certs.BACKDATE)
    assert rotation_deadline(cert, 0.7) == start + datetime.timedelta(days=70)
    assert rotation_deadline(cert, 0.9) == start + datetime.timedelta(days=90)


async def test_rotation_renews_a_short_lived_certificate(tmp_path: Path) -> None:
    """A 4-second certificate, renewed at 70% of its life as the node, over the real mTLS port."""
    store = FileStore(tmp_path / "kubelet-pki")
    short = datetime.timedelta(seconds=4)
    async with secured_cluster(tmp_path) as cluster:
        ca = certs.CertKeyPair(certs.read_cert(cluster.ca_cert), certs.read_key(cluster.ca_key))
        signer = Signer(cluster.admin, ca, validity=short)
        async with running(signer):
            await _rotate_as_node3(cluster, store, signer, tmp_path / "kubelet.conf")


async def _rotate_as_node3(
    cluster: SecuredCluster, store: FileStore, signer: Signer, path: Path
) -> None:
    first = await request_node_certificate(cluster.admin, store, "node3", timeout=10)
    mtls = f"127.0.0.1:{cluster.server.ports[1]}"
    write_kubeconfig(path, f"https://{mtls}", cluster.ca_cert.read_bytes(), store)
    config = kubeconfig.load(path)
    node = Client.from_config(config, timeout=10)
    manager = CertificateManager(
        node, config, store, "node3", kubeconfig_path=path, jitter=lambda: 0.0
    )
    task = asyncio.ensure_future(manager.run())
    try:
        await _until(lambda: len(signer.signed) >= 2, timeout=15)
        await _until(lambda: manager.cert != first.cert, timeout=5)
        # the renewed client works; the first certificate has expired by now
        await _until(lambda: certs.validity_window(first.cert)[1] < _now(), timeout=5)
        renewal = await node.get(CSR, signer.signed[1])
        assert renewal.status.certificate
        assert renewal.spec.username == "system:node:node3"  # asked as the node itself
        expired = dataclasses.replace(
            config,
            cert_pem=certs.encode_cert_pem(first.cert),
            key_pem=certs.encode_key_pem(first.key),
        )
        async with Client.from_config(expired, timeout=5) as stale:
            with pytest.raises(errors.ServiceUnavailable):
                await stale.get(CSR, signer.signed[1])
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await manager.close()
        await node.close()
    renewed = manager.cert
    assert certs.identity(renewed).user == "system:node:node3"
    assert certs.spki_der(renewed.public_key()) != certs.spki_der(first.key.public_key())
    rotated = kubeconfig.load(path)  # a restarted kubelet starts from the new pair
    assert rotated.cert_pem is not None and certs.load_cert_pem(rotated.cert_pem) == renewed


def _now() -> datetime.datetime:
    return datetime.datetime.now(UTC)


async def _until(check: Callable[[], bool], timeout: float) -> None:
    for _ in range(int(timeout / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {timeout}s")


# ---- the whole path: join, the token port, the CSR controllers, the certificate port -------


async def test_a_new_node_joins_and_bootstraps(tmp_path: Path) -> None:
    """`tinykube join` with a real bootstrap token, then the kubelet's client: its CSR is
    approved and signed by kube-controller-manager's csrapproving and csrsigning."""
    async with secured_cluster(tmp_path) as cluster:
        await cluster.admin.create(bt.new_token_secret(TOKEN))
        token_port, mtls = cluster.server.ports[2], cluster.server.ports[1]
        bootstrap = tmp_path / "bootstrap-kubelet.conf"
        pin = certs.ca_hash(certs.read_cert(cluster.ca_cert))
        args = ["join", f"127.0.0.1:{token_port}", "--token", str(TOKEN), "--node-name", "node3"]
        args += ["--discovery-token-ca-cert-hash", pin, "--out", str(bootstrap)]
        joined = await asyncio.to_thread(CliRunner().invoke, cli, args)
        assert joined.exit_code == 0, joined.output
        options = ClientOptions(
            node_name="node3",
            kubeconfig=str(tmp_path / "kubelet.conf"),
            bootstrap_kubeconfig=str(bootstrap),
            cert_dir=str(tmp_path / "kubelet-pki"),
            server=f"https://127.0.0.1:{mtls}",  # the test's port; by default HOST:6443
            bootstrap_wait=10,
        )
        signing = ControllerOptions(
            cluster_signing_cert_file=str(cluster.ca_cert),
            cluster_signing_key_file=str(cluster.ca_key),
        )
        async with controllers(cluster.admin, ["csrapproving", "csrsigning"], signing):
            node, manager = await build_client(options)
        async with node:
            assert manager is not None
            csrs, _ = await node.list(CSR)  # as system:node:node3, over mutual TLS
        [csr] = [c for c in csrs if c.spec.username == "system:bootstrap:abcdef"]
        cert = certs.load_cert_pem(csr.status.certificate)
        assert certs.identity(cert) == certs.Identity("system:node:node3", ("system:nodes",))
        written = kubeconfig.load(options.kubeconfig)
        assert written.server == f"https://127.0.0.1:{mtls}"
        assert written.ca_pem == cluster.ca_cert.read_bytes()
        assert written.cert_pem is not None and certs.load_cert_pem(written.cert_pem) == cert
        assert (tmp_path / "kubelet-pki" / CURRENT).is_symlink()

        # started again: the kubeconfig is valid, nothing more is asked for
        again, _ = await build_client(options)
        await again.close()
        assert len((await cluster.admin.list(CSR))[0]) == 1
