"""One CertificateSigningRequest: send it, wait for its certificate (util/certificate/csr).

    csr = await request_certificate(client, csr_pem)          # create (or find) the object
    cert_pem = await wait_for_certificate(client, csr.metadata.name, timeout=3600)

The object (certificates.k8s.io/v1, protos/certificates.proto):

    metadata.name      node-csr-<digest of the request>: the same request makes
                       the same name, so a retry after a crash or a lost answer
                       finds its earlier object (AlreadyExists -> get it)
    spec.request       the PEM PKCS#10 request (certs.make_csr)
    spec.signerName    kubernetes.io/kube-apiserver-client-kubelet
    spec.usages        digital signature, client auth (+ key encipherment for RSA)
    spec.username ...  filled in by the API server from who sent it

Then three parties act on it, none of them the kubelet: an approver adds an
Approved condition (kube-controller-manager's csrapproving auto-approves a
node's own request; an admin may `approve` by hand), the signer puts the
certificate in status.certificate, and the requester -- this module -- sees
it through a watch on the object's name. A Denied or Failed condition ends
the wait with `CertificateRequestError` carrying the condition's reason and
message (`CertificateRequestRefused`), as `kubectl certificate deny` shows it:

    certificate signing request node-csr-3f2a... was denied: NotMyNode: wrong node

The wait re-reads the object and resumes its watch whenever the watch ends or
the server is briefly away, and gives up after `timeout` seconds
(Kubernetes' bootstrap waits up to an hour). An existing object with the same
name but another request (a digest collision, or a hand-made object) is an
error rather than a certificate for someone else's key.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time

from apimachinery import errors
from apimachinery.client import Client
from protos import certificates_pb2

log = logging.getLogger(__name__)

SIGNER_KUBELET_CLIENT = "kubernetes.io/kube-apiserver-client-kubelet"
USAGES = ("digital signature", "client auth")
_RETRY = 1.0

CertificateSigningRequest = certificates_pb2.CertificateSigningRequest


class CertificateRequestError(Exception):
    """The request was denied, failed, or no certificate came in time; the message says which."""


class CertificateRequestRefused(CertificateRequestError):
    """The request has a Denied or Failed condition: it will never be signed."""


def csr_name(csr_pem: bytes, prefix: str = "node-csr-") -> str:
    """A stable object name for a request: the prefix and a digest of its PEM."""
    return prefix + hashlib.sha256(csr_pem).hexdigest()[:32]


async def request_certificate(
    client: Client,
    csr_pem: bytes,
    *,
    name: str = "",
    signer_name: str = SIGNER_KUBELET_CLIENT,
    usages: tuple[str, ...] = USAGES,
    expiration_seconds: int | None = None,
) -> CertificateSigningRequest:
    """Create the CertificateSigningRequest, or find the one an earlier attempt created."""
    csr = CertificateSigningRequest()
    csr.metadata.name = name or csr_name(csr_pem)
    csr.spec.request = csr_pem
    csr.spec.signer_name = signer_name
    csr.spec.usages.extend(usages)
    if expiration_seconds is not None:
        csr.spec.expiration_seconds = expiration_seconds
    try:
        created = await client.create(csr)
    except errors.AlreadyExists:
        created = await client.get(CertificateSigningRequest, csr.metadata.name)
        if created.spec.request != csr_pem:
            raise CertificateRequestError(
                f"certificate signing request {csr.metadata.name} exists with another request in it"
            ) from None
    log.info(
        "certificate signing request sent",
        extra={"csr": created.metadata.name, "signer": signer_name},
    )
    return created


def issued(csr: CertificateSigningRequest) -> bytes:
    """The certificate if issued (b"" while waiting); CertificateRequestError if refused."""
    for condition in csr.status.conditions:
        if condition.type in ("Denied", "Failed") and condition.status in ("", "True"):
            verb = "was denied" if condition.type == "Denied" else "failed"
            why = ": ".join(part for part in (condition.reason, condition.message) if part)
            raise CertificateRequestRefused(
                f"certificate signing request {csr.metadata.name} {verb}"
                + (f": {why}" if why else "")
            )
    return bytes(csr.status.certificate)


async def wait_for_certificate(client: Client, name: str, *, timeout: float = 3600.0) -> bytes:
    """The PEM certificate of request `name`, once the signer has issued it."""
    try:
        return await asyncio.wait_for(_wait(client, name), timeout)
    except asyncio.TimeoutError:
        raise CertificateRequestError(
            f"timed out after {timeout:g}s waiting for certificate signing request {name}"
            " to be signed (is it approved? is a signer running?)"
        ) from None


async def _wait(client: Client, name: str) -> bytes:
    """Get, then watch by name from what was read; again whenever the watch ends."""
    selector = f"metadata.name={name}"
    while True:
        started = time.monotonic()
        try:
            csr = await client.get(CertificateSigningRequest, name)
            cert = issued(csr)
            if cert:
                return cert
            async for event in client.watch(
                CertificateSigningRequest,
                field_selector=selector,
                resource_version=csr.metadata.resource_version,
            ):
                if event.type == "DELETED":
                    raise CertificateRequestError(
                        f"certificate signing request {name} was deleted before it was signed"
                    )
                if event.type in ("ADDED", "MODIFIED"):
                    cert = issued(event.object)
                    if cert:
                        return cert
        except errors.NotFound:
            raise CertificateRequestError(
                f"certificate signing request {name} was deleted before it was signed"
            ) from None
        except (errors.ServiceUnavailable, errors.Expired) as err:
            log.warning("waiting for certificate", extra={"csr": name, "error": str(err)})
        if time.monotonic() - started < _RETRY:
            await asyncio.sleep(_RETRY)
