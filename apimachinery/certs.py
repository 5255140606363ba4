"""Keys, certificates and CSRs for the cluster's PKI: tinykube's client-go util/cert + keyutil.

Kubernetes authenticates its components with X.509 client certificates signed
by one cluster CA, and reads the identity straight out of the subject:

    CN (common name)   -> the user name       kubernetes-admin, system:node:node1
    O  (organizations) -> the groups          system:masters, system:nodes

so a certificate *is* a login, valid until it expires. The same CA signs the
API server's serving certificate, whose subjectAltNames (IP addresses and
DNS names) are what a client checks against the address it dialed. This
module holds the few operations every part of that needs, built on the
`cryptography` package (no cryptography of our own):

* `generate_key` -- ECDSA P-256 by default (small, fast, what TLS 1.3 prefers),
  RSA 2048 on request;
* `new_self_signed_ca` -- the cluster CA (client-go's NewSelfSignedCACert);
* `sign_certificate` / `sign_csr` -- a leaf for a public key or a PEM CSR,
  with the subject, usages (client, server), SANs and validity of a
  `CertConfig` (client-go's cert.Config; sign_csr is what kube-controller-
  manager's CSR signer does for a kubelet's request);
* `make_csr` -- a PEM CSR for a key (what a kubelet sends when it bootstraps);
* PEM encoding, decoding and files: keys are written 0600 and missing
  directories are made 0700 (as kubeadm does for /etc/kubernetes/pki), each
  file through a temporary file and a rename, so a crash leaves the old file
  or the new one, never half of either;
* `identity` -- CN/O as the API server's x509 authenticator reads them;
* `ca_hash` -- kubeadm's discovery hash `sha256:<hex>` over the CA's DER
  SubjectPublicKeyInfo: the value `kubeadm join --discovery-token-ca-cert-hash`
  pins, stable across re-encodings of the certificate and across renewals
  that keep the key;
* `verify_signed_by` -- the issuer's signature and the validity window.

Validity: the CA 10 years, leaves 1 year (kubeadm's defaults). Every
certificate starts five minutes in the past, so a node whose clock is a little
behind the one that signed does not reject a certificate as "not yet valid".

Failure modes: every problem with input data (a PEM that is not a certificate,
a CSR whose signature does not verify, a certificate from another CA, an
expired one) raises `CertError` with a one-line reason; file-system problems
stay `OSError`.
"""

from __future__ import annotations

import datetime
import errno
import hashlib
import ipaddress
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DEFAULT_CA_NAME = "tinykube-ca"
CA_VALIDITY = datetime.timedelta(days=3650)
CERT_VALIDITY = datetime.timedelta(days=365)
BACKDATE = datetime.timedelta(minutes=5)
USAGES = ("client", "server")

_EXTENDED_USAGES = {
    "client": ExtendedKeyUsageOID.CLIENT_AUTH,
    "server": ExtendedKeyUsageOID.SERVER_AUTH,
}


class CertError(Exception):
    """Key, certificate or CSR data that cannot be used; the message says why."""


@dataclass(frozen=True)
class CertConfig:
    """What a leaf certificate says: subject, usages, subjectAltNames, lifetime."""

    common_name: str
    organizations: tuple[str, ...] = ()
    usages: tuple[str, ...] = ("client",)
    ip_addresses: tuple[IPAddress, ...] = ()
    dns_names: tuple[str, ...] = ()
    validity: datetime.timedelta = CERT_VALIDITY

    def __post_init__(self) -> None:
        unknown = sorted(set(self.usages) - set(USAGES))
        if unknown or not self.usages:
            raise CertError(f"usages must be some of {', '.join(USAGES)}, not {unknown}")


@dataclass(frozen=True)
class Identity:
    """Who a client certificate says its holder is: CN is the user, each O a group."""

    user: str
    groups: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class CertKeyPair:
    """A certificate with its private key (a CA, or a leaf about to be written)."""

    cert: x509.Certificate
    key: PrivateKey


# ---- keys -----------------------------------------------------------------------------------


def generate_key(kind: str = "ecdsa") -> PrivateKey:
    """A new private key: "ecdsa" (P-256) or "rsa" (2048 bits)."""
    if kind == "ecdsa":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise CertError(f'key type must be "ecdsa" or "rsa", not "{kind}"')


def _name(common_name: str, organizations: Iterable[str] = ()) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def _now(now: datetime.datetime | None) -> datetime.datetime:
    return now if now is not None else datetime.datetime.now(datetime.timezone.utc)


# ---- signing --------------------------------------------------------------------------------


def new_self_signed_ca(
    key: PrivateKey,
    common_name: str = DEFAULT_CA_NAME,
    *,
    validity: datetime.timedelta = CA_VALIDITY,
    now: datetime.datetime | None = None,
) -> x509.Certificate:
    """A CA certificate for `key`, signed by itself, allowed to sign certificates only."""
    start = _now(now) - BACKDATE
    subject = _name(common_name)
    public = key.public_key()
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=isinstance(key, rsa.RSAPrivateKey),
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    )
    return builder.sign(key, hashes.SHA256())


def sign_certificate(
    ca: CertKeyPair,
    public_key: PublicKey,
    config: CertConfig,
    *,
    now: datetime.datetime | None = None,
) -> x509.Certificate:
    """A leaf certificate for `public_key`, issued by `ca`, saying what `config` says."""
    start = _now(now) - BACKDATE
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=isinstance(public_key, rsa.RSAPublicKey),
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    extended = x509.ExtendedKeyUsage([_EXTENDED_USAGES[u] for u in config.usages])
    authority = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(config.common_name, config.organizations))
        .issuer_name(ca.cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + config.validity)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(extended, critical=False)
        .add_extension(authority, critical=False)
    )
    names: list[x509.GeneralName] = [x509.DNSName(name) for name in config.dns_names]
    names += [x509.IPAddress(ip) for ip in config.ip_addresses]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca.key, hashes.SHA256())


def new_cert_and_key(
    ca: CertKeyPair, config: CertConfig, *, key_kind: str = "ecdsa"
) -> CertKeyPair:
    """A fresh key and its certificate signed by `ca` (kubeadm's pkiutil.NewCertAndKey)."""
    key = generate_key(key_kind)
    return CertKeyPair(sign_certificate(ca, key.public_key(), config), key)


def make_csr(
    key: PrivateKey,
    common_name: str,
    organizations: Iterable[str] = (),
    *,
    dns_names: Iterable[str] = (),
    ip_addresses: Iterable[IPAddress] = (),
) -> bytes:
    """A PEM certificate signing request for `key` with subject CN/O and optional SANs."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        _name(common_name, organizations)
    )
    names: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
    names += [x509.IPAddress(ip) for ip in ip_addresses]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def sign_csr(
    ca: CertKeyPair,
    csr_pem: bytes,
    *,
    usages: tuple[str, ...] = ("client",),
    validity: datetime.timedelta = CERT_VALIDITY,
    now: datetime.datetime | None = None,
) -> x509.Certificate:
    """Sign a PEM CSR: subject CN/O and SANs come from the request, usages from the signer.

    The request's own signature must verify (it proves the requester holds the
    key). The usages are the signer's choice, as with Kubernetes' signers: a
    kubelet cannot ask its way into a serving certificate through a client one.
    """
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError as err:
        raise CertError(f"not a PEM certificate signing request: {err}") from None
    if not csr.is_signature_valid:
        raise CertError("the certificate signing request's signature does not verify")
    user = identity_of_name(csr.subject)
    try:
        ips, dns = _san_values(csr.extensions.get_extension_for_class(x509.SubjectAlternativeName))
    except x509.ExtensionNotFound:
        ips, dns = [], []
    public = csr.public_key()
    if not isinstance(public, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey)):
        raise CertError("only ECDSA and RSA keys can be signed")
    config = CertConfig(
        common_name=user.user,
        organizations=user.groups,
        usages=usages,
        ip_addresses=tuple(ips),
        dns_names=tuple(dns),
        validity=validity,
    )
    return sign_certificate(ca, public, config, now=now)


# ---- reading certificates -------------------------------------------------------------------


def identity_of_name(name: x509.Name) -> Identity:
    """CN as the user, every O as a group; a name without a CN is no identity."""
    common = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not common or not str(common[0].value):
        raise CertError("the subject has no common name (CN), so names no user")
    groups = tuple(str(a.value) for a in name.get_attributes_for_oid(NameOID.ORGANIZATION_NAME))
    return Identity(str(common[0].value), groups)


def identity(cert: x509.Certificate) -> Identity:
    """The user and groups a client certificate authenticates as."""
    return identity_of_name(cert.subject)


def subject_alt_names(cert: x509.Certificate) -> tuple[list[IPAddress], list[str]]:
    """The certificate's SAN IP addresses and DNS names (both empty without the extension)."""
    try:
        return _san_values(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName))
    except x509.ExtensionNotFound:
        return [], []


def _san_values(
    extension: x509.Extension[x509.SubjectAlternativeName],
) -> tuple[list[IPAddress], list[str]]:
    values = extension.value.get_values_for_type(x509.IPAddress)
    ips = [ip for ip in values if isinstance(ip, (ipaddress.IPv4Address, ipaddress.IPv6Address))]
    return ips, extension.value.get_values_for_type(x509.DNSName)


def spki_der(public_key: CertificatePublicKeyTypes) -> bytes:
    """The DER SubjectPublicKeyInfo of a public key: what identifies a key pair."""
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def ca_hash(cert: x509.Certificate) -> str:
    """kubeadm's CA pin: "sha256:" + hex SHA-256 of the DER SubjectPublicKeyInfo."""
    return "sha256:" + hashlib.sha256(spki_der(cert.public_key())).hexdigest()


def validity_window(cert: x509.Certificate) -> tuple[datetime.datetime, datetime.datetime]:
    """(notBefore, notAfter) as aware UTC datetimes, on every supported cryptography."""
    try:
        return cert.not_valid_before_utc, cert.not_valid_after_utc
    except AttributeError:  # cryptography < 42 has only the naive forms
        utc = datetime.timezone.utc
        return (
            cert.not_valid_before.replace(tzinfo=utc),
            cert.not_valid_after.replace(tzinfo=utc),
        )


def verify_signed_by(
    cert: x509.Certificate, ca: x509.Certificate, *, now: datetime.datetime | None = None
) -> None:
    """Raise CertError unless `ca` issued `cert` and both are valid at `now`."""
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        raise CertError(f'certificate "{_cn(cert)}" is not signed by CA "{_cn(ca)}"') from None
    at = _now(now)
    for which in (cert, ca):
        start, end = validity_window(which)
        if at < start:
            raise CertError(
                f'certificate "{_cn(which)}" is not valid before {start:%Y-%m-%dT%H:%M:%SZ}'
            )
        if at > end:
            raise CertError(f'certificate "{_cn(which)}" expired at {end:%Y-%m-%dT%H:%M:%SZ}')


def _cn(cert: x509.Certificate) -> str:
    common = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(common[0].value) if common else cert.subject.rfc4514_string()


# ---- PEM ------------------------------------------------------------------------------------


def encode_cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def encode_key_pem(key: PrivateKey) -> bytes:
    """Unencrypted PEM in the traditional form ("EC PRIVATE KEY"), as keyutil writes."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def load_cert_pem(data: bytes) -> x509.Certificate:
    """The first certificate in PEM `data`."""
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as err:
        raise CertError(f"not a PEM certificate: {err}") from None


def load_key_pem(data: bytes) -> PrivateKey:
    """An unencrypted PEM private key (traditional or PKCS#8), ECDSA or RSA."""
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as err:
        raise CertError(f"not an unencrypted PEM private key: {err}") from None
    if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        raise CertError("only ECDSA and RSA private keys are supported")
    return key


# ---- files ----------------------------------------------------------------------------------


def ensure_dir(path: str | Path) -> Path:
    """`path` as a directory; those made here are 0700 (existing ones keep their mode)."""
    target = Path(path)
    missing = [p for p in (target, *target.parents) if not p.exists()]
    for directory in reversed(missing):
        directory.mkdir(mode=0o700)
        os.chmod(directory, 0o700)  # mkdir's mode passes through the umask
    if not target.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(target))
    return target


def write_file(path: str | Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write `data` atomically (temporary file + rename) with `mode`; makes missing dirs 0700."""
    target = Path(path)
    ensure_dir(target.parent)
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_cert(path: str | Path, cert: x509.Certificate) -> None:
    write_file(path, encode_cert_pem(cert), mode=0o644)


def write_key(path: str | Path, key: PrivateKey) -> None:
    write_file(path, encode_key_pem(key), mode=0o600)


def read_cert(path: str | Path) -> x509.Certificate:
    try:
        return load_cert_pem(Path(path).read_bytes())
    except CertError as err:
        raise CertError(f"{path}: {err}") from None


def read_key(path: str | Path) -> PrivateKey:
    try:
        return load_key_pem(Path(path).read_bytes())
    except CertError as err:
        raise CertError(f"{path}: {err}") from None
