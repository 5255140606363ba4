"""TLS bootstrapping on the control plane: the csrapproving and csrsigning controllers.

A real API server and the real controller manager running the two
controllers. Each CSR is created by the caller it is about -- a joining node
with a real bootstrap token, node1 with its certificate, the admin, bob (who
may create CSRs but is no bootstrapper) -- because the server, not the
client, writes who asked (csr_fixtures.secured_cluster).
"""

from __future__ import annotations

import asyncio
import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from apimachinery import certs
from apimachinery import csr as csrs
from apimachinery.client import Client
from controllers.base import ControllerOptions
from controllers.csrsigning import validity
from tests.unit.controllers.infra import api_server, controllers, eventually
from tests.unit.csr_fixtures import (
    CSR,
    created_by,
    csr_writer,
    kubelet_csr,
    kubelet_request,
    new_csr,
    secured_cluster,
    write_ca,
)

BOTH = ["csrapproving", "csrsigning"]


def signing(cert: Path, key: Path) -> ControllerOptions:
    return ControllerOptions(cluster_signing_cert_file=str(cert), cluster_signing_key_file=str(key))


async def issued(client: Client, name: str) -> x509.Certificate | None:
    csr = await client.get(CSR, name)
    return certs.load_cert_pem(csr.status.certificate) if csr.status.certificate else None


async def test_a_bootstrappers_kubelet_csr_is_approved_and_signed(tmp_path: Path) -> None:
    async with secured_cluster(tmp_path) as cluster:
        async with await cluster.bootstrap_client() as joining:
            await joining.create(kubelet_csr("node3"))
        options = signing(cluster.ca_cert, cluster.ca_key)
        async with controllers(cluster.admin, BOTH, options):
            cert = await eventually(lambda: issued(cluster.admin, "node-csr-node3"))
        csr = await cluster.admin.get(CSR, "node-csr-node3")
        ca = certs.read_cert(cluster.ca_cert)
    assert csr.spec.username == "system:bootstrap:abcdef"  # stamped by the server
    assert "system:bootstrappers" in csr.spec.groups
    [approved] = csr.status.conditions
    assert (approved.type, approved.status, approved.reason) == ("Approved", "True", "AutoApproved")
    assert approved.last_update_time.seconds > 0
    certs.verify_signed_by(cert, ca)
    assert certs.identity(cert) == certs.Identity("system:node:node3", ("system:nodes",))
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    start, end = certs.validity_window(cert)
    assert end - start == certs.CERT_VALIDITY  # a year


async def test_a_node_renewing_its_own_certificate_is_approved(tmp_path: Path) -> None:
    async with secured_cluster(tmp_path) as cluster:
        async with cluster.kubelet_client("node1") as node1:
            await node1.create(kubelet_csr("node1"))
        async with controllers(cluster.admin, ["csrapproving"]):

            async def approved() -> bool:
                return csrs.is_approved(await cluster.admin.get(CSR, "node-csr-node1"))

            await eventually(approved)
        found = await cluster.admin.get(CSR, "node-csr-node1")
    assert found.spec.username == "system:node:node1"
    assert "self kubelet client" in found.status.conditions[0].message


async def test_other_requesters_stay_pending(tmp_path: Path) -> None:
    async with secured_cluster(tmp_path) as cluster:
        admin = cluster.admin
        # node1 asking for node2's name.
        async with cluster.kubelet_client("node1") as node1:
            await node1.create(kubelet_csr("node2"))
        # The admin, claiming to be a bootstrapper: the server writes who really asked.
        claim = kubelet_csr("node4")
        claim.spec.username = "system:bootstrap:abcdef"
        claim.spec.groups.append("system:bootstrappers")
        await admin.create(claim)
        # bob may create CSRs (bound to system:node-bootstrapper) but is no bootstrapper.
        await admin.create(csr_writer("bob"))
        async with cluster.token_client("bob-token") as bob:
            await eventually(lambda: created_by(bob, kubelet_csr("node6")))
        # A bootstrapper asking for a serving certificate.
        serving = new_csr(
            "serving",
            kubelet_request("node1", dns_names=("node1",)),
            signer=csrs.KUBELET_SERVING,
            usages=(csrs.DIGITAL_SIGNATURE, csrs.SERVER_AUTH),
        )
        joining = await cluster.bootstrap_client()
        async with joining:
            await joining.create(serving)
            options = signing(cluster.ca_cert, cluster.ca_key)
            async with controllers(admin, BOTH, options):
                await joining.create(kubelet_csr("node5"))
                await eventually(lambda: issued(admin, "node-csr-node5"))  # the controllers ran
                await asyncio.sleep(0.3)
        for name in ("node-csr-node2", "node-csr-node4", "node-csr-node6", "serving"):
            csr = await admin.get(CSR, name)
            assert list(csr.status.conditions) == [] and not csr.status.certificate, name
        claimed = await admin.get(CSR, "node-csr-node4")
    assert claimed.spec.username == "kubernetes-admin"
    assert "system:bootstrappers" not in claimed.spec.groups


async def test_denied_is_never_signed_nor_approved(tmp_path: Path) -> None:
    async with secured_cluster(tmp_path) as cluster:
        joining = await cluster.bootstrap_client()
        async with joining:
            await joining.create(kubelet_csr("node3"))
            csr = await cluster.admin.get(CSR, "node-csr-node3")
            csrs.add_condition(csr, csrs.DENIED, "KubectlDeny", "not this one")
            await cluster.admin.update_status(csr)
            options = signing(cluster.ca_cert, cluster.ca_key)
            async with controllers(cluster.admin, BOTH, options):
                await joining.create(kubelet_csr("node5"))
                await eventually(lambda: issued(cluster.admin, "node-csr-node5"))
                await asyncio.sleep(0.3)
        denied = await cluster.admin.get(CSR, "node-csr-node3")
    assert [c.type for c in denied.status.conditions] == ["Denied"]
    assert not denied.status.certificate


async def test_an_approved_request_its_signer_refuses_fails(tmp_path: Path) -> None:
    _, crt, key = write_ca(tmp_path)
    async with api_server(tmp_path) as client:
        # A kubelet serving request without a DNS or IP subjectAltName.
        csr = new_csr(
            "serving",
            kubelet_request("node1"),
            signer=csrs.KUBELET_SERVING,
            usages=(csrs.DIGITAL_SIGNATURE, csrs.SERVER_AUTH),
        )
        csr = await client.create(csr)
        csrs.add_condition(csr, csrs.APPROVED, "KubectlApprove", "")
        await client.update_status(csr)
        async with controllers(client, ["csrsigning"], signing(crt, key)):

            async def failed() -> CSR | None:
                found = await client.get(CSR, "serving")
                return found if csrs.has_true(found, csrs.FAILED) else None

            found = await eventually(failed)
    cond = csrs.find_condition(found, csrs.FAILED)
    assert cond is not None
    assert (cond.reason, cond.message) == (
        "SignerValidationFailure",
        "DNS or IP subjectAltName is required",
    )
    assert not found.status.certificate


async def test_signer_usages_and_requested_duration(tmp_path: Path) -> None:
    ca, crt, key = write_ca(tmp_path)
    async with api_server(tmp_path) as client:
        serving = new_csr(
            "serving",
            kubelet_request("node1", dns_names=("node1",), ips=("10.0.0.11",)),
            signer=csrs.KUBELET_SERVING,
            usages=(csrs.DIGITAL_SIGNATURE, csrs.SERVER_AUTH),
        )
        serving.spec.expiration_seconds = 3600
        admin = new_csr(
            "admin",
            certs.make_csr(certs.generate_key(), "alice", ["developers"]),
            signer=csrs.KUBE_APISERVER_CLIENT,
            usages=(csrs.CLIENT_AUTH,),
        )
        for csr in (serving, admin):
            created = await client.create(csr)
            csrs.add_condition(created, csrs.APPROVED, "KubectlApprove", "")
            await client.update_status(created)
        async with controllers(client, ["csrsigning"], signing(crt, key)):
            served = await eventually(lambda: issued(client, "serving"))
            alice = await eventually(lambda: issued(client, "admin"))
    certs.verify_signed_by(served, ca.cert)
    start, end = certs.validity_window(served)
    assert end - start == datetime.timedelta(hours=1)
    assert certs.subject_alt_names(served)[1] == ["node1"]
    eku = served.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert certs.identity(alice) == certs.Identity("alice", ("developers",))


async def test_no_signing_files_no_signing_until_the_ca_is_readable(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pki = tmp_path / "signing"
    pki.mkdir()
    async with secured_cluster(tmp_path) as cluster:
        admin = cluster.admin
        async with await cluster.bootstrap_client() as joining:
            await joining.create(kubelet_csr("node3"))
        async with controllers(admin, BOTH):  # no CA given: approval only

            async def approved() -> bool:
                return csrs.is_approved(await admin.get(CSR, "node-csr-node3"))

            await eventually(approved)
            await asyncio.sleep(0.3)
        assert await issued(admin, "node-csr-node3") is None
        # Given but not written yet: retried until `pki init` has written them.
        options = signing(pki / "ca.crt", pki / "ca.key")
        async with controllers(admin, ["csrsigning"], options):
            await asyncio.sleep(0.3)
            assert await issued(admin, "node-csr-node3") is None
            ca, _, _ = write_ca(pki)
            cert = await eventually(lambda: issued(admin, "node-csr-node3"))
    certs.verify_signed_by(cert, ca.cert)
    said = [r.getMessage() for r in caplog.records if r.name == "controllers.csrsigning"]
    assert said.count("cluster signing CA unusable") == 1  # once, however often retried
    assert len([m for m in said if m.startswith("csr signing disabled")]) == 1


def test_validity_is_capped() -> None:
    key = certs.generate_key()
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    short_ca = certs.CertKeyPair(
        certs.new_self_signed_ca(key, validity=datetime.timedelta(days=30), now=now), key
    )
    csr = kubelet_csr("node1")
    year = datetime.timedelta(days=365)
    assert validity(csr, short_ca, year, now) == datetime.timedelta(days=30)
    csr.spec.expiration_seconds = 60  # below the 10-minute floor (validation refuses it anyway)
    assert validity(csr, short_ca, year, now) == datetime.timedelta(minutes=10)
