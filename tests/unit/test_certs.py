"""apimachinery.certs: keys, a CA, leaves and CSRs, identities, the CA hash, PEM files."""

from __future__ import annotations

import datetime
import ipaddress
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from apimachinery import certs
from apimachinery.certs import CertConfig, CertError, CertKeyPair, Identity

# A CA made once by certs.new_self_signed_ca; its hash was computed independently with
# `openssl x509 -pubkey -noout | openssl pkey -pubin -outform der | sha256sum`, the
# recipe in kubeadm's documentation for --discovery-token-ca-cert-hash.
FIXTURE_CA = b"""-----BEGIN CERTIFICATE-----
MIIBbTCCARSgAwIBAgIUfXuMunbgociaDCmNGPMgACZc+HUwCgYIKoZIzj0EAwIw
FTETMBEGA1UEAwwKZml4dHVyZS1jYTAeFw0yNjEyMDQxNzA4MDdaFw0zNjEyMDEx
NzA4MDdaMBUxEzARBgNVBAMMCmZpeHR1cmUtY2EwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAARxehAqzYBRvUhhPDXc/trSva6WI8fXuDVPq8VqIF67h9glSAK7uX2d
0cHMCffVLaIBdApjTBCb2xPtdBXZ77/To0IwQDAPBgNVHRMBAf8EBTADAQH/MA4G
A1UdDwEB/wQEAwIBhjAdBgNVHQ4EFgQUmutw/dkm1bUnkMDuvm3KCWkBIjowCgYI
KoZIzj0EAwIDRwAwRAIgLifPjaHkJiAYD/2D55ovoCdT4mcsVfPoAbNZy1+YMjEC
IDEfFtpRm61wzX1LydlSIuwZKE0iN2f+NEvWEoKxlQv1
-----END CERTIFICATE-----
"""
FIXTURE_CA_HASH = "sha256:55d44b42cc6b1ad6fd359953c3076127da9821b8525dd8ad26e25ed725a8413e"
# One instant for the whole module, and everything dated from it: the module may be imported
# minutes before its tests run (the full suite collects first), so "now" must not drift.
NOW = datetime.datetime.now(datetime.timezone.utc)


def make_ca(name: str = certs.DEFAULT_CA_NAME, kind: str = "ecdsa") -> CertKeyPair:
    key = certs.generate_key(kind)
    return CertKeyPair(certs.new_self_signed_ca(key, name, now=NOW), key)


@pytest.fixture(scope="module")
def ca() -> CertKeyPair:
    return make_ca()


@pytest.fixture
def umask_zero() -> Iterator[None]:
    """No umask: modes must come from the code, not from the process's mask."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_keys_are_p256_or_rsa_2048() -> None:
    ecdsa = certs.generate_key()
    assert isinstance(ecdsa, ec.EllipticCurvePrivateKey)
    assert ecdsa.curve.name == "secp256r1"
    rsa_key = certs.generate_key("rsa")
    assert isinstance(rsa_key, rsa.RSAPrivateKey)
    assert rsa_key.key_size == 2048
    with pytest.raises(CertError, match='key type must be "ecdsa" or "rsa", not "dsa"'):
        certs.generate_key("dsa")


def test_the_ca_is_self_signed_and_may_only_sign(ca: CertKeyPair) -> None:
    assert certs.identity(ca.cert) == Identity("tinykube-ca")
    assert ca.cert.issuer == ca.cert.subject
    constraints = ca.cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca
    usage = ca.cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign
    certs.verify_signed_by(ca.cert, ca.cert)
    start, end = certs.validity_window(ca.cert)
    assert start < NOW < end
    assert end - start == certs.CA_VALIDITY
    assert certs.identity(make_ca("other-ca").cert).user == "other-ca"


@pytest.mark.parametrize("kind", ["ecdsa", "rsa"])
def test_a_leaf_chain_verifies_and_says_what_was_asked(ca: CertKeyPair, kind: str) -> None:
    config = CertConfig(
        "kubernetes-admin",
        ("system:masters", "team-a"),
        usages=("client", "server"),
        ip_addresses=(ipaddress.ip_address("10.0.0.1"), ipaddress.ip_address("::1")),
        dns_names=("kubernetes", "localhost"),
    )
    pair = certs.new_cert_and_key(ca, config, key_kind=kind)
    certs.verify_signed_by(pair.cert, ca.cert)
    assert certs.identity(pair.cert) == Identity("kubernetes-admin", ("system:masters", "team-a"))
    ips, dns = certs.subject_alt_names(pair.cert)
    assert ips == [ipaddress.ip_address("10.0.0.1"), ipaddress.ip_address("::1")]
    assert dns == ["kubernetes", "localhost"]
    extended = pair.cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(extended) == {ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH}
    assert not pair.cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert certs.spki_der(pair.cert.public_key()) == certs.spki_der(pair.key.public_key())


def test_usages_are_client_server_or_both(ca: CertKeyPair) -> None:
    server = certs.new_cert_and_key(ca, CertConfig("kube-apiserver", usages=("server",))).cert
    extended = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(extended) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert certs.subject_alt_names(server) == ([], [])
    with pytest.raises(CertError, match="usages must be some of client, server"):
        CertConfig("x", usages=("email",))
    with pytest.raises(CertError, match="usages must be some of"):
        CertConfig("x", usages=())


def test_a_certificate_from_another_ca_does_not_verify(ca: CertKeyPair) -> None:
    other = make_ca()  # same name, different key: only the signature tells them apart
    leaf = certs.new_cert_and_key(other, CertConfig("mallory", ("system:masters",))).cert
    with pytest.raises(CertError, match='"mallory" is not signed by CA "tinykube-ca"'):
        certs.verify_signed_by(leaf, ca.cert)
    renamed = make_ca("someone-else")
    with pytest.raises(CertError, match="is not signed by"):
        certs.verify_signed_by(certs.new_cert_and_key(renamed, CertConfig("x")).cert, ca.cert)


def test_validity_is_checked_both_ways(ca: CertKeyPair) -> None:
    config = CertConfig("old", validity=datetime.timedelta(days=1))
    key = certs.generate_key()
    stale = certs.sign_certificate(ca, key.public_key(), config, now=NOW - datetime.timedelta(3))
    with pytest.raises(CertError, match='certificate "old" expired at'):
        certs.verify_signed_by(stale, ca.cert)
    fresh = certs.sign_certificate(ca, key.public_key(), config, now=NOW)
    certs.verify_signed_by(fresh, ca.cert, now=NOW)
    with pytest.raises(CertError, match='certificate "old" is not valid before'):
        certs.verify_signed_by(fresh, ca.cert, now=NOW - datetime.timedelta(hours=1))
    # Backdated a little, so a node whose clock lags a minute accepts it.
    certs.verify_signed_by(fresh, ca.cert, now=NOW - datetime.timedelta(minutes=1))


def test_identity_needs_a_common_name() -> None:
    name = x509.Name([x509.NameAttribute(x509.NameOID.ORGANIZATION_NAME, "system:nodes")])
    with pytest.raises(CertError, match="no common name"):
        certs.identity_of_name(name)


def test_a_csr_is_signed_with_its_subject_and_the_signers_usages(ca: CertKeyPair) -> None:
    key = certs.generate_key()
    csr = certs.make_csr(
        key,
        "system:node:node1",
        ["system:nodes"],
        dns_names=["node1"],
        ip_addresses=[ipaddress.ip_address("192.168.56.11")],
    )
    assert csr.startswith(b"-----BEGIN CERTIFICATE REQUEST-----")
    cert = certs.sign_csr(ca, csr, usages=("server",))
    certs.verify_signed_by(cert, ca.cert)
    assert certs.identity(cert) == Identity("system:node:node1", ("system:nodes",))
    assert certs.subject_alt_names(cert) == ([ipaddress.ip_address("192.168.56.11")], ["node1"])
    assert certs.spki_der(cert.public_key()) == certs.spki_der(key.public_key())
    extended = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(extended) == [ExtendedKeyUsageOID.SERVER_AUTH]
    plain = certs.sign_csr(ca, certs.make_csr(key, "system:kube-scheduler"))
    assert certs.identity(plain) == Identity("system:kube-scheduler")
    assert certs.subject_alt_names(plain) == ([], [])


def test_a_bad_csr_is_refused(ca: CertKeyPair) -> None:
    with pytest.raises(CertError, match="not a PEM certificate signing request"):
        certs.sign_csr(ca, b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n")
    good = certs.make_csr(certs.generate_key(), "someone")
    der = bytearray(x509.load_pem_x509_csr(good).public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0x01  # a bit of the signature
    tampered = x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM)
    with pytest.raises(CertError, match="signature does not verify"):
        certs.sign_csr(ca, tampered)


def test_ca_hash_matches_kubeadm_and_an_independent_computation(ca: CertKeyPair) -> None:
    fixture = certs.load_cert_pem(FIXTURE_CA)
    assert certs.ca_hash(fixture) == FIXTURE_CA_HASH
    digest = hashes.Hash(hashes.SHA256())
    digest.update(
        ca.cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    assert certs.ca_hash(ca.cert) == "sha256:" + digest.finalize().hex()


def test_ca_hash_is_stable_across_encodings_and_renewals(ca: CertKeyPair) -> None:
    reread = certs.load_cert_pem(certs.encode_cert_pem(ca.cert))
    der = x509.load_der_x509_certificate(ca.cert.public_bytes(serialization.Encoding.DER))
    assert certs.ca_hash(reread) == certs.ca_hash(der) == certs.ca_hash(ca.cert)
    renewed = certs.new_self_signed_ca(ca.key)  # a new certificate, the same key
    assert renewed.serial_number != ca.cert.serial_number
    assert certs.ca_hash(renewed) == certs.ca_hash(ca.cert)
    assert certs.ca_hash(make_ca().cert) != certs.ca_hash(ca.cert)
    assert len(certs.ca_hash(ca.cert)) == len("sha256:") + 64


@pytest.mark.parametrize("kind", ["ecdsa", "rsa"])
def test_pem_round_trips(ca: CertKeyPair, kind: str) -> None:
    key = certs.generate_key(kind)
    pem = certs.encode_key_pem(key)
    assert pem.startswith(b"-----BEGIN EC PRIVATE KEY" if kind == "ecdsa" else b"-----BEGIN RSA")
    again = certs.load_key_pem(pem)
    assert certs.spki_der(again.public_key()) == certs.spki_der(key.public_key())
    pkcs8 = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    assert certs.spki_der(certs.load_key_pem(pkcs8).public_key()) == certs.spki_der(
        key.public_key()
    )
    assert certs.load_cert_pem(certs.encode_cert_pem(ca.cert)) == ca.cert


def test_garbage_is_a_cert_error() -> None:
    with pytest.raises(CertError, match="not a PEM certificate"):
        certs.load_cert_pem(b"hello")
    with pytest.raises(CertError, match="not an unencrypted PEM private key"):
        certs.load_key_pem(FIXTURE_CA)
    encrypted = certs.generate_key().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    with pytest.raises(CertError, match="not an unencrypted PEM private key"):
        certs.load_key_pem(encrypted)


@pytest.mark.usefixtures("umask_zero")
def test_files_keys_0600_certs_0644_new_dirs_0700(ca: CertKeyPair, tmp_path: Path) -> None:
    existing = tmp_path / "existing"
    existing.mkdir(mode=0o755)
    key_path = existing / "a" / "b" / "ca.key"
    cert_path = existing / "a" / "b" / "ca.crt"
    certs.write_key(key_path, ca.key)
    certs.write_cert(cert_path, ca.cert)
    assert mode(key_path) == 0o600
    assert mode(cert_path) == 0o644
    assert mode(existing / "a") == mode(existing / "a" / "b") == 0o700
    assert mode(existing) == 0o755  # a directory that was there keeps its mode
    assert certs.spki_der(certs.read_key(key_path).public_key()) == certs.spki_der(
        ca.key.public_key()
    )
    assert certs.read_cert(cert_path) == ca.cert
    key_path.chmod(0o644)  # replaced, not rewritten in place: the mode is ours again
    certs.write_key(key_path, ca.key)
    assert mode(key_path) == 0o600
    assert sorted(p.name for p in key_path.parent.iterdir()) == ["ca.crt", "ca.key"]


def test_read_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.crt"
    bad.write_text("not a certificate")
    with pytest.raises(CertError, match=f"{bad}: not a PEM certificate"):
        certs.read_cert(bad)
    with pytest.raises(CertError, match=f"{bad}: not an unencrypted PEM private key"):
        certs.read_key(bad)
    with pytest.raises(FileNotFoundError):
        certs.read_cert(tmp_path / "missing.crt")
    with pytest.raises(NotADirectoryError):
        certs.ensure_dir(bad / "sub")
    with pytest.raises(NotADirectoryError):
        certs.ensure_dir(bad)
