"""The CSR signing controller: issues approved requests' certificates with the cluster CA.

Kubernetes' pkg/controller/certificates/signer, in kube-controller-manager,
which signs with the CA given by `--cluster-signing-cert-file` and
`--cluster-signing-key-file` (kubeadm points both at /etc/kubernetes/pki/
ca.{crt,key}). tinykube's `apiserver` and `controller-manager` take the same
flags (ControllerOptions.cluster_signing_cert_file / _key_file). Without
them this controller signs nothing, and says so once in the log: a cluster
without a CA to hand out has no TLS bootstrapping.

One CSR, one sync, level-triggered on what the cache says:

1. nothing to do unless the CSR is Approved (and not Denied), has no Failed
   condition, has no certificate yet, and names one of the three signers
   served here (apimachinery/csr.py lists them and their rules);
2. the signer's rules (a kubelet client request must be CN system:node:NAME,
   O system:nodes, no SANs, client usages; ...): a request that breaks them
   gets a Failed condition, reason SignerValidationFailure, and is never
   signed -- retrying would not make it valid;
3. sign: subject and SANs from the request, key usages from the *signer*
   (client auth, or server auth for kubelet-serving: a requester cannot ask
   its way into a serving certificate through a client signer), validity
   the cluster signing duration (a year) or spec.expirationSeconds if
   shorter (at least 10 minutes), never past the CA's own end;
4. write status.certificate (PEM) through UpdateStatus.

A CA file that cannot be read (not yet written, a key that is not the
certificate's) is an error of the sync, retried with backoff: the signer
starts working the moment `tinykube pki init` has written the files. Each
distinct problem is logged once.

    CSR node-csr-x  Approved, signer kube-apiserver-client-kubelet, no certificate
      sync: rules hold -> sign for 1 year -> status.certificate = -----BEGIN CERTIFICATE-----...
"""

from __future__ import annotations

import datetime
import logging

from apimachinery import certs
from apimachinery import csr as csrs
from controllers import register
from controllers.base import Controller, ControllerContext
from protos import certificates_pb2

log = logging.getLogger(__name__)

CSR = certificates_pb2.CertificateSigningRequest

MIN_DURATION = datetime.timedelta(minutes=10)
VALIDATION_FAILURE = "SignerValidationFailure"


class SigningCAError(Exception):
    """The cluster signing CA files cannot be used; the message says which and why."""


def load_signing_ca(cert_file: str, key_file: str) -> certs.CertKeyPair:
    """The CA certificate and its key, checked to belong together."""
    try:
        ca = certs.CertKeyPair(certs.read_cert(cert_file), certs.read_key(key_file))
    except OSError as err:
        raise SigningCAError(f"{err.filename or cert_file}: {err.strerror or err}") from None
    except certs.CertError as err:
        raise SigningCAError(str(err)) from None
    if certs.spki_der(ca.cert.public_key()) != certs.spki_der(ca.key.public_key()):
        raise SigningCAError(f"{key_file} is not the key of {cert_file}")
    return ca


def validity(
    csr: CSR,
    ca: certs.CertKeyPair,
    longest: datetime.timedelta,
    now: datetime.datetime | None = None,
) -> datetime.timedelta:
    """How long the certificate lives: `longest`, or what the CSR asks if shorter (at least
    10 minutes), and never past the CA's notAfter (Kubernetes' signer.duration + PermitNotAfter)."""
    duration = longest
    if csr.spec.HasField("expiration_seconds"):
        asked = datetime.timedelta(seconds=csr.spec.expiration_seconds)
        duration = min(longest, max(MIN_DURATION, asked))
    start = (now or datetime.datetime.now(datetime.timezone.utc)) - certs.BACKDATE
    ca_end = certs.validity_window(ca.cert)[1]
    return min(duration, ca_end - start)


def wants_signing(csr: CSR) -> bool:
    """Approved, not failed, not yet issued, for a signer served here."""
    return (
        csrs.is_approved(csr)
        and not csrs.has_true(csr, csrs.FAILED)
        and not csr.status.certificate
        and csr.spec.signer_name in csrs.SIGNERS
    )


def issue(csr: CSR, ca: certs.CertKeyPair, longest: datetime.timedelta) -> tuple[bytes, str]:
    """(PEM certificate, "") for a request its signer accepts, else (b"", why not)."""
    signer = csr.spec.signer_name
    try:
        request = csrs.parse_request(csr.spec.request)
        problem = csrs.signer_problem(signer, request, list(csr.spec.usages))
        if problem:
            return b"", problem
        cert = certs.sign_csr(
            ca,
            csr.spec.request,
            usages=csrs.x509_usages(signer),
            validity=validity(csr, ca, longest),
        )
    except (csrs.CSRError, certs.CertError) as err:
        return b"", str(err)
    return certs.encode_cert_pem(cert), ""


@register("csrsigning")
class CSRSigningController(Controller):
    """Signs approved CSRs of the three kubernetes.io signers with the cluster CA."""

    name = "csrsigning"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        options = ctx.options
        self.cert_file = options.cluster_signing_cert_file
        self.key_file = options.cluster_signing_key_file
        self.longest = datetime.timedelta(seconds=options.cluster_signing_duration)
        self.ca: certs.CertKeyPair | None = None
        self._last_problem = ""
        self.csrs = ctx.factory.informer(CSR)
        if not (self.cert_file and self.key_file):
            log.warning(
                "csr signing disabled: no --cluster-signing-cert-file and "
                "--cluster-signing-key-file; approved CSRs stay unsigned"
            )
            return
        self.csrs.add_handlers(
            on_add=self.enqueue_obj,
            on_update=lambda _old, new: self.enqueue_obj(new),
        )

    def signing_ca(self) -> certs.CertKeyPair:
        """The CA, read on first use; SigningCAError (logged once per problem) until readable."""
        if self.ca is None:
            try:
                self.ca = load_signing_ca(self.cert_file, self.key_file)
            except SigningCAError as err:
                if str(err) != self._last_problem:
                    self._last_problem = str(err)
                    log.error("cluster signing CA unusable", extra={"error": str(err)})
                raise
            log.info("cluster signing CA loaded", extra={"cert": self.cert_file})
        return self.ca

    async def sync(self, key: str) -> None:
        cached = self.csrs.store.get(key)
        if cached is None or not wants_signing(cached):
            return
        ca = self.signing_ca()
        csr = CSR()
        csr.CopyFrom(cached)
        signer = csr.spec.signer_name
        pem, problem = issue(csr, ca, self.longest)
        if problem:
            csrs.add_condition(csr, csrs.FAILED, VALIDATION_FAILURE, problem)
            await self.client.update_status(csr)
            log.info("csr failed", extra={"csr": key, "signer": signer, "reason": problem})
            return
        csr.status.certificate = pem
        await self.client.update_status(csr)  # Conflict: re-read, synced again
        log.info("csr signed", extra={"csr": key, "signer": signer})
